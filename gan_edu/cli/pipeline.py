"""``gan-edu pipeline``: the c vs c' experiment end to end (see :mod:`gan_edu.pipeline`).

Every option of :class:`~gan_edu.pipeline_config.PipelineConfig` is a flag made from its field
and comment, the nested stages' too: the GAN trainer's options are ``--gan-NAME``
(``--gan-epochs``), and the GAN's own ones also answer to their ``gan-edu train`` names
(``--lr-g``, ``--ema``, ``--diffaugment``); the classifiers' recipe is ``--classifier-NAME``
(``--classifier-lr``). ``--preset NAME`` starts from a tested set of settings, ``--config FILE``
gives settings from a JSON or TOML file (nested as ``report.json``'s ``settings``); flags given
beside them win, and a file wins over a preset.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from ..errors import check
from ..pipeline import EXPERIMENT_WIDE, PRESETS, PipelineConfig, run_pipeline
from ..training.config import TrainerConfig
from ..training.registry import TRAINERS
from .options import (
    add_config_argument,
    add_dataclass_arguments,
    apply_config_file,
    deep_merge,
    given_options,
)

#: The dests of every option flag (``dataset``, ``gan.epochs``...); filled by register().
FIELDS: list[str] = []


def register(sub: Any) -> None:
    p = sub.add_parser("pipeline", help="train a GAN, export it, train c on real and c' on synthetic images, compare",
                       description="The c vs c' experiment: GAN -> ONNX -> synthetic data -> classifiers -> report.")
    p.add_argument("--out", type=Path, required=True, help="the experiment folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing experiment in --out")
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from these settings (docs/results/ablation.md); flags given beside it win")
    add_config_argument(p)
    FIELDS[:] = add_dataclass_arguments(p, PipelineConfig)  # the nested stages are the groups below
    defaults = {f.name: f.default_factory() for f in dataclasses.fields(PipelineConfig) if f.default_factory is not dataclasses.MISSING}  # type: ignore[misc]
    loop = {f.name for f in dataclasses.fields(TrainerConfig)}
    gan = p.add_argument_group("the GAN stage (PipelineConfig.gan)", "the GAN trainer's options: --gan-NAME; the GAN's own also as in gan-edu train (--lr-g, --ema)")
    TRAINERS.load_entry_point(strict=False)  # installed packages' trainers too
    for config_class in dict.fromkeys(t.config_class for t in TRAINERS.values()):  # a registered variant's own options too
        own = [f.name for f in dataclasses.fields(config_class) if f.name not in loop]
        FIELDS.extend(add_dataclass_arguments(gan, config_class, section="gan", exclude=EXPERIMENT_WIDE, bare=own, defaults=defaults["gan"]))
    classifier = p.add_argument_group("classifiers c and c' (PipelineConfig.classifier)", "the classifier trainer's options, the same recipe for both")
    FIELDS.extend(add_dataclass_arguments(classifier, type(defaults["classifier"]), section="classifier", exclude=EXPERIMENT_WIDE, defaults=defaults["classifier"]))
    p.set_defaults(func=run)


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """The experiment's settings: the preset (if any), then the file (if any) and the flags given."""
    apply_config_file(args)
    given = given_options(args, FIELDS)
    preset = PRESETS[args.preset] if args.preset else {}
    if preset and "dataset" in given:
        check(given["dataset"] == preset["dataset"], f"--dataset {given['dataset']} with --preset {args.preset}: the preset is for {preset['dataset']}")
    return PipelineConfig.from_dict(deep_merge(preset, given))


def run(args: argparse.Namespace) -> int:
    config = pipeline_config(args)
    run_pipeline(config, args.out, overwrite=args.overwrite, log=lambda line: print(f"pipeline: {line}", file=sys.stderr))
    print((args.out / "report.md").read_text().split("\n\n| class")[0])
    return 0
