"""The c vs c' experiment from Python: train a GAN, train c on real and c' on synthetic images, compare.

    python examples/pipeline.py --dataset shapes --out runs/c_vs_c_prime
    python examples/pipeline.py --dataset cifar10 --data-root ~/data --gan-epochs 25 --classifier-epochs 30

Notebook 07 explains what the numbers mean; ``gan-edu pipeline`` is the same with every option.
"""

from __future__ import annotations

import argparse
import sys

from gan_edu.errors import GanEduError
from gan_edu.pipeline import PipelineConfig, run_pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="shapes", help="shapes, mnist, fashion-mnist or cifar10")
    parser.add_argument("--data-root", default=None, help="where the real data set's files are")
    parser.add_argument("--images", type=int, default=None, help="shapes only: training images (default 20,000)")
    parser.add_argument("--gan-epochs", type=int, default=5)
    parser.add_argument("--gan-max-steps", type=int, default=None)
    parser.add_argument("--width", type=int, default=None, help="GAN widths g_channels = d_channels (default: the model's)")
    parser.add_argument("--classifier-epochs", type=int, default=10)
    parser.add_argument("--classifier-max-steps", type=int, default=None)
    parser.add_argument("--classifier-width", type=int, default=32)
    parser.add_argument("--out", default="runs/c_vs_c_prime")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        # The settings as plain data, nested as report.json saves them: each stage's trainer options
        # in its own table ("gan", "classifier"), the rest at the top.
        config = PipelineConfig.from_dict({
            "dataset": args.dataset, "data_root": args.data_root, "num_images": args.images,
            "g_channels": args.width, "d_channels": args.width, "gan": {"epochs": args.gan_epochs, "max_steps": args.gan_max_steps},
            "classifier_width": args.classifier_width, "classifier": {"epochs": args.classifier_epochs, "max_steps": args.classifier_max_steps},
            "progress": False,
        })
        report = run_pipeline(config, args.out, overwrite=args.overwrite)
    except GanEduError as e:
        print(f"pipeline: {e}", file=sys.stderr)
        return 2
    gap = report["c_accuracy"] - report["c_prime_accuracy"]
    print(f"c {report['c_accuracy']:.3f}, c' {report['c_prime_accuracy']:.3f}: a gap of {gap:.3f}; see {args.out}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
