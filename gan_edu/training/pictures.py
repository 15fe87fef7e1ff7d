"""The pictures (and saved models) of a GAN run: callbacks :class:`~.gan_trainer.GANTrainer` adds by default.

* :class:`SampleGrid`: one fixed noise batch drawn after every epoch into ``samples/``, the
  latest grid as ``samples.png`` and all of them as ``samples.gif``;
* :class:`SaveModels`: ``generator/`` and ``discriminator/`` (``save_pretrained``) after every epoch,
  and with the ``snapshots`` option the sampling G of the last epochs in ``snapshots/``;
* :class:`LossCurves`: ``losses.png`` from the history.

Each hook receives the GAN trainer (its ``generator``, ``sampling_generator``, ``config``,
``out_dir``); a trainer without an ``out_dir`` writes nothing. ``from gan_edu.training import
SampleGrid`` (or ``gan_edu.training.gan_trainer``, which imports them) finds them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..plots import plot_losses, save_gif, save_grid
from .callbacks import Callback

if TYPE_CHECKING:
    from .gan_trainer import GANTrainer


class SampleGrid(Callback):
    """Generates from one fixed noise batch after every epoch (and at the end) into ``samples/``.

    Conditional models get one row per class. The frames become ``samples.gif`` at the end and the
    latest grid is copied to ``samples.png``.
    """

    def on_fit_start(self, trainer: GANTrainer) -> None:
        g, cfg = trainer.generator, trainer.config
        fixed = torch.Generator().manual_seed(cfg.seed + 1)  # independent of training noise, same every resume
        if g.num_classes is not None:
            self.nrow = cfg.samples_per_class
            self.labels: torch.Tensor | None = torch.arange(g.num_classes).repeat_interleave(self.nrow).to(trainer.device)
            n = g.num_classes * self.nrow
        else:
            n = cfg.num_samples
            self.nrow = max(1, int(n**0.5))
            self.labels = None
        self.z = g.sample_latent(n, generator=fixed, device=trainer.device)  # (n, latent_dim), fixed
        self.last_step = -1

    def write(self, trainer: GANTrainer) -> None:
        if trainer.out_dir is None or trainer.step == self.last_step:
            return
        g = trainer.sampling_generator  # the average of G when ema is on
        was_training = g.training
        g.eval()
        with torch.no_grad():
            images = g(self.z, self.labels)
        g.train(was_training)
        scale = max(1, 128 // g.image_shape[-1])
        save_grid(images, trainer.out_dir / "samples" / f"step_{trainer.step:07d}.png", self.nrow, scale=scale)
        save_grid(images, trainer.out_dir / "samples.png", self.nrow, scale=scale)
        self.last_step = trainer.step

    def on_epoch_end(self, trainer: GANTrainer) -> None:
        self.write(trainer)

    def on_fit_end(self, trainer: GANTrainer) -> None:
        self.write(trainer)
        if trainer.out_dir is not None:
            save_gif(sorted((trainer.out_dir / "samples").glob("step_*.png")), trainer.out_dir / "samples.gif")


class SaveModels(Callback):
    """Writes ``generator/`` and ``discriminator/`` (save_pretrained) after each epoch and at the end.

    ``generator/`` is the G to use (sample, export): the average of G's weights when ``ema`` is
    on; G's own weights, the ones D was trained against, then go to ``generator_online/``.
    """

    def _save(self, trainer: GANTrainer) -> None:
        if trainer.out_dir is not None:
            trainer.sampling_generator.save_pretrained(trainer.out_dir / "generator")
            trainer.discriminator.save_pretrained(trainer.out_dir / "discriminator")
            if trainer.ema is not None:
                trainer.generator.save_pretrained(trainer.out_dir / "generator_online")

    def on_epoch_end(self, trainer: GANTrainer) -> None:
        self._save(trainer)
        cfg = trainer.config
        if trainer.out_dir is not None and cfg.epochs - cfg.snapshots <= trainer.epoch < cfg.epochs:  # snapshots: the last N before the final epoch
            trainer.sampling_generator.save_pretrained(snapshot_dir(trainer.out_dir, trainer.epoch))

    def on_fit_end(self, trainer: GANTrainer) -> None:
        self._save(trainer)


def snapshot_dir(run_dir: Path, epoch: int) -> Path:
    """Where a run keeps the sampling G of the end of ``epoch`` (``snapshots`` option): ``snapshots/epoch_NNNN``."""
    return Path(run_dir) / "snapshots" / f"epoch_{epoch:04d}"


def snapshot_dirs(run_dir: str | Path) -> list[Path]:
    """A run's kept snapshots of G (oldest first), not counting its final ``generator/``."""
    return sorted(p for p in (Path(run_dir) / "snapshots").glob("epoch_*") if (p / "config.json").is_file())


class LossCurves(Callback):
    """Plots the history's losses into ``losses.png`` after each epoch and at the end."""

    def _plot(self, trainer: GANTrainer) -> None:
        if trainer.out_dir is not None:
            plot_losses(trainer.history, trainer.out_dir / "losses.png", keys=("d_loss", "g_loss"))

    def on_epoch_end(self, trainer: GANTrainer) -> None:
        self._plot(trainer)

    def on_fit_end(self, trainer: GANTrainer) -> None:
        self._plot(trainer)
