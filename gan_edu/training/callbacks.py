"""Callbacks: code that runs at fixed points of :meth:`Trainer.fit` without changing the loop.

Override any of the hooks; each receives the trainer, whose ``step``, ``epoch``, ``history``
and ``out_dir`` say where the run is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .trainer import Trainer


class Callback:
    """Base class: every hook does nothing."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first step (of this call to fit; also after a resume)."""

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After metrics were averaged and written to the history."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        """After each complete epoch, before its checkpoint is written."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last step, whether the run ended by epochs or max_steps."""
