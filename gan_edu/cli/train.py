"""``gan-edu train``: train a GAN from the registry on a data set (or one per class), or resume a run.

``--trainer NAME`` picks a registered trainer class (default ``GANTrainer``); a run records it,
and ``--resume`` rebuilds it. A class of your own reaches the command through your script or an
installed package's entry point: see :mod:`gan_edu.training.registry`.
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
from ..training.bank import is_bank_dir, prepare_bank_dir, resume_bank, train_bank
from ..training.distributed import World
from ..training.registry import get_trainer_class
from ..training.runs import new_gan_run, resume_gan_run
from .args import non_negative_int, positive_float, positive_int


def add_trainer_arguments(p: argparse.ArgumentParser) -> None:
    """Loop options shared by every training command (defaults None: "not given")."""
    p.add_argument("--epochs", type=positive_int, help="passes over the training data (default 5)")
    p.add_argument("--max-steps", type=positive_int, help="stop after this many steps in all")
    p.add_argument("--batch-size", type=positive_int, help="images per batch (default 128)")
    p.add_argument("--device", help="auto (default: CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--seed", type=non_negative_int, help="seed of weights, noise and data order (default 0)")
    p.add_argument("--log-every", type=positive_int, help="steps between metric logs (default 25)")
    p.add_argument("--checkpoint-every", type=positive_int, help="steps between extra checkpoints (one per epoch always)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--tensorboard", action="store_true", help='also log to RUN_DIR/tensorboard/ (pip install "gan-edu[tensorboard]")')
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="autocast precision (default fp32; fp16 needs CUDA)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout (faster on tensor-core GPUs)")
    p.add_argument("--compile", action="store_true", help="torch.compile the models' forward passes")
    p.add_argument("--cuda-graph", action="store_true", help="CUDA only: record the whole step as a CUDA graph and replay it (falls back, saying why)")
    p.add_argument("--sync-batchnorm", action="store_true", help="under torchrun: batch norm over the global batch (the maths of one process)")


def trainer_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The loop options given on the command line, under their config names."""
    names = ("epochs", "max_steps", "batch_size", "device", "seed", "log_every", "checkpoint_every", "precision")
    values = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    if getattr(args, "no_progress", False):
        values["progress"] = False
    for flag in ("channels_last", "compile", "cuda_graph", "sync_batchnorm", "tensorboard"):
        if getattr(args, flag, False):
            values[flag] = True
    return values


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """Where a data set's files are and whether to download them (defaults None: the data set's own)."""
    p.add_argument("--data-root", type=Path, help="folder that holds the data set's files (default ~/.cache/gan-edu/data; for folder: the folder of images)")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, help="download a missing data set (default on)")
    p.add_argument("--image-size", type=positive_int, help="side of the images: shapes (default 32), celeba and folder (default 64)")


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The data options given on the command line, under their ``load_dataset`` names."""
    names = {"data_root": "data_root", "download": "download", "image_size": "size"}
    return {option: getattr(args, flag) for flag, option in names.items() if getattr(args, flag, None) is not None}


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train a GAN (or resume a run)", description="Train a GAN from the model registry on a data set.")
    p.add_argument("--dataset", default="shapes", choices=sorted(DATASETS), help="training data (default shapes)")
    add_data_arguments(p)
    p.add_argument("--model", default="dcgan", choices=list(MODELS), help="registry model (default dcgan)")
    p.add_argument("--loss", default="non-saturating", choices=list(LOSSES), help="GAN loss (default non-saturating)")
    p.add_argument("--trainer", default="GANTrainer", metavar="NAME", help="registered trainer class (default GANTrainer; yours: docs/training.md)")
    p.add_argument("--r1", type=positive_float, metavar="GAMMA", help="add the R1 penalty GAMMA/2 ||grad D(x)||^2 on real images (any loss)")
    p.add_argument("--per-class", action="store_true", help="train one G/D pair per class into one bank folder (a generator bank)")
    p.add_argument("--out", type=Path, help="run folder (default runs/DATASET-MODEL, or runs/DATASET-MODEL-per-class)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run (or bank) in RUN_DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    add_trainer_arguments(p)
    p.add_argument("--lr", type=positive_float, help="Adam learning rate of G and D (default 2e-4)")
    p.add_argument("--lr-g", type=positive_float, help="Adam learning rate of G")
    p.add_argument("--lr-d", type=positive_float, help="Adam learning rate of D")
    p.add_argument("--beta1", type=float, help="Adam beta1 (default 0.5)")
    p.add_argument("--beta2", type=float, help="Adam beta2 (default 0.999)")
    p.add_argument("--d-steps", type=positive_int, help="D updates per G update (default: the loss's own)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, help="keep an average of G's weights for samples and export (default on)")
    p.add_argument("--ema-decay", type=float, help="decay of that average (default 0.999)")
    p.add_argument("--diffaugment", metavar="POLICY", help="differentiable augmentation of what D sees: some of translation,cutout,color")
    p.add_argument("--spectral-norm", action="store_true", help="spectral normalisation of every discriminator layer")
    p.add_argument("--latent-dim", type=positive_int, help="size of z (default 100)")
    p.add_argument("--g-channels", type=positive_int, help="generator width (default 64)")
    p.add_argument("--d-channels", type=positive_int, help="discriminator width (default 64)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="shapes only: 1 (grey) or 3 (RGB, default)")
    p.add_argument("--num-images", type=positive_int, help="shapes only: training images (default 20000)")
    p.add_argument("--flip", action="store_true", help="random horizontal flips of the training images")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return train(args)
    finally:
        distributed.shutdown()  # under torchrun: leave the process group cleanly


def train(args: argparse.Namespace) -> int:
    """The body of ``gan-edu train``; under torchrun every process runs it, rank 0 prints."""
    say = print if World.from_env().is_main else (lambda *a, **k: None)

    def log(line: str) -> None:  # progress lines of bank training, on stderr
        say(line, file=sys.stderr)

    overrides = trainer_overrides(args)
    if args.resume is not None:
        if data_options(args):
            say("gan-edu train: note: --resume loads the run's own data (its config.json data options)", file=sys.stderr)
        allowed = {"epochs", "max_steps", "device", "progress", "log_every", "checkpoint_every", "precision", "channels_last", "compile", "cuda_graph", "sync_batchnorm", "tensorboard"}
        fixed = sorted(set(overrides) - allowed) + (["trainer class"] if args.trainer != "GANTrainer" else [])
        if fixed:
            say(f"gan-edu train: note: --resume keeps the run's own {', '.join(fixed)}", file=sys.stderr)
        kept = {k: v for k, v in overrides.items() if k in allowed}
        if is_bank_dir(args.resume):
            return finish_bank(args.resume, resume_bank(args.resume, log=log, **kept))
        trainer, dataset = resume_gan_run(args.resume, **kept)
        say(f"resuming {args.resume} at step {trainer.step} (epoch {trainer.epoch}) of {trainer.config.epochs} epochs", file=sys.stderr)
    else:
        trainer_class = get_trainer_class(args.trainer)
        for name in ("lr_g", "lr_d"):
            if getattr(args, name) is None and args.lr is not None:
                setattr(args, name, args.lr)
        gan_options = {k: getattr(args, k) for k in ("lr_g", "lr_d", "beta1", "beta2", "d_steps", "ema", "ema_decay", "diffaugment") if getattr(args, k) is not None}
        if args.flip:
            gan_options["flip"] = True
        config = trainer_class.config_class(**{**overrides, **gan_options})
        options = data_options(args)
        if args.dataset == "shapes":
            options.update({k: v for k, v in (("channels", args.channels), ("n", args.num_images)) if v is not None})
        dataset = load_dataset(args.dataset, "train", **options)
        model_config = {k: getattr(args, k) for k in ("latent_dim", "g_channels", "d_channels") if getattr(args, k) is not None}
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
