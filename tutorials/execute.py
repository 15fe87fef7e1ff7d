"""Run the tutorials top to bottom and save them with their outputs (how the committed outputs were made).

    python tutorials/execute.py all                   # every notebook, real settings, one after the other
    python tutorials/execute.py 01                    # one notebook (a number or a name's start)
    python tutorials/execute.py all --shared --note "a training run was going on"   # times from a busy machine
    GAN_EDU_FAST=1 python tutorials/execute.py all --no-save   # the test suite's tiny settings, nothing written

Each notebook runs in a fresh kernel started with this Python, in the tutorials folder, with this
checkout first on the import path. Notebook 04 reads real data from ``GAN_EDU_DATA_ROOT`` when set.
The notebooks assert the claims their prose makes, so a run whose results no longer support the
text stops with the failing cell and writes nothing.

What a saved notebook records (``metadata["gan_edu"]``), so that stale outputs are caught:

* ``sources``: the SHA-256 of every ``gan_edu`` source file the kernel had imported by the end of
  the run (read from ``sys.modules`` inside the kernel). ``tests/test_tutorials.py`` fails when any
  of them has changed since, naming the notebook, the file and the command to re-execute it. This
  is exact (a change to a module the notebook never imported does not make it stale) and needs no
  git history.
* ``commit`` (and whether ``gan_edu/`` had uncommitted changes), ``hardware`` (CPU model and
  cores, torch's threads, the GPU if any), ``wall_time_s`` and ``note`` (free text, e.g. that the
  machine was loaded).

The first markdown cell's line that starts with ``**CPU time:**`` is rewritten from the measured
wall time, so the "about N min" a reader sees always comes from the last real run.

Pictures are stored as 256-colour PNGs (re-encoded after the run when that is smaller), which
keeps sample grids of noisy images from making the notebooks heavy.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TIME_LINE = re.compile(r"^\*\*CPU time:\*\*.*$", re.MULTILINE)

# Appended to the notebook for the run only (removed before saving): what the kernel imported and ran on.
_PROBE = """
import json as _json, os as _os, platform as _platform, sys as _sys
import torch as _torch
_files = sorted({_os.path.realpath(m.__file__) for n, m in list(_sys.modules.items())
                 if (n == "gan_edu" or n.startswith("gan_edu.")) and getattr(m, "__file__", None)})
_cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), _platform.processor()) \\
    if _os.path.exists("/proc/cpuinfo") else _platform.processor()
print(_json.dumps({"files": _files, "hardware": {
    "cpu": _cpu, "cpu_count": _os.cpu_count(), "torch_threads": _torch.get_num_threads(), "torch": _torch.__version__,
    "gpu": _torch.cuda.get_device_name(0) if _torch.cuda.is_available() else None, "python": _platform.python_version()}}))
"""


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git(*args: str) -> str:
    """A git command's output in this checkout, or "" when git or the history is not there."""
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def execute(path: Path, *, timeout: int = 3600) -> tuple[object, float, dict]:
    """Execute one notebook in a fresh kernel.

    Returns:
        the executed notebook, the wall time in seconds, and the probe's answer: ``files`` (the
        gan_edu source files the kernel imported) and ``hardware``.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_PROBE))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    # "python3" is ipykernel's own kernel: jupyter_client starts it with this interpreter (sys.executable).
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    probe = nb.cells.pop()
    answer = json.loads("".join(o.get("text", "") for o in probe.outputs if o.get("name") == "stdout").strip().splitlines()[-1])
    return nb, seconds, answer


def record(nb: object, seconds: float, answer: dict, *, note: str, shared: bool = False) -> None:
    """Write ``metadata["gan_edu"]`` and the first cell's ``**CPU time:**`` line."""
    sources = {}
    for file in answer["files"]:
        path = Path(file)
        try:
            rel = path.relative_to(ROOT)
        except ValueError:  # a gan_edu imported from elsewhere would make the record meaningless
            raise SystemExit(f"the kernel imported {path}, not this checkout's gan_edu ({ROOT}); is another one installed?")
        sources[rel.as_posix()] = file_hash(path)
    hardware = answer["hardware"]
    nb.metadata["gan_edu"] = {  # type: ignore[attr-defined]
        "commit": git("rev-parse", "HEAD") or None,
        "gan_edu_dirty": bool(git("status", "--porcelain", "--", "gan_edu")),
        "executed_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "settings": "fast" if os.environ.get("GAN_EDU_FAST") == "1" else "full",
        "wall_time_s": round(seconds, 1),
        "hardware": hardware,
        "shared_machine": shared,
        "note": note,
        "sources": sources,
    }
    first = nb.cells[0]  # type: ignore[attr-defined]
    if first.cell_type == "markdown" and TIME_LINE.search(first.source):
        first.source = TIME_LINE.sub(time_line(seconds, hardware["cpu_count"], hardware["gpu"], shared=shared), first.source, count=1)


def time_line(seconds: float, cores: int, gpu: str | None, *, shared: bool = False) -> str:
    """The first cell's line, e.g. ``**CPU time:** about 3 min on a 2-core CPU (last full run: 171 s; ...).``"""
    minutes = "under a minute" if seconds < 60 else f"about {round(seconds / 60)} min"
    where = f"a {cores}-core CPU" + (f" with a {gpu}" if gpu else "")
    if shared:
        where += " shared with other jobs, so less on an idle one"
    return f"**CPU time:** {minutes} on {where} (last full run: {seconds:.0f} s; see the notebook's metadata)."


def compact_images(nb: object) -> int:
    """Re-encode each PNG output as a 256-colour PNG when that is smaller; returns the bytes saved."""
    import base64
    import io

    from PIL import Image

    saved = 0
    for cell in nb.cells:  # type: ignore[attr-defined]
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" not in data:
                continue
            raw = base64.b64decode(data["image/png"])
            image = Image.open(io.BytesIO(raw)).convert("RGB")
            buffer = io.BytesIO()
            image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buffer, format="PNG", optimize=True)
            if buffer.tell() < len(raw):
                data["image/png"] = base64.b64encode(buffer.getvalue()).decode("ascii")
                saved += len(raw) - buffer.tell()
    return saved


def select(names: list[str]) -> list[Path]:
    """The notebooks named (``all``, a number like ``03``, or a name's start), in order."""
    paths = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    if not names or "all" in names:
        return paths
    chosen = [p for p in paths if any(p.stem.startswith(n) or p.name == n for n in names)]
    unknown = [n for n in names if not any(p.stem.startswith(n) or p.name == n for p in paths)]
    if unknown:
        raise SystemExit(f"no tutorial matches {unknown}; expected 'all', a number (01..{paths[-1].name[:2]}) or a name")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="'all' (the default), numbers like 01 03, or notebook names")
    parser.add_argument("--no-save", action="store_true", help="run only, do not write the outputs back")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run (07's pipeline cell took over 1800 s on a busy 2-core machine)")
    parser.add_argument("--shared", action="store_true", help="the machine is busy with other jobs: the first cell and the metadata say so")
    parser.add_argument("--note", default="", help="free text stored in the metadata (e.g. 'machine loaded by a training run')")
    args = parser.parse_args(argv)
    import nbformat

    if os.environ.get("GAN_EDU_FAST") == "1" and not args.no_save:
        raise SystemExit("GAN_EDU_FAST=1 is set: fast-mode outputs are not stored (add --no-save, or unset it)")
    total = 0.0
    for path in select(args.names):
        print(f"{path.name}: running...", flush=True)
        nb, seconds, answer = execute(path, timeout=args.timeout)
        total += seconds
        if not args.no_save:
            record(nb, seconds, answer, note=args.note, shared=args.shared)
            compact_images(nb)
            nbformat.write(nb, path)
        print(f"{path.name}: {seconds:.0f} s", flush=True)
    print(f"total: {total:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
