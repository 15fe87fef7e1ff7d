"""``gan-edu train``: train a GAN from the registry on a data set (or one per class), or resume a run.

The trainer's options are flags made from its config's fields (:mod:`gan_edu.cli.options`): a
field added to ``TrainerConfig`` or ``GANTrainerConfig`` is a flag here at once, with its
why-comment as help. ``--config FILE`` gives any option from a JSON or TOML file (flags given
beside it win). ``--resume`` changes only the options of ``TrainerConfig.resumable``.

``--trainer NAME`` picks a registered trainer class (default ``GANTrainer``); a run records it,
and ``--resume`` rebuilds it. A class of your own reaches the command through your script or an
installed package's entry point: see :mod:`gan_edu.training.registry`; the fields of its config
are flags too when it is registered before the command line is built.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..data.datasets import DATASETS, load_dataset
from ..losses import LOSSES, get_loss
from ..models import MODELS
from ..training import distributed
from ..training.bank import (
    is_bank_dir,
    prepare_bank_dir,
    read_bank_manifest,
    resume_bank,
    train_bank,
)
from ..training.config import TrainerConfig
from ..training.distributed import World
from ..training.registry import TRAINERS, get_trainer_class
from ..training.runs import new_gan_run, read_run_config, resume_gan_run
from .args import non_negative_int, positive_float, positive_int
from .options import add_config_argument, add_dataclass_arguments, apply_config_file, given_options


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """Where a data set's files are and whether to download them (defaults None: the data set's own)."""
    p.add_argument("--data-root", type=Path, help="folder that holds the data set's files (default ~/.cache/gan-edu/data; for folder: the folder of images)")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, help="download a missing data set (default on)")
    p.add_argument("--image-size", type=positive_int, help="side of the images: shapes (default 32), celeba and folder (default 64)")


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The data options given on the command line, under their ``load_dataset`` names."""
    names = {"data_root": "data_root", "download": "download", "image_size": "size"}
    return {option: getattr(args, flag) for flag, option in names.items() if getattr(args, flag, None) is not None}


#: What a flag left out means (the flags default to None, "not given", so that --config can fill them).
DEFAULTS = {"dataset": "shapes", "model": "dcgan", "loss": "non-saturating", "trainer": "GANTrainer"}
#: The trainer options (fields of the registered trainers' configs), by name; filled by register().
TRAINER_OPTIONS: list[str] = []


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train a GAN (or resume a run)", description="Train a GAN from the model registry on a data set.")
    add_config_argument(p)
    p.add_argument("--dataset", choices=sorted(DATASETS), help="training data (default shapes)")
    add_data_arguments(p)
    for registry in (MODELS, LOSSES, TRAINERS):  # installed packages' models, losses and trainers are choices (and their options flags) too
        registry.load_entry_point(strict=False)
    p.add_argument("--model", choices=list(MODELS), help="registry model (default dcgan)")
    p.add_argument("--loss", choices=list(LOSSES), help="GAN loss (default non-saturating)")
    p.add_argument("--trainer", metavar="NAME", help=f"registered trainer class: {', '.join(TRAINERS.names())}, or an installed "
                   "package's (default GANTrainer; yours: docs/training.md)")
    p.add_argument("--r1", type=positive_float, metavar="GAMMA", help="add the R1 penalty GAMMA/2 ||grad D(x)||^2 on real images, to any loss; "
                   "refused under torchrun (not averaged across processes), and the step then runs eagerly under --cuda-graph")
    p.add_argument("--per-class", action="store_true", help="train one G/D pair per class into one bank folder (a generator bank)")
    p.add_argument("--out", type=Path, help="run folder (default runs/DATASET-MODEL, or runs/DATASET-MODEL-per-class)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run (or bank) in RUN_DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    # Every field of the trainer's config is a flag: TrainerConfig's loop options, GANTrainerConfig's
    # own, and those of any trainer class registered before the command line is built.
    options = p.add_argument_group("trainer options", "the fields of the trainer's config (TrainerConfig, GANTrainerConfig); "
                                   "a resume may change only " + ", ".join(sorted(TrainerConfig.resumable)))
    TRAINER_OPTIONS[:] = [name for cls in dict.fromkeys(t.config_class for t in TRAINERS.values()) for name in add_dataclass_arguments(options, cls)]
    options.add_argument("--lr", type=positive_float, help="Adam learning rate of G and D: --lr-g and --lr-d at once")
    model = p.add_argument_group("model options")
    model.add_argument("--latent-dim", type=positive_int, help="size of z (default 100)")
    model.add_argument("--g-channels", type=positive_int, help="generator width (default 64)")
    model.add_argument("--d-channels", type=positive_int, help="discriminator width (default 64)")
    model.add_argument("--spectral-norm", action="store_true", help="spectral normalisation of every discriminator layer")
    model.add_argument("--minibatch-std", type=non_negative_int, help="DCGAN's D: group size of a minibatch standard deviation channel before its head (ProGAN's 4; default 0: none)")
    model.add_argument("--d-convs-per-stage", type=non_negative_int, help="SN projection D (cdcgan-snproj, cbn-snproj): 3x3 convs before each stride-2 conv (default 1, as SNGAN; 0: the DCGAN mirror)")
    shapes = p.add_argument_group("shapes options")
    shapes.add_argument("--channels", type=int, choices=(1, 3), help="shapes only: 1 (grey) or 3 (RGB, default)")
    shapes.add_argument("--num-images", type=positive_int, help="shapes only: training images (default 20000)")
    p.set_defaults(func=run)


def read_options(args: argparse.Namespace) -> dict[str, Any]:
    """Fill ``args`` from ``--config`` (where the flags left an option out) and the defaults;
    returns the trainer options given, by field name."""
    apply_config_file(args)
    for name, default in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    given = given_options(args, TRAINER_OPTIONS)
    if args.lr is not None:  # --lr: both learning rates, unless one is given on its own
        given = {"lr_g": args.lr, "lr_d": args.lr, **given}
    return given


def run(args: argparse.Namespace) -> int:
    done = False
    try:
        code = train(args)
        done = True
        return code
    finally:
        distributed.shutdown(wait=done)  # under torchrun: leave the process group cleanly


def train(args: argparse.Namespace) -> int:
    """The body of ``gan-edu train``; under torchrun every process runs it, rank 0 prints."""
    say = print if World.from_env().is_main else (lambda *a, **k: None)

    def log(line: str) -> None:  # progress lines of bank training, on stderr
        say(line, file=sys.stderr)

    given = read_options(args)
    if args.resume is not None:
        if data_options(args):
            say("gan-edu train: note: --resume loads the run's own data (its config.json data options)", file=sys.stderr)
        record = read_bank_manifest(args.resume) if is_bank_dir(args.resume) else read_run_config(args.resume)
        resumable = get_trainer_class(str(record.get("trainer_class", "GANTrainer")), where=str(args.resume)).config_class.resumable
        fixed = sorted(set(given) - resumable) + (["trainer class"] if args.trainer != DEFAULTS["trainer"] else [])
        if fixed:
            say(f"gan-edu train: note: --resume keeps the run's own {', '.join(fixed)}", file=sys.stderr)
        kept = {k: v for k, v in given.items() if k in resumable}
        if is_bank_dir(args.resume):
            return finish_bank(args.resume, resume_bank(args.resume, log=log, **kept))
        trainer, dataset = resume_gan_run(args.resume, **kept)
        say(f"resuming {args.resume} at step {trainer.step} (epoch {trainer.epoch}) of {trainer.config.epochs} epochs", file=sys.stderr)
    else:
        trainer_class = get_trainer_class(args.trainer)
        config = trainer_class.config_class.from_dict(given)
        options = data_options(args)
        if args.dataset == "shapes":
            options.update({k: v for k, v in (("channels", args.channels), ("n", args.num_images)) if v is not None})
        dataset = load_dataset(args.dataset, "train", **options)
        model_config = {k: getattr(args, k) for k in ("latent_dim", "g_channels", "d_channels", "d_convs_per_stage", "minibatch_std") if getattr(args, k) is not None}
        if args.spectral_norm:
            model_config["spectral_norm"] = True
        loss = get_loss(args.loss, **({"r1": args.r1} if args.r1 is not None else {}))
        loss_words = f"the {args.loss} loss" + (f" and R1 (gamma {args.r1:g})" if args.r1 is not None else "")
        if args.per_class:
            out = args.out or Path("runs") / f"{args.dataset}-{args.model}-per-class"
            prepare_bank_dir(out, overwrite=args.overwrite, dry_run=True)  # refuse a bad --out before announcing anything
            say(f"training one {args.model} per class of {args.dataset} ({dataset.num_classes} classes) with {loss_words} into {out}", file=sys.stderr)
            bank = train_bank(
                args.model, dataset, loss=loss, config=config, out_dir=out, overwrite=args.overwrite, log=log, trainer_class=trainer_class, **model_config
            )
            return finish_bank(out, bank)
        out = args.out or Path("runs") / f"{args.dataset}-{args.model}"
        trainer = new_gan_run(
            args.model, dataset, loss=loss, config=config, out_dir=out, overwrite=args.overwrite, trainer_class=trainer_class, **model_config
        )
        say(f"training {args.model} on {args.dataset} ({len(dataset)} images) with {loss_words} into {out}", file=sys.stderr)
    say(f"config: {trainer.config}", file=sys.stderr)
    trainer.fit(dataset)
    last = trainer.history[-1] if trainer.history else {}
    losses = ", ".join(f"{k}={v:.3f}" for k, v in last.items() if k.endswith("loss"))
    say(f"done: {trainer.step} steps, {trainer.epoch} epochs in {trainer.elapsed:.0f} s; {losses}")
    say(f"run folder: {trainer.out_dir} (samples.png, samples.gif, losses.png, generator/)")
    return 0


def finish_bank(out: Path, bank: Any) -> int:
    print(f"done: a bank of {bank.num_classes} generators, one per class")
    print(f"bank folder: {out} (bank.json, samples.png, generator/, one run folder per class)")
    return 0
