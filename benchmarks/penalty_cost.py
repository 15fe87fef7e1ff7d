"""What a gradient penalty costs per GAN step: the trainer's step without it, with R1 on every N-th step, and on every step, in one run.

R1 (``--r1 GAMMA``) runs D again on the real batch and back-propagates through its gradient (a
double backward); ``--gan-penalty-every N`` computes it on every N-th step only. This times
gan-edu's ``GANTrainer`` itself on real data (the built-in shapes, or MNIST with ``--data-root``)
with the three settings, so the penalty's share of a step is measured, not guessed::

    python benchmarks/penalty_cost.py                                         # shapes 1x32x32, cdcgan-cbn 32/32 (quickstart's models)
    python benchmarks/penalty_cost.py --dataset mnist --data-root DIR --model cdcgan   # the mnist preset's models
    python benchmarks/penalty_cost.py --dataset mnist --data-root DIR --model cdcgan --no-channels-last --profile
    python benchmarks/penalty_cost.py --dataset mnist --data-root DIR --model cdcgan --d-alone     # D only: where the term's time goes

The settings run alternately (A B C A B C ...), each round the same number of timed steps after
its own warm-up, each from the same seed; the median per setting is kept and printed with its
ratio to the step without a penalty. ``--profile`` adds torch.profiler's table of the R1 term
alone (D's forward on the real batch and the double backward), by operator. ``--d-alone`` times
D without G, the data loader or the trainer, in both memory layouts: its plain step, the R1 term,
and both from one forward of the real batch (how much a penalty that reused the objective's
forward would save). CPU defaults as in training (channels-last on the CPU, fused Adam); EMA off,
as in the mnist preset.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from gan_edu.data import load_dataset
from gan_edu.losses import get_loss, r1_penalty
from gan_edu.models import build_gan
from gan_edu.training import GANTrainer, GANTrainerConfig


def make_trainer(args, data, r1: float, every: int) -> GANTrainer:
    torch.manual_seed(0)
    g, d = build_gan(args.model, image_shape=data.image_shape, num_classes=data.num_classes, g_channels=args.width, d_channels=args.width)
    config = GANTrainerConfig(
        epochs=10**6, max_steps=args.warmup, batch_size=args.batch_size, device=args.device, progress=False, log_every=50,
        ema=False, lr_g=5e-4, lr_d=5e-4, penalty_every=every, channels_last=args.channels_last,
    )
    trainer = GANTrainer(g, d, get_loss("non-saturating", r1=r1), config=config)
    trainer.callbacks = []  # no pictures: time the training itself
    return trainer


def time_steps(trainer: GANTrainer, data, steps: int) -> tuple[float, int]:
    """Milliseconds per step over ``steps`` steps after the trainer's warm-up, and on how many of them the penalty ran."""
    trainer.fit(data)  # the warm-up steps
    trainer.config = GANTrainerConfig(**{**trainer.config.to_dict(), "max_steps": trainer.config.max_steps + steps})
    computed = count_penalties(trainer.loss)
    t0 = time.perf_counter()
    trainer.fit(data)
    return (time.perf_counter() - t0) / steps * 1e3, computed[0]


def count_penalties(loss) -> list[int]:
    """Make ``loss.penalty`` count the terms it returns (on this instance only); returns the counter."""
    computed, penalty = [0], loss.penalty

    def counted(*args, **kwargs):
        term = penalty(*args, **kwargs)
        computed[0] += term is not None
        return term

    loss.penalty = counted
    return computed


def profile_r1(trainer: GANTrainer, data) -> None:
    """torch.profiler's table of the R1 term alone on one real batch, 20 times."""
    d, n = trainer.discriminator, trainer.config.batch_size
    real = trainer.speed.prepare_batch(data.images[:n].to(trainer.device).float().div(127.5).sub(1))  # (N, C, H, W) in [-1, 1]
    labels = data.labels[:n].to(trainer.device)  # (N,)
    with torch.profiler.profile() as prof:
        for _ in range(20):
            r1_penalty(d, real, labels).backward()
            d.zero_grad(set_to_none=True)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def time_d_alone(args, data) -> None:
    """D alone, both layouts: its plain step, the R1 term, and the two from one forward (the R1 gradient
    taken from the objective's own forward on the real batch), mean ms over ``--steps`` after a warm-up."""
    n = args.batch_size
    images = data.images[: 2 * n].float().div(127.5).sub(1)  # (2N, C, H, W) in [-1, 1]
    real, fake, labels = images[:n], images[n:], data.labels[:n]

    def plain(d, real, fake):
        (F.softplus(-d(real, labels)).mean() + F.softplus(d(fake, labels)).mean()).backward()

    def r1_term(d, real, fake):
        r1_penalty(d, real, labels).backward()

    def one_forward(d, real, fake):
        x = real.detach().requires_grad_(True)
        logits = d(x, labels)  # (N,)
        (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)  # (N, C, H, W)
        (F.softplus(-logits).mean() + F.softplus(d(fake, labels)).mean() + 2.0 * grad.flatten(1).pow(2).sum(1).mean()).backward()

    print(f"D alone, {args.model} width {args.width}, batch {n}, mean of {args.steps} steps")
    for layout in (torch.channels_last, torch.contiguous_format):
        torch.manual_seed(0)
        _, d = build_gan(args.model, image_shape=data.image_shape, num_classes=data.num_classes, g_channels=args.width, d_channels=args.width)
        d = d.to(memory_format=layout)
        r, f = real.contiguous(memory_format=layout), fake.contiguous(memory_format=layout)
        for name, step in (("plain step", plain), ("R1 term", r1_term), ("both, one forward", one_forward)):
            for i in range(args.warmup + args.steps):
                if i == args.warmup:
                    t0 = time.perf_counter()
                step(d, r, f)
                d.zero_grad(set_to_none=True)
            ms = (time.perf_counter() - t0) / args.steps * 1e3
            print(f"  {'channels-last' if layout is torch.channels_last else 'NCHW':13s} {name:18s} {ms:7.2f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="shapes", choices=("shapes", "mnist"))
    p.add_argument("--data-root", default=None, help="mnist: the folder with MNIST's files")
    p.add_argument("--num-images", type=int, default=5000, help="shapes only")
    p.add_argument("--channels", type=int, default=1, help="shapes only: 1 (grey, as quickstart) or 3")
    p.add_argument("--model", default="cdcgan-cbn", help="a conditional registry model (cdcgan, cdcgan-cbn)")
    p.add_argument("--width", type=int, default=32, help="g_channels = d_channels")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--every", type=int, default=4, help="the lazy setting timed beside every step")
    p.add_argument("--steps", type=int, default=200, help="timed steps per setting and round")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2, help="rounds (A B C per round)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None, help="NHWC layout (default: gan-edu's, on for the CPU)")
    p.add_argument("--profile", action="store_true", help="also print the R1 term's operators (torch.profiler)")
    p.add_argument("--d-alone", action="store_true", help="time D alone instead (CPU): its plain step, the R1 term, both from one forward; channels-last and NCHW")
    args = p.parse_args()
    if args.dataset == "mnist" and not args.data_root:
        p.error("--dataset mnist needs --data-root DIR (the folder with MNIST's files)")
    options = {"n": args.num_images, "channels": args.channels} if args.dataset == "shapes" else {"data_root": args.data_root, "download": False}
    data = load_dataset(args.dataset, "train", **options)
    if args.d_alone:
        return time_d_alone(args, data)
    settings = {"no penalty": (0.0, 1), f"R1 every {args.every}": (1.0, args.every), "R1 every step": (1.0, 1)}
    times: dict[str, list[float]] = {name: [] for name in settings}
    penalties: dict[str, int] = {}
    for _ in range(args.repeats):
        for name, (r1, every) in settings.items():
            ms, penalties[name] = time_steps(make_trainer(args, data, r1, every), data, args.steps)
            times[name].append(ms)
    first = make_trainer(args, data, 1.0, 1)
    print(f"GAN step (G's and D's updates), {args.dataset} {'x'.join(map(str, data.image_shape))} batch {args.batch_size}, "
          f"{args.model} width {args.width}, {first.device}, channels-last {first.speed.channels_last}, "
          f"torch threads {torch.get_num_threads()}, median of {args.repeats} x {args.steps} steps")
    base = statistics.median(times["no penalty"])
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"  {name:15s} {ms:7.2f} ms  ({ms / base:.2f}x no penalty)  penalty on {penalties[name]} of {args.steps} steps  "
              f"rounds: {', '.join(f'{v:.1f}' for v in values)}")
    if args.profile:
        profile_r1(first, data)


if __name__ == "__main__":
    main()
