"""Run folders: starting a new GAN run, refusing to clobber an old one, and resuming one.

A run folder holds ``config.json`` (everything needed to rebuild the run), ``checkpoints/``,
``history.jsonl``, the saved ``generator/`` and ``discriminator/``, ``samples/``,
``samples.png``, ``samples.gif`` and ``losses.png``. The command line and the pipeline use these
functions; they are equally usable from Python.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..data.datasets import ImageSet, load_dataset
from ..errors import GanEduError, check
from ..losses import GANLoss, get_loss
from ..models import build_gan
from ..models.base import MODULE_CLASSES
from ..outputs import RUN_FILES, new_folders, prepare_folder
from .distributed import World
from .gan_trainer import GANTrainer, GANTrainerConfig
from .registry import get_trainer_class
from .run_files import CHECKPOINT_NAME, CONFIG_NAME


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG_NAME).is_file() or (path / CHECKPOINT_NAME).is_file()


def prepare_out_dir(out_dir: str | Path, *, overwrite: bool = False, dry_run: bool = False) -> Path:
    """Make sure ``out_dir`` can take a new run: it is new, empty, or (with ``overwrite``) an old run.

    Args:
        out_dir: the run folder.
        overwrite: delete an old run there, if it holds only files gan-edu writes in a run.
        dry_run: only check; neither delete nor create anything.

    Raises:
        GanEduError: the folder holds a run and ``overwrite`` is False, or it holds other files
            (then nothing is removed, even with ``overwrite``).
    """
    return prepare_folder(out_dir, kind="run", patterns=RUN_FILES, holds_one=is_run_dir, overwrite=overwrite, resumable=True, dry_run=dry_run)


def new_gan_run(
    model: str,
    dataset: ImageSet,
    *,
    loss: GANLoss | str = "non-saturating",
    config: GANTrainerConfig | None = None,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
    trainer_class: type[GANTrainer] | str = GANTrainer,
    **model_config: Any,
) -> GANTrainer:
    """A trainer (a :class:`GANTrainer`, or the registered ``trainer_class``) for registry model
    ``model`` fitted to ``dataset``'s images and classes.

    The weights are initialised after seeding torch with ``config.seed``. Everything is checked
    (model, loss, sizes, the batch against the data) before ``out_dir`` is touched, so a run that
    cannot start never replaces an old one, even with ``overwrite``. The trainer class must be
    registered (:func:`~.registry.register_trainer`), so that the run can be resumed with it.
    """
    cls = get_trainer_class(trainer_class)
    config = config or cls.config_class()
    check(
        len(dataset) >= config.batch_size,
        f"batch_size={config.batch_size}: the training data has only {len(dataset)} images; expected a batch size of at most {len(dataset)}",
    )
    if out_dir is not None:
        prepare_out_dir(out_dir, overwrite=overwrite, dry_run=True)  # refuse an existing run before the work below
    loss = get_loss(loss) if isinstance(loss, str) else loss
    if cls.wants_class_logits:  # the trainer reads D's class head (AC-GAN): D is built with it
        model_config = {**model_config, "aux_head": True}
    torch.manual_seed(config.seed)
    g, d = build_gan(model, image_shape=dataset.image_shape, num_classes=dataset.num_classes, **model_config)
    trainer = cls(g, d, loss, config, out_dir=out_dir, meta={"model": model})
    if out_dir is not None and World.from_env().is_main:  # under torchrun, rank 0 owns the folder
        trainer.new_folders = new_folders(Path(out_dir))  # a run that fails on a full disk before its first checkpoint removes them
        prepare_out_dir(out_dir, overwrite=overwrite)  # only now may an old run (with overwrite) go
    return trainer


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a run folder."""
    path = Path(run_dir) / CONFIG_NAME
    check(path.is_file(), f"{run_dir}: not a gan-edu run folder (no {CONFIG_NAME})")
    try:
        cfg = json.loads(path.read_text())
    except ValueError as e:  # UnicodeDecodeError included
        raise GanEduError(f"{path}: corrupt run config ({str(e)[:100]}); expected the config.json gan-edu train wrote") from None
    check(isinstance(cfg, dict), f"{path}: a JSON {type(cfg).__name__}, not a run config; expected the config.json gan-edu train wrote")
    return cfg


def resume_gan_run(run_dir: str | Path, **overrides: Any) -> tuple[GANTrainer, ImageSet]:
    """Rebuild a GAN run from its folder and load its last checkpoint.

    Args:
        run_dir: the run folder.
        **overrides: trainer options to change: only those of the run's config class's
            ``resumable`` (``epochs``, ``max_steps``, ``device``, ``progress``...); any other
            is refused in one line, since the checkpoint was trained with the run's own.

    Returns:
        The trainer (of the class the run recorded, which must be registered), ready for ``fit``,
        and the training data it was using.
    """
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    check((run_dir / CHECKPOINT_NAME).is_file(), f"{run_dir}: no checkpoint to resume from ({CHECKPOINT_NAME} is missing)")
    cls = get_trainer_class(str(cfg.get("trainer_class", "GANTrainer")), where=str(run_dir))
    cls.config_class.check_resumable(overrides, str(run_dir))
    try:
        modules = []
        for key in ("generator", "discriminator"):
            klass = MODULE_CLASSES.lookup(str(cfg[key]["class"]))
            modules.append(klass(klass.config_class.from_dict(cfg[key]["config"])))
        loss = get_loss(cfg["loss"]["name"], **cfg["loss"].get("options", {}))
        trainer_cfg = cls.config_class.from_dict({"ema": False, **cfg["trainer"], **overrides})  # runs from before ema had none
        data_options = dict(cfg["data"]["options"])
        split = data_options.pop("split", "train")
        classes = data_options.pop("classes", None)  # a subset's classes (a bank member's run)
        data_name = cfg["data"]["name"]
    except (KeyError, TypeError) as e:
        raise GanEduError(f"{run_dir / CONFIG_NAME}: not a GAN run config (missing {e}); expected the config.json gan-edu train wrote") from None
    except GanEduError as e:  # a size out of range or beyond this machine's memory: refused before anything was built
        raise GanEduError(f"{run_dir / CONFIG_NAME}: {e}") from None
    dataset = load_dataset(data_name, split, **data_options)
    if classes is not None:
        dataset = dataset.subset(classes)
    meta = {k: cfg[k] for k in ("model", "bank") if k in cfg}
    trainer = cls(modules[0], modules[1], loss, trainer_cfg, out_dir=run_dir, meta=meta)  # type: ignore[arg-type]
    trainer.resume()
    return trainer, dataset
