"""Train a DCGAN on CIFAR-10: notebook 04 as a script, with a run folder you can resume.

    python examples/train_cifar10.py --data-root ~/data --epochs 25 --out runs/cifar10
    python examples/train_cifar10.py --dry-run          # a few steps on tiny built-in shapes: checks the setup

The data is read from ``--data-root`` (torchvision's layout: ``cifar-10-batches-py/``); with
``--download`` it is fetched when missing. Without the files the script stops with one line that
says where to put them. Resume a stopped run with ``gan-edu train --resume OUT``.
"""

from __future__ import annotations

import argparse
import sys

from gan_edu.data import load_dataset
from gan_edu.errors import GanEduError
from gan_edu.training import GANTrainerConfig
from gan_edu.training.runs import new_gan_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="folder holding cifar-10-batches-py/ (default: gan-edu's cache)")
    parser.add_argument("--download", action="store_true", help="download CIFAR-10 when it is missing")
    parser.add_argument("--model", default="dcgan", help="a registry model: dcgan, or cdcgan for one row per class")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default="runs/cifar10", help="the run folder")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    parser.add_argument("--dry-run", action="store_true", help="3 steps of a tiny model on 64 built-in shapes instead")
    args = parser.parse_args(argv)
    try:
        if args.dry_run:
            data = load_dataset("shapes", n=64)
            config = GANTrainerConfig(epochs=1, max_steps=3, batch_size=16, progress=False)
            widths = {"g_channels": 4, "d_channels": 4}
        else:
            data = load_dataset("cifar10", data_root=args.data_root, download=args.download)
            config = GANTrainerConfig(epochs=args.epochs, batch_size=args.batch_size, flip=True)  # flips: photos are symmetric
            widths = {}
        trainer = new_gan_run(args.model, data, config=config, out_dir=args.out, overwrite=args.overwrite, **widths)
        trainer.fit(data)
    except GanEduError as e:
        print(f"train_cifar10: {e}", file=sys.stderr)
        return 2
    print(f"{trainer.step} steps; samples in {args.out}/samples.png, generator in {args.out}/generator/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
