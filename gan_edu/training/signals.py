"""Ctrl-C and SIGTERM during training: finish the step, write a checkpoint, stop.

:class:`StopSignals` is the context :meth:`Trainer.fit <gan_edu.training.Trainer.fit>` trains in.
The first signal only records itself (:attr:`StopSignals.received`); the loop sees it after the
current step, writes the checkpoint and raises :class:`TrainingInterrupted`. A second Ctrl-C
stops at once (one process only: under torchrun a Ctrl-C reaches each process twice, from the
terminal and from torchrun, and the processes must agree on the step they stop after).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from ..errors import GanEduError
from . import distributed


class TrainingInterrupted(GanEduError):
    """Ctrl-C or SIGTERM: the run stopped cleanly after writing a checkpoint."""


class StopSignals:
    """Catches SIGINT and SIGTERM while active (main thread only: elsewhere signals cannot be caught).

    Args:
        second_stops_now: a second signal raises KeyboardInterrupt at once.

    Attributes:
        received: the number of the first signal caught since entering, or None.
    """

    def __init__(self, *, second_stops_now: bool) -> None:
        self.second_stops_now = second_stops_now
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        self.received = None
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and self.second_stops_now:
            raise KeyboardInterrupt
        self.received = signum  # the loop finishes the current step, checkpoints, stops

    def agreed(self, world: distributed.World, device: Any, *, at_log_step: bool) -> bool:
        """A signal arrived. Several processes agree only at log steps, so all stop after the same step."""
        if world.active and at_log_step:
            self.received = distributed.agreed_stop(self.received, world, device)
        return self.received is not None and (at_log_step or not world.active)

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def interrupted(signum: int, step: int, run_dir: Path | None, hint: str | None) -> TrainingInterrupted:
    """The error a stopped run ends with: which signal, after which step, where, and how to go on."""
    where = f" in {run_dir}" if run_dir is not None else ""
    text = f"{signal.Signals(signum).name} received: stopped after step {step}, checkpoint written{where}"
    return TrainingInterrupted(text + (f"; {hint}" if hint else ""))
