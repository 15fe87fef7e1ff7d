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

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .. import __version__
from ..data.images import ImageSet
from ..data.loader import Batch, Loader
from ..errors import DiskFull, GanEduError, check
from . import capture, distributed, run_files
from .callbacks import Callback
from .checkpoint import (
    disk_full_error,
    load_trainer_state,
    resume_trainer,
    save_trainer,
    trainer_state,
)
from .config import TrainerConfig
from .devices import SpeedSwitches, resolve_device
from .meter import Meter, progress_bar
from .run_files import CHECKPOINT_NAME, read_history
from .signals import StopSignals, TrainingInterrupted, interrupted

# Also imported from here: the Trainer's options, its errors, and two helpers scripts use.
__all__ = ["Trainer", "TrainerConfig", "TrainingDiverged", "TrainingInterrupted", "read_history", "resolve_device"]


class TrainingDiverged(GanEduError):
    """A loss or a weight became NaN or infinite; the last good checkpoint is kept."""


class Trainer(ABC):
    """The training loop. Subclasses supply the modules, the optimizers and one step.

    The trainer holds two helpers, each with its own state: ``speed``, a
    :class:`~.devices.SpeedSwitches` (the device, precision and layout a step uses through
    ``prepare_module``, ``autocast``, ``optimize``...), and ``recorder``, a
    :class:`~.capture.StepRecorder` (the step recorded as a CUDA graph, ``cuda_graph``), whose
    ``blocker`` alone decides whether a step is recorded (:attr:`records_steps`).

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
        self.speed = SpeedSwitches(config)  # joins torchrun's processes, takes the device, makes the scaler
        self.config = config
        self.world, self.device, self.scaler = self.speed.world, self.speed.device, self.speed.scaler
        self.recorder = capture.StepRecorder(self.device)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks: list[Callback] = list(self.default_callbacks()) + list(callbacks)
        if config.tensorboard:
            from .tensorboard import TensorBoardLogger

            self.callbacks.append(TensorBoardLogger())
        self.step = self.epoch = 0  # optimisation steps and complete epochs done
        self.batch_in_epoch = 0  # batches of the current epoch already done (for mid-epoch resume)
        self.history: list[dict[str, Any]] = []
        self._epoch_meter = Meter()
        self.signals = StopSignals(second_stops_now=not self.world.active)
        #: A new run's folders made for it (outermost first), set by whoever started the run; None when
        #: ``out_dir`` held a run before (a resume). A new run that fails on a full disk before its first
        #: checkpoint removes its own files there, and these folders once empty.
        self.new_folders: tuple[Path, ...] | None = None
        self.checkpointed_step: int | None = None  # the step of the checkpoint on disk, once one is written or loaded
        if config.tensorboard and self.out_dir is not None:
            from .tensorboard import check_log_dir

            check_log_dir(self.out_dir)

    @property
    def config(self) -> TrainerConfig:
        """The trainer's options; setting new ones (a longer second ``fit``) gives them to ``speed`` too."""
        return self._config

    @config.setter
    def config(self, config: TrainerConfig) -> None:
        self._config = self.speed.config = config

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

    # -- what a step uses of the device and precision (self.speed; models are set up by self.speed.prepare_module...)
    def autocast(self) -> Any:
        """Mixed-precision context for forward passes (a no-op at fp32); cache-less in a recorded step."""
        return self.speed.autocast(recorded=self.records_steps)

    def make_adam(self, params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        """Adam for this trainer's step: fused and capturable when the step is recorded, else eager settings."""
        return self.speed.make_adam(params, lr, betas, recorded=self.records_steps)

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        self.speed.optimize(loss, optimizer)

    def prepare_batch(self, images: torch.Tensor) -> torch.Tensor:
        return self.speed.prepare_batch(images)

    def make_loader(self, data: ImageSet | Loader) -> Loader:
        return self.speed.make_loader(data)

    # -- the recorded step (self.recorder; cuda_graph) -------------------------------------------
    graph_safe: ClassVar[bool] = False  # True: train_step keeps the rules of .capture (fixed shapes, no host reads)
    #: The methods a step is made of: a subclass overriding one runs eagerly until it sets ``graph_safe = True`` itself.
    step_methods: ClassVar[tuple[str, ...]] = ("train_step",)

    @property
    def records_steps(self) -> bool:
        """Whether this trainer's step is recorded: ``cuda_graph`` on, a recorder for the device, nothing blocking."""
        return self.recorder.blocker(self) is None

    @property
    def captured(self) -> capture.CapturedStep | None:
        """The recorded step (made when ``fit`` starts), or None: the eager step runs."""
        return self.recorder.captured

    def graph_blocker(self) -> str | None:
        """Why this run's step cannot be recorded as a CUDA graph; None when it can. Subclasses add their own reasons."""
        return capture.loop_blocker(type(self), self.config, self.world)

    def graph_generators(self) -> list[torch.Generator]:
        """The random generators the step draws from (registered with the graph)."""
        return []

    def graph_state(self) -> list[torch.Tensor]:
        """The tensors a step updates in place: weights, buffers, optimizer states."""
        return capture.step_state(self.modules().values(), self.optimizers().values())

    def graph_constants(self) -> tuple[Any, ...]:
        """The Python numbers a recorded step holds that a new ``fit`` may change (the schedule's length)."""
        return ()

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
        self.recorder.captured = self.recorder.capture_step(self, loader)  # kept while what it recorded still holds
        self._fit_start = time.perf_counter()
        total = int(min(len(loader) * self.config.epochs, self.config.max_steps or math.inf))
        show = self.config.progress and self.world.is_main
        return loader, progress_bar(total, self.step, type(self).__name__) if show else None

    def _train_epoch(self, loader: Loader, window: Meter, bar: Any) -> bool:
        """The rest of the current epoch; True when it ran to its end (then logged and checkpointed)."""
        cfg = self.config
        for batch in self.recorder.step_inputs(loader, self.epoch, self.batch_in_epoch):
            metrics = self.recorder.run_step(self, batch)
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
        return f"resume with: {command}" if (command := self.resume_command()) else None

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
        """``error`` with what became of the run (:func:`.checkpoint.disk_full_error`)."""
        return disk_full_error(self, error)

    def _diverged(self, what: str) -> TrainingDiverged:
        where = f" in {self.out_dir}" if self.out_dir else ""
        return TrainingDiverged(f"{what} at step {self.step} (epoch {self.epoch}): training diverged; the last good checkpoint is kept{where}")

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / CHECKPOINT_NAME if self.out_dir is not None else None

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds (:func:`.checkpoint.trainer_state`)."""
        return trainer_state(self)

    def check_finite_weights(self) -> None:
        """Raise :class:`TrainingDiverged` if any weight is NaN or infinite."""
        bad = next((f"{name}.{pname}" for name, module in self.modules().items() for pname, p in module.named_parameters() if not torch.isfinite(p).all()), None)
        if bad is not None:
            raise self._diverged(f"{bad} is not finite")

    def save_checkpoint(self, path: str | Path | None = None) -> Path | None:
        """Write the checkpoint (atomically) once every weight is finite; rank 0 writes (:func:`.checkpoint.save_trainer`)."""
        return save_trainer(self, Path(path) if path is not None else self.checkpoint_path)

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore what :meth:`state_dict` returned (:func:`.checkpoint.load_trainer_state`)."""
        load_trainer_state(self, state, source)

    def resume(self, path: str | Path | None = None) -> None:
        """Load the checkpoint (default: the run folder's last one) and the history up to it (:func:`.checkpoint.resume_trainer`)."""
        resume_trainer(self, Path(path) if path is not None else self.checkpoint_path)
