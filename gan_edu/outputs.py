"""The files gan-edu writes in its folders, so that ``--overwrite`` removes only those.

A run folder, a bank folder and an experiment folder each hold a known set of files. Replacing
one with ``--overwrite`` first checks that every file in it is one that gan-edu writes there
(by name, below); a folder that also holds anything else (``notes.txt``, a picture of your own,
a symbolic link) is refused with one line naming it, and nothing is removed. Only a folder that
holds nothing but gan-edu's own files is deleted and started afresh.

A feature that writes a new kind of file into one of these folders adds its name here;
``tests/test_reliability.py`` overwrites a run that holds every kind, so a missing name fails
there, never by deleting a user's file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gan_edu_runtime.cache import CACHE_TAG

from .errors import DiskFull, GanEduError, check
from .io import DISK_FULL, check_writable

#: The run folder's files that the loop writes and resume and export read.
CONFIG_NAME = "config.json"
HISTORY_NAME = "history.jsonl"
CHECKPOINT_NAME = "checkpoints/last.pt"

#: Files of a training run (``gan-edu train``; also a classifier's run and each member of a bank).
RUN_FILES = (
    r"config\.json",
    r"history\.jsonl",
    r"samples\.(png|gif)",
    r"losses\.png",
    r"checkpoints/last\.pt",
    r"samples/step_\d+\.png",
    r"(generator|generator_online|discriminator|classifier)/(config\.json|model\.safetensors)",
    r"tensorboard/events\.out\.tfevents\.[^/]+",
)

#: Files of a per-class bank (``gan-edu train --per-class``): a manifest, the joined generator, one run per class.
BANK_FILES = (
    r"bank\.json",
    r"samples\.png",
    r"generator/(config\.json|model\.safetensors)",
    *(rf"class_\d+_[^/]+/{f}" for f in RUN_FILES),
)

#: Files of a c vs c' experiment (``gan-edu pipeline``): the report, the export (with the optimized
#: graph the exporter caches beside it, ``.generator.optimized-KEY.onnx``), the GAN and the classifiers
#: (c and c', and the reference recipe's pair).
EXPERIMENT_FILES = (
    r"report\.(json|md)",
    r"(confusion|per_class_accuracy|samples_per_class)\.png",
    r"synthetic_preview\.npz",
    r"generator\.(onnx|json)",
    r"generator\.class\d+\.onnx",
    rf"\.generator(\.class\d+)?{re.escape(CACHE_TAG)}[0-9a-f]+\.onnx",
    *(rf"gan/{f}" for f in (*RUN_FILES, *BANK_FILES)),
    *(rf"(c|c_prime|c_reference|c_prime_reference)/{f}" for f in RUN_FILES),
)

#: A temporary file of an atomic write cut off by a kill (``.NAME.XXXXXXXX.tmp``), anywhere.
_TEMPORARY = r"(.+/)?\.[^/]+\.[a-z0-9_]{8}\.tmp"


def foreign_files(folder: str | os.PathLike[str], patterns: tuple[str, ...]) -> list[Path]:
    """The files (and symbolic links) under ``folder`` whose path matches none of ``patterns``.

    Folders themselves are never foreign: a folder holding only gan-edu's files is gan-edu's.
    """
    folder = Path(folder)
    allowed = re.compile("|".join(f"(?:{p})" for p in (*patterns, _TEMPORARY)))
    foreign = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        here = Path(root)
        links = [d for d in dirs if (here / d).is_symlink()]  # a link to a folder is not walked: it is not ours
        for name in sorted(files + links):
            rel = (here / name).relative_to(folder).as_posix()
            if (here / name).is_symlink() or not allowed.fullmatch(rel):
                foreign.append(here / name)
    return foreign


def prepare_folder(
    out_dir: str | os.PathLike[str], *, kind: str, patterns: tuple[str, ...], holds_one: Callable[[Path], bool],
    overwrite: bool, resumable: bool = False, dry_run: bool = False,
) -> Path:
    """A folder that can take a new ``kind`` (run, experiment...): new, empty, or (with ``overwrite``) an old one, emptied.

    A folder that holds anything but a ``kind`` is never emptied, and a ``kind`` is never mixed
    with the remains of another.

    Args:
        out_dir: the folder (``--out``).
        kind: "run", "bank" or "experiment", for the messages.
        patterns: the files gan-edu writes there (:data:`RUN_FILES`, :data:`EXPERIMENT_FILES`...).
        holds_one: whether a non-empty folder holds a ``kind`` at all.
        overwrite: replace an old ``kind`` that holds only gan-edu's files.
        resumable: the message of an existing ``kind`` also offers ``--resume``.
        dry_run: only check; remove and create nothing.

    Raises:
        GanEduError: not a folder, not writable, not a ``kind``, a ``kind`` without ``overwrite``,
            or a file gan-edu did not write (then nothing is removed).
    """
    out = Path(out_dir)
    if out.exists():
        check(out.is_dir(), f"--out {out}: exists and is not a folder; expected a new or empty folder")
    check_writable(out, "--out", folder=True)
    if out.exists() and any(out.iterdir()):
        check(holds_one(out), f"--out {out}: folder exists and is not a gan-edu {kind}; expected a new or empty folder")
        again = f"use --resume {out} to continue it or --overwrite to replace it" if resumable else "use --overwrite to replace it"
        check(overwrite, f"--out {out}: {_article(kind)} {kind} already exists there; {again}")
        replace_folder(out, patterns, kind, dry_run=dry_run)  # refuses when a file there is not gan-edu's
    if not dry_run:
        made = new_folders(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a full disk: leave no half-made folders behind
            if e.errno not in DISK_FULL:
                raise
            remove_written(out, patterns, made)
            raise DiskFull(f"--out {out}: no space left on device to make the folder; expected free space in {(made[0] if made else out).parent}") from None
    return out


def new_folders(path: Path) -> tuple[Path, ...]:
    """The folders that making ``path`` (with its parents) would create, outermost first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return tuple(reversed(missing))


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def replace_folder(folder: str | os.PathLike[str], patterns: tuple[str, ...], kind: str, *, dry_run: bool = False) -> None:
    """Delete ``folder`` for ``--overwrite``, or refuse with one line when it holds a file gan-edu did not write.

    Args:
        folder: the old run, bank or experiment.
        patterns: the files gan-edu writes there (:data:`RUN_FILES`, :data:`BANK_FILES`, :data:`EXPERIMENT_FILES`).
        kind: "run", "bank" or "experiment", for the message.
        dry_run: only check; remove nothing.

    Raises:
        GanEduError: a file (or link) in ``folder`` is not one gan-edu writes there; nothing was removed.
    """
    folder = Path(folder)
    foreign = foreign_files(folder, patterns)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise GanEduError(
            f"--out {folder}: --overwrite would delete {foreign[0].relative_to(folder)}{more}, which gan-edu did not write; "
            f"expected {_article(kind)} {kind} folder holding only gan-edu's files (move yours away, or choose another --out)"
        )
    if not dry_run:
        shutil.rmtree(folder)


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``history.jsonl`` file; a torn last line (a crash mid-write) is skipped."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def remove_written(folder: str | os.PathLike[str], patterns: tuple[str, ...], created: Sequence[Path] = ()) -> None:
    """Undo a new run that could not write its first checkpoint (a full disk): delete the files under
    ``folder`` that gan-edu writes there (``patterns``, killed writes' temporaries included), then the
    folders below it left empty, then those of ``created`` (made for this run) left empty.

    A file gan-edu does not write, and any folder holding one, is never removed: what was there
    before the run stays.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    keep = set(foreign_files(folder, patterns))
    for root, dirs, files in os.walk(folder, topdown=False, followlinks=False):
        here = Path(root)
        for name in files:
            if here / name not in keep:
                with contextlib.suppress(FileNotFoundError):
                    (here / name).unlink()
        for name in dirs:
            if not (here / name).is_symlink():
                with contextlib.suppress(OSError):  # not empty: something there is not ours
                    (here / name).rmdir()
    for made in sorted(created, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            made.rmdir()
