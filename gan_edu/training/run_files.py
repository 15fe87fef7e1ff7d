"""The files of a run folder that the loop writes and resume reads: names, config, history.

``history.jsonl`` holds one JSON record per line, appended at every log; a crash can tear only
the last line, which :func:`read_history` skips. The names and the reader live in
:mod:`gan_edu.outputs`, with the folders' file lists (export reads them too). On resume the records logged after the
checkpoint (by a run killed later) are dropped: the resumed run logs them again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..io import DISK_FULL, atomic_open, atomic_write_json, disk_full
from ..outputs import CHECKPOINT_NAME, CONFIG_NAME, HISTORY_NAME, read_history

__all__ = ["CHECKPOINT_NAME", "CONFIG_NAME", "HISTORY_NAME", "append_history", "history_up_to", "read_history", "write_run_config"]


def write_run_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Create the run folder if needed and write its ``config.json`` (atomically)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / CONFIG_NAME, config)


def append_history(run_dir: Path, record: dict[str, Any]) -> None:
    """Add one record to the run's ``history.jsonl``."""
    path = run_dir / HISTORY_NAME
    try:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as e:  # a torn last line is skipped when read
        raise disk_full(path, e, "the record was not added (a torn last line is skipped when read)") if e.errno in DISK_FULL else e from None


def history_up_to(run_dir: Path, step: int, epoch: int, *, rewrite: bool) -> list[dict[str, Any]]:
    """The run's records up to a checkpoint at ``step`` / ``epoch``; with ``rewrite``, the file is cut to them.

    A record is past the checkpoint when its step is, or when it closed an epoch the checkpoint
    had not (the last batch of an epoch is checkpointed by ``checkpoint_every`` before the
    epoch-end record is logged).
    """
    path = run_dir / HISTORY_NAME
    if not path.exists():
        return []
    records = [r for r in read_history(path) if r["step"] <= step and r["epoch"] <= epoch]
    if rewrite:
        with atomic_open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
    return records
