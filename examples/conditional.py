"""A conditional DCGAN: ask the generator for a class, get an image of that class.

    python examples/conditional.py --epochs 5 --out runs/conditional

The generator takes a label next to the noise (a learned class embedding concatenated to z);
the discriminator judges the pair (a projection discriminator). After training, one row of the
grid per class: same noise in every column, so each column shows one "style" across classes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from gan_edu.data import load_dataset
from gan_edu.errors import GanEduError
from gan_edu.plots import save_grid
from gan_edu.training import GANTrainerConfig
from gan_edu.training.runs import new_gan_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000, help="built-in shapes to train on")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (quick tries)")
    parser.add_argument("--width", type=int, default=64, help="g_channels and d_channels")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="runs/conditional")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        data = load_dataset("shapes", n=args.images)
        config = GANTrainerConfig(epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, progress=False)
        trainer = new_gan_run("cdcgan", data, config=config, out_dir=args.out, overwrite=args.overwrite, g_channels=args.width, d_channels=args.width)
        trainer.fit(data)
    except GanEduError as e:
        print(f"conditional: {e}", file=sys.stderr)
        return 2
    g, k, per_row = trainer.generator, data.num_classes, 8
    z = g.sample_latent(per_row, generator=torch.Generator().manual_seed(0)).repeat(k, 1)  # (k * 8, latent_dim): same noise per row
    labels = torch.arange(k).repeat_interleave(per_row).to(g.device)  # (k * 8,) 0,0,...,1,1,...
    g.eval()
    with torch.no_grad():
        images = g(z, labels)  # (k * 8, C, H, W)
    path = save_grid(images, Path(args.out) / "by_class.png", per_row, scale=2)
    print(f"{trainer.step} steps; one row per class ({', '.join(data.class_names)}) in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
