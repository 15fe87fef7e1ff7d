"""One GAN per class (a generator bank), exported and sampled class by class.

    python examples/per_class_bank.py --epochs 5 --out runs/bank

The alternative to a conditional model: train an unconditional DCGAN on each class's images
alone. Each member is simpler (no labels) and classes cannot bleed into each other, at the cost
of K models. The bank exports as one ONNX graph per class plus a manifest, and
:class:`~gan_edu.export.OnnxGenerator` samples it exactly like a conditional model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from gan_edu.data import load_dataset
from gan_edu.errors import GanEduError
from gan_edu.export import OnnxGenerator, export_generator
from gan_edu.plots import save_grid
from gan_edu.training import GANTrainerConfig
from gan_edu.training.bank import train_bank


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000, help="built-in shapes to train on (split over the classes)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=None, help="per member: stop after this many steps")
    parser.add_argument("--width", type=int, default=64, help="g_channels and d_channels")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="runs/bank")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        data = load_dataset("shapes", n=args.images)
        config = GANTrainerConfig(epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, progress=False)
        train_bank("dcgan", data, config=config, out_dir=out / "bank", overwrite=args.overwrite, log=print,
                   g_channels=args.width, d_channels=args.width)
        manifest = export_generator(out / "bank", out / "bank.json")  # one .onnx per class + the manifest
    except GanEduError as e:
        print(f"per_class_bank: {e}", file=sys.stderr)
        return 2
    bank = OnnxGenerator(manifest)
    per_row = 8
    labels = np.repeat(np.arange(bank.num_classes), per_row)  # (K * 8,) one row per class
    images = bank.sample(len(labels), labels, seed=0)  # (K * 8, C, H, W) in [-1, 1], via onnxruntime
    path = save_grid(images, out / "bank_samples.png", per_row, scale=2)
    print(f"bank of {bank.num_classes} generators in {manifest}; samples in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
