"""``gan-edu pipeline``: the c vs c' experiment end to end (see :mod:`gan_edu.pipeline`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..models import MODELS
from ..models.classifier import CLASSIFIERS
from ..pipeline import PIPELINE_DATASETS, PipelineConfig, run_pipeline
from .train import positive_float, positive_int


def register(sub: Any) -> None:
    p = sub.add_parser("pipeline", help="train a GAN, export it, train c on real and c' on synthetic images, compare",
                       description="The c vs c' experiment: GAN -> ONNX -> synthetic data -> classifiers -> report.")
    d = PipelineConfig()
    p.add_argument("--dataset", default=d.dataset, choices=PIPELINE_DATASETS)
    p.add_argument("--data-root", help="folder of the real data files (default ~/.cache/gan-edu/data)")
    p.add_argument("--no-download", action="store_true", help="never download; fail with a clear message instead")
    p.add_argument("--model", default=d.model, choices=list(MODELS), help=f"GAN model (default {d.model})")
    p.add_argument("--per-class", action="store_true", help="one G/D pair per class (use an unconditional --model)")
    p.add_argument("--loss", default=d.loss, help=f"GAN loss (default {d.loss})")
    p.add_argument("--out", type=Path, required=True, help="the experiment folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing experiment in --out")
    p.add_argument("--num-images", type=positive_int, help="shapes only: training images")
    p.add_argument("--channels", type=int, choices=(1, 3), help="shapes only: 1 (grey) or 3 (RGB, default)")
    p.add_argument("--g-channels", type=positive_int)
    p.add_argument("--d-channels", type=positive_int)
    p.add_argument("--gan-epochs", type=positive_int, default=d.gan_epochs, help=f"GAN budget in epochs (default {d.gan_epochs})")
    p.add_argument("--gan-max-steps", type=positive_int, help="GAN budget in steps")
    p.add_argument("--gan-minutes", type=positive_float, help="GAN budget in minutes")
    p.add_argument("--gan-batch-size", type=positive_int, default=d.gan_batch_size)
    p.add_argument("--lr-g", type=positive_float, default=d.lr_g)
    p.add_argument("--lr-d", type=positive_float, default=d.lr_d)
    p.add_argument("--synthetic-images", type=positive_int, help="size of c's training set (default: as many as real)")
    p.add_argument("--classifier", default=d.classifier, choices=list(CLASSIFIERS))
    p.add_argument("--classifier-width", type=positive_int, default=d.classifier_width)
    p.add_argument("--classifier-epochs", type=positive_int, default=d.classifier_epochs)
    p.add_argument("--classifier-max-steps", type=positive_int, help="step budget of each classifier")
    p.add_argument("--classifier-lr", type=positive_float, default=d.classifier_lr)
    p.add_argument("--eval-split", default=d.eval_split, choices=("test", "validation"),
                   help="validation: hold out part of the training set (for choosing settings); test: the final number")
    p.add_argument("--validation-images", type=positive_int, default=d.validation_images)
    p.add_argument("--device", default=d.device)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = PipelineConfig(
        dataset=args.dataset, data_root=args.data_root, download=not args.no_download, num_images=args.num_images, channels=args.channels,
        model=args.model, per_class=args.per_class, loss=args.loss, g_channels=args.g_channels, d_channels=args.d_channels,
        gan_epochs=args.gan_epochs, gan_batch_size=args.gan_batch_size, gan_max_steps=args.gan_max_steps, gan_minutes=args.gan_minutes,
        lr_g=args.lr_g, lr_d=args.lr_d, synthetic_images=args.synthetic_images, classifier=args.classifier,
        classifier_width=args.classifier_width, classifier_epochs=args.classifier_epochs, classifier_max_steps=args.classifier_max_steps,
        classifier_lr=args.classifier_lr, eval_split=args.eval_split, validation_images=args.validation_images,
        device=args.device, seed=args.seed, progress=not args.no_progress,
    )
    run_pipeline(config, args.out, overwrite=args.overwrite, log=lambda line: print(f"pipeline: {line}", file=sys.stderr))
    print((args.out / "report.md").read_text().split("\n\n| class")[0])
    return 0
