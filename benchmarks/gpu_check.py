"""The GPU checks of the recorded step (``cuda_graph``), bf16, and sampling on the GPU, in one run.

Run by ``benchmarks/gpu_check.sh`` (which adds the speed benchmarks); prints each figure and
writes them all to ``OUT/gpu_check.json``:

1. **GAN step, recorded vs eager**: the same cdcgan run (shapes, width 64, batch 64, EMA and
   DiffAugment on, cuDNN in deterministic mode) for ``--steps`` steps with and without
   ``cuda_graph``: the largest weight difference, the losses, and milliseconds per step of each
   (timed over the steps after the recording, under deterministic cuDNN: the speed figures to quote
   are train_speed.py's, step 2 of gpu_check.sh).
2. **Classifier step, recorded vs eager**: ResNet-9 (width 16, batch 256, one-cycle SGD) likewise.
3. **bf16**: the recorded GAN step at bf16 + channels-last, against the fp32 one (ms per step),
   and ``torch.profiler`` of a few eager steps of each: kernels launched per step and the
   operations that take the GPU's time (``OUT/profile_fp32.txt``, ``OUT/profile_bf16.txt``).
4. **Sampling on the GPU**: the trained G exported to ONNX; images made with onnxruntime's CUDA
   provider into torch's buffers vs the CPU provider's (how many uint8 values differ), and
   images per second of: onnxruntime CUDA into torch buffers, onnxruntime CUDA through host
   arrays, torch eager on CUDA.

``--dry-run``: the same code on the CPU, tiny, with the CPU rehearsal standing in for CUDA graphs
(the test suite runs it so the script needs no edits on a GPU machine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_edu.data.datasets import load_dataset  # noqa: E402
from gan_edu.export import export_generator  # noqa: E402
from gan_edu.export.runtime import OnnxGenerator  # noqa: E402
from gan_edu.models.classifier import build_classifier  # noqa: E402
from gan_edu.synthetic import balanced_labels, sample_images, sample_into_torch  # noqa: E402
from gan_edu.training import GANTrainerConfig, capture  # noqa: E402
from gan_edu.training.classifier_trainer import ClassifierTrainer, ClassifierTrainerConfig  # noqa: E402
from gan_edu.training.runs import new_gan_run  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa)


def timed_fit(trainer, data, steps: int, device: torch.device) -> float:
    """Fit ``steps`` more steps; milliseconds per step."""
    trainer.config = type(trainer.config)(**{**trainer.config.to_dict(), "max_steps": trainer.step + steps})
    sync(device)
    t0 = time.perf_counter()
    trainer.fit(data)
    sync(device)
    return 1000 * (time.perf_counter() - t0) / steps


def gan_pair(args, data, device: torch.device, **options) -> dict:
    """The same GAN run eager and recorded: weights after ``steps``, then ms per step of each."""
    runs = {}
    for graph in (False, True):
        config = GANTrainerConfig(
            epochs=10**6, max_steps=args.steps, batch_size=args.batch, device=str(device), progress=False, log_every=50,
            cudnn_benchmark=False, diffaugment="translation,cutout,color", cuda_graph=graph, **options,
        )
        trainer = new_gan_run("cdcgan", data, config=config, out_dir=None, g_channels=args.width, d_channels=args.width)
        trainer.callbacks = []
        trainer.fit(data)
        runs[graph] = trainer
    eager, recorded = runs[False], runs[True]
    out = {
        "recorded": recorded.captured is not None and recorded.captured.replays > 0,
        "max_weight_difference": {k: max_difference(eager.modules()[k], recorded.modules()[k]) for k in eager.modules()},
        "last_losses": {"eager": eager.history[-1], "recorded": recorded.history[-1]},
    }
    out["ms_per_step"] = {"eager": timed_fit(eager, data, args.timed, device), "recorded": timed_fit(recorded, data, args.timed, device)}
    out["trainer"] = recorded
    return out


def classifier_pair(args, data, device: torch.device) -> dict:
    runs = {}
    for graph in (False, True):
        torch.manual_seed(0)
        classifier = build_classifier("resnet9", image_shape=data.image_shape, num_classes=10, width=16 if not args.dry_run else 4)
        config = ClassifierTrainerConfig(
            epochs=10**6, max_steps=args.steps, batch_size=args.batch * 4, lr=0.2, schedule="onecycle", label_smoothing=0.2,
            device=str(device), progress=False, log_every=50, cudnn_benchmark=False, cuda_graph=graph,
        )
        trainer = ClassifierTrainer(classifier, config)
        trainer.fit(data)
        runs[graph] = trainer
    eager, recorded = runs[False], runs[True]
    return {
        "recorded": recorded.captured is not None and recorded.captured.replays > 0,
        "max_weight_difference": max_difference(eager.classifier, recorded.classifier),
        "lr": [float(eager.opt.param_groups[0]["lr"]), float(recorded.opt.param_groups[0]["lr"])],
    }


def profile(trainer, data, device: torch.device, steps: int, path: Path) -> dict:
    """Kernels per step and the top operations of ``steps`` eager steps (``torch.profiler``)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    trainer.recorder.captured = None
    trainer.config = type(trainer.config)(**{**trainer.config.to_dict(), "cuda_graph": False})
    with torch_profile(activities=activities) as prof:
        timed_fit(trainer, data, steps, device)
    events = prof.key_averages()
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    path.write_text(events.table(sort_by=sort, row_limit=30))
    kernels = sum(e.count for e in events if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA)
    return {"kernels_per_step": kernels / steps, "table": path.name}


def sampling(args, trainer, device: torch.device, work: Path) -> dict:
    g = trainer.sampling_generator
    path = export_generator(g, work / "g.onnx", class_names=[f"c{i}" for i in range(10)])
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda" else ["CPUExecutionProvider"]
    gpu, cpu = OnnxGenerator(path, providers=providers), OnnxGenerator(path, providers=["CPUExecutionProvider"])
    n = args.sample_images
    labels = balanced_labels(n, 10, seed=1)
    bound = sample_into_torch(gpu, labels, seed=3, batch_size=512, device=device) if gpu.device == device.type else None
    host = sample_images(cpu, labels, seed=3, batch_size=512)
    out: dict = {"provider": gpu.providers[0]}
    if bound is not None:
        diff = (bound.cpu().int() - host.int()).abs()
        out["uint8_values_differing"] = float((diff > 0).float().mean())
        out["uint8_max_difference"] = int(diff.max())
    rates = {}
    for name, fn in {
        "onnxruntime into torch buffers": lambda: sample_images(gpu, labels, seed=3, batch_size=512, device=device),
        "onnxruntime via host arrays": lambda: sample_images(gpu, labels, seed=3, batch_size=512),
        "torch eager": lambda: torch_sample(g, n, device),
    }.items():
        fn()
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        rates[name] = n / (time.perf_counter() - t0)
    out["images_per_s"] = rates
    return out


@torch.inference_mode()
def torch_sample(g, n: int, device: torch.device) -> torch.Tensor:
    from gan_edu.export.exporter import to_uint8

    g = g.eval()
    out = []
    for start in range(0, n, 512):
        m = min(512, n - start)
        z = torch.randn(m, g.latent_dim, device=device)
        out.append(to_uint8(g(z, torch.arange(m, device=device) % 10)))
    return torch.cat(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("gpu_check_out"))
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny, the rehearsal for CUDA graphs")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    stack = contextlib.ExitStack()
    if args.dry_run:
        stack.enter_context(capture.rehearse())  # the CPU stand-in of CUDA graphs, for the rest of main
        device = torch.device("cpu")
        args.steps, args.timed, args.batch, args.width, args.sample_images, images = 6, 4, 8, 4, 64, 256
    else:
        device = torch.device("cuda")
        torch.backends.cudnn.deterministic = True  # the eager/recorded comparison: same algorithms both ways
        args.steps, args.timed, args.batch, args.width, args.sample_images, images = 20, 300, 64, 64, 50_000, 20_000
    data = load_dataset("shapes", "train", n=images, seed=0)
    results: dict = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "torch": torch.__version__}

    gan = gan_pair(args, data, device)
    trainer = gan.pop("trainer")
    results["gan_fp32"] = gan
    print(f"GAN fp32: recorded={gan['recorded']} max weight difference {max(gan['max_weight_difference'].values()):.2e}; "
          f"ms/step eager {gan['ms_per_step']['eager']:.2f}, recorded {gan['ms_per_step']['recorded']:.2f}", flush=True)
    results["classifier"] = classifier_pair(args, data, device)
    print(f"classifier: recorded={results['classifier']['recorded']} max weight difference {results['classifier']['max_weight_difference']:.2e}", flush=True)
    bf16 = gan_pair(args, data, device, precision="bf16", channels_last=True)
    bf16_trainer = bf16.pop("trainer")
    results["gan_bf16_channels_last"] = bf16
    print(f"GAN bf16+channels-last: ms/step eager {bf16['ms_per_step']['eager']:.2f}, recorded {bf16['ms_per_step']['recorded']:.2f}", flush=True)
    steps = 3 if args.dry_run else 20
    results["profile"] = {"fp32": profile(trainer, data, device, steps, args.out / "profile_fp32.txt"),
                          "bf16": profile(bf16_trainer, data, device, steps, args.out / "profile_bf16.txt")}
    print(f"kernels per eager step: fp32 {results['profile']['fp32']['kernels_per_step']:.0f}, bf16 {results['profile']['bf16']['kernels_per_step']:.0f}", flush=True)
    with tempfile.TemporaryDirectory() as work:
        results["sampling"] = sampling(args, trainer, device, Path(work))
    print(f"sampling: {json.dumps(results['sampling'])}", flush=True)
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {args.out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
