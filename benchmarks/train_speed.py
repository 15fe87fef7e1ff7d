"""Training speed: gan-edu's GANTrainer vs the canonical PyTorch DCGAN loop, in one run.

The baseline is the loop of the PyTorch examples' ``dcgan/main.py``, written out below: a
torchvision-style data set decoded per image through PIL, ``transforms.ToTensor`` +
``Normalize``, a ``DataLoader`` with worker processes, a discriminator ending in ``nn.Sigmoid``
and ``nn.BCELoss``, and a ``.item()`` per step for the log line. Both sides train the same
architecture (gan-edu's DCGAN generator and discriminator), batch, device and data.

Each side runs in its own subprocess (so its peak memory is its own), twice, alternating
(A B A B), and the best of each is kept. Prints, for each batch size (64 and 128 unless
``--batch-sizes`` says otherwise), images per second, milliseconds per GAN step, the ratio, and
peak memory. gan-edu's speed switches are flags here as in ``gan-edu train``; ``--cuda-graph``
records gan-edu's step as a CUDA graph (its warm-up and recording fall in the untimed steps).

``--variants`` times several gan-edu settings against the same baseline runs, one row each, so
the CPU options can be compared in one run (each variant is ``+``-joined switches:
``channels-last``, ``nchw`` (channels-last off), ``compile``, ``fused`` / ``no-fused`` (fused or
foreach Adam), ``threads1`` (one torch thread), ``no-ema``, ``bf16`` (bfloat16 autocast: other
arithmetic, so a speed row, not a recipe), ``cuda-graph`` (the recorded step); ``default`` is
gan-edu's defaults)::

    python benchmarks/train_speed.py --variants default,nchw,no-fused,threads1,no-ema
    python benchmarks/train_speed.py --device cuda --variants default,cuda-graph,cuda-graph+bf16+channels-last

    python benchmarks/train_speed.py                                # shapes, CPU
    python benchmarks/train_speed.py --dataset cifar10 --data-root ~/data --device cuda --cuda-graph
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def load_images(args):
    """uint8 (N, C, H, W) images and labels, as both sides see them."""
    from gan_edu.data import load_dataset

    options = {"n": args.num_images} if args.dataset == "shapes" else {"data_root": args.data_root, "download": False}
    return load_dataset(args.dataset, "train", **options)


def build_models(args, image_shape, seed=0):
    import torch

    from gan_edu.models import build_gan

    torch.manual_seed(seed)
    return build_gan("dcgan", image_shape=image_shape, g_channels=args.width, d_channels=args.width)


def run_baseline(args) -> dict:
    """The PyTorch-examples loop, unchanged in spirit: PIL per image, BCELoss on a Sigmoid."""
    import torch
    from PIL import Image
    from torch import nn
    from torchvision import transforms

    data = load_images(args)
    images = data.images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C) uint8, as torchvision data sets hold them
    labels = data.labels.numpy()
    c = data.image_shape[0]

    class PILDataset(torch.utils.data.Dataset):
        """Like torchvision.datasets.CIFAR10: a PIL image per item, then the transforms."""

        def __init__(self, transform):
            self.transform = transform

        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            img = Image.fromarray(images[i].squeeze(-1) if c == 1 else images[i])
            return self.transform(img), int(labels[i])

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * c, (0.5,) * c)])
    loader = torch.utils.data.DataLoader(
        PILDataset(transform), batch_size=args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True,
        persistent_workers=args.workers > 0, pin_memory=args.device.startswith("cuda"),
    )
    device = torch.device(args.device)
    net_g, d_body = build_models(args, data.image_shape)
    net_d = nn.Sequential(d_body, nn.Sigmoid())  # the example's D ends in a sigmoid
    net_g, net_d = net_g.to(device), net_d.to(device)
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real_label, fake_label = 1.0, 0.0
    step, seen, t0 = 0, 0, None
    while step < args.warmup + args.steps:
        for real, _ in loader:
            if step == args.warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            real = real.to(device)
            b = real.size(0)
            # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
            net_d.zero_grad()
            label = torch.full((b,), real_label, device=device)
            output = net_d(real).view(-1)
            err_d_real = criterion(output, label)
            err_d_real.backward()
            noise = torch.randn(b, net_g.latent_dim, device=device)
            fake = net_g(noise)
            label.fill_(fake_label)
            output = net_d(fake.detach()).view(-1)
            err_d_fake = criterion(output, label)
            err_d_fake.backward()
            opt_d.step()
            # (2) Update G network: maximize log(D(G(z)))
            net_g.zero_grad()
            label.fill_(real_label)
            output = net_d(fake).view(-1)
            err_g = criterion(output, label)
            err_g.backward()
            opt_g.step()
            _ = (err_d_real + err_d_fake).item(), err_g.item()  # the example prints these every step
            step += 1
            if step > args.warmup:
                seen += b
            if step >= args.warmup + args.steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"images_per_s": seen / (time.perf_counter() - t0), **peak_memory(device)}


def run_gan_edu(args) -> dict:
    import torch

    from gan_edu.training import GANTrainer, GANTrainerConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_images(args)
    g, d = build_models(args, data.image_shape)
    config = GANTrainerConfig(
        epochs=10**6, max_steps=args.warmup, batch_size=args.batch_size, device=args.device, progress=False,
        log_every=50, precision=args.precision, channels_last=args.channels_last, compile=args.compile, cuda_graph=args.cuda_graph, ema=args.ema,
        **({} if args.fused_optimizer is None else {"fused_optimizer": args.fused_optimizer}),
    )
    trainer = GANTrainer(g, d, config=config)
    trainer.callbacks = []  # no pictures: time the training itself
    trainer.fit(data)  # warm-up steps (and compilation)
    trainer.config = GANTrainerConfig(**{**config.to_dict(), "max_steps": args.warmup + args.steps})
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    trainer.fit(data)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    replayed = trainer.captured is not None and trainer.captured.replays > 0
    return {"images_per_s": args.steps * args.batch_size / (time.perf_counter() - t0), "cuda_graph": replayed, **peak_memory(trainer.device)}


def peak_memory(device) -> dict:
    import torch

    out = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="shapes", choices=("shapes", "cifar10", "mnist"))
    p.add_argument("--data-root", default=None)
    p.add_argument("--num-images", type=int, default=10_000, help="shapes only")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-sizes", default="64,128", help="comma-separated; each gets its own runs and ratio")
    p.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)  # one size: set by the parent for each subprocess
    p.add_argument("--width", type=int, default=64, help="g_channels = d_channels")
    p.add_argument("--steps", type=int, default=40, help="timed steps per side")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--workers", type=int, default=2, help="baseline DataLoader workers (the example's default: 2)")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None, help="gan-edu side: NHWC layout (default: gan-edu's, on for the CPU)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--cuda-graph", action="store_true", help="gan-edu side: record the step as a CUDA graph")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True, help="gan-edu side: the average of G (on by default in gan-edu; the baseline has none)")
    p.add_argument("--fused-optimizer", action=argparse.BooleanOptionalAction, default=None, help="gan-edu side: fused Adam kernels (default: gan-edu's default)")
    p.add_argument("--threads", type=int, default=0, help="gan-edu side: torch threads (0: torch's default)")
    p.add_argument("--variants", help="comma-separated gan-edu settings to time against the same baseline runs (see the docstring)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--only", choices=("baseline", "gan-edu"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.only:
        print(json.dumps(run_baseline(args) if args.only == "baseline" else run_gan_edu(args)))
        return
    from sampling import load_average  # the sampling benchmark's, beside this file

    variants = parse_variants(args.variants) if args.variants else {"gan-edu": []}
    print(f"train speed, {args.dataset} {args.device}, width {args.width}, {args.steps} timed steps, precision {args.precision}"
          f"{'' if args.channels_last is None else ', channels-last' if args.channels_last else ', no channels-last'}{', compile' if args.compile else ''}{', cuda-graph' if args.cuda_graph else ''}"
          f"; gan-edu {'with' if args.ema else 'without'} EMA; load average {load_average()}")
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        results: dict[str, list[dict]] = {"baseline": [], **{name: [] for name in variants}}
        for _ in range(args.repeats):
            for side in results:
                flags = ["--only", "baseline"] if side == "baseline" else ["--only", "gan-edu", *variants[side]]
                out = subprocess.run([sys.executable, *sys.argv, "--batch-size", str(batch), *flags], capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{side} failed at batch {batch}:\n{out.stderr}")
                results[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"  batch {batch} {side:9s} {results[side][-1]['images_per_s']:9.1f} img/s", file=sys.stderr)
        best = {side: max(runs, key=lambda r: r["images_per_s"]) for side, runs in results.items()}
        print(f"  batch {batch}:")
        for side, r in best.items():
            mem = ", ".join(f"{k} {v:.0f}" for k, v in r.items() if k not in ("images_per_s", "cuda_graph"))
            graph = " (recorded step replayed)" if r.get("cuda_graph") else ""
            ratio = "" if side == "baseline" else f"  {r['images_per_s'] / best['baseline']['images_per_s']:.2f}x"
            print(f"    {side:24s} {r['images_per_s']:9.1f} images/s  {1000 * batch / r['images_per_s']:7.2f} ms/step{ratio}   {mem}{graph}")
        for side in variants:
            print(f"    ratio {side} / baseline at batch {batch}: {best[side]['images_per_s'] / best['baseline']['images_per_s']:.2f}x")
    print(f"load average at the end {load_average()}")


SWITCHES = {
    "default": [], "channels-last": ["--channels-last"], "nchw": ["--no-channels-last"], "compile": ["--compile"], "fused": ["--fused-optimizer"],
    "no-fused": ["--no-fused-optimizer"], "threads1": ["--threads", "1"], "no-ema": ["--no-ema"], "bf16": ["--precision", "bf16"],
    "cuda-graph": ["--cuda-graph"],
}


def parse_variants(text: str) -> dict[str, list[str]]:
    """``"default,channels-last+fused"`` -> {name: the gan-edu side's flags}; one line naming an unknown switch."""
    variants = {}
    for name in text.split(","):
        flags = []
        for switch in name.split("+"):
            if switch not in SWITCHES:
                sys.exit(f"--variants: unknown switch {switch!r}; expected {', '.join(SWITCHES)} joined by '+'")
            flags += SWITCHES[switch]
        variants[f"gan-edu {name}"] = flags
    return variants


if __name__ == "__main__":
    main()
