"""Checkpoints: everything needed to continue a run exactly, written atomically, loaded safely.

A checkpoint is one ``torch.save`` file holding only tensors, numbers, strings, lists and dicts:
module and optimizer state dicts, the step counters and every random-number state. It is
written to a temporary file, fsynced and renamed over the previous one (:mod:`gan_edu.io`), so
a crash at any moment leaves the last complete checkpoint. It is read with
``torch.load(weights_only=True)``, which refuses anything that would run code when unpickled.

A ``kill -9`` during a write leaves the temporary file (``.last.pt.XXXXXXXX.tmp``), as large as a
checkpoint; the next checkpoint written to the same path removes such leftovers first (one
trainer writes a run folder, so no live writer owns them).
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import GanEduError, check
from ..io import atomic_write, remove_stale_temporaries

FORMAT = "gan-edu-checkpoint"
VERSION = 1
EXPECTED = "a complete checkpoint written by gan-edu (checkpoints/last.pt of a run)"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus a format tag) to ``path`` atomically.

    Temporary files that killed writes left beside ``path`` are removed first (they would
    otherwise pile up, each the size of a checkpoint, and may be what fills the disk).
    """
    payload = {"format": FORMAT, "version": VERSION, **state}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    remove_stale_temporaries(path)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, never executing code from it.

    Raises:
        GanEduError: missing, truncated or corrupt file; a pickle that asks to run code; or a file
            that is not a gan-edu checkpoint.
    """
    path = Path(path)
    check(path.is_file(), f"{path}: no such checkpoint file; expected {EXPECTED}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about foreign pickle protocols: the error below says it all
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _unpickler_reason(e)
        if reason.startswith("Unsupported global"):  # the file names a function or class to call: code
            raise GanEduError(f"{path}: refused, it asks to run code when loaded ({reason}); expected {EXPECTED}") from None
        raise GanEduError(f"{path}: truncated or corrupt checkpoint ({reason}); expected {EXPECTED}") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GanEduError(f"{path}: truncated or corrupt checkpoint ({first}); expected {EXPECTED}") from None
    check(
        isinstance(state, dict) and state.get("format") == FORMAT,
        f"{path}: not a gan-edu checkpoint; expected {EXPECTED}",
    )
    return state


def _unpickler_reason(e: pickle.UnpicklingError) -> str:
    """The one useful line of torch's weights-only error (its text is a page of advice)."""
    text = str(e)
    match = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    reason = match.group(1).strip() if match else (text.strip().splitlines() or [type(e).__name__])[0]
    reason = re.sub(r"\s*Please use `torch\.serialization.*", "", reason)  # advice to allow-list the code: never
    return reason[:160]
