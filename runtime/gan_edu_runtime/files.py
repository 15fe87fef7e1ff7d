"""Safe file writes for the light package: a file is either the old one or the complete new one.

:func:`atomic_open` writes to a temporary sibling (``.NAME.XXXXXXXX.tmp``), flushes, fsyncs, then
moves it over the target with :func:`os.replace` and fsyncs the folder, so a crash at any moment
leaves the previous file or the new one, never half of each. :func:`check_writable` says, before
any work, whether a file could be written at a path at all. gan-edu's own writers
(:mod:`gan_edu.io`) use the same two functions, and :func:`memory_bytes` (how much a machine
holds) serves the memory checks of both packages.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import GanEduError


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


def check_writable(path: str | os.PathLike[str], what: str = "output", *, folder: bool = False) -> None:
    """Raise a one-line :class:`~gan_edu_runtime.errors.GanEduError` unless ``path`` could be written.

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
    gan_edu_runtime.errors.GanEduError: -o .../notes.txt/grid.png: cannot write there, .../notes.txt is a file, not a folder; expected a path inside a folder
    """
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


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None
