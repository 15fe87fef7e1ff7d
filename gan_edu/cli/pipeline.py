"""``gan-edu pipeline``: the c vs c' experiment end to end (see :mod:`gan_edu.pipeline`).

Every option of :class:`~gan_edu.pipeline.PipelineConfig` is a flag (made from the dataclass
field and its comment); ``--preset NAME`` starts from a tested set of settings, and flags given
beside it win.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import check
from ..pipeline import PRESETS, PipelineConfig, run_pipeline
from .options import add_dataclass_arguments, given_options

FIELDS: list[str] = []


def register(sub: Any) -> None:
    p = sub.add_parser("pipeline", help="train a GAN, export it, train c on real and c' on synthetic images, compare",
                       description="The c vs c' experiment: GAN -> ONNX -> synthetic data -> classifiers -> report.")
    p.add_argument("--out", type=Path, required=True, help="the experiment folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing experiment in --out")
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from these settings (docs/results/ablation.md); flags given beside it win")
    FIELDS[:] = add_dataclass_arguments(p, PipelineConfig)
    p.set_defaults(func=run)


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """The experiment's settings: the preset (if any), then the flags given."""
    given = given_options(args, FIELDS)
    preset = PRESETS[args.preset] if args.preset else {}
    if preset and "dataset" in given:
        check(given["dataset"] == preset["dataset"], f"--dataset {given['dataset']} with --preset {args.preset}: the preset is for {preset['dataset']}")
    return PipelineConfig(**{**preset, **given})


def run(args: argparse.Namespace) -> int:
    config = pipeline_config(args)
    run_pipeline(config, args.out, overwrite=args.overwrite, log=lambda line: print(f"pipeline: {line}", file=sys.stderr))
    print((args.out / "report.md").read_text().split("\n\n| class")[0])
    return 0
