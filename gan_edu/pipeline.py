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
from .io import atomic_open, atomic_write_json
from .metrics import (
    accuracy,
    class_histogram,
    colour_statistics,
    confusion_matrix,
    frechet_distance,
    per_class_accuracy,
)
from .models import MODELS
from .models.classifier import build_classifier
from .outputs import EXPERIMENT_FILES, replace_folder
from .plots import plot_confusions, plot_per_class_accuracy, save_grid
from .synthetic import sample_pool, save_pool
from .training.bank import train_bank
from .training.classifier_trainer import ClassifierTrainer, ClassifierTrainerConfig, predict
from .training.gan_trainer import GANTrainerConfig
from .training.runs import new_gan_run

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


def split_off(dataset: ImageDataset, n: int, *, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """A seeded random split: ``(rest, held_out)`` with ``n`` images held out."""
    check(0 < n < len(dataset), f"validation_images={n}: expected between 1 and {len(dataset) - 1}")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    held, rest = order[:n], order[n:]

    def part(idx: torch.Tensor, split: str) -> ImageDataset:
        return dataclasses.replace(dataset, images=dataset.images[idx], labels=dataset.labels[idx], options={**dataset.options, "split": split})

    return part(rest, "train-minus-validation"), part(held, "validation")


def prepare_experiment_dir(out_dir: str | Path, *, overwrite: bool) -> Path:
    """A new or empty folder, or (with ``overwrite``) an old experiment's folder, emptied.

    An experiment is never mixed with the remains of another (a classifier's history would
    continue the old one's), and a folder that is not an experiment is never emptied.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        check(out.is_dir(), f"--out {out}: exists and is not a folder; expected a new or empty folder")
        check((out / "report.json").exists() or (out / "gan").is_dir(), f"--out {out}: folder exists and is not a gan-edu experiment; expected a new or empty folder")
        check(overwrite, f"--out {out}: an experiment already exists there; use --overwrite to replace it")
        replace_folder(out, EXPERIMENT_FILES, "experiment")  # refuses when a file there is not gan-edu's
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_pipeline(config: PipelineConfig, out_dir: str | Path, *, overwrite: bool = False, log: Any = print) -> dict[str, Any]:
    """Run the whole experiment into ``out_dir``; returns the report (also in ``report.json``)."""
    out = prepare_experiment_dir(out_dir, overwrite=overwrite)
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
    flip = config.flip if config.flip is not None else config.dataset == "cifar10"
    timings["data_s"] = time.perf_counter() - t
    log(f"data: {config.dataset}, {len(train)} training images, {len(evaluation)} {config.eval_split} images, {train.num_classes} classes")

    # -- 1. the GAN ---------------------------------------------------------------------------
    t = time.perf_counter()
    gan_config = GANTrainerConfig(
        epochs=config.gan_epochs, max_steps=config.gan_max_steps, max_seconds=config.gan_minutes * 60 if config.gan_minutes else None,
        batch_size=config.gan_batch_size, lr_g=config.lr_g, lr_d=config.lr_d, device=config.device, seed=config.seed,
        progress=config.progress, flip=flip,
    )
    model_config = {k: v for k, v in (("g_channels", config.g_channels), ("d_channels", config.d_channels)) if v is not None}
    gan_dir = out / "gan"
    if config.per_class:
        train_bank(config.model, train, loss=config.loss, config=gan_config, out_dir=gan_dir, overwrite=True, log=log, **model_config)
        gan_steps = None
    else:
        trainer = new_gan_run(config.model, train, loss=config.loss, config=gan_config, out_dir=gan_dir, overwrite=True, **model_config)
        trainer.fit(train)
        gan_steps = trainer.step
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
        cfg = ClassifierTrainerConfig(
            epochs=config.classifier_epochs, batch_size=config.classifier_batch_size, lr=config.classifier_lr,
            max_steps=config.classifier_max_steps, device=config.device, seed=config.seed, progress=config.progress,
            flip=flip, warmup_steps=min(100, max(1, len(data) // config.classifier_batch_size)),
        )
        ClassifierTrainer(clf, cfg, out_dir=out / name).fit(data)
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
        "settings": dataclasses.asdict(config),
        "hardware": {"device": str(c.device), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                     "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()},
        "gan_edu_version": __version__,
    }
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


def report_markdown(report: dict[str, Any]) -> str:
    """The report as a page a person reads."""
    s = report["settings"]
    split = report["eval_split"]
    lines = [
        f"# c vs c' on {s['dataset']}",
        "",
        f"Generator: `{s['model']}`{' per class' if s['per_class'] else ''}, {s['loss']} loss; classifier `{s['classifier']}` "
        f"(width {s['classifier_width']}, {s['classifier_epochs']} epochs) for both c and c'. Evaluated on the real **{split}** split "
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
