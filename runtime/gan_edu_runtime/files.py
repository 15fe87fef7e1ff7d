"""Safe file writes for the light package: a file is either the old one or the complete new one.

:func:`atomic_open` writes to a temporary sibling (``.NAME.XXXXXXXX.tmp``), flushes, fsyncs, then
moves it over the target with :func:`os.replace` and fsyncs the folder, so a crash at any moment
leaves the previous file or the new one, never half of each. :func:`check_writable` says, before
any work, whether a file could be written at a path at all. gan-edu's own writers
(:mod:`gan_edu.io`) use the same functions, and :func:`memory_bytes` (how much a machine
holds) serves the memory checks of both packages.

A full disk is one line naming the file (:class:`~gan_edu_runtime.errors.DiskFull`), not the bare
"No space left on device". A writer holds an advisory lock (``flock``) on its temporary file until
the file is renamed, so :func:`remove_stale_temporaries` can tell the leftovers of a killed writer
(unlocked: the kernel drops a dead process's locks) from a file being written now (locked).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import DiskFull, GanEduError

try:
    import fcntl
except ImportError:  # Windows: no flock; a leftover is then judged by its age alone
    fcntl = None  # type: ignore[assignment]

#: The name of :func:`atomic_open`'s temporary files: ".", the target's name, ".", mkstemp's 8 random characters, ".tmp".
TEMPORARY_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")

#: Without flock (Windows), a temporary file untouched for this long counts as a killed writer's.
STALE_AFTER_S = 24 * 3600.0

#: The errors of a full disk or a used-up quota.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(path: str | os.PathLike[str], error: OSError, outcome: str = "the file was not written (a file there before is unchanged)") -> DiskFull:
    """The one-line error for ``error`` (ENOSPC or EDQUOT) while writing ``path``; ``outcome``: what became of the file."""
    path = Path(path)
    why = "no space left on device" if error.errno == errno.ENOSPC else "disk quota exceeded"
    return DiskFull(f"{path}: {why}, {outcome}; expected free space in {path.parent}")


def locked_temporary(path: Path) -> tuple[int, str]:
    """A new temporary sibling of ``path`` (``.NAME.XXXXXXXX.tmp``), open and locked: ``(fd, name)``.

    The lock lasts while ``fd`` (or a duplicate of it) is open. A cleaner may remove the file
    between its creation and the lock; then it is made again.
    """
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        if fcntl is None:
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a cleaner checks this very file
        except OSError:  # a file system without locks: write unlocked (cleaners cannot lock it either, so they keep it)
            return fd, tmp
        if os.fstat(fd).st_nlink:  # still linked: no cleaner removed it before the lock
            return fd, tmp
        os.close(fd)


def remove_if_stale(tmp: Path) -> bool:
    """Delete the temporary file ``tmp`` unless a live writer holds it; True when it was deleted."""
    if fcntl is None:
        with contextlib.suppress(OSError):
            if time.time() - tmp.lstat().st_mtime > STALE_AFTER_S:
                tmp.unlink()
                return True
        return False
    try:
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:  # gone already, a symbolic link, no permission: not ours to remove
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # locked: a writer is at work (or the file system has no locks): keep it
            return False
        held, now = os.fstat(fd), os.stat(tmp, follow_symlinks=False)
        if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
            return False
        os.unlink(tmp)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def remove_stale_temporaries(path: str | os.PathLike[str], *, recursive: bool = False) -> list[Path]:
    """Delete the temporary files that killed writers left behind; a file a live writer holds is kept.

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
        pattern = f".{glob_escape(path.name)}.*.tmp"
        candidates = [p for p in path.parent.glob(pattern) if TEMPORARY_NAME.fullmatch(p.name)] if path.parent.is_dir() else []
    return [stale for stale in candidates if stale.is_file() and not stale.is_symlink() and remove_if_stale(stale)]


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters quoted."""
    return re.sub(r"([*?\[])", r"[\1]", name)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on success, move it over ``path``.

    Args:
        path: the final file.
        mode: ``"wb"`` or ``"w"``.

    Raises:
        DiskFull: the disk or the quota is full (named with ``path``); no file was changed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = locked_temporary(path)
    except OSError as e:
        if e.errno in DISK_FULL:
            raise disk_full(path, e) from None
        raise
    lock = os.dup(fd)  # keeps the lock after the file object closes, until the rename is done
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            raise disk_full(path, e) from None
        raise
    finally:
        os.close(lock)
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
