"""Atomic file writes: a file is either the old one or the complete new one, never half of each.

Every file the project writes that a user could lose (checkpoints, weights, configs, history)
goes through :func:`atomic_write`: write to a temporary file in the same folder, flush, fsync,
then :func:`os.replace` over the target and fsync the folder. A crash or ``kill -9`` at any
moment leaves either the previous file or the new one.

A kill during a write leaves its temporary file (``.NAME.XXXXXXXX.tmp``) behind, never the
target: :func:`remove_stale_temporaries` deletes those a live writer does not hold (each writer
locks its own; checkpoints, resume, export and card clean their targets' leftovers before
writing). :func:`check_writable` says, before any work is done, whether a file could be written
at a path at all. A full disk is a one-line :class:`~gan_edu_runtime.errors.DiskFull` naming the
file. These live in the light package (:mod:`gan_edu_runtime.files`), whose sample command
writes files too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import IO, Any

from gan_edu_runtime.files import (  # noqa: F401  (defined in the light package, used from here)
    DISK_FULL,
    TEMPORARY_NAME,
    atomic_open,
    check_writable,
    disk_full,
    memory_bytes,
    remove_stale_temporaries,
)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temporary binary file, then atomically move it to ``path``."""
    with atomic_open(path, "wb") as f:
        write(f)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def canonical_safetensors(data: bytes) -> bytes:
    """``data`` (a safetensors file) with its JSON header's keys in sorted order, so that the same
    tensors and metadata always give the same bytes (the writer puts the metadata's keys in a
    random order each process: two identical runs gave files of different sha256).

    The header keeps its length (its padding to 8 bytes included), so the tensors' bytes and
    offsets are untouched. ``data`` that does not parse is returned as it is.

    >>> from safetensors.torch import save, load
    >>> import torch
    >>> a = canonical_safetensors(save({"w": torch.ones(2)}, metadata={"b": "1", "a": "2", "format": "pt"}))
    >>> a[8:60]
    b'{"__metadata__":{"a":"2","b":"1","format":"pt"},"w":'
    >>> load(a)["w"].tolist()
    [1.0, 1.0]
    """
    try:
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n])
    except (ValueError, UnicodeDecodeError):
        return data
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n:
        return data
    return data[:8] + text + b" " * (n - len(text)) + data[8 + n :]

