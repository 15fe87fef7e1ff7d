"""Run the tutorials top to bottom and save them with their outputs (how the committed outputs were made).

    python tutorials/execute.py                       # every notebook, real settings
    python tutorials/execute.py 01_what_a_gan_learns  # one notebook
    GAN_EDU_FAST=1 python tutorials/execute.py --no-save   # the test suite's tiny settings, nothing written

Pictures are stored as 256-colour PNGs (re-encoded after the run when that is smaller), which
keeps sample grids of noisy images from making the notebooks heavy.

Each notebook runs in a fresh kernel started with this Python, in the tutorials folder, with this
checkout first on the import path. Notebook 04 reads real data from ``GAN_EDU_DATA_ROOT`` when set.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def execute(path: Path, *, timeout: int = 1800) -> tuple[object, float]:
    """Execute one notebook in a fresh kernel; returns the executed notebook and the wall time in seconds."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    # "python3" is ipykernel's own kernel: jupyter_client starts it with this interpreter (sys.executable).
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}})
    start = time.perf_counter()
    client.execute()
    return nb, time.perf_counter() - start


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    parser.add_argument("--no-save", action="store_true", help="run only, do not write the outputs back")
    args = parser.parse_args(argv)
    import nbformat

    paths = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    if args.names:
        paths = [p for p in paths if any(p.stem.startswith(n) or p.name == n for n in args.names)]
    for path in paths:
        nb, seconds = execute(path)
        if not args.no_save:
            compact_images(nb)
            nbformat.write(nb, path)
        print(f"{path.name}: {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
