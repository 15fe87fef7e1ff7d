"""``gan-edu doctor``: what this machine gives gan-edu, what is missing, and the line that fixes it.

    gan-edu doctor           # a report for people
    gan-edu doctor --json    # the same as one JSON object

It reports the versions of gan-edu, Python, torch (with the CUDA and cuDNN it was built with),
onnxruntime and each of its execution providers as it really behaves: a provider counts as
working only when a tiny session (one ConvTranspose, gan-edu's main layer) runs on it and gives
the right numbers, not because onnxruntime lists it. Then the devices, the threads torch and
onnxruntime use, where data sets and caches live, and the optional extras.

Exit status: 0 when nothing is broken for what this machine can run (a CPU-only machine is not
broken), 1 when a check failed (each problem comes with its fix line), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__

SYNC = "uv sync (or: pip install -e .)"  # the line that reinstalls gan-edu's declared dependencies


@dataclass
class Report:
    """What the checks found: ``rows`` (section, text) in print order, and the problems."""

    rows: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (what is wrong, the line that fixes it)
    data: dict[str, Any] = field(default_factory=dict)  # the same facts for --json

    def add(self, section: str, text: str) -> None:
        self.rows.append((section, text))

    def problem(self, what: str, fix: str) -> None:
        self.problems.append((what, fix))


def tiny_model() -> bytes:
    """A one-node ONNX graph: ConvTranspose of a (1, 1, 2, 2) input with a 2x2 kernel of ones,
    stride 2, so each output pixel is the input pixel it came from: (1, 1, 4, 4)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((1, 1, 2, 2), np.float32), "w")
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])
    graph = helper.make_graph([node], "doctor", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime >= 1.14 reads, whatever onnx writes by default
    return model.SerializeToString()


def provider_library_error(name: str) -> str | None:
    """The dynamic loader's message for a provider shipped as its own library (None: it loads, or none)."""
    import ctypes
    import importlib.util

    short = name.removesuffix("ExecutionProvider").lower()
    spec = importlib.util.find_spec("onnxruntime")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "capi" / f"libonnxruntime_providers_{short}.so"
        if path.is_file():
            try:
                ctypes.CDLL(str(path))
            except OSError as e:
                return str(e).replace(f"{path}: ", "")
    return None


def try_provider(name: str) -> str | None:
    """Run :func:`tiny_model` on provider ``name`` alone; None when it ran and gave the right
    numbers, else one line saying why not."""
    import numpy as np
    import onnxruntime as ort

    from ..export import cuda_libs

    if name == "CUDAExecutionProvider":
        cuda_libs.preload_cuda_libraries()
        reason = cuda_libs.cuda_load_error()
    else:
        reason = provider_library_error(name)
    if reason:
        return reason
    options = ort.SessionOptions()
    options.log_severity_level = 4  # onnxruntime's own fallback messages: this report says it in one line
    try:  # no fallback: a provider that fails says why instead of a quiet retry on the CPU
        session = ort.InferenceSession(tiny_model(), options, providers=[name], enable_fallback=0)
    except Exception as e:  # onnxruntime's own exception types
        return cuda_libs.cuda_start_error(str(e)) if name == "CUDAExecutionProvider" else str(e).strip().splitlines()[0][:200]
    if session.get_providers()[0] != name:
        return f"onnxruntime created the session on {session.get_providers()[0]} instead"
    x = np.arange(1, 5, dtype=np.float32).reshape(1, 1, 2, 2)  # (1, 1, 2, 2)
    y = session.run(None, {"x": x})[0]  # (1, 1, 4, 4): each input pixel copied into a 2x2 block
    expected = x.repeat(2, axis=2).repeat(2, axis=3)
    return None if np.array_equal(y, expected) else "a ConvTranspose gave wrong numbers"


def driver_version() -> str | None:
    """The NVIDIA driver's CUDA version (``cuDriverGetVersion``, asked with ctypes), or None without a driver."""
    import ctypes

    from ..export.cuda_libs import DRIVER

    try:
        lib = ctypes.CDLL(DRIVER)
    except OSError:
        return None
    version = ctypes.c_int(0)
    if lib.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None
    return f"{version.value // 1000}.{version.value % 1000 // 10}"


def cpu_name() -> str:
    """The CPU's model name (Linux: ``/proc/cpuinfo``), else the machine type."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def check_python(report: Report) -> None:
    report.add("gan-edu", f"{__version__} ({Path(__file__).resolve().parent.parent})")
    report.add("python", f"{platform.python_version()} ({sys.prefix}); {platform.platform()}")
    report.data.update(gan_edu=__version__, python=platform.python_version(), prefix=sys.prefix, platform=platform.platform())


def check_torch(report: Report, gpus: int) -> None:
    """torch's version and builds, its devices and threads. ``gpus``: devices the driver reports."""
    try:
        import torch
    except Exception as e:  # not installed, or a broken install
        report.add("torch", f"cannot import ({type(e).__name__}: {e})")
        report.problem("torch cannot be imported", SYNC)
        return
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    cudnn_text = f"{cudnn // 10000}.{cudnn // 100 % 100}.{cudnn % 100}" if cudnn else "none"
    built = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA (a CPU-only build)"
    report.add("torch", f"{torch.__version__}, built for {built}, cuDNN {cudnn_text}")
    devices = [torch.cuda.get_device_properties(k) for k in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    for k, d in enumerate(devices):
        report.add("devices", f"cuda:{k} {d.name}, compute capability {d.major}.{d.minor}, {d.total_memory / 2**30:.1f} GiB")
    driver = driver_version()
    if not devices:
        report.add("devices", f"cuda: none ({f'driver for CUDA {driver}, ' if driver else 'no NVIDIA driver; '}torch.cuda.is_available() is False)")
    if gpus and not devices:
        fix = ("pip install --force-reinstall torch (on Linux, PyPI's torch is the CUDA build; this one is CPU-only)" if not torch.version.cuda
               else f"a driver for CUDA {torch.version.cuda} or newer (this one: {driver or 'not found'}), or a torch built for an older CUDA")
        report.problem(f"the driver reports {gpus} GPU(s) but torch cannot use them", fix)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from ..export.session import physical_cores

    report.add("devices", f"cpu: {cpu_name()}, {physical_cores()} physical cores, {cpus} CPUs this process may use (of {os.cpu_count()})")
    env = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ) or "OMP_NUM_THREADS unset"
    report.add("threads", f"torch: {torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op ({env})")
    report.data.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cudnn=cudnn_text, driver_cuda=driver,
                       cuda_devices=[d.name for d in devices], physical_cores=physical_cores(), cpus=cpus,
                       torch_threads=torch.get_num_threads(), torch_interop_threads=torch.get_num_interop_threads())


def check_onnxruntime(report: Report, gpus: int) -> None:
    """onnxruntime's build and every provider it lists, each tried with a tiny session."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        import onnxruntime as ort
    except Exception as e:
        report.add("onnxruntime", f"cannot import ({type(e).__name__}: {e})")
        report.problem("onnxruntime cannot be imported", SYNC)
        return
    from ..export import cuda_libs
    from ..export.session import physical_cores

    package = next((p for p in ("onnxruntime-gpu", "onnxruntime") if _installed(p, version, PackageNotFoundError)), "onnxruntime")
    major = cuda_libs.cuda_major()
    report.add("onnxruntime", f"{package} {ort.__version__}" + (f", built for CUDA {major}" if major else ""))
    providers: dict[str, str] = {}
    for name in ort.get_available_providers():
        reason = try_provider(name)
        providers[name] = "works" if reason is None else reason
        if reason is None:
            report.add("providers", f"{name}: works (a tiny ConvTranspose session ran on it)")
        elif name == "CUDAExecutionProvider":
            missing = cuda_libs.unresolved_libraries() if sys.platform.startswith("linux") else []
            if missing:
                names = ", ".join(f"{n} (needed by {by})" for n, by in missing)
                report.add("providers", f"{name}: does not load: not in the environment: {names}")
                report.problem(f"{name}: {missing[0][0]} not in the environment", "uv sync (or: pip install 'onnxruntime-gpu[cuda,cudnn]')")
            elif not gpus:
                why = f"no NVIDIA driver ({cuda_libs.DRIVER})" if cuda_libs.DRIVER in reason else reason
                found = "; every library it needs from the environment is there" if sys.platform.startswith("linux") else ""
                report.add("providers", f"{name}: not started, no GPU here: {why}{found}")
            else:
                report.add("providers", f"{name}: does not start: {reason}")
                report.problem(f"{name} does not start on this GPU machine: {reason}", "see the message; meanwhile --provider CPUExecutionProvider")
        elif name == "CPUExecutionProvider":
            report.add("providers", f"{name}: FAILS: {reason}")
            report.problem(f"{name} cannot run a session: {reason}", SYNC)
        else:  # TensorRT and others: listed by onnxruntime-gpu, not used by gan-edu
            report.add("providers", f"{name}: does not load ({reason}); gan-edu does not use it")
    if sys.platform.startswith("linux") and cuda_libs.provider_library() is None and package == "onnxruntime":
        report.add("providers", "CUDAExecutionProvider: not in this onnxruntime (the CPU-only package)")
        if gpus:
            report.problem("onnxruntime has no CUDA provider on this GPU machine", "pip uninstall onnxruntime && " + SYNC)
    report.add("threads", f"onnxruntime sessions: {physical_cores()} intra-op (one per physical core), sequential (docs/onnx.md)")
    report.data.update(onnxruntime=ort.__version__, onnxruntime_package=package, onnxruntime_cuda=major, providers=providers)


def _installed(name: str, version: Any, missing: type[Exception]) -> bool:
    try:
        version(name)
    except missing:
        return False
    return True


def check_paths(report: Report) -> None:
    """Where data sets, downloaded weights and caches live, and the optional extras."""
    import importlib.util

    from ..data.real import DEFAULT_DATA_ROOT, resolve_root

    root = resolve_root(None)
    report.add("data", f"real data sets: {root} (default {DEFAULT_DATA_ROOT}; --data-root to change){'' if root.is_dir() else ', not created yet'}")
    report.add("data", "built-in shapes: generated in memory, no files")
    cache = Path(os.environ.get("GAN_EDU_CACHE", "~/.cache/gan-edu")).expanduser()  # gan_edu.inception.cache_dir's parent
    report.add("caches", f"gan-edu downloads: {cache} ($GAN_EDU_CACHE to change){'' if cache.is_dir() else ', not created yet'}")
    report.add("caches", "optimized ONNX graphs: next to each model, as .NAME.optimized-KEY.onnx (written by gan-edu export)")
    try:
        import torch

        report.add("caches", f"torch hub: {torch.hub.get_dir()} ($TORCH_HOME to change)")
    except Exception:
        pass
    extras = {"tensorboard": ("tensorboard", 'pip install "gan-edu[tensorboard]"'), "torch_fidelity": ("fid", 'pip install "gan-edu[fid]"')}
    found = {module: importlib.util.find_spec(module) is not None for module in extras}
    report.add("extras", "; ".join(f"{extras[m][0]}: {'installed' if ok else 'not installed (' + extras[m][1] + ')'}" for m, ok in found.items()))
    report.data.update(data_root=str(root), cache=str(cache), extras={extras[m][0]: ok for m, ok in found.items()})


def diagnose() -> Report:
    """Run every check; never raises (a check that fails is a problem in the report)."""
    from ..export.session import cuda_device_count

    report = Report()
    gpus = cuda_device_count()
    report.data["driver_gpus"] = gpus
    for check_one in (check_python, lambda r: check_torch(r, gpus), lambda r: check_onnxruntime(r, gpus), check_paths):
        try:
            check_one(report)
        except Exception as e:  # a check that breaks is itself something to report, not a traceback
            report.problem(f"a check failed: {type(e).__name__}: {e}", "please report it with this output")
    report.data["problems"] = [{"problem": what, "fix": fix} for what, fix in report.problems]
    return report


def register(sub: Any) -> None:
    p = sub.add_parser("doctor", help="versions, devices, providers that load, threads, paths; what is missing and its fix",
                       description="What this machine gives gan-edu: torch, CUDA, cuDNN, onnxruntime and the providers that "
                                   "really run a session, devices, threads, where data and caches live. "
                                   "Exit 0: nothing broken; 1: a problem (with its fix line).")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = diagnose()
    if args.json:
        print(json.dumps(report.data, indent=2))
        return 1 if report.problems else 0
    order = list(dict.fromkeys(section for section, _ in report.rows))  # each section's rows together
    last = None
    for section, text in sorted(report.rows, key=lambda row: order.index(row[0])):
        print(f"{section if section != last else '':<13}{text}")
        last = section
    if not report.problems:
        print(f"\nok: nothing missing for what this machine can run{'' if report.data.get('driver_gpus') else ' (no GPU here)'}")
        return 0
    print(f"\n{len(report.problems)} problem(s):")
    for what, fix in report.problems:
        print(f"  - {what}\n    fix: {fix}")
    return 1
