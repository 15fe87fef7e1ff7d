"""The :class:`Trainer` base class: the training loop, and everything around it that a run needs.

A Trainer owns the loop (:meth:`Trainer.fit`), seeding, the metrics history, the progress bar,
checkpoints, resume, and what happens on a signal or a divergence. It knows nothing of the
models. To make a trainer, subclass and implement :meth:`Trainer.modules` and
:meth:`Trainer.optimizers` (what a checkpoint holds) and :meth:`Trainer.train_step` (one batch
in, a dict of detached scalar tensors out); ``fit`` keeps working when you override ``train_step``.

Metrics stay tensors on the device, summed there (:class:`.Meter`); they become Python floats
only every ``log_every`` steps, so a GPU never waits for the host each step. Around the loop, in
their own modules: the options (:mod:`.config`), the device and precision (:mod:`.devices`),
Ctrl-C and SIGTERM (:mod:`.signals`), the run folder's files (:mod:`.run_files`), and several
processes under ``torchrun`` (:mod:`.distributed`: each trains on its slice of every global
batch; only rank 0 writes files).
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..data.images import ImageSet
from ..data.loader import Batch, Loader
from ..errors import DiskFull, GanEduError, check
from ..io import remove_stale_temporaries
from ..models.base import load_state_dict_checked
from ..outputs import RUN_FILES, remove_written
from . import capture, devices, distributed, run_files
from .callbacks import Callback
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainerConfig
from .devices import SpeedSwitches, resolve_device
from .meter import Meter, progress_bar
from .run_files import CHECKPOINT_NAME, read_history
from .signals import StopSignals, TrainingInterrupted, interrupted

# Also imported from here: the Trainer's options, its errors, and two helpers scripts use.
__all__ = ["Trainer", "TrainerConfig", "TrainingDiverged", "TrainingInterrupted", "read_history", "resolve_device"]


class TrainingDiverged(GanEduError):
    """A loss or a weight became NaN or infinite; the last good checkpoint is kept."""


class Trainer(SpeedSwitches, capture.RecordedSteps, ABC):
    """The training loop. Subclasses supply the modules, the optimizers and one step.

    The device, precision and layout switches a step uses (``prepare_module``, ``autocast``,
    ``optimize``...) are inherited from :class:`~.devices.SpeedSwitches`; the step recorded as a
    CUDA graph (``cuda_graph``) from :class:`~.capture.RecordedSteps`.

    Args:
        config: loop options.
        out_dir: the run folder (config, checkpoints, history, pictures); None keeps nothing.
        callbacks: extra :class:`Callback` objects, called after the trainer's own.

    Attributes:
        step: optimisation steps done so far (over all epochs, resumes included).
        epoch: complete epochs done so far.
        history: every logged record, as written to ``history.jsonl``.
    """

    def __init__(self, config: TrainerConfig, *, out_dir: str | Path | None = None, callbacks: Iterable[Callback] = ()) -> None:
        self.config = config
        self.set_up_device(config)  # self.world, self.device, self.scaler: see SpeedSwitches
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks: list[Callback] = list(self.default_callbacks()) + list(callbacks)
        if config.tensorboard:
            from .tensorboard import TensorBoardLogger

            self.callbacks.append(TensorBoardLogger())
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0  # batches of the current epoch already done (for mid-epoch resume)
        self.history: list[dict[str, Any]] = []
        self._epoch_meter = Meter()
        self.signals = StopSignals(second_stops_now=not self.world.active)
        self.captured: capture.CapturedStep | None = None  # the recorded step (cuda_graph), made when fit starts
        #: A new run's folders made for it (outermost first), set by whoever started the run; None when
        #: ``out_dir`` held a run before (a resume). A new run that fails on a full disk before its first
        #: checkpoint removes its own files there, and these folders once empty.
        self.new_folders: tuple[Path, ...] | None = None
        self.checkpointed_step: int | None = None  # the step of the checkpoint on disk, once one is written or loaded
        if config.tensorboard and self.out_dir is not None:
            from .tensorboard import check_log_dir

            check_log_dir(self.out_dir)

    # -- what a subclass supplies -----------------------------------------------------------
    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """The modules a checkpoint holds, by name."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers a checkpoint holds, by name."""

    @abstractmethod
    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One optimisation step on ``batch``; returns detached scalar tensors (no ``.item()``)."""

    def default_callbacks(self) -> Iterable[Callback]:
        """Callbacks a trainer always has (pictures, for instance); none here."""
        return ()

    def run_config(self) -> dict[str, Any]:
        """What goes into the run's ``config.json``; subclasses add their models and loss."""
        return {
            "gan_edu_version": __version__,
            "trainer_class": type(self).__name__,
            "trainer": self.config.to_dict(),
            "world_size": self.world.size,  # processes that shared each batch (torchrun); 1: one process
        }

    def resume_command(self) -> str | None:
        """The command that resumes this run, said when a signal stopped it; None: none exists."""
        return None

    def extra_state(self) -> dict[str, Any]:
        """More state for the checkpoint (random generators of the subclass, say)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    # -- the loop -------------------------------------------------------------------------
    def fit(self, data: ImageSet | Loader) -> list[dict[str, Any]]:
        """Train until ``config.epochs`` epochs (or ``config.max_steps`` steps) are done.

        Continues from ``self.step`` / ``self.epoch``, so calling :meth:`resume` first (or fit
        again with more epochs) carries on where the last call stopped.

        Returns:
            The history records.

        Raises:
            TrainingInterrupted: after Ctrl-C / SIGTERM, once the checkpoint is written.
            TrainingDiverged: a loss or weight became NaN / inf; nothing newer is saved.
            DiskFull: a file could not be written; the message names it and the last checkpoint,
                which is intact (a new run that had none is removed: see :attr:`new_folders`).
        """
        try:
            loader, bar = self._start_fit(data)
            window = Meter()  # metrics since the last log; self._epoch_meter: since the epoch began
            with self.signals:
                while self.epoch < self.config.epochs and not self._done():
                    if not self._train_epoch(loader, window, bar):
                        break  # stopped inside an epoch: a signal, max_steps or max_seconds
                self._log(window, kind="step", bar=bar)
                if self.batch_in_epoch:  # stopped inside an epoch; epoch ends already saved theirs
                    self.save_checkpoint()
        except DiskFull as e:
            raise self._disk_full(e) from None
        if bar is not None:
            bar.close()
        self.elapsed = time.perf_counter() - self._fit_start
        received = distributed.agreed_stop(self.signals.received, self.world, self.device)
        if received is not None:
            raise interrupted(received, self.step, self.out_dir, self.resume_hint())
        for cb in self.rank_callbacks:
            cb.on_fit_end(self)
        distributed.barrier(self.world)  # every rank returns once rank 0 has written its files
        return self.history

    def _start_fit(self, data: ImageSet | Loader) -> tuple[Loader, Any]:
        """What precedes the first step: the loader, the run's config.json, the callbacks' start; the bar."""
        self.data = data
        loader = self.make_loader(data)
        check(len(loader) > 0, f"training data of {len(loader.dataset)} images: no complete batch of {self.config.batch_size}")
        if self.writes_files:
            run_files.write_run_config(self.out_dir, self.run_config())
        for cb in self.rank_callbacks:
            cb.on_fit_start(self)
        self.captured = self.capture_step(loader)  # kept while what it recorded still holds
        self._fit_start = time.perf_counter()
        total = int(min(len(loader) * self.config.epochs, self.config.max_steps or math.inf))
        show = self.config.progress and self.world.is_main
        return loader, progress_bar(total, self.step, type(self).__name__) if show else None

    def _train_epoch(self, loader: Loader, window: Meter, bar: Any) -> bool:
        """The rest of the current epoch; True when it ran to its end (then logged and checkpointed)."""
        cfg = self.config
        for batch in self.step_inputs(loader, self.epoch, self.batch_in_epoch):
            metrics = self.run_step(batch)
            window.add(metrics)  # summed on the device: no host sync
            self._epoch_meter.add(metrics)
            self.step += 1
            self.batch_in_epoch += 1
            if bar is not None:
                bar.update(1)
            checkpoint_now = bool(cfg.checkpoint_every) and self.step % cfg.checkpoint_every == 0
            if self.step % cfg.log_every == 0 or checkpoint_now:
                self._log(window, kind="step", bar=bar)
            if checkpoint_now:
                self.save_checkpoint()
            if self.signals.agreed(self.world, self.device, at_log_step=self.step % cfg.log_every == 0) or self._done():
                return False
        self.epoch += 1
        self.batch_in_epoch = 0
        self._log(window, kind="step", bar=bar)
        self._log(self._epoch_meter, kind="epoch", bar=bar)
        for cb in self.rank_callbacks:
            cb.on_epoch_end(self)
        self.save_checkpoint()
        return True

    def resume_hint(self) -> str | None:
        """What an interrupted run tells the user to do next: the resume command, when there is one."""
        command = self.resume_command()
        return f"resume with: {command}" if command else None

    def _done(self) -> bool:
        cfg = self.config
        if cfg.max_seconds is not None and time.perf_counter() - self._fit_start >= cfg.max_seconds:
            return True
        return cfg.max_steps is not None and self.step >= cfg.max_steps

    @property
    def writes_files(self) -> bool:
        """This process writes the run folder: it has one, and it is rank 0 (or the only process)."""
        return self.out_dir is not None and self.world.is_main

    @property
    def rank_callbacks(self) -> list[Callback]:
        """The callbacks this process calls: all of them on rank 0, none on the other ranks."""
        return self.callbacks if self.world.is_main else []

    def _log(self, meter: Meter, *, kind: str, bar: Any) -> None:
        """Average a meter's metrics (one host sync), check them, record and show them; reset it."""
        if not meter.sums:
            return
        values = meter.averages(self.world)
        meter.reset()
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            raise self._diverged(", ".join(f"{k}={v}" for k, v in bad.items()))
        record: dict[str, Any] = {"kind": kind, "step": self.step, "epoch": self.epoch, **values, "time": round(time.time(), 3)}
        self.history.append(record)
        if self.writes_files:
            run_files.append_history(self.out_dir, record)
        if bar is not None:
            bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)
        for cb in self.rank_callbacks:
            cb.on_log(self, record)

    def _disk_full(self, error: DiskFull) -> DiskFull:
        """``error`` with what became of the run: its last checkpoint is safe, or, for a new run
        with none yet, what it wrote was removed."""
        if self.checkpointed_step is not None and self.checkpoint_path is not None:
            hint = self.resume_command()
            then = f", then {hint}" if hint else ""
            return DiskFull(f"{error}; the last checkpoint {self.checkpoint_path} (step {self.checkpointed_step}) is safe: free some space{then}")
        if self.new_folders is not None and self.writes_files:
            assert self.out_dir is not None
            remove_written(self.out_dir, RUN_FILES, self.new_folders)
            return DiskFull(f"{error}; no checkpoint had been written, so the new run's files in {self.out_dir} were removed: free some space and start again")
        return error

    def _diverged(self, what: str) -> TrainingDiverged:
        where = f" in {self.out_dir}" if self.out_dir else ""
        return TrainingDiverged(f"{what} at step {self.step} (epoch {self.epoch}): training diverged; the last good checkpoint is kept{where}")

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / CHECKPOINT_NAME if self.out_dir is not None else None

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds."""
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "modules": {k: m.state_dict() for k, m in self.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
            "rng": devices.rng_state(),
            "extra": self.extra_state(),
            "epoch_meter": self._epoch_meter.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "run_config": json.dumps(self.run_config()),
        }

    def check_finite_weights(self) -> None:
        """Raise :class:`TrainingDiverged` if any weight is NaN or infinite."""
        for name, module in self.modules().items():
            for pname, p in module.named_parameters():
                if not torch.isfinite(p).all():
                    raise self._diverged(f"{name}.{pname} is not finite")

    def save_checkpoint(self, path: str | Path | None = None) -> Path | None:
        """Write the checkpoint (atomically) after checking that every weight is finite.

        Several processes: every rank calls it (the epoch's metrics are averaged over ranks
        first); rank 0 writes. Returns the path, or None where nothing was written.
        """
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            return None
        self.check_finite_weights()
        self._epoch_meter.average_over_ranks(self.world)  # so every rank resumes with the same sums
        if not self.world.is_main:
            return None
        save_checkpoint(path, self.state_dict())
        if path == self.checkpoint_path:
            self.checkpointed_step = self.step
        return path

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore what :meth:`state_dict` returned."""
        modules, optimizers = self.modules(), self.optimizers()
        check(
            set(state.get("modules", {})) == set(modules),
            f"{source}: holds modules {sorted(state.get('modules', {}))}, expected {sorted(modules)}",
        )
        for k, m in modules.items():
            load_state_dict_checked(m, state["modules"][k], f"{source} [{k}]")
        for k, o in optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.step, self.epoch, self.batch_in_epoch = int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
        devices.set_rng_state(state["rng"])
        self.load_extra_state(state.get("extra", {}))
        self._epoch_meter = Meter()
        self._epoch_meter.load_state_dict(state.get("epoch_meter", {}))
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def resume(self, path: str | Path | None = None) -> None:
        """Load the checkpoint (default: the run folder's last one) and the history up to it."""
        path = Path(path) if path is not None else self.checkpoint_path
        check(path is not None, "resume: no checkpoint path and no out_dir")
        assert path is not None
        state = load_checkpoint(path, map_location=self.device)
        self.load_state_dict(state, str(path))
        if path == self.checkpoint_path:
            self.checkpointed_step = self.step
        if self.out_dir is not None:
            # The run stopped somewhere after this checkpoint (a kill -9, a crash): what it logged
            # since is redone from here, so it is dropped from the history.
            try:
                self.history = run_files.history_up_to(self.out_dir, self.step, self.epoch, rewrite=self.writes_files)
            except DiskFull as e:
                raise self._disk_full(e) from None
            if self.writes_files:
                remove_stale_temporaries(self.out_dir, recursive=True)  # half-written files of the stopped process
