"""Sampling speed: onnxruntime (OnnxGenerator) vs PyTorch eager on the same generator.

Prints images per second of both at batch sizes 1, 64 and 512, and their ratio, from one run;
then the peak resident memory of drawing 50,000 images streamed in batches
(``OnnxGenerator.iter_sample``), measured in a fresh subprocess that never imports torch.

    python benchmarks/sampling.py                        # the shipped model, CPU
    python benchmarks/sampling.py --run runs/my-run      # a run folder's generator
    python benchmarks/sampling.py --device cuda          # CUDA provider + IO binding vs torch on the GPU

Both sides get the same z and labels, eval mode, no autograd (``torch.inference_mode``), and
their library's default thread count (one per physical core) unless ``--threads`` is given.
Each figure is the best of ``--repeats`` timed windows of at least ``--min-time`` seconds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STREAM_CODE = """
import resource, sys, time
import numpy as np
from gan_edu.export.runtime import OnnxGenerator

def peak_mb():
    # VmHWM: the peak RSS of this process's own memory. ru_maxrss would also count the parent's
    # RSS at the fork (Linux keeps it across exec), i.e. the benchmark's torch process.
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024  # KiB
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

g = OnnxGenerator(sys.argv[1], providers=sys.argv[4].split(","))
n, batch = int(sys.argv[2]), int(sys.argv[3])
g.sample(batch, seed=1)  # one batch: the baseline of a warm session
base = peak_mb()
t0 = time.perf_counter()
total, mean = 0, 0.0
for images in g.iter_sample(n, seed=0, batch_size=batch):
    total += len(images)
    mean += float(images.mean()) * len(images)
print(f"{total} {base:.1f} {peak_mb():.1f} {time.perf_counter() - t0:.2f} {'torch' in sys.modules}")
"""


def best_rate(fn: Callable[[], object], n: int, *, min_time: float, repeats: int) -> float:
    """Images per second: best of ``repeats`` windows, each calling ``fn`` for ``min_time`` seconds."""
    fn()  # warm-up (allocations, kernel choice)
    best = 0.0
    for _ in range(repeats):
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                break
        best = max(best, n * calls / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="run folder (default: the architecture of exported/shapes_cdcgan.onnx, fresh weights)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-sizes", default="1,64,512")
    parser.add_argument("--threads", type=int, help="threads of both libraries (default: each library's own)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per timed window")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stream", type=int, default=50_000, help="images drawn for the memory figure (0: skip)")
    parser.add_argument("--stream-batch", type=int, default=512)
    args = parser.parse_args()

    import torch

    from gan_edu.export import OnnxGenerator, export_generator

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run is not None:
        from gan_edu.export.exporter import load_generator

        g, _ = load_generator(args.run)
    else:  # the shipped model's architecture (from its metadata); speed does not depend on the weights
        import gan_edu.models  # noqa: F401  (registers the classes)
        from gan_edu.models.base import MODULE_CLASSES

        info = OnnxGenerator(ROOT / "exported" / "shapes_cdcgan.onnx", providers=["CPUExecutionProvider"]).info
        cls = MODULE_CLASSES[info.model_class]
        g = cls(cls.config_class.from_dict(info.model_config))
    device = torch.device(args.device)
    g = g.to(device).eval()
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if args.device == "cuda" else ["CPUExecutionProvider"]

    with tempfile.TemporaryDirectory() as tmp:
        path = export_generator(g, Path(tmp) / "g.onnx")
        og = OnnxGenerator(path, providers=providers, intra_op_num_threads=args.threads)
        if args.device == "cuda" and og.device != "cuda":
            raise SystemExit("onnxruntime could not start its CUDA provider here")
        print(f"generator: {type(g).__name__} {g.config.to_dict()}, {g.num_parameters():,} parameters")
        print(f"device: {args.device}; torch {torch.__version__} threads {torch.get_num_threads()}; onnxruntime providers {og.providers}")
        print(f"{'batch':>6} {'torch img/s':>12} {'onnxruntime img/s':>18} {'ratio ort/torch':>16}")
        for n in (int(b) for b in args.batch_sizes.split(",")):
            z = og.latent(n, seed=0)
            labels = og.balanced_labels(n)
            tz = torch.from_numpy(z).to(device)
            tl = None if labels is None else torch.from_numpy(labels).to(device)

            def run_torch(tz=tz, tl=tl) -> None:
                with torch.inference_mode():
                    g(tz, tl).cpu()  # images on the host, as onnxruntime returns them (a GPU sync too)

            def run_ort(z=z, labels=labels, n=n) -> None:
                og.generate(z, labels, batch_size=n)

            t = best_rate(run_torch, n, min_time=args.min_time, repeats=args.repeats)
            o = best_rate(run_ort, n, min_time=args.min_time, repeats=args.repeats)
            print(f"{n:>6} {t:>12.0f} {o:>18.0f} {o / t:>16.2f}")

        if args.stream:
            result = subprocess.run(
                [sys.executable, "-c", STREAM_CODE, str(path), str(args.stream), str(args.stream_batch), ",".join(providers)],
                capture_output=True, text=True, check=True, env={"PYTHONPATH": str(ROOT), "PATH": ""},
            )
            total, base, peak, seconds, torch_loaded = result.stdout.split()
            print(
                f"streamed {total} images in batches of {args.stream_batch}: {seconds} s; peak RSS {float(peak):.0f} MB "
                f"(after one batch {float(base):.0f} MB; all {total} float32 images at once would be "
                f"{int(total) * int(np.prod(og.image_shape)) * 4 / 2**20:.0f} MB); torch imported: {torch_loaded}"
            )


if __name__ == "__main__":
    main()
