"""Atomic file writes: a file is either the old one or the complete new one, never half of each.

Every file the project writes that a user could lose (checkpoints, weights, configs, history)
goes through :func:`atomic_write`: write to a temporary file in the same folder, flush, fsync,
then :func:`os.replace` over the target and fsync the folder. A crash or ``kill -9`` at any
moment leaves either the previous file or the new one.

A kill during a write leaves its temporary file (``.NAME.XXXXXXXX.tmp``) behind, never the
target: :func:`remove_stale_temporaries` deletes those once the writer is known to be gone
(checkpoints do it before each write). :func:`check_writable` says, before any work is done,
whether a file could be written at a path at all. Those two live in the light package
(:mod:`gan_edu_runtime.files`), whose sample command writes files too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from gan_edu_runtime.files import atomic_open, check_writable  # noqa: F401  (defined in the light package, used from here)

#: The name of :func:`atomic_open`'s temporary files: ".", the target's name, ".", mkstemp's 8 random characters, ".tmp".
TEMPORARY_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")


def remove_stale_temporaries(path: str | os.PathLike[str], *, recursive: bool = False) -> list[Path]:
    """Delete the temporary files that killed writers left behind.

    Only call this when no other writer can be running (one trainer per run folder): a live
    writer's temporary file looks the same.

    Args:
        path: a target file: its leftovers (``.NAME.XXXXXXXX.tmp`` beside it) are removed; or,
            with ``recursive``, a folder: every leftover in it and below it is removed.

    Returns:
        The files removed.
    """
    path = Path(path)
    if recursive:
        candidates = [p for p in path.rglob(".*.tmp") if TEMPORARY_NAME.fullmatch(p.name)] if path.is_dir() else []
    else:
        candidates = [p for p in path.parent.glob(f".{path.name}.*.tmp") if TEMPORARY_NAME.fullmatch(p.name)] if path.parent.is_dir() else []
    removed = []
    for stale in candidates:
        if stale.is_file():
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                removed.append(stale)
    return removed


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temporary binary file, then atomically move it to ``path``."""
    with atomic_open(path, "wb") as f:
        write(f)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
