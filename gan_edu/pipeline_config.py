"""The settings of the c vs c' experiment: :class:`PipelineConfig`, the presets, and another experiment's c.

One config holds everything an experiment depends on, saved in its ``report.json`` (``settings``).
Its two trainers' options are their own config classes, nested (``gan``: the GAN trainer's,
``classifier``: c's and c''s), so every trainer option is an experiment option with no second
spelling; the options every stage shares are written once, at the top (:data:`EXPERIMENT_WIDE`).
As plain data (:meth:`PipelineConfig.to_dict`, :meth:`~PipelineConfig.from_dict`) the same shape
serves the presets, ``gan-edu pipeline --config FILE`` and the report, which older, flat
reports are read into (:func:`nested_settings`). The stages that use it are in :mod:`gan_edu.pipeline`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .domains import PositiveInt
from .errors import GanEduError, check
from .losses import GANLoss, get_loss
from .models import MODELS, build_gan
from .models.classifier import CLASSIFIERS, build_classifier
from .training.classifier_trainer import ClassifierTrainerConfig
from .training.config import TrainerConfig
from .training.gan_trainer import GANTrainerConfig
from .training.registry import get_trainer_class

PIPELINE_DATASETS = ("shapes", "mnist", "fashion-mnist", "cifar10")
#: The stages with a trainer config of their own, as PipelineConfig names them.
STAGES = ("gan", "classifier")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything the experiment depends on; saved in the report (``settings``, see :meth:`to_dict`).

    ``gan`` and ``classifier`` are the two stages' trainer configs, nested: every field of theirs
    is an option (``--gan-epochs``, ``--lr-g``, ``--classifier-lr``), except the experiment-wide
    ones (:data:`EXPERIMENT_WIDE`), which are fields here, given once for every stage; in a stage's
    config they keep their defaults. Build one from plain data (a preset, a file, a report's
    settings) with :meth:`from_dict`, and change one with :meth:`merged`.
    """

    # -- the data ---------------------------------------------------------------------------------
    dataset: str = "shapes"  # shapes, mnist, fashion-mnist or cifar10
    data_root: str | None = None  # where the real files are (None: the default cache folder)
    download: bool = True  # download a missing real set when online
    verify_checksums: bool = True  # cifar10: check the files' md5 (off only for home-made files in the release's format)
    num_images: int | None = None  # shapes only: training images (default 20,000)
    channels: int | None = None  # shapes only: 1 (grey) or 3 (RGB, the default)
    # -- the GAN ----------------------------------------------------------------------------------
    model: str = "cdcgan"  # a conditional model, or an unconditional one with per_class
    per_class: bool = False  # one G/D pair per class (a bank) instead of one conditional model
    loss: str = "non-saturating"  # the GAN loss
    r1: float = 0.0  # weight gamma of the R1 penalty gamma/2 ||grad D(x)||^2 on real images, with any loss (Mescheder et al. 2018); 0: off
    trainer: str = "GANTrainer"  # the GAN's registered trainer class (a variant: gan_edu.training.register_trainer)
    g_channels: int | None = None  # generator width (None: the model's default)
    d_channels: int | None = None  # discriminator width
    spectral_norm: bool = False  # spectral normalisation of every D layer
    minibatch_std: int | None = None  # DCGAN's D: group size of its minibatch standard deviation channel (ProGAN's 4); None or 0: none
    d_convs_per_stage: int | None = None  # SN projection D (cdcgan-snproj, cbn-snproj): 3x3 convs before each stride-2 one (None: SNGAN's 1; 0: the DCGAN mirror, ~3x cheaper on a CPU)
    gan: GANTrainerConfig = dataclasses.field(default_factory=lambda: GANTrainerConfig(batch_size=64))  # the GAN's training: the trainer class's config (batch 64 here)
    # -- the synthetic images -----------------------------------------------------------------------
    synthetic: str = "pool"  # "pool": one fixed synthetic set; "stream": fresh images every epoch of c'
    synthetic_images: int | None = None  # images of c's synthetic set (pool) or per epoch (stream); None: as many as real ones
    # -- classifiers c and c' -----------------------------------------------------------------------
    classifier_model: str = "vgg"  # classifier architecture for c and c' (vgg, ref000 or resnet9)
    classifier_width: int = 32  # its width
    classifier_tta: bool = False  # predict from each test image and its mirror image (data whose mirror keeps the class)
    classifier: ClassifierTrainerConfig = dataclasses.field(default_factory=lambda: ClassifierTrainerConfig(epochs=10))  # the recipe of c and c' (the same for both; 10 epochs here)
    reference_classifier: bool = True  # also train c and c' with reference project 000's classifier and its plain recipe (REFERENCE_RECIPE): a c' number that holds under two recipes is not one recipe's artefact
    reference_epochs: PositiveInt = 3  # epochs of that plain recipe, for c and c' alike
    reuse_c: str | None = None  # an earlier experiment whose c (same data, split, seed, classifier recipe) is loaded, not trained again
    eval_split: str = "test"  # "test" for the final number, "validation" while choosing settings
    validation_images: int = 5000  # held out of the training set when eval_split is validation
    # -- experiment-wide: one value, handed to every stage's trainer ----------------------------------
    flip: bool | None = None  # horizontal flips in training (None: on for cifar10, off elsewhere)
    device: str = "auto"  # "auto": CUDA when present, else CPU; or "cpu", "cuda", "cuda:1"
    precision: str = "fp32"  # the GAN's and both classifiers' autocast: fp32, bf16 or fp16 (CUDA); see docs/performance.md
    channels_last: bool | None = None  # NHWC layout for the GAN and both classifiers (None: on for the CPU, off elsewhere)
    compile: bool = False  # torch.compile the models' forward passes in every stage
    cuda_graph: bool = False  # CUDA only: record the GAN's and both classifiers' steps as CUDA graphs and replay them (docs/performance.md)
    seed: int = 0  # seeds the data split, the weights, the noise and the synthetic images
    progress: bool = True  # tqdm progress bars on stderr
    # -- Inception scores -------------------------------------------------------------------------------
    inception: bool = False  # also Inception FID and IS, synthetic vs real training images (needs torch-fidelity and the weights)
    inception_weights: str | None = None  # the FID Inception weights file (None: the cached or downloaded one)

    def __post_init__(self) -> None:
        check(self.dataset in PIPELINE_DATASETS, f"dataset {self.dataset!r}: the pipeline takes one of {', '.join(PIPELINE_DATASETS)}")
        check(self.model in MODELS, f"model {self.model!r}: expected one of {', '.join(MODELS)}")
        conditional = MODELS[self.model].conditional
        check(
            conditional != self.per_class,
            f"model {self.model!r} with per_class={self.per_class}: expected a conditional model, or an unconditional one with per_class",
        )
        self._check_stages()
        check(self.eval_split in ("test", "validation"), f"eval_split={self.eval_split!r}: expected 'test' or 'validation'")
        check(self.synthetic_images is None or self.synthetic_images > 0, f"synthetic_images={self.synthetic_images!r}: expected a positive int")
        check(self.verify_checksums or self.dataset == "cifar10", f"verify_checksums=False with dataset {self.dataset!r}: only cifar10 has that switch")
        check(self.synthetic in ("pool", "stream"), f"synthetic={self.synthetic!r}: expected 'pool' or 'stream'")
        check(not self.gan.snapshots or (self.synthetic == "pool" and not self.per_class),
              f"gan.snapshots={self.gan.snapshots} with synthetic={self.synthetic!r}, per_class={self.per_class}: "
              "a snapshot ensemble feeds a fixed pool of one conditional model; expected synthetic='pool' and per_class=False")
        check(self.classifier_model in CLASSIFIERS, f"classifier_model {self.classifier_model!r}: expected one of {', '.join(CLASSIFIERS)}")
        # Everything below is checked here, before any data is loaded or folder made: a bad option
        # must never cost a GAN's training or leave half an experiment behind.
        self.gan_loss()
        shape = self.image_shape
        build_gan(self.model, image_shape=shape, num_classes=None if self.per_class else 10, **self.model_options())
        build_classifier(self.classifier_model, image_shape=shape, num_classes=10, width=self.classifier_width)
        self.gan_trainer_config()
        self.classifier_trainer_config(self.classifier.batch_size)
        check(
            self.synthetic_images is None or self.synthetic_images >= self.classifier.batch_size,
            f"synthetic_images={self.synthetic_images}: fewer than classifier.batch_size={self.classifier.batch_size}; "
            f"expected at least one batch of synthetic images for c' (--synthetic-images >= {self.classifier.batch_size})",
        )

    def _check_stages(self) -> None:
        """The stages' configs: of the trainer classes' own config classes, the experiment-wide options left to the top."""
        gan_class = get_trainer_class(self.trainer).config_class  # one line naming an unregistered class
        if type(self.gan) is not gan_class:  # a GANTrainerConfig for a variant's trainer: its own config, with its defaults
            check(isinstance(self.gan, GANTrainerConfig) and issubclass(gan_class, type(self.gan)),
                  f"gan={type(self.gan).__name__}(...): expected a {gan_class.__name__}, the config of trainer {self.trainer}")
            object.__setattr__(self, "gan", gan_class.from_dict(self.gan.to_dict()))
        check(isinstance(self.classifier, ClassifierTrainerConfig),
              f"classifier={self.classifier!r}: expected a ClassifierTrainerConfig (the architecture is classifier_model)")
        for stage in STAGES:
            config = getattr(self, stage)
            for name in EXPERIMENT_WIDE:
                default = next(f.default for f in dataclasses.fields(config) if f.name == name)
                check(getattr(config, name) == default,
                      f"{stage}.{name}={getattr(config, name)!r}: {name} is experiment-wide; expected it given once, as PipelineConfig.{name}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the data set's images, known without loading it."""
        if self.dataset == "shapes":
            return (self.channels or 3, 32, 32)
        return (1, 28, 28) if self.dataset in ("mnist", "fashion-mnist") else (3, 32, 32)

    @property
    def use_flip(self) -> bool:
        return self.flip if self.flip is not None else self.dataset == "cifar10"

    def reference_trainer_config(self) -> ClassifierTrainerConfig:
        """The plain recipe of the second pair of classifiers (:data:`REFERENCE_RECIPE`), with the experiment-wide
        options and the classifier stage's budgets (``max_steps``, ``max_seconds``)."""
        budgets = {"max_steps": self.classifier.max_steps, "max_seconds": self.classifier.max_seconds,
                   "batch_size": min(REFERENCE_RECIPE.batch_size, self.classifier.batch_size)}  # never a larger batch than the main recipe's (small sets)
        return dataclasses.replace(REFERENCE_RECIPE, epochs=self.reference_epochs, **budgets, **self.experiment_wide())

    def model_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {k: v for k, v in (("g_channels", self.g_channels), ("d_channels", self.d_channels)) if v is not None}
        if self.spectral_norm:
            options["spectral_norm"] = True
        if self.d_convs_per_stage is not None:
            options["d_convs_per_stage"] = self.d_convs_per_stage
        if self.minibatch_std:
            options["minibatch_std"] = self.minibatch_std
        return options

    def experiment_wide(self) -> dict[str, Any]:
        """The options every stage's trainer gets from here (``flip`` resolved for the data set)."""
        return {**{name: getattr(self, name) for name in EXPERIMENT_WIDE}, "flip": self.use_flip}

    def gan_loss(self) -> GANLoss:
        """The GAN stage's loss: ``loss`` with the R1 penalty when ``r1 > 0`` (one line naming a bad name or weight)."""
        return get_loss(self.loss, **({"r1": self.r1} if self.r1 else {}))

    def gan_trainer_config(self) -> GANTrainerConfig:
        """The GAN stage's trainer config: ``gan`` with the experiment-wide options."""
        return dataclasses.replace(self.gan, **self.experiment_wide())

    def classifier_trainer_config(self, n: int) -> ClassifierTrainerConfig:
        """The recipe of c and c' (the same for both), trained on ``n`` images (per epoch): ``classifier``
        with the experiment-wide options; its warm-up lasts at most one epoch."""
        warmup = min(self.classifier.warmup_steps, max(1, n // self.classifier.batch_size))
        return dataclasses.replace(self.classifier, **self.experiment_wide(), warmup_steps=warmup)

    # -- as plain data: presets, --config files, report.json -------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data, each stage's config nested without the experiment-wide options
        (what ``report.json`` saves and :meth:`from_dict` reads)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for stage in STAGES:
            values[stage] = {k: v for k, v in values[stage].to_dict().items() if k not in EXPERIMENT_WIDE}
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str = "settings") -> PipelineConfig:
        """A config from plain data nested as :meth:`to_dict` writes it; a stage's options left out keep
        the pipeline's defaults. Unknown keys are refused in one line naming them (``where``: whose keys)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in values:
            check(key in fields, f"{where}: {key!r} is not a pipeline option; expected one of {', '.join(fields)}")
        stages = {}
        for stage in STAGES:
            given = values.get(stage) or {}
            check(isinstance(given, dict), f"{where}: {stage}={given!r}: expected a table of the {stage} stage's options")
            stage_class = get_trainer_class(values.get("trainer", fields["trainer"].default)).config_class if stage == "gan" else ClassifierTrainerConfig
            options = {f.name for f in dataclasses.fields(stage_class)} - set(EXPERIMENT_WIDE)
            for key in given:
                check(key not in EXPERIMENT_WIDE, f"{where}: {stage}.{key}: {key} is experiment-wide; expected it once, at the top ({key!r})")
                check(key in options, f"{where}: {stage}.{key} is not an option of the {stage} stage; expected one of {', '.join(sorted(options))}")
            default = fields[stage].default_factory()  # type: ignore[misc]
            try:
                stages[stage] = stage_class.from_dict({**default.to_dict(), **given})
            except GanEduError as e:  # say which stage's option it is
                raise GanEduError(f"{stage}: {e}") from None
        return cls(**{**values, **stages})

    def merged(self, values: dict[str, Any]) -> PipelineConfig:
        """This config with ``values`` (nested as :meth:`to_dict` writes them) in place of its own."""
        settings = self.to_dict()
        for key, value in values.items():
            settings[key] = {**settings[key], **value} if key in STAGES else value
        return self.from_dict(settings)


#: The trainer options given once for the whole experiment: the fields PipelineConfig shares with
#: TrainerConfig. Every stage's trainer gets them (:meth:`PipelineConfig.experiment_wide`); a
#: stage's config leaves them at their defaults.
EXPERIMENT_WIDE = tuple(f.name for f in dataclasses.fields(PipelineConfig) if f.name in {t.name for t in dataclasses.fields(TrainerConfig)})


#: The second classifier pair's architecture and recipe: reference project 000's classifier
#: (conv-conv-pool twice, LeakyReLU, a dense layer; :class:`~gan_edu.models.classifier.Ref000Classifier`),
#: trained plainly: Adam at a constant 1e-3, no weight decay, no label smoothing, no crops, no
#: one-cycle or test-time flip; flips only where the data set takes them (``flip``).
REFERENCE_CLASSIFIER, REFERENCE_WIDTH = "ref000", 32
REFERENCE_RECIPE = ClassifierTrainerConfig(
    epochs=3, batch_size=128, optimizer="adam", lr=1e-3, weight_decay=0.0, crop_padding=0, warmup_steps=0, schedule="constant", label_smoothing=0.0,
)


#: Settings for one flag (``gan-edu pipeline --preset NAME``); flags given beside it win.
#: How each was chosen (validation split, never test) is in docs/results/ablation.md.
PRESETS: dict[str, dict[str, Any]] = {
    # validated at 2 GAN epochs on MNIST: EMA, stream, DiffAugment and spectral norm each cost c' points
    # at that budget, the ResNet-9 recipe added 2.2; so did each part of the class-conditional recipe
    # (CBN, the SN projection D with hinge, AC-GAN: docs/results/ablation.md). 10 GAN epochs: longer
    # training is what has moved c' (5 vs 10 epochs: 0.909 vs 0.961), and the run stays within 30 CPU minutes.
    # Adam 5e-4 for G and D instead of DCGAN's 2e-4: c' 0.636 -> 0.799 at 2 epochs, 0.937 -> 0.968 at 10 (validation).
    # R1 (gamma 1) on every 4th D step: c' +1.4 and +1.2 points over two seeds, class 7 0.88 -> 0.94 (validation)
    # Adam betas (0, 0.99) with R1: GAN-test 0.978 -> 0.984 over three seeds, c' 0.9731 -> 0.9750 (validation)
    # D at twice G's rate (TTUR's direction): c' 0.9750 -> 0.9771, lowest class 0.947 -> 0.954 over three seeds (validation)
    "mnist": {
        "dataset": "mnist", "model": "cdcgan", "loss": "non-saturating", "r1": 1.0, "g_channels": 32, "d_channels": 32,
        "gan": {"epochs": 10, "batch_size": 64, "ema": False, "lr_g": 5e-4, "lr_d": 1e-3, "beta1": 0.0, "beta2": 0.99, "penalty_every": 4}, "synthetic": "pool", "classifier_model": "resnet9", "classifier_width": 16,
        "classifier": {"epochs": 3, "batch_size": 256, "lr": 0.2, "schedule": "onecycle", "label_smoothing": 0.2},
    },
    # GAN switches validated on CIFAR-10 at a CPU budget (EMA + DiffAugment + stream: c' +11 points);
    # budgets sized for one H100/H200 in about 8 minutes (benchmarks/gpu_cifar10.sh), not yet run on one
    "cifar10": {
        "dataset": "cifar10", "model": "cdcgan", "loss": "non-saturating", "g_channels": 64, "d_channels": 64,
        "gan": {"epochs": 300, "max_seconds": 210.0, "batch_size": 64, "ema": True, "diffaugment": "translation,cutout,color"},
        "synthetic": "stream", "classifier_model": "resnet9", "classifier_width": 64, "classifier_tta": True,
        "classifier": {"epochs": 10, "batch_size": 512, "lr": 0.4, "schedule": "onecycle", "label_smoothing": 0.2},
    },
}


# -- another experiment's c ---------------------------------------------------------------------------
#: What classifier c depends on: an experiment may reuse another's c only when these agree, and its
#: ``classifier`` recipe does, but for the options that change only what is logged.
C_SETTINGS = ("dataset", "data_root", "num_images", "channels", "eval_split", "validation_images", "seed", "flip", "classifier_model", "classifier_width")
LOGGING_ONLY = ("log_every", "checkpoint_every", "tensorboard")

#: Where each setting of a report written before the stages' configs were nested (flat names) lives now.
FLAT_SETTINGS = {
    **{f"gan_{k}": f"gan.{k}" for k in ("epochs", "batch_size", "max_steps")},
    **{k: f"gan.{k}" for k in ("lr_g", "lr_d", "beta1", "beta2", "d_steps", "ema", "ema_decay", "diffaugment", "tensorboard")},
    **{f"classifier_{k}": f"classifier.{k}" for k in ("epochs", "batch_size", "lr", "max_steps", "schedule", "label_smoothing")},
    "classifier": "classifier_model",
}


def nested_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A report's settings nested as :meth:`PipelineConfig.to_dict` writes them, also when the report
    is older and flat (``gan_epochs``, ``classifier_lr``, ``gan_minutes``...)."""
    if isinstance(settings.get("gan"), dict):
        return settings
    nested: dict[str, Any] = {}
    for key, value in settings.items():
        if key == "gan_minutes":  # the GAN's time budget, now in seconds
            key, value = "gan.max_seconds", value * 60 if value else None
        stage, _, name = FLAT_SETTINGS.get(key, key).rpartition(".")
        (nested.setdefault(stage, {}) if stage else nested)[name] = value
    return nested


def reusable_c(config: PipelineConfig) -> Path:
    """The ``c/classifier`` folder of ``config.reuse_c``, after checking it was trained as this experiment's c would be."""
    folder = Path(config.reuse_c or "")
    report_path = folder / "report.json"
    check(report_path.is_file() and (folder / "c" / "classifier" / "config.json").is_file(),
          f"reuse_c={config.reuse_c!r}: expected a finished experiment folder (report.json and c/classifier/)")
    try:
        theirs = nested_settings(json.loads(report_path.read_text())["settings"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise GanEduError(f"{report_path}: not a pipeline report; expected the report.json gan-edu pipeline wrote") from None
    mine = config.to_dict()
    pairs = [(k, theirs.get(k, mine[k]), mine[k]) for k in C_SETTINGS]
    recipe = theirs.get("classifier") if isinstance(theirs.get("classifier"), dict) else {}
    pairs += [(f"classifier.{k}", recipe.get(k, v), v) for k, v in mine["classifier"].items() if k not in LOGGING_ONLY]
    differ = [(k, t) for k, t, m in pairs if t != m]
    check(not differ, f"reuse_c={config.reuse_c!r}: its c was trained with other {', '.join(k for k, _ in differ)} "
          f"({', '.join(f'{k}={t!r}' for k, t in differ)}); expected the same data, split, seed and classifier recipe")
    return folder / "c" / "classifier"


def reusable_reference_c(config: PipelineConfig) -> Path | None:
    """The reference recipe's c of ``config.reuse_c`` (checked as :func:`reusable_c`), when that
    experiment trained one with the same ``reference_epochs``; else None (train it here)."""
    if not config.reuse_c:
        return None
    folder = Path(config.reuse_c)
    theirs = nested_settings(json.loads((folder / "report.json").read_text())["settings"])
    found = (folder / "c_reference" / "classifier" / "config.json").is_file()
    return folder / "c_reference" / "classifier" if found and theirs.get("reference_epochs") == config.reference_epochs else None
