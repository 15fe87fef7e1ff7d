"""The c vs c' experiment, end to end: train a GAN, export it, sample, train c and c', compare.

1. Train the GAN on the real training images (a conditional model, or one model per class).
2. Export the generator to ONNX (checked against PyTorch) and load it with onnxruntime.
3. Sample a balanced synthetic training set through onnxruntime, as any app would.
4. Train classifier c on the real training images and c' on the synthetic ones, same recipe.
5. Test both on the real test split (c' on real test images is GAN-train); judge the synthetic
   images with c (GAN-test); Fréchet distance of c's features, real vs synthetic; class
   histogram and colour statistics of the synthetic images (mode collapse).
6. Write ``report.json``, ``report.md`` and the pictures.

Choosing settings: ``eval_split="validation"`` holds out part of the training images and
evaluates there, so the test split is looked at once, for the final number.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .data.datasets import load_dataset
from .data.images import ImageDataset
from .errors import GanEduError, check
from .export import export_generator
from .export.runtime import OnnxGenerator
from .io import atomic_open, atomic_write_json, check_writable
from .losses import get_loss
from .metrics import (
    accuracy,
    class_histogram,
    colour_statistics,
    confusion_matrix,
    frechet_distance,
    per_class_accuracy,
)
from .models import MODELS, build_gan
from .models.classifier import CLASSIFIERS, Classifier, build_classifier
from .outputs import EXPERIMENT_FILES, replace_folder
from .plots import plot_confusions, plot_per_class_accuracy, save_grid
from .synthetic import FreshSyntheticLoader, sample_pool, save_pool
from .training.bank import train_bank
from .training.classifier_trainer import ClassifierTrainer, ClassifierTrainerConfig, predict
from .training.gan_trainer import GANTrainerConfig
from .training.registry import get_trainer_class
from .training.runs import new_gan_run
from .training.trainer import resolve_device

PIPELINE_DATASETS = ("shapes", "mnist", "fashion-mnist", "cifar10")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything the experiment depends on; saved in the report."""

    dataset: str = "shapes"  # shapes, mnist, fashion-mnist or cifar10
    data_root: str | None = None  # where the real files are (None: the default cache folder)
    download: bool = True  # download a missing real set when online
    verify_checksums: bool = True  # cifar10: check the files' md5 (off only for home-made files in the release's format)
    num_images: int | None = None  # shapes only: training images (default 20,000)
    channels: int | None = None  # shapes only: 1 (grey) or 3 (RGB, the default)
    model: str = "cdcgan"  # a conditional model, or an unconditional one with per_class
    per_class: bool = False  # one G/D pair per class (a bank) instead of one conditional model
    loss: str = "non-saturating"  # the GAN loss
    trainer: str = "GANTrainer"  # the GAN's registered trainer class (a variant: gan_edu.training.register_trainer)
    g_channels: int | None = None  # generator width (None: the model's default)
    d_channels: int | None = None  # discriminator width
    gan_epochs: int = 5  # GAN budget in epochs
    gan_batch_size: int = 64  # GAN batch
    gan_max_steps: int | None = None  # GAN budget in steps
    gan_minutes: float | None = None  # GAN budget in minutes of training
    lr_g: float = 2e-4  # Adam learning rates of the GAN (two of them: TTUR, Heusel et al. 2017)
    lr_d: float = 2e-4  # D's learning rate (TTUR: often higher than G's)
    beta1: float = 0.5  # Adam beta1 of the GAN (0.0 is usual with hinge + spectral norm)
    beta2: float = 0.999  # Adam beta2 of the GAN
    d_steps: int | None = None  # D updates per G update (None: the loss's own)
    ema: bool = True  # export the average of G's weights (see GANTrainerConfig.ema)
    ema_decay: float = 0.999  # the average's decay
    spectral_norm: bool = False  # spectral normalisation of every D layer
    diffaugment: str = ""  # DiffAugment policy for D, e.g. "translation,cutout,color"
    synthetic: str = "pool"  # "pool": one fixed synthetic set; "stream": fresh images every epoch of c'
    synthetic_images: int | None = None  # images of c's synthetic set (pool) or per epoch (stream); None: as many as real ones
    classifier: str = "vgg"  # classifier architecture for c and c' (vgg, ref000 or resnet9)
    classifier_width: int = 32  # its width
    classifier_epochs: int = 10  # epochs of c and of c'
    classifier_batch_size: int = 128
    classifier_lr: float = 0.05
    classifier_max_steps: int | None = None  # step budget of each classifier
    classifier_schedule: str = "cosine"  # "cosine" or "onecycle" (the fast CIFAR-10 recipe)
    classifier_label_smoothing: float = 0.0  # 0.2 in the fast CIFAR-10 recipe
    classifier_tta: bool = False  # predict from each test image and its mirror image (data whose mirror keeps the class)
    reuse_c: str | None = None  # an earlier experiment whose c (same data, split, seed, classifier recipe) is loaded, not trained again
    flip: bool | None = None  # horizontal flips in training (None: on for cifar10, off elsewhere)
    eval_split: str = "test"  # "test" for the final number, "validation" while choosing settings
    validation_images: int = 5000  # held out of the training set when eval_split is validation
    device: str = "auto"
    precision: str = "fp32"  # the GAN's and both classifiers' autocast: fp32, bf16 or fp16 (CUDA); see docs/performance.md
    channels_last: bool = False  # NHWC layout for the GAN and both classifiers (tensor-core GPUs)
    compile: bool = False  # torch.compile the models' forward passes in every stage
    cuda_graph: bool = False  # CUDA only: record the GAN's and both classifiers' steps as CUDA graphs and replay them (docs/performance.md)
    seed: int = 0
    progress: bool = True
    tensorboard: bool = False  # TensorBoard logs of the GAN stage in OUT/gan/tensorboard (needs the tensorboard package)
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
        get_trainer_class(self.trainer)  # one line naming an unregistered class
        check(self.eval_split in ("test", "validation"), f"eval_split={self.eval_split!r}: expected 'test' or 'validation'")
        check(self.synthetic_images is None or self.synthetic_images > 0, f"synthetic_images={self.synthetic_images!r}: expected a positive int")
        check(self.verify_checksums or self.dataset == "cifar10", f"verify_checksums=False with dataset {self.dataset!r}: only cifar10 has that switch")
        check(self.synthetic in ("pool", "stream"), f"synthetic={self.synthetic!r}: expected 'pool' or 'stream'")
        check(self.classifier in CLASSIFIERS, f"classifier {self.classifier!r}: expected one of {', '.join(CLASSIFIERS)}")
        # Everything below is checked here, before any data is loaded or folder made: a bad option
        # must never cost a GAN's training or leave half an experiment behind.
        get_loss(self.loss)
        check(self.classifier in CLASSIFIERS, f"classifier {self.classifier!r}: expected one of {', '.join(CLASSIFIERS)}")
        shape = self.image_shape
        build_gan(self.model, image_shape=shape, num_classes=None if self.per_class else 10, **self.model_options())
        build_classifier(self.classifier, image_shape=shape, num_classes=10, width=self.classifier_width)
        self.gan_trainer_config()
        self.classifier_trainer_config(self.classifier_batch_size)
        check(
            self.synthetic_images is None or self.synthetic_images >= self.classifier_batch_size,
            f"synthetic_images={self.synthetic_images}: fewer than classifier_batch_size={self.classifier_batch_size}; "
            f"expected at least one batch of synthetic images for c' (--synthetic-images >= {self.classifier_batch_size})",
        )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the data set's images, known without loading it."""
        if self.dataset == "shapes":
            return (self.channels or 3, 32, 32)
        return (1, 28, 28) if self.dataset in ("mnist", "fashion-mnist") else (3, 32, 32)

    @property
    def use_flip(self) -> bool:
        return self.flip if self.flip is not None else self.dataset == "cifar10"

    def model_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {k: v for k, v in (("g_channels", self.g_channels), ("d_channels", self.d_channels)) if v is not None}
        if self.spectral_norm:
            options["spectral_norm"] = True
        return options

    def gan_trainer_config(self) -> GANTrainerConfig:
        """The GAN stage's trainer options (the trainer class's own config class)."""
        return get_trainer_class(self.trainer).config_class(
            epochs=self.gan_epochs, max_steps=self.gan_max_steps, max_seconds=self.gan_minutes * 60 if self.gan_minutes else None,
            batch_size=self.gan_batch_size, lr_g=self.lr_g, lr_d=self.lr_d, beta1=self.beta1, beta2=self.beta2, d_steps=self.d_steps,
            ema=self.ema, ema_decay=self.ema_decay, diffaugment=self.diffaugment, device=self.device, seed=self.seed,
            progress=self.progress, flip=self.use_flip, tensorboard=self.tensorboard, **self.speed_switches(),
        )

    def classifier_trainer_config(self, n: int) -> ClassifierTrainerConfig:
        """The recipe of c and c' (the same for both), trained on ``n`` images (per epoch)."""
        return ClassifierTrainerConfig(
            epochs=self.classifier_epochs, batch_size=self.classifier_batch_size, lr=self.classifier_lr,
            max_steps=self.classifier_max_steps, device=self.device, seed=self.seed, progress=self.progress,
            flip=self.use_flip, warmup_steps=min(100, max(1, n // self.classifier_batch_size)),
            schedule=self.classifier_schedule, label_smoothing=self.classifier_label_smoothing, **self.speed_switches(),
        )

    def speed_switches(self) -> dict[str, Any]:
        """The trainers' speed switches, the same for every stage."""
        return {"precision": self.precision, "channels_last": self.channels_last, "compile": self.compile, "cuda_graph": self.cuda_graph}


#: Settings for one flag (``gan-edu pipeline --preset NAME``); flags given beside it win.
#: How each was chosen (validation split, never test) is in docs/results/ablation.md.
PRESETS: dict[str, dict[str, Any]] = {
    # validated at 2 GAN epochs on MNIST: EMA, stream, DiffAugment and spectral norm each cost c' points
    # at that budget, the ResNet-9 recipe added 2.2; the test run used 6 GAN epochs
    "mnist": {
        "dataset": "mnist", "model": "cdcgan", "loss": "non-saturating", "g_channels": 32, "d_channels": 32, "gan_epochs": 6,
        "gan_batch_size": 64, "ema": False, "synthetic": "pool", "classifier": "resnet9", "classifier_width": 16,
        "classifier_epochs": 3, "classifier_batch_size": 256, "classifier_lr": 0.2, "classifier_schedule": "onecycle",
        "classifier_label_smoothing": 0.2,
    },
    # GAN switches validated on CIFAR-10 at a CPU budget (EMA + DiffAugment + stream: c' +11 points);
    # budgets sized for one H100/H200 in about 8 minutes (benchmarks/gpu_cifar10.sh), not yet run on one
    "cifar10": {
        "dataset": "cifar10", "model": "cdcgan", "loss": "non-saturating", "g_channels": 64, "d_channels": 64, "gan_epochs": 300,
        "gan_minutes": 3.5, "gan_batch_size": 64, "ema": True, "diffaugment": "translation,cutout,color", "synthetic": "stream",
        "classifier": "resnet9", "classifier_width": 64, "classifier_epochs": 10, "classifier_batch_size": 512, "classifier_lr": 0.4,
        "classifier_schedule": "onecycle", "classifier_label_smoothing": 0.2, "classifier_tta": True,
    },
}


#: The settings classifier c depends on: an experiment may reuse another's c only when these agree.
C_SETTINGS = (
    "dataset", "data_root", "num_images", "channels", "eval_split", "validation_images", "seed", "flip", "classifier", "classifier_width",
    "classifier_epochs", "classifier_batch_size", "classifier_lr", "classifier_max_steps", "classifier_schedule",
    "classifier_label_smoothing",
)


def reusable_c(config: PipelineConfig) -> Path:
    """The ``c/classifier`` folder of ``config.reuse_c``, after checking it was trained as this experiment's c would be."""
    folder = Path(config.reuse_c or "")
    report_path = folder / "report.json"
    check(report_path.is_file() and (folder / "c" / "classifier" / "config.json").is_file(),
          f"reuse_c={config.reuse_c!r}: expected a finished experiment folder (report.json and c/classifier/)")
    try:
        theirs = json.loads(report_path.read_text())["settings"]
    except (ValueError, KeyError, TypeError):
        raise GanEduError(f"{report_path}: not a pipeline report; expected the report.json gan-edu pipeline wrote") from None
    mine = dataclasses.asdict(config)
    differ = [k for k in C_SETTINGS if theirs.get(k, mine[k]) != mine[k]]
    check(not differ, f"reuse_c={config.reuse_c!r}: its c was trained with other {', '.join(differ)} "
          f"({', '.join(f'{k}={theirs.get(k)!r}' for k in differ)}); expected the same data, split, seed and classifier recipe")
    return folder / "c" / "classifier"


def split_off(dataset: ImageDataset, n: int, *, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """A seeded random split: ``(rest, held_out)`` with ``n`` images held out."""
    check(0 < n < len(dataset), f"validation_images={n}: expected between 1 and {len(dataset) - 1}")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    held, rest = order[:n], order[n:]

    def part(idx: torch.Tensor, split: str) -> ImageDataset:
        return dataclasses.replace(dataset, images=dataset.images[idx], labels=dataset.labels[idx], options={**dataset.options, "split": split})

    return part(rest, "train-minus-validation"), part(held, "validation")


def prepare_experiment_dir(out_dir: str | Path, *, overwrite: bool, dry_run: bool = False) -> Path:
    """A new or empty folder, or (with ``overwrite``) an old experiment's folder, emptied.

    An experiment is never mixed with the remains of another (a classifier's history would
    continue the old one's), and a folder that is not an experiment is never emptied. With
    ``dry_run``, only check: remove and create nothing.
    """
    out = Path(out_dir)
    if out.exists():
        check(out.is_dir(), f"--out {out}: exists and is not a folder; expected a new or empty folder")
    check_writable(out, "--out", folder=True)
    if out.exists() and any(out.iterdir()):
        check((out / "report.json").exists() or (out / "gan").is_dir(), f"--out {out}: folder exists and is not a gan-edu experiment; expected a new or empty folder")
        check(overwrite, f"--out {out}: an experiment already exists there; use --overwrite to replace it")
        replace_folder(out, EXPERIMENT_FILES, "experiment", dry_run=dry_run)  # refuses when a file there is not gan-edu's
    if not dry_run:
        out.mkdir(parents=True, exist_ok=True)
    return out


def check_sizes(config: PipelineConfig, train: ImageDataset) -> None:
    """The options that depend on the training data's size: every batch must find its images."""
    n = len(train)
    if config.per_class:
        for k, (name, count) in enumerate(zip(train.class_names, train.class_counts())):
            check(count >= config.gan_batch_size, f"gan_batch_size={config.gan_batch_size}: class {k} ({name}) has only {count} training images; "
                  f"expected a batch size of at most {count} for a per-class GAN")
    else:
        check(n >= config.gan_batch_size, f"gan_batch_size={config.gan_batch_size}: the training data has only {n} images; expected a batch size of at most {n}")
    check(n >= config.classifier_batch_size, f"classifier_batch_size={config.classifier_batch_size}: the training data has only {n} images; "
          f"expected a batch size of at most {n}")
    n_synthetic = config.synthetic_images or n
    check(n_synthetic >= config.classifier_batch_size, f"synthetic_images={n_synthetic}: fewer than classifier_batch_size={config.classifier_batch_size}; "
          f"expected at least one batch of synthetic images for c'")


def run_pipeline(config: PipelineConfig, out_dir: str | Path, *, overwrite: bool = False, log: Any = print) -> dict[str, Any]:
    """Run the whole experiment into ``out_dir``; returns the report (also in ``report.json``)."""
    c_folder = reusable_c(config) if config.reuse_c else None  # checked before anything is written
    check(c_folder is None or Path(config.reuse_c or "").resolve() != Path(out_dir).resolve(),
          f"reuse_c={config.reuse_c!r} is --out itself: expected another experiment's folder")
    prepare_experiment_dir(out_dir, overwrite=overwrite, dry_run=True)  # refuse a bad --out before any work
    inception = None
    if config.inception:  # the package and the weights, before any work (a download happens here, once)
        from .inception import load_inception

        inception = load_inception(config.inception_weights, download=config.download, device=resolve_device(config.device))
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    torch.manual_seed(config.seed)

    # -- data ----------------------------------------------------------------------------
    t = time.perf_counter()
    options: dict[str, Any] = {}
    if config.dataset == "shapes":
        options.update({k: v for k, v in (("n", config.num_images), ("channels", config.channels)) if v is not None})
    else:
        options.update(data_root=config.data_root, download=config.download)
        if not config.verify_checksums:
            options["verify_checksums"] = False
        options = {k: v for k, v in options.items() if v is not None}
    train = load_dataset(config.dataset, "train", **options)
    if config.eval_split == "validation":
        train, evaluation = split_off(train, config.validation_images, seed=config.seed)
    else:
        evaluation = load_dataset(config.dataset, "test", **{k: v for k, v in options.items() if k != "n"})
    timings["data_s"] = time.perf_counter() - t
    check_sizes(config, train)  # what depends on the data's size, still before any folder is made
    out = prepare_experiment_dir(out_dir, overwrite=overwrite)
    log(f"data: {config.dataset}, {len(train)} training images, {len(evaluation)} {config.eval_split} images, {train.num_classes} classes")

    ran: dict[str, dict[str, float]] = {}  # what each training really did: a step or time budget may stop it before its epochs

    def did(trainer: Any, n: int, batch_size: int) -> dict[str, float]:
        return {"steps": trainer.step, "epochs": round(trainer.step / max(1, n // batch_size), 2)}

    # -- 1. the GAN ---------------------------------------------------------------------------
    t = time.perf_counter()
    trainer_class = get_trainer_class(config.trainer)
    gan_config = config.gan_trainer_config()
    model_config = config.model_options()
    gan_dir = out / "gan"
    if config.per_class:
        train_bank(config.model, train, loss=config.loss, config=gan_config, out_dir=gan_dir, overwrite=True, log=log, trainer_class=trainer_class, **model_config)
        gan_steps = None
    else:
        trainer = new_gan_run(
            config.model, train, loss=config.loss, config=gan_config, out_dir=gan_dir, overwrite=True, trainer_class=trainer_class, **model_config
        )
        trainer.fit(train)
        gan_steps = trainer.step
        ran["gan"] = did(trainer, len(train), config.gan_batch_size)
    timings["gan_s"] = time.perf_counter() - t
    log(f"GAN trained in {timings['gan_s']:.0f} s")

    # -- 2. export, 3. sample through onnxruntime ----------------------------------------------
    t = time.perf_counter()
    onnx_path = export_generator(gan_dir, out / ("generator.json" if config.per_class else "generator.onnx"), class_names=train.class_names)
    generator = OnnxGenerator(onnx_path)
    timings["export_s"] = time.perf_counter() - t
    t = time.perf_counter()
    n_synthetic = config.synthetic_images or len(train)
    # a stream's images are drawn while c' trains; a pool of the evaluation's size then serves GAN-test and Fréchet
    pool = sample_pool(generator, n_synthetic if config.synthetic == "pool" else min(n_synthetic, len(evaluation)), seed=config.seed + 1, device=resolve_device(config.device))
    timings["sample_s"] = time.perf_counter() - t
    log(f"exported {onnx_path.name}; sampled {len(pool)} synthetic images with onnxruntime in {timings['sample_s']:.1f} s")
    per_row = 10
    grid_labels = np.repeat(np.arange(train.num_classes), per_row)
    grid = generator.sample(len(grid_labels), grid_labels, seed=config.seed + 2)
    save_grid(grid, out / "samples_per_class.png", per_row, scale=max(1, 96 // train.image_shape[-1]))
    if len(pool) <= 5000:  # small pools are kept for a look; 50,000 images would be 150 MB
        save_pool(pool, out / "synthetic_preview.npz")

    # -- 4. classifiers c (real) and c' (synthetic), the same recipe -----------------------------
    def train_classifier(data: ImageDataset | FreshSyntheticLoader, size: int, name: str) -> tuple[torch.nn.Module, float]:
        t0 = time.perf_counter()
        torch.manual_seed(config.seed)
        clf = build_classifier(config.classifier, image_shape=train.image_shape, num_classes=train.num_classes, width=config.classifier_width)
        cfg = config.classifier_trainer_config(size)
        trainer = ClassifierTrainer(clf, cfg, out_dir=out / name)
        trainer.fit(data)
        ran[name] = did(trainer, size, config.classifier_batch_size)
        clf.save_pretrained(out / name / "classifier")
        return clf, time.perf_counter() - t0

    if config.reuse_c:
        t0 = time.perf_counter()
        c = Classifier.from_pretrained(c_folder, map_location=resolve_device(config.device))
        timings["c_s"] = time.perf_counter() - t0
        log(f"c loaded from {config.reuse_c} (trained there with the same data and recipe)")
    else:
        c, timings["c_s"] = train_classifier(train, len(train), "c")
        log(f"c trained in {timings['c_s']:.0f} s")
    if config.synthetic == "stream":
        device = resolve_device(config.device)
        stream = FreshSyntheticLoader(generator, n_synthetic, config.classifier_batch_size, device=device, seed=config.seed + 1, flip=config.use_flip)
        c_prime, timings["c_prime_s"] = train_classifier(stream, n_synthetic, "c_prime")
    else:
        c_prime, timings["c_prime_s"] = train_classifier(pool, len(pool), "c_prime")
    log(f"c' trained in {timings['c_prime_s']:.0f} s on a {config.synthetic} of {n_synthetic} synthetic images{' per epoch' if config.synthetic == 'stream' else ''}")

    # -- 5. evaluation on the real held-out images ------------------------------------------------
    t = time.perf_counter()
    k, names = train.num_classes, list(train.class_names)
    y = evaluation.labels.numpy()
    tta = config.classifier_tta
    pred_c, pred_cp = predict(c, evaluation.images, tta_flip=tta).numpy(), predict(c_prime, evaluation.images, tta_flip=tta).numpy()
    cm_c, cm_cp = confusion_matrix(pred_c, y, k), confusion_matrix(pred_cp, y, k)
    pred_synth = predict(c, pool.images).numpy()  # GAN-test: c judges the synthetic images
    n_fd = min(len(evaluation), len(pool), 10_000)
    feats_real = predict(c, evaluation.images[:n_fd], features=True).numpy()
    feats_fake = predict(c, pool.images[:n_fd], features=True).numpy()
    report: dict[str, Any] = {
        "c_accuracy": accuracy(pred_c, y),
        "c_prime_accuracy": accuracy(pred_cp, y),
        "gan_test_accuracy": accuracy(pred_synth, pool.labels.numpy()),
        "frechet_distance": frechet_distance(feats_real, feats_fake),
        "frechet_distance_note": "between features of classifier c on real and synthetic images; not comparable with Inception FID",
        "per_class": [
            {"class": names[i], "c": float(per_class_accuracy(cm_c)[i]), "c_prime": float(per_class_accuracy(cm_cp)[i]),
             "judged_as_fraction": float(class_histogram(pred_synth, k)[i]),
             "gan_test": float(per_class_accuracy(confusion_matrix(pred_synth, pool.labels.numpy(), k))[i])}
            for i in range(k)
        ],
        "colour_statistics": {
            "synthetic": colour_statistics(pool.images.numpy(), pool.labels.numpy(), k),
            "real": colour_statistics(train.images[: len(pool)].numpy(), train.labels[: len(pool)].numpy(), k),
        },
        "confusion": {"c": cm_c.tolist(), "c_prime": cm_cp.tolist()},
        "eval_split": config.eval_split,
        "sizes": {"train": len(train), "evaluation": len(evaluation), "synthetic": n_synthetic, "gan_test_images": len(pool), "frechet_images": n_fd},
        "synthetic": {"mode": config.synthetic, "images": n_synthetic,
                      "c_prime_saw": n_synthetic * (config.classifier_epochs if config.synthetic == "stream" else 1),
                      "note": "fresh images every epoch of c'" if config.synthetic == "stream" else "one fixed pool, reused every epoch"},
        "gan_steps": gan_steps,
        "ran": ran,
        "settings": dataclasses.asdict(config),
        "hardware": {"device": str(c.device), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                     "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()},
        "gan_edu_version": __version__,
    }
    if inception is not None:  # Inception FID and IS, comparable with papers (docs/fid.md)
        from .inception import fid_and_is, inception_features, uint8_batches

        model, weights = inception
        n_inception = min(len(train), len(pool), 10_000)
        scores = fid_and_is(inception_features(model, uint8_batches(train.images[:n_inception], 50)),
                            inception_features(model, uint8_batches(pool.images[:n_inception], 50)), splits=min(10, n_inception))
        report["inception"] = {**scores, "images": n_inception, "real": "train", "standard_weights": weights["standard"]}
    timings["evaluation_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_all
    report["timings"] = {k2: round(v, 2) for k2, v in timings.items()}
    plot_confusions({"c (real training images)": cm_c, "c' (synthetic training images)": cm_cp}, names, out / "confusion.png")
    plot_per_class_accuracy(names, {"c": [r["c"] for r in report["per_class"]], "c'": [r["c_prime"] for r in report["per_class"]]}, out / "per_class_accuracy.png")
    atomic_write_json(out / "report.json", report)
    with atomic_open(out / "report.md", "w") as f:
        f.write(report_markdown(report))
    log(f"c {report['c_accuracy']:.3f}, c' {report['c_prime_accuracy']:.3f}, GAN-test {report['gan_test_accuracy']:.3f}, "
        f"Frechet {report['frechet_distance']:.2f}; report in {out / 'report.md'}")
    return report


def synthetic_words(report: dict[str, Any]) -> str:
    """How c' saw synthetic images, in words: a fixed pool or a stream."""
    syn = report.get("synthetic", {"mode": "pool", "images": report["sizes"]["synthetic"]})
    if syn["mode"] == "stream":
        return f"a stream of {syn['images']} fresh synthetic images per epoch"
    return f"a fixed pool of {syn['images']} synthetic images"


def _ran(report: dict[str, Any], name: str) -> str:
    """`` (trained 120 steps, 2.4 epochs)``: what a training really ran, as the report recorded it."""
    done = report.get("ran", {}).get(name)
    if not done:
        return ""
    steps, epochs = done["steps"], done["epochs"]
    return f" (trained {steps} step{'s' * (steps != 1)}, {epochs:g} epoch{'s' * (epochs != 1)})"


def report_markdown(report: dict[str, Any]) -> str:
    """The report as a page a person reads."""
    s = report["settings"]
    split = report["eval_split"]
    lines = [
        f"# c vs c' on {s['dataset']}",
        "",
        f"Generator: `{s['model']}`{' per class' if s['per_class'] else ''}, {s['loss']} loss{_ran(report, 'gan')}; classifier `{s['classifier']}` "
        f"(width {s['classifier_width']}) for both c{_ran(report, 'c')} and c'{_ran(report, 'c_prime')}. Evaluated on the real **{split}** split "
        f"({report['sizes']['evaluation']} images).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| c: trained on real images, accuracy on real {split} images | {report['c_accuracy']:.4f} |",
        f"| c': trained on {synthetic_words(report)}, accuracy on real {split} images (GAN-train) | {report['c_prime_accuracy']:.4f} |",
        f"| GAN-test: c's accuracy on synthetic images (their intended class) | {report['gan_test_accuracy']:.4f} |",
        f"| Fréchet distance, features of c, real vs synthetic (not Inception FID) | {report['frechet_distance']:.3f} |",
        "",
        "| class | c | c' | GAN-test | share of synthetic images c assigns to it |",
        "|---|---|---|---|---|",
    ]
    for row in report["per_class"]:
        lines.append(f"| {row['class']} | {row['c']:.3f} | {row['c_prime']:.3f} | {row['gan_test']:.3f} | {row['judged_as_fraction']:.3f} |")
    t = report["timings"]
    lines += [
        "",
        f"Timings: {', '.join(f'{k[:-2]} {v:.0f} s' for k, v in t.items())}. Hardware: {report['hardware']['device']}"
        f"{' (' + report['hardware']['cuda'] + ')' if report['hardware']['cuda'] else ''}, {report['hardware']['torch_threads']} torch threads.",
        "",
        "![samples, one row per class](samples_per_class.png)",
        "",
        "![confusion matrices of c and c'](confusion.png)",
        "",
        "Settings:",
        "",
        "```json",
        json.dumps(s, indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)
