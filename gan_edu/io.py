"""Atomic file writes: a file is either the old one or the complete new one, never half of each.

Every file the project writes that a user could lose (checkpoints, weights, configs, history)
goes through :func:`atomic_write`: write to a temporary file in the same folder, flush, fsync,
then :func:`os.replace` over the target and fsync the folder. A crash or ``kill -9`` at any
moment leaves either the previous file or the new one.

A kill during a write leaves its temporary file (``.NAME.XXXXXXXX.tmp``) behind, never the
target: :func:`remove_stale_temporaries` deletes those once the writer is known to be gone
(checkpoints do it before each write). :func:`check_writable` says, before any work is done,
whether a file could be written at a path at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on success, move it over ``path``.

    Args:
        path: the final file.
        mode: ``"wb"`` or ``"w"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


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


def check_writable(path: str | os.PathLike[str], what: str = "output", *, folder: bool = False) -> None:
    """Raise a one-line :class:`~gan_edu.errors.GanEduError` unless ``path`` could be written.

    ``path`` need not exist; its nearest existing ancestor must be a folder this process may
    write in (folders in between are created on writing). Checked before any work, so a long
    computation never ends on an unwritable output. A process running as root may write in
    any folder, but a file standing where a folder is needed stops everyone.

    Args:
        path: the file (or, with ``folder``, the folder) to write.
        what: how the message names it, e.g. ``"-o"`` or ``"--out"``.
        folder: ``path`` is a folder to create or fill, not a file.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"; _ = f.write_text("a file")
    >>> check_writable(f / "grid.png", "-o")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    gan_edu.errors.GanEduError: -o .../notes.txt/grid.png: cannot write there, .../notes.txt is a file, not a folder; expected a path inside a folder
    """
    from .errors import GanEduError

    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        kind, wanted = ("a file", "a folder") if folder else ("a folder", "a file name")
        raise GanEduError(f"{what} {path}: is {kind}; expected {wanted}")
    ancestor = path if folder and path.is_dir() else path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise GanEduError(f"{what} {path}: cannot write there, {ancestor} is a file, not a folder; expected a path inside a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise GanEduError(f"{what} {path}: cannot write there, no permission to write in {ancestor}; expected a folder you may write in")


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform allows opening a folder.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
