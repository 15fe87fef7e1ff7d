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
import json
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import DiskFull, GanEduError, check
from ..io import atomic_write, remove_stale_temporaries
from ..models.base import load_state_dict_checked
from ..outputs import RUN_FILES, remove_written
from . import devices, run_files
from .meter import Meter

if TYPE_CHECKING:
    from .trainer import Trainer

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
    state = safe_torch_load(path, "checkpoint", EXPECTED, map_location=map_location)
    check(
        isinstance(state, dict) and state.get("format") == FORMAT,
        f"{path}: not a gan-edu checkpoint; expected {EXPECTED}",
    )
    return state


def safe_torch_load(path: Path, what: str, expected: str, *, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors: a file that asks to run code is
    refused and names the function it asks for; a truncated or corrupt file says so.

    Args:
        path: the file.
        what: what the file should be, for the message ("checkpoint").
        expected: what was expected, for the message.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about foreign pickle protocols: the error below says it all
            return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as e:  # torch < 2.4 raised some refusals as RuntimeError
        code = unpickler_global(str(e)) if isinstance(e, pickle.UnpicklingError) or "eights only" in str(e) else None
        if code is not None:  # the file names a function or class to call: code
            raise GanEduError(f"{path}: refused: the file asks to run code ({code}); expected {expected}") from None
        reason = _unpickler_reason(e) if isinstance(e, pickle.UnpicklingError) else _first_line(e)
        raise GanEduError(f"{path}: truncated or corrupt {what} ({reason}); expected {expected}") from None
    except (EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        raise GanEduError(f"{path}: truncated or corrupt {what} ({_first_line(e)}); expected {expected}") from None
    except (KeyError, IndexError, TypeError) as e:  # a text file: torch's unpickler reads its letters as opcodes and memo keys
        raise GanEduError(f"{path}: truncated or corrupt {what} (not a torch file: {type(e).__name__} {_first_line(e)}); expected {expected}") from None


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


#: How torch's restricted unpickler names what a file asks it to call, across the supported versions:
#: "Unsupported global: GLOBAL os.system was not an allowed global" (2.4 on), "Trying to load
#: unsupported GLOBAL posix.system whose module posix is blocked" (blocked modules, 2.6 on),
#: "Unsupported class os.system" (before 2.4), "Trying to call reduce for unrecognized function
#: <built-in function system>" and "Can only create new object ... but got <class 'x.Y'>".
_CODE_PATTERNS = (
    re.compile(r"\bGLOBAL\s+([A-Za-z_][\w.]*)"),
    re.compile(r"Unsupported class\s+([A-Za-z_][\w.]*)"),
    re.compile(r"unrecognized function\s+(<[^>]*>|\S+)"),
    re.compile(r"but got\s+(<class '[^']*'>)"),
)


def unpickler_global(message: str) -> str | None:
    """The function or class a refused pickle asks to call, read from torch's error text; None
    when the error is about something else (a truncated or corrupt file).

    >>> unpickler_global("Weights only load failed. ... Trying to load unsupported GLOBAL posix.system whose module posix is blocked.")
    'posix.system'
    >>> unpickler_global("Weights only load failed. ... WeightsUnpickler error: Unsupported global: GLOBAL builtins.eval was not an allowed global by default.")
    'builtins.eval'
    >>> unpickler_global("Weights only load failed. ... WeightsUnpickler error: Unsupported operand 149") is None
    True
    """
    for pattern in _CODE_PATTERNS:
        match = pattern.search(message)
        if match:
            return match.group(1).rstrip(".")[:120]
    return None


def _unpickler_reason(e: BaseException) -> str:
    """The one useful line of torch's weights-only error (its text is a page of advice)."""
    text = str(e)
    match = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    reason = match.group(1).strip() if match else (text.strip().splitlines() or [type(e).__name__])[0]
    reason = re.sub(r"\s*Please use `torch\.serialization.*", "", reason)  # advice to allow-list the code: never
    return reason[:160]


def trainer_state(trainer: Trainer) -> dict[str, Any]:
    """Everything a checkpoint of ``trainer`` holds: counters, modules, optimizers, random states, metrics."""
    return {
        "step": trainer.step,
        "epoch": trainer.epoch,
        "batch_in_epoch": trainer.batch_in_epoch,
        "modules": {k: m.state_dict() for k, m in trainer.modules().items()},
        "optimizers": {k: o.state_dict() for k, o in trainer.optimizers().items()},
        "rng": devices.rng_state(),
        "extra": trainer.extra_state(),
        "epoch_meter": trainer._epoch_meter.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.scaler.is_enabled() else {},
        "run_config": json.dumps(trainer.run_config()),
    }


def load_trainer_state(trainer: Trainer, state: dict[str, Any], source: str = "checkpoint") -> None:
    """Restore into ``trainer`` what :func:`trainer_state` returned; ``source`` names it in errors."""
    modules, optimizers = trainer.modules(), trainer.optimizers()
    check(
        set(state.get("modules", {})) == set(modules),
        f"{source}: holds modules {sorted(state.get('modules', {}))}, expected {sorted(modules)}",
    )
    for k, m in modules.items():
        load_state_dict_checked(m, state["modules"][k], f"{source} [{k}]")
    for k, o in optimizers.items():
        o.load_state_dict(state["optimizers"][k])
    trainer.step, trainer.epoch, trainer.batch_in_epoch = int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
    devices.set_rng_state(state["rng"])
    trainer.load_extra_state(state.get("extra", {}))
    trainer._epoch_meter = Meter()
    trainer._epoch_meter.load_state_dict(state.get("epoch_meter", {}))
    if trainer.scaler.is_enabled() and state.get("scaler"):
        trainer.scaler.load_state_dict(state["scaler"])


def resume_trainer(trainer: Trainer, path: Path | None) -> None:
    """Load the checkpoint at ``path`` into ``trainer``, and its run folder's history up to it."""
    check(path is not None, "resume: no checkpoint path and no out_dir")
    assert path is not None
    trainer.load_state_dict(load_checkpoint(path, map_location=trainer.device), str(path))
    if path == trainer.checkpoint_path:
        trainer.checkpointed_step = trainer.step
    if trainer.out_dir is not None:
        # The run stopped somewhere after this checkpoint (a kill -9, a crash): what it logged
        # since is redone from here, so it is dropped from the history.
        try:
            trainer.history = run_files.history_up_to(trainer.out_dir, trainer.step, trainer.epoch, rewrite=trainer.writes_files)
        except DiskFull as e:
            raise disk_full_error(trainer, e) from None
        if trainer.writes_files:
            remove_stale_temporaries(trainer.out_dir, recursive=True)  # half-written files of the stopped process


def disk_full_error(trainer: Trainer, error: DiskFull) -> DiskFull:
    """``error`` with what became of the run: its last checkpoint is safe, or, for a new run with
    none yet, what it wrote was removed (only gan-edu's files, and the folders made for it once empty)."""
    if trainer.checkpointed_step is not None and trainer.checkpoint_path is not None:
        hint = trainer.resume_command()
        then = f", then {hint}" if hint else ""
        return DiskFull(f"{error}; the last checkpoint {trainer.checkpoint_path} (step {trainer.checkpointed_step}) is safe: free some space{then}")
    if trainer.new_folders is not None and trainer.writes_files:
        assert trainer.out_dir is not None
        remove_written(trainer.out_dir, RUN_FILES, trainer.new_folders)
        return DiskFull(f"{error}; no checkpoint had been written, so the new run's files in {trainer.out_dir} were removed: free some space and start again")
    return error


def save_trainer(trainer: Trainer, path: Path | None) -> Path | None:
    """Write ``trainer``'s checkpoint to ``path`` after checking that every weight is finite.

    Several processes: every rank calls it (the epoch's metrics are averaged over ranks first);
    rank 0 writes. Returns the path, or None where nothing was written.
    """
    if path is None:
        return None
    trainer.check_finite_weights()
    trainer._epoch_meter.average_over_ranks(trainer.world)  # so every rank resumes with the same sums
    if not trainer.world.is_main:
        return None
    save_checkpoint(path, trainer.state_dict())
    if path == trainer.checkpoint_path:
        trainer.checkpointed_step = trainer.step
    return path
