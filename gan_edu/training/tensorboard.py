"""TensorBoard logging of a run (``--tensorboard``): losses, D(x) and D(G(z)), learning rates, sample grids.

Writes with :class:`torch.utils.tensorboard.SummaryWriter` into ``RUN_DIR/tensorboard/``; look at
it with ``tensorboard --logdir runs/``. It needs the ``tensorboard`` package, an optional extra
(``pip install "gan-edu[tensorboard]"``); asking for it without the package is a one-line error
before anything runs.

What is written, by the step it belongs to:

* ``train/<metric>`` at every log (every ``log_every`` steps): ``d_loss``, ``g_loss``, ``d_real``
  (D(x), D's belief that real images are real) and ``d_fake`` (D(G(z))), the same averages that
  ``history.jsonl`` holds; ``epoch/<metric>`` at each epoch end, the epoch's averages;
* ``lr/<optimizer>`` at every log: each optimizer's learning rate;
* ``samples`` at each epoch end (GAN runs): the grid of ``samples.png``, from the same fixed noise.

A resumed run passes the checkpoint's step as ``purge_step``, so TensorBoard drops what a killed
process logged after its last checkpoint, just as ``history.jsonl`` is trimmed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import GanEduError, check
from .callbacks import Callback

if TYPE_CHECKING:
    from .trainer import Trainer

LOG_DIR = "tensorboard"
INSTALL = 'pip install "gan-edu[tensorboard]"'


def check_tensorboard() -> None:
    """Raise a one-line GanEduError unless TensorBoard logging can work here."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise GanEduError(f"tensorboard=True: the tensorboard package is not installed; expected it installed ({INSTALL}) or no --tensorboard") from None


def check_log_dir(run_dir: Path) -> None:
    """Raise a one-line GanEduError unless ``RUN_DIR/tensorboard`` can be TensorBoard's folder."""
    log_dir = run_dir / LOG_DIR
    if log_dir.exists() or log_dir.is_symlink():
        check(
            log_dir.is_dir(),
            f"tensorboard=True: {log_dir} exists and is not a folder; expected a folder for TensorBoard's event files there "
            "(move that file away, or train without --tensorboard)",
        )


class TensorBoardLogger(Callback):
    """Mirrors the run's logs into TensorBoard event files (rank 0 only, like every callback)."""

    def on_fit_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer: Any = None
        if trainer.out_dir is None:
            return
        # purge_step: events of an earlier process at or after this step (logged past its last checkpoint) are dropped.
        self.writer = SummaryWriter(str(trainer.out_dir / LOG_DIR), purge_step=trainer.step + 1 if trainer.step else None, flush_secs=10)
        self.fixed: tuple[torch.Tensor, torch.Tensor | None, int] | None = None
        generator = getattr(trainer, "generator", None)
        if generator is not None:  # the noise of samples.png (SampleGrid): seed + 1, one row per class
            cfg = trainer.config
            noise = torch.Generator().manual_seed(cfg.seed + 1)
            if generator.num_classes is not None:
                nrow = getattr(cfg, "samples_per_class", 8)
                labels = torch.arange(generator.num_classes).repeat_interleave(nrow).to(trainer.device)
                n = generator.num_classes * nrow
            else:
                n, labels = getattr(cfg, "num_samples", 64), None
                nrow = max(1, int(n**0.5))
            self.fixed = (generator.sample_latent(n, generator=noise, device=trainer.device), labels, nrow)

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        group = "epoch" if record.get("kind") == "epoch" else "train"
        for key, value in record.items():
            if key not in ("kind", "step", "epoch", "time") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"{group}/{key}", value, record["step"])
        if group == "train":
            for name, optimizer in trainer.optimizers().items():
                self.writer.add_scalar(f"lr/{name}", optimizer.param_groups[0]["lr"], record["step"])
        self.writer.flush()  # a kill -9 loses nothing that was logged

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.writer is None or self.fixed is None:
            return
        from torchvision.utils import make_grid

        z, labels, nrow = self.fixed
        generator = trainer.generator  # type: ignore[attr-defined]
        was_training = generator.training
        generator.eval()
        with torch.no_grad():
            images = generator(z, labels).float().cpu()  # (n, C, H, W) in [-1, 1]
        generator.train(was_training)
        grid = make_grid((images + 1) / 2, nrow=nrow, padding=2).clamp(0, 1)  # (3, H', W') in [0, 1]
        self.writer.add_image("samples", grid, trainer.step)
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
