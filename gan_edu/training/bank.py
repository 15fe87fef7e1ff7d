"""Per-class banks: one G/D pair per class, trained one after another, used as one conditional generator.

Reference projects 001 (classDCGAN) and 002 trained a separate GAN on each class of CIFAR-10
instead of one conditional model. :func:`train_bank` does the same with any unconditional model
of the registry: for each class ``k`` it trains an ordinary :class:`GANTrainer` run on
``dataset.subset([k])``, then joins the generators into a
:class:`~gan_edu.models.bank.GeneratorBank`, which samples by label exactly like a conditional
generator.

A bank folder::

    bank.json                 the manifest: model, loss, trainer options, data, and for each class
                              its label, name, run folder and whether it is complete
    class_00_circle/          an ordinary run folder (config.json, checkpoints/, generator/, ...)
    class_01_square/
    ...
    generator/                the whole bank, written by save_pretrained: Generator.from_pretrained
                              (and everything that takes a run's generator/) loads it
    samples.png               one row per class

Training is resumable: :func:`resume_bank` skips the members already complete, resumes a member
cut off mid-run from its checkpoint, and starts the others. Member ``k`` is seeded with
``seed + k``, so the members differ and the same seed gives the same bank.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..data.datasets import ImageDataset, load_dataset
from ..errors import GanEduError, check
from ..io import atomic_write_json
from ..losses import GANLoss, get_loss
from ..models import MODELS, GeneratorBank, build_gan
from ..models.base import Generator
from ..outputs import BANK_FILES, replace_folder
from ..plots import save_grid
from .gan_trainer import GANTrainer, GANTrainerConfig
from .registry import get_trainer_class
from .run_files import CHECKPOINT_NAME
from .runs import prepare_out_dir

MANIFEST_NAME = "bank.json"
FORMAT = "gan-edu-bank"
VERSION = 1

Log = Callable[[str], None]


def is_bank_dir(path: str | Path) -> bool:
    """True when ``path`` holds a bank manifest."""
    return (Path(path) / MANIFEST_NAME).is_file()


def member_folder(label: int, name: str) -> str:
    """``class_03_diamond``: the run folder of class ``label`` inside a bank."""
    return f"class_{label:02d}_{re.sub(r'[^A-Za-z0-9_-]+', '_', name).strip('_') or 'class'}"


def prepare_bank_dir(out_dir: str | Path, *, overwrite: bool = False, dry_run: bool = False) -> Path:
    """Make sure ``out_dir`` can take a new bank: new, empty, or (with ``overwrite``) an old bank or run.

    With ``dry_run``, only check (remove and create nothing).
    """
    out = Path(out_dir)
    if is_bank_dir(out):
        if not overwrite:
            raise GanEduError(f"--out {out}: a bank already exists there; use --resume {out} to continue it or --overwrite to replace it")
        replace_folder(out, BANK_FILES, "bank", dry_run=dry_run)  # refuses when a file there is not gan-edu's
        if dry_run:
            return out
    return prepare_out_dir(out, overwrite=overwrite, dry_run=dry_run)


def read_bank_manifest(bank_dir: str | Path) -> dict[str, Any]:
    """The ``bank.json`` of a bank folder."""
    path = Path(bank_dir) / MANIFEST_NAME
    check(path.is_file(), f"{bank_dir}: not a gan-edu bank folder (no {MANIFEST_NAME})")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as e:
        raise GanEduError(f"{path}: corrupt bank manifest ({e})") from None
    check(isinstance(manifest, dict) and manifest.get("format") == FORMAT, f"{path}: not a gan-edu bank manifest")
    return manifest


def train_bank(
    model: str,
    dataset: ImageDataset,
    *,
    loss: GANLoss | str = "non-saturating",
    config: GANTrainerConfig | None = None,
    out_dir: str | Path,
    overwrite: bool = False,
    log: Log | None = None,
    trainer_class: type[GANTrainer] | str = GANTrainer,
    **model_config: Any,
) -> GeneratorBank:
    """Train one ``model`` G/D pair per class of ``dataset`` into the bank folder ``out_dir``.

    Args:
        model: an unconditional registry model.
        dataset: the labelled training data; every class needs at least one full batch.
        loss: the loss of every member (a name or an instance; its options are recorded).
        config: the trainer options of every member (member ``k`` uses ``seed + k``).
        out_dir: the bank folder (see the module docstring).
        overwrite: replace an existing bank or run in ``out_dir``.
        log: called with one line per member (the CLI prints them); None: silent.
        trainer_class: the registered trainer class of every member (or its name).
        **model_config: the model's options (``g_channels``...).

    Returns:
        The bank of trained generators, also saved in ``out_dir / "generator"``.
    """
    cls = get_trainer_class(trainer_class)
    config = config or cls.config_class()
    check(model in MODELS, f"model {model!r}: expected one of {', '.join(MODELS)}")
    check(not MODELS[model].conditional, f"model {model!r} is conditional: a per-class bank needs an unconditional model, one per class")
    check(dataset.num_classes >= 2, f"data set {dataset.name!r} has {dataset.num_classes} class: a bank needs at least 2")
    counts = dataset.class_counts()
    for k, (name, n) in enumerate(zip(dataset.class_names, counts)):
        check(
            n >= config.batch_size,
            f"class {k} ({name}) has {n} images: fewer than batch_size={config.batch_size}; each member needs a full batch",
        )
    loss = get_loss(loss) if isinstance(loss, str) else loss
    build_gan(model, image_shape=dataset.image_shape, **model_config)  # bad options fail before any folder is made
    out = prepare_bank_dir(out_dir, overwrite=overwrite)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "gan_edu_version": __version__,
        "model": model,
        "model_config": model_config,
        "trainer_class": cls.__name__,
        "loss": {"name": loss.name, "options": loss.options()},
        "trainer": config.to_dict(),
        "data": {"name": dataset.name, "options": dataset.options, "class_names": list(dataset.class_names), "size": len(dataset)},
        "image_shape": list(dataset.image_shape),
        "classes": [
            {"label": k, "name": name, "run": member_folder(k, name), "images": counts[k], "complete": False}
            for k, name in enumerate(dataset.class_names)
        ],
    }
    atomic_write_json(out / MANIFEST_NAME, manifest)
    return _train_members(out, manifest, dataset, log)


def resume_bank(bank_dir: str | Path, *, log: Log | None = None, **overrides: Any) -> GeneratorBank:
    """Continue a bank: skip complete members, resume cut-off ones, train the rest.

    Args:
        bank_dir: the bank folder.
        log: called with one line per member.
        **overrides: trainer options to change for every member, those of the config class's
            ``resumable`` only (``epochs``, ``max_steps``, ``device``, ``progress``...); a
            complete member trains on if ``epochs`` grew.
    """
    bank_dir = Path(bank_dir)
    manifest = read_bank_manifest(bank_dir)
    cls = get_trainer_class(str(manifest.get("trainer_class", "GANTrainer")), where=str(bank_dir))
    cls.config_class.check_resumable(overrides, str(bank_dir))
    try:
        manifest["trainer"] = cls.config_class.from_dict({**manifest["trainer"], **overrides}).to_dict()
        options = dict(manifest["data"]["options"])
        split = options.pop("split", "train")
        name = manifest["data"]["name"]
    except (KeyError, TypeError) as e:
        raise GanEduError(f"{bank_dir / MANIFEST_NAME}: not a bank manifest (missing {e})") from None
    dataset = load_dataset(name, split, **options)
    atomic_write_json(bank_dir / MANIFEST_NAME, manifest)
    return _train_members(bank_dir, manifest, dataset, log)


def _member_done(entry: dict[str, Any], config: GANTrainerConfig) -> bool:
    """Whether a member recorded as complete has reached the (possibly raised) targets."""
    if not entry.get("complete"):
        return False
    if config.max_steps is not None and entry.get("steps", 0) >= config.max_steps:
        return True
    return entry.get("epochs", 0) >= config.epochs


def _train_members(bank_dir: Path, manifest: dict[str, Any], dataset: ImageDataset, log: Log | None) -> GeneratorBank:
    """Train (or skip, or resume) each member in turn, then write the bank's generator and samples."""
    say = log or (lambda line: None)
    cls = get_trainer_class(str(manifest.get("trainer_class", "GANTrainer")), where=str(bank_dir))
    try:
        base = cls.config_class.from_dict(manifest["trainer"])
        model, model_config = manifest["model"], dict(manifest["model_config"])
        loss_name, loss_options = manifest["loss"]["name"], dict(manifest["loss"].get("options", {}))
        entries = manifest["classes"]
    except (KeyError, TypeError) as e:
        raise GanEduError(f"{bank_dir / MANIFEST_NAME}: not a bank manifest (missing {e})") from None
    check(
        [e["name"] for e in entries] == list(dataset.class_names),
        f"{bank_dir / MANIFEST_NAME}: classes {[e['name'] for e in entries]} differ from the data's {list(dataset.class_names)}",
    )
    members: list[Generator] = []
    for entry in entries:
        k, name, run = entry["label"], entry["name"], bank_dir / entry["run"]
        config = cls.config_class.from_dict({**base.to_dict(), "seed": base.seed + k})
        where = f"class {k + 1}/{len(entries)} ({name})"
        if _member_done(entry, config) and (run / "generator").is_dir():
            say(f"{where}: complete, skipped ({run})")
            members.append(Generator.from_pretrained(run / "generator"))
            continue
        resuming = (run / CHECKPOINT_NAME).is_file()
        if not resuming:
            prepare_out_dir(run, overwrite=True)  # a member cut off before its first checkpoint starts over
        torch.manual_seed(config.seed)  # the member's initial weights
        g, d = build_gan(model, image_shape=dataset.image_shape, **model_config)
        meta = {"model": model, "bank": {"label": k, "class_name": name}}
        trainer = cls(g, d, get_loss(loss_name, **loss_options), config, out_dir=run, meta=meta)
        if resuming:
            trainer.resume()
        say(f"{where}: {'resuming at step ' + str(trainer.step) if resuming else 'training'} into {run}")
        trainer.fit(dataset.subset([k]))
        entry.update(complete=True, steps=trainer.step, epochs=trainer.epoch)
        atomic_write_json(bank_dir / MANIFEST_NAME, manifest)
        members.append(trainer.sampling_generator)  # the average of G when ema is on
    bank = GeneratorBank.from_members([m.cpu() for m in members], dataset.class_names)
    bank.save_pretrained(bank_dir / "generator")
    per_row = 8
    labels = torch.arange(len(entries)).repeat_interleave(per_row)  # (K * 8,): one row per class
    images = bank.sample(len(labels), labels, generator=torch.Generator().manual_seed(base.seed + 1))
    save_grid(images, bank_dir / "samples.png", per_row, scale=max(1, 128 // bank.image_shape[-1]))
    return bank
