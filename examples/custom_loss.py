"""A new GAN loss in a few lines, trained with the unchanged GANTrainer.

    python examples/custom_loss.py --epochs 3 --out runs/pearson

A loss is two pure functions on the discriminator's raw logits. This one is the least-squares
GAN with targets a = -1 (fake), b = 1 (real) and c = 0 (what G aims for), the choice for which
Mao et al. (2017, section 3.2) show that training minimises the Pearson chi-squared divergence.
gan-edu's own ``least-squares`` loss uses a = 0, b = c = 1; both are subclasses of ``GANLoss``.
"""

from __future__ import annotations

import argparse
import sys

import torch

from gan_edu.data import load_dataset
from gan_edu.errors import GanEduError
from gan_edu.losses import GANLoss
from gan_edu.training import GANTrainerConfig
from gan_edu.training.runs import new_gan_run


class PearsonLeastSquaresLoss(GANLoss):
    """LSGAN with a = -1, b = 1, c = 0: D minimises ``(l_real - 1)^2 / 2 + (l_fake + 1)^2 / 2``, G minimises ``l_fake^2 / 2``."""

    name = "least-squares-pearson"

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real_logits - 1) ** 2).mean() + 0.5 * ((fake_logits + 1) ** 2).mean()

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake_logits**2).mean()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000, help="built-in shapes to train on")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--width", type=int, default=64, help="g_channels and d_channels")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="runs/pearson")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        data = load_dataset("shapes", n=args.images)
        config = GANTrainerConfig(epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, progress=False)
        trainer = new_gan_run("dcgan", data, loss=PearsonLeastSquaresLoss(), config=config, out_dir=args.out,
                              overwrite=args.overwrite, g_channels=args.width, d_channels=args.width)
        history = trainer.fit(data)
    except GanEduError as e:
        print(f"custom_loss: {e}", file=sys.stderr)
        return 2
    last = history[-1]
    print(f"{trainer.step} steps with {trainer.loss.name}: d_loss {last['d_loss']:.3f}, g_loss {last['g_loss']:.3f}; "
          f"curves in {args.out}/losses.png, samples in {args.out}/samples.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
