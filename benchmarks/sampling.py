"""Sampling speed: torch eager, torch.compile and onnxruntime (fp32, int8, fp16) on the same generator.

Prints, from one run: images per second of each at batch sizes 1, 64 and 512 with the ratio to
torch eager; the quality cost of each variant against the fp32 graph on the same noise; with
``--profile`` where onnxruntime spends its time (``SessionOptions.enable_profiling``); then the
peak resident memory of drawing 50,000 images streamed in batches (``OnnxGenerator.iter_sample``),
in a fresh subprocess that never imports torch. The load average is printed at the start and
the end: figures taken on a busy machine are not figures of an idle one.

    python benchmarks/sampling.py                        # the shipped model, CPU
    python benchmarks/sampling.py --run runs/my-run      # a run folder's generator
    python benchmarks/sampling.py --device cuda          # CUDA provider + IO binding, fp16, vs torch on the GPU
    python benchmarks/sampling.py --quick --no-compile   # seconds: a smoke test of every path

All contenders get the same z and labels, eval mode, no autograd (``torch.inference_mode``).
torch uses its default threads, onnxruntime the project's session settings (one thread per call,
a batch split in row blocks across the physical cores), unless ``--threads`` is given. int8 runs on the CPU provider (onnxruntime has no
int8 kernels for CUDA here), fp16 only with ``--device cuda`` (on a CPU onnxruntime computes fp16
graphs in float32 after inserted casts). Each figure is the best of ``--repeats`` timed windows of
at least ``--min-time`` seconds.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
import warnings
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


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def best_rate(fn: Callable[[], object], n: int, *, min_time: float, repeats: int) -> float:
    """Images per second: best of ``repeats`` windows, each calling ``fn`` for ``min_time`` seconds."""
    fn()  # warm-up (allocations, kernel choice, compilation)
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


def generator_from_onnx(path: Path):
    """The PyTorch generator of a gan-edu ONNX file: its class and config from the metadata, its
    weights from the graph's initializers (the export keeps the module's parameter names)."""
    import onnx
    import torch
    from onnx import numpy_helper

    import gan_edu.models  # noqa: F401  (registers the classes)
    from gan_edu.export import OnnxGenerator
    from gan_edu.models.base import MODULE_CLASSES

    info = OnnxGenerator(path, providers=["CPUExecutionProvider"], cache=False).info
    cls = MODULE_CLASSES[info.model_class]
    g = cls(cls.config_class.from_dict(info.model_config))
    weights = {t.name.removeprefix("generator."): torch.from_numpy(numpy_helper.to_array(t).copy()) for t in onnx.load(str(path)).graph.initializer}
    missing = [k for k in g.state_dict() if k not in weights and not k.endswith("num_batches_tracked")]
    if missing:
        raise SystemExit(f"{path}: no weights for {missing[:3]} (exported with folded batch norm?); use --run")
    g.load_state_dict(weights, strict=False)
    return g


def profile_summary(path: Path, feed: dict[str, np.ndarray], *, threads: int | None, calls: int = 20, by_node: bool = False) -> list[tuple[str, float, float]]:
    """``(op type, share of node time, ms per call)`` of the graph at this feed, from onnxruntime's
    profiler; ``by_node``: one row per node (``op type node name``) instead of per op type."""
    import onnxruntime as ort

    from gan_edu.export.session import session_options

    options = session_options(intra_op_num_threads=threads)
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(calls + 1):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    times: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            key = e["args"]["op_name"] + (" " + e["name"].removesuffix("_kernel_time") if by_node else "")
            times[key] += e["dur"]
    total = sum(times.values()) or 1
    return [(op, t / total, t / 1000 / (calls + 1)) for op, t in times.most_common(8)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="run folder (default: the shipped exported/shapes_cdcgan.onnx, weights and all)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-sizes", default="1,64,512")
    parser.add_argument("--threads", type=int, help="threads of torch and onnxruntime (default: torch's own; onnxruntime one thread per call, batches split in row blocks across the physical cores)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per timed window")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (it compiles for each batch size: minutes on a small CPU)")
    parser.add_argument("--quality-run", type=Path, metavar="EXPERIMENT_DIR", help="a gan-edu pipeline folder: GAN-test and Fréchet change of each variant")
    parser.add_argument("--profile", action="store_true", help="onnxruntime's profile of the fp32 and int8 graphs at batch 64")
    parser.add_argument("--stream", type=int, default=50_000, help="images drawn for the memory figure (0: skip)")
    parser.add_argument("--stream-batch", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="tiny settings for a smoke test: batches 1 and 8, 0.05 s windows, one repeat, no stream")
    args = parser.parse_args()
    if args.quick:
        args.batch_sizes, args.min_time, args.repeats, args.stream = "1,8", 0.05, 1, 0
    print(f"load average at start: {load_average()}")

    import torch

    from gan_edu.export import OnnxGenerator, export_generator
    from gan_edu.quality import ClassifierJudge

    judge = ClassifierJudge(args.quality_run) if args.quality_run else None
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run is not None:
        from gan_edu.export.exporter import load_generator

        g, _ = load_generator(args.run)
    else:
        g = generator_from_onnx(ROOT / "exported" / "shapes_cdcgan.onnx")
    device = torch.device(args.device)
    g = g.to(device).eval()
    cuda = args.device == "cuda"
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]

    with tempfile.TemporaryDirectory() as tmp:
        path = export_generator(g, Path(tmp) / "g.onnx")
        variants = {"ort fp32": (path, providers)}
        quality = {}
        for variant, kwargs in (("int8", {"quantize": "int8"}), ("fp16", {"precision": "fp16"})):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # past the bounds: still timed, the table says so
                vpath = export_generator(g, Path(tmp) / f"g_{variant}.onnx", allow_quality_loss=True, judge=judge, **kwargs)
            quality[variant] = json.loads(vpath.with_suffix(".quality.json").read_text())
            if variant == "int8":
                variants["ort int8 (CPU)"] = (vpath, ["CPUExecutionProvider"])
            elif cuda:
                variants["ort fp16 (GPU)"] = (vpath, providers)
        sessions = {name: OnnxGenerator(p, providers=prov, intra_op_num_threads=args.threads) for name, (p, prov) in variants.items()}
        if cuda and sessions["ort fp32"].device != "cuda":
            raise SystemExit("onnxruntime could not start its CUDA provider here")
        og = sessions["ort fp32"]
        print(f"generator: {type(g).__name__} {g.config.to_dict()}, {g.num_parameters():,} parameters")
        print(f"device: {args.device}; torch {torch.__version__} threads {torch.get_num_threads()}; "
              f"onnxruntime providers {og.providers}, intra-op threads {args.threads or '1 per call, batches split in row blocks across the physical cores'}")
        if not cuda:
            print("ort fp16 (GPU): not timed on a CPU (onnxruntime runs fp16 graphs there in float32 after casts)")

        torch_runs: dict[str, Callable] = {"torch eager": g}
        if not args.no_compile:
            torch_runs["torch.compile"] = torch.compile(g, dynamic=False)
        names = [*torch_runs, *sessions]
        print(f"{'batch':>6} " + " ".join(f"{name:>15}" for name in names) + "   (img/s; ratio to torch eager below)")
        for n in (int(b) for b in args.batch_sizes.split(",")):
            z = og.latent(n, seed=0)
            labels = og.balanced_labels(n)
            tz = torch.from_numpy(z).to(device)
            tl = None if labels is None else torch.from_numpy(labels).to(device)
            rates = {}
            for name, module in torch_runs.items():
                def run_torch(module=module, tz=tz, tl=tl) -> None:
                    with torch.inference_mode():
                        module(tz, tl).cpu()  # images on the host, as onnxruntime returns them (a GPU sync too)

                rates[name] = best_rate(run_torch, n, min_time=args.min_time, repeats=args.repeats)
            for name, session in sessions.items():
                rates[name] = best_rate(lambda s=session, z=z, labels=labels, n=n: s.generate(z, labels, batch_size=n), n, min_time=args.min_time, repeats=args.repeats)
            print(f"{n:>6} " + " ".join(f"{rates[name]:>15,.0f}" for name in names))
            print(f"{'':>6} " + " ".join(f"{rates[name] / rates['torch eager']:>14.2f}x" for name in names))

        print("quality cost against the fp32 graph (same noise, seed 0):")
        for variant, record in quality.items():
            cost = record["cost"]
            line = f"  {variant}: mean {cost['mean_level_diff']:.3f} levels, max {cost['max_level_diff']} levels, {cost['same_level_fraction']:.1%} of pixels equal"
            if "gan_test" in cost:
                line += f"; GAN-test {cost['gan_test']['fp32']:.4f} -> {cost['gan_test']['variant']:.4f}; Fréchet {cost['frechet']['fp32']:.3f} -> {cost['frechet']['variant']:.3f}"
            print(line + ("" if record["within_bounds"] else f"  PAST ITS BOUNDS: {'; '.join(record['exceeded'])}"))

        if args.profile:
            n = 64
            feed = {"z": og.latent(n, seed=0)} | ({} if og.num_classes is None else {"labels": og.balanced_labels(n)})
            for name in ("ort fp32", "ort int8 (CPU)"):
                print(f"profile of {name} at batch {n} (share of node time, ms per call):")
                for op, share, ms in profile_summary(variants[name][0], feed, threads=args.threads):
                    print(f"  {op:<22} {share:6.1%} {ms:8.2f} ms")
                print("  by node:")
                for node, share, ms in profile_summary(variants[name][0], feed, threads=args.threads, by_node=True):
                    print(f"  {node:<60} {share:6.1%} {ms:8.2f} ms")

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
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
