"""``gan-edu quickstart``: the whole first experience, offline, in a few minutes on a laptop CPU.

Trains a conditional DCGAN on the built-in ``shapes`` data, then writes a per-class sample
grid (one row per class), the loss curves, a progress GIF and ``summary.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..data.datasets import load_dataset
from ..io import atomic_open
from ..training.gan_trainer import GANTrainerConfig
from ..training.runs import new_gan_run, prepare_out_dir
from .train import non_negative_int, positive_int

# Settings chosen so the run ends in under 5 minutes on 2 CPU cores with recognisable shapes.
QUICKSTART = {
    "model": "cdcgan",
    "num_images": 20_000,
    "epochs": 6,
    "batch_size": 64,
    "g_channels": 32,
    "d_channels": 32,
}


def register(sub: Any) -> None:
    p = sub.add_parser("quickstart", help="train a conditional DCGAN on the built-in shapes (offline, minutes)")
    p.add_argument("--out", type=Path, help="run folder (default runs/quickstart, or runs/quickstart-N if taken)")
    p.add_argument("--epochs", type=positive_int, default=QUICKSTART["epochs"], help=f"default {QUICKSTART['epochs']}")
    p.add_argument("--max-steps", type=positive_int, help="stop after this many steps (a quick look)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of weights, noise and data order (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def free_run_dir(base: Path) -> Path:
    """``base`` if free, else ``base-1``, ``base-2``...: quickstart never overwrites a run."""
    if not base.exists() or not any(base.iterdir()):
        return base
    i = 1
    while (candidate := base.with_name(f"{base.name}-{i}")).exists() and any(candidate.iterdir()):
        i += 1
    return candidate


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    out = args.out if args.out is not None else free_run_dir(Path("runs") / "quickstart")
    prepare_out_dir(out, dry_run=True)  # refuse an existing run before making the data
    dataset = load_dataset("shapes", "train", n=QUICKSTART["num_images"])
    config = GANTrainerConfig(
        epochs=args.epochs, max_steps=args.max_steps, batch_size=QUICKSTART["batch_size"], device=args.device,
        seed=args.seed, progress=not args.no_progress,
    )
    trainer = new_gan_run(  # refuses an existing run in --out with one line
        QUICKSTART["model"], dataset, config=config, out_dir=out,
        g_channels=QUICKSTART["g_channels"], d_channels=QUICKSTART["d_channels"],
    )
    print(f"gan-edu quickstart: a conditional DCGAN learns {dataset.num_classes} classes of shapes -> {out}", file=sys.stderr)
    trainer.fit(dataset)
    wall = time.perf_counter() - t0
    last = next((r for r in reversed(trainer.history) if r["kind"] == "epoch"), trainer.history[-1])
    summary = f"""# gan-edu quickstart

A conditional DCGAN (`cdcgan`, generator {trainer.generator.num_parameters():,} parameters, discriminator
{trainer.discriminator.num_parameters():,}) trained on the built-in `shapes` data set
({len(dataset):,} images of {dataset.num_classes} classes, 32x32 RGB) with the non-saturating loss.

- steps: {trainer.step} ({trainer.epoch} epochs of batch {config.batch_size}) on `{trainer.device}`
- wall time: {wall:.0f} s
- last epoch: d_loss {last.get('d_loss', float('nan')):.3f}, g_loss {last.get('g_loss', float('nan')):.3f}, D(x) {last.get('d_real', float('nan')):.2f}, D(G(z)) {last.get('d_fake', float('nan')):.2f}

| file | what |
|---|---|
| `samples.png` | one row per class: {', '.join(dataset.class_names)} |
| `samples.gif` | the same noise after every epoch |
| `losses.png` | D and G losses per step |
| `generator/` | the trained generator (`Generator.from_pretrained`) |
| `checkpoints/last.pt` | everything needed to resume: `gan-edu train --resume {out}` |
"""
    with atomic_open(out / "summary.md", "w") as f:
        f.write(summary)
    print(summary)
    return 0
