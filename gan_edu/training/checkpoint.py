"""Checkpoints: everything needed to continue a run exactly, written atomically, loaded safely.

A checkpoint is one ``torch.save`` file holding only tensors, numbers, strings, lists and dicts:
module and optimizer state dicts, the step counters and every random-number state. It is
written to a temporary file, fsynced and renamed over the previous one (:mod:`gan_edu.io`), so
a crash at any moment leaves the last complete checkpoint. It is read with
``torch.load(weights_only=True)``, which refuses anything that would run code when unpickled.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import GanEduError, check
from ..io import atomic_write

FORMAT = "gan-edu-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus a format tag) to ``path`` atomically."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, never executing code from it.

    Raises:
        GanEduError: missing, truncated or corrupt file; a pickle that asks to run code; or a file
            that is not a gan-edu checkpoint.
    """
    path = Path(path)
    check(path.is_file(), f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GanEduError(f"{path}: refused, not a plain-tensor checkpoint (weights_only load: {first})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GanEduError(f"{path}: truncated or corrupt checkpoint ({first})") from None
    check(
        isinstance(state, dict) and state.get("format") == FORMAT,
        f"{path}: not a gan-edu checkpoint (expected a file written by gan-edu train)",
    )
    return state
