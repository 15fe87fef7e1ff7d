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
from .errors import check
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
from .models.classifier import CLASSIFIERS, build_classifier
from .outputs import EXPERIMENT_FILES, replace_folder
from .plots import plot_confusions, plot_per_class_accuracy, save_grid
from .synthetic import sample_pool, save_pool
from .training.bank import train_bank
from .training.classifier_trainer import ClassifierTrainer, ClassifierTrainerConfig, predict
from .training.gan_trainer import GANTrainerConfig
from .training.runs import new_gan_run
from .training.trainer import resolve_device

PIPELINE_DATASETS = ("shapes", "mnist", "fashion-mnist", "cifar10")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything the experiment depends on; saved in the report."""

    dataset: str = "shapes"  # shapes, mnist, fashion-mnist or cifar10
    data_root: str | None = None  # where the real files are (None: the default cache folder)
    download: bool = True  # download a missing real set when online
    num_images: int | None = None  # shapes only: training images (default 20,000)
    channels: int | None = None  # shapes only: 1 (grey) or 3 (RGB, the default)
    model: str = "cdcgan"  # a conditional model, or an unconditional one with per_class
    per_class: bool = False  # one G/D pair per class (a bank) instead of one conditional model
    loss: str = "non-saturating"  # the GAN loss
    g_channels: int | None = None  # generator width (None: the model's default)
    d_channels: int | None = None  # discriminator width
    gan_epochs: int = 5  # GAN budget in epochs
    gan_batch_size: int = 64  # GAN batch
    gan_max_steps: int | None = None  # GAN budget in steps
    gan_minutes: float | None = None  # GAN budget in minutes of training
    lr_g: float = 2e-4  # Adam learning rates of the GAN
    lr_d: float = 2e-4
    synthetic_images: int | None = None  # size of c's synthetic training set (None: as many as real ones)
    classifier: str = "vgg"  # classifier architecture for c and c' (vgg or ref000)
    classifier_width: int = 32  # its width
    classifier_epochs: int = 10  # epochs of c and of c'
    classifier_batch_size: int = 128
    classifier_lr: float = 0.05
    classifier_max_steps: int | None = None  # step budget of each classifier
    flip: bool | None = None  # horizontal flips in training (None: on for cifar10, off elsewhere)
    eval_split: str = "test"  # "test" for the final number, "validation" while choosing settings
    validation_images: int = 5000  # held out of the training set when eval_split is validation
    device: str = "auto"
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
        check(self.eval_split in ("test", "validation"), f"eval_split={self.eval_split!r}: expected 'test' or 'validation'")
        check(self.synthetic_images is None or self.synthetic_images > 0, f"synthetic_images={self.synthetic_images!r}: expected a positive int")
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
        return {k: v for k, v in (("g_channels", self.g_channels), ("d_channels", self.d_channels)) if v is not None}

    def gan_trainer_config(self) -> GANTrainerConfig:
        return GANTrainerConfig(
            epochs=self.gan_epochs, max_steps=self.gan_max_steps, max_seconds=self.gan_minutes * 60 if self.gan_minutes else None,
            batch_size=self.gan_batch_size, lr_g=self.lr_g, lr_d=self.lr_d, device=self.device, seed=self.seed,
            progress=self.progress, flip=self.use_flip, tensorboard=self.tensorboard,
        )

    def classifier_trainer_config(self, n: int) -> ClassifierTrainerConfig:
        """The recipe of c and c', trained on ``n`` images."""
        return ClassifierTrainerConfig(
            epochs=self.classifier_epochs, batch_size=self.classifier_batch_size, lr=self.classifier_lr,
            max_steps=self.classifier_max_steps, device=self.device, seed=self.seed, progress=self.progress,
            flip=self.use_flip, warmup_steps=min(100, max(1, n // self.classifier_batch_size)),
        )


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
    gan_config = config.gan_trainer_config()
    model_config = config.model_options()
    gan_dir = out / "gan"
    if config.per_class:
        train_bank(config.model, train, loss=config.loss, config=gan_config, out_dir=gan_dir, overwrite=True, log=log, **model_config)
        gan_steps = None
    else:
        trainer = new_gan_run(config.model, train, loss=config.loss, config=gan_config, out_dir=gan_dir, overwrite=True, **model_config)
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
    pool = sample_pool(generator, n_synthetic, seed=config.seed + 1)
    timings["sample_s"] = time.perf_counter() - t
    log(f"exported {onnx_path.name}; sampled {len(pool)} synthetic images with onnxruntime in {timings['sample_s']:.1f} s")
    per_row = 10
    grid_labels = np.repeat(np.arange(train.num_classes), per_row)
    grid = generator.sample(len(grid_labels), grid_labels, seed=config.seed + 2)
    save_grid(grid, out / "samples_per_class.png", per_row, scale=max(1, 96 // train.image_shape[-1]))
    if len(pool) <= 5000:  # small pools are kept for a look; 50,000 images would be 150 MB
        save_pool(pool, out / "synthetic_preview.npz")

    # -- 4. classifiers c (real) and c' (synthetic), the same recipe -----------------------------
    def train_classifier(data: ImageDataset, name: str) -> tuple[torch.nn.Module, float]:
        t0 = time.perf_counter()
        torch.manual_seed(config.seed)
        clf = build_classifier(config.classifier, image_shape=train.image_shape, num_classes=train.num_classes, width=config.classifier_width)
        cfg = config.classifier_trainer_config(len(data))
        trainer = ClassifierTrainer(clf, cfg, out_dir=out / name)
        trainer.fit(data)
        ran[name] = did(trainer, len(data), config.classifier_batch_size)
        clf.save_pretrained(out / name / "classifier")
        return clf, time.perf_counter() - t0

    c, timings["c_s"] = train_classifier(train, "c")
    log(f"c trained in {timings['c_s']:.0f} s")
    c_prime, timings["c_prime_s"] = train_classifier(pool, "c_prime")
    log(f"c' trained in {timings['c_prime_s']:.0f} s")

    # -- 5. evaluation on the real held-out images ------------------------------------------------
    t = time.perf_counter()
    k, names = train.num_classes, list(train.class_names)
    y = evaluation.labels.numpy()
    pred_c, pred_cp = predict(c, evaluation.images).numpy(), predict(c_prime, evaluation.images).numpy()
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
        "sizes": {"train": len(train), "evaluation": len(evaluation), "synthetic": len(pool), "frechet_images": n_fd},
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
        f"| c': trained on {report['sizes']['synthetic']} synthetic images, accuracy on real {split} images (GAN-train) | {report['c_prime_accuracy']:.4f} |",
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
