"""The c vs c' experiment, end to end: train a GAN, export it, sample, train c and c', compare.

:func:`run_pipeline` runs the stages in order, each a function of its own that takes plain
objects and hands plain objects on:

1. :func:`load_data`: the real training images, and the held-out ones to evaluate on.
2. :func:`train_gan`: the GAN on the real training images (a conditional model, or one model per class).
3. :func:`export`: the generator exported to ONNX (checked against PyTorch) and loaded with onnxruntime;
   :func:`sample`: a balanced synthetic set sampled through it, as any app would.
4. :func:`train_classifier`, twice: classifier c on the real training images (or c reused from an
   earlier experiment), c' on the synthetic ones (:func:`synthetic_training_data`), same recipe;
   then, with ``reference_classifier``, both again with reference project 000's classifier and a
   plain recipe, so that c' is measured under two recipes.
5. :func:`evaluate`: both on the real held-out images (c' there is GAN-train); c judges the
   synthetic images (GAN-test); Fréchet distance of c's features, real vs synthetic; class
   histogram and colour statistics of the synthetic images (mode collapse).
6. :func:`assemble_report`, then :func:`~gan_edu.report.write_report`: ``report.json``,
   ``report.md`` and the pictures.

:class:`~gan_edu.pipeline_config.PipelineConfig` holds every setting. The GAN stage's trainer
options are its ``gan`` config and the classifiers' recipe its ``classifier`` config: the
trainers' own config classes, so every trainer option is an option of the experiment too. The
options every stage shares (``device``, ``seed``...: ``EXPERIMENT_WIDE``) are written once, at the top.

Choosing settings: ``eval_split="validation"`` holds out part of the training images and
evaluates there, so the test split is looked at once, for the final number.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .data.datasets import load_dataset
from .data.images import ImageDataset
from .data.splits import split_off
from .errors import check
from .export import export_generator
from .export.runtime import OnnxGenerator
from .models.classifier import Classifier, build_classifier
from .outputs import EXPERIMENT_FILES, prepare_folder
from .pipeline_config import (
    EXPERIMENT_WIDE,
    PRESETS,
    REFERENCE_CLASSIFIER,
    REFERENCE_WIDTH,
    PipelineConfig,
    nested_settings,
    reusable_c,
    reusable_reference_c,
)
from .plots import save_grid
from .report import inception_scores, measure, measure_reference, write_report
from .synthetic import FreshSyntheticLoader, sample_ensemble_pool, sample_pool, save_pool
from .training.bank import train_bank
from .training.classifier_trainer import ClassifierTrainer
from .training.pictures import snapshot_dirs
from .training.registry import get_trainer_class
from .training.runs import new_gan_run
from .training.trainer import resolve_device

__all__ = [
    "EXPERIMENT_WIDE", "PRESETS", "PipelineConfig", "assemble_report", "evaluate", "export", "load_data", "nested_settings",
    "prepare_experiment_dir", "reusable_c", "run_pipeline", "sample", "split_off", "synthetic_training_data", "train_classifier",
    "train_gan",
]

Log = Callable[[str], None]


def prepare_experiment_dir(out_dir: str | Path, *, overwrite: bool, dry_run: bool = False) -> Path:
    """A new or empty folder, or (with ``overwrite``) an old experiment's folder, emptied.

    An experiment is never mixed with the remains of another (a classifier's history would
    continue the old one's), and a folder that is not an experiment is never emptied. With
    ``dry_run``, only check: remove and create nothing.
    """
    return prepare_folder(
        out_dir, kind="experiment", patterns=EXPERIMENT_FILES, holds_one=lambda out: (out / "report.json").exists() or (out / "gan").is_dir(),
        overwrite=overwrite, dry_run=dry_run,
    )


def check_sizes(config: PipelineConfig, train: ImageDataset) -> None:
    """The options that depend on the training data's size: every batch must find its images."""
    n, gan_batch, clf_batch = len(train), config.gan.batch_size, config.classifier.batch_size
    if config.per_class:
        for k, (name, count) in enumerate(zip(train.class_names, train.class_counts())):
            check(count >= gan_batch, f"gan.batch_size={gan_batch}: class {k} ({name}) has only {count} training images; "
                  f"expected a batch size of at most {count} for a per-class GAN")
    else:
        check(n >= gan_batch, f"gan.batch_size={gan_batch}: the training data has only {n} images; expected a batch size of at most {n}")
    check(n >= clf_batch, f"classifier.batch_size={clf_batch}: the training data has only {n} images; expected a batch size of at most {n}")
    n_synthetic = config.synthetic_images or n
    check(n_synthetic >= clf_batch, f"synthetic_images={n_synthetic}: fewer than classifier.batch_size={clf_batch}; "
          f"expected at least one batch of synthetic images for c'")


# -- the stages ---------------------------------------------------------------------------------------
def load_data(config: PipelineConfig) -> tuple[ImageDataset, ImageDataset]:
    """``(train, evaluation)``: the real training images, and the real images c and c' are tested on
    (the test split, or a seeded validation part held out of the training images)."""
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
        return split_off(train, config.validation_images, seed=config.seed)
    return train, load_dataset(config.dataset, "test", **{k: v for k, v in options.items() if k != "n"})


def trained(trainer: Any, n: int) -> dict[str, float]:
    """What a training really ran (a step or time budget may stop it before its epochs): steps and epochs."""
    return {"steps": trainer.step, "epochs": round(trainer.step / max(1, n // trainer.config.batch_size), 2)}


def train_gan(config: PipelineConfig, train: ImageDataset, gan_dir: Path, log: Log) -> dict[str, float] | None:
    """Train the GAN (or, with ``per_class``, a bank of one GAN per class) into ``gan_dir``.

    Returns:
        What it ran (:func:`trained`), or None for a bank (each member's run folder says).
    """
    trainer_class = get_trainer_class(config.trainer)
    options = dict(loss=config.gan_loss(), config=config.gan_trainer_config(), out_dir=gan_dir, overwrite=True, trainer_class=trainer_class)
    if config.per_class:
        train_bank(config.model, train, log=log, **options, **config.model_options())
        return None
    trainer = new_gan_run(config.model, train, **options, **config.model_options())
    trainer.fit(train)
    return trained(trainer, len(train))


def export(config: PipelineConfig, gan_dir: Path, out: Path, train: ImageDataset) -> OnnxGenerator:
    """Export the trained generator (or bank) into ``out`` (checked against PyTorch) and load it with onnxruntime."""
    onnx_path = export_generator(gan_dir, out / ("generator.json" if config.per_class else "generator.onnx"), class_names=train.class_names)
    return OnnxGenerator(onnx_path)


def export_snapshots(gan_dir: Path, out: Path, train: ImageDataset) -> list[OnnxGenerator]:
    """The run's kept snapshots of G (``gan.snapshots``) exported into ``out/snapshots/`` and loaded; [] without any."""
    paths = [export_generator(d, out / "snapshots" / f"{d.name}.onnx", class_names=train.class_names) for d in snapshot_dirs(gan_dir)]
    return [OnnxGenerator(p) for p in paths]


def sample(config: PipelineConfig, generator: OnnxGenerator, n: int, out: Path, snapshots: Sequence[OnnxGenerator] = ()) -> ImageDataset:
    """``n`` labelled synthetic images (balanced classes, uint8) through onnxruntime, as any app would;
    also a grid of one row per class (``samples_per_class.png``) and, for a small pool, a preview file.
    With ``snapshots``, the pool is drawn from them and ``generator`` in equal shares (a snapshot ensemble)."""
    device = resolve_device(config.device)
    if snapshots:
        pool = sample_ensemble_pool([*snapshots, generator], n, seed=config.seed + 1, device=device)
    else:
        pool = sample_pool(generator, n, seed=config.seed + 1, device=device)  # CUDA: onnxruntime writes into torch's GPU buffers
    per_row = 10
    grid_labels = np.repeat(np.arange(generator.num_classes or 1), per_row)
    grid = generator.sample(len(grid_labels), grid_labels, seed=config.seed + 2)
    save_grid(grid, out / "samples_per_class.png", per_row, scale=max(1, 96 // generator.image_shape[-1]))
    if len(pool) <= 5000:  # small pools are kept for a look; 50,000 images would be 150 MB
        save_pool(pool, out / "synthetic_preview.npz")
    return pool


def train_classifier(
    config: PipelineConfig, data: ImageDataset | FreshSyntheticLoader, n: int, like: ImageDataset, folder: Path, *, reference: bool = False
) -> tuple[Classifier, dict[str, float]]:
    """Train one classifier of the recipe on ``data`` (``n`` images per epoch, shaped and labelled
    ``like`` the real set) into ``folder``; returns it and what it ran. ``reference``: reference
    project 000's classifier and plain recipe (:data:`~gan_edu.pipeline_config.REFERENCE_RECIPE`)."""
    torch.manual_seed(config.seed)  # c and c' start from the same weights
    name, width = (REFERENCE_CLASSIFIER, REFERENCE_WIDTH) if reference else (config.classifier_model, config.classifier_width)
    classifier = build_classifier(name, image_shape=like.image_shape, num_classes=like.num_classes, width=width)
    recipe = config.reference_trainer_config() if reference else config.classifier_trainer_config(n)
    trainer = ClassifierTrainer(classifier, recipe, out_dir=folder)
    trainer.fit(data)
    classifier.save_pretrained(folder / "classifier")
    return classifier, trained(trainer, n)


def synthetic_training_data(config: PipelineConfig, generator: OnnxGenerator, pool: ImageDataset, n: int) -> ImageDataset | FreshSyntheticLoader:
    """What c' trains on: the fixed ``pool``, or a stream of ``n`` fresh images every epoch."""
    if config.synthetic == "pool":
        return pool
    return FreshSyntheticLoader(generator, n, config.classifier.batch_size, device=resolve_device(config.device), seed=config.seed + 1, flip=config.use_flip)


def evaluate(config: PipelineConfig, c: Classifier, c_prime: Classifier, train: ImageDataset, evaluation: ImageDataset, pool: ImageDataset,
             inception: Any = None, reference: tuple[Classifier, Classifier] | None = None) -> dict[str, Any]:
    """The measures (:func:`~gan_edu.report.measure`): c and c' on the real ``evaluation`` images, c on the
    synthetic ``pool``; with ``inception`` (the model and its weights' facts), Inception FID and IS too;
    with ``reference`` (c and c' of the plain recipe), their accuracies (:func:`~gan_edu.report.measure_reference`)."""
    measures = measure(c, c_prime, train, evaluation, pool, tta=config.classifier_tta)
    if reference is not None:
        measures["reference"] = measure_reference(*reference, evaluation, config.reference_trainer_config())
    if inception is not None:
        measures["inception"] = inception_scores(inception, train, pool)
    return measures


def assemble_report(config: PipelineConfig, measures: dict[str, Any], *, sizes: dict[str, int], ran: dict[str, dict[str, float]],
                    timings: dict[str, float], device: str) -> dict[str, Any]:
    """The report: the measures, then what ran, on what, with which settings, and how long each stage took."""
    measures = dict(measures)
    sizes = {**sizes, "frechet_images": measures.pop("frechet_images")}
    inception = measures.pop("inception", None)
    stream = config.synthetic == "stream"
    report: dict[str, Any] = {
        **measures,
        "eval_split": config.eval_split,
        "sizes": sizes,
        "synthetic": {"mode": config.synthetic, "images": sizes["synthetic"],
                      "c_prime_saw": sizes["synthetic"] * (config.classifier.epochs if stream else 1),
                      "note": "fresh images every epoch of c'" if stream else "one fixed pool, reused every epoch"},
        "gan_steps": ran["gan"]["steps"] if "gan" in ran else None,
        "ran": ran,
        "settings": config.to_dict(),
        "hardware": {"device": device, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                     "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()},
        "gan_edu_version": __version__,
    }
    if inception is not None:  # Inception FID and IS, comparable with papers (docs/fid.md)
        report["inception"] = inception
    report["timings"] = {k: round(v, 2) for k, v in timings.items()}
    return report


# -- the whole experiment ------------------------------------------------------------------------------
@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the seconds the block took to ``timings[name]``."""
    start = time.perf_counter()
    yield
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def train_classifiers(
    config: PipelineConfig, train: ImageDataset, generator: OnnxGenerator, pool: ImageDataset, n_synthetic: int, out: Path,
    c_folder: Path | None, timings: dict[str, float], ran: dict[str, dict[str, float]], log: Log,
) -> tuple[Classifier, Classifier, tuple[Classifier, Classifier] | None]:
    """Stage 4 of :func:`run_pipeline`: c (or another experiment's c), c' on the synthetic images and,
    when asked, the reference recipe's pair; their timings and what ran go into ``timings`` and ``ran``."""
    with timed(timings, "c_s"):
        if c_folder is not None:
            c = Classifier.from_pretrained(c_folder, map_location=resolve_device(config.device))
        else:
            c, ran["c"] = train_classifier(config, train, len(train), train, out / "c")
    log(f"c loaded from {config.reuse_c} (trained there with the same data and recipe)" if c_folder is not None else f"c trained in {timings['c_s']:.0f} s")
    with timed(timings, "c_prime_s"):
        synthetic = synthetic_training_data(config, generator, pool, n_synthetic)
        n_seen = n_synthetic if config.synthetic == "stream" else len(pool)  # images per epoch of c'
        c_prime, ran["c_prime"] = train_classifier(config, synthetic, n_seen, train, out / "c_prime")
    log(f"c' trained in {timings['c_prime_s']:.0f} s on a {config.synthetic} of {n_synthetic} synthetic images{' per epoch' if config.synthetic == 'stream' else ''}")

    # 4b. the second pair, reference project 000's classifier and plain recipe
    reference = None
    if config.reference_classifier:
        with timed(timings, "reference_s"):
            reused = reusable_reference_c(config)
            if reused is not None:  # the reused experiment's c of this recipe (same data, split, seed, reference_epochs)
                c_ref = Classifier.from_pretrained(reused, map_location=resolve_device(config.device))
            else:
                c_ref, ran["c_reference"] = train_classifier(config, train, len(train), train, out / "c_reference", reference=True)
            cp_ref, ran["c_prime_reference"] = train_classifier(config, synthetic, n_seen, train, out / "c_prime_reference", reference=True)
        reference = (c_ref, cp_ref)
        log(f"c and c' of the reference recipe ({REFERENCE_CLASSIFIER}) trained in {timings['reference_s']:.0f} s")
    return c, c_prime, reference


def run_pipeline(config: PipelineConfig, out_dir: str | Path, *, overwrite: bool = False, log: Log = print) -> dict[str, Any]:
    """Run the whole experiment into ``out_dir``; returns the report (also in ``report.json``).

    Everything that can be checked before the work is (the options, another experiment's c,
    ``out_dir``, the Inception weights, the sizes against the data), so a bad option never costs
    a GAN's training or leaves half an experiment behind.
    """
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

    with timed(timings, "data_s"):
        train, evaluation = load_data(config)
    check_sizes(config, train)  # what depends on the data's size, still before any folder is made
    out = prepare_experiment_dir(out_dir, overwrite=overwrite)
    log(f"data: {config.dataset}, {len(train)} training images, {len(evaluation)} {config.eval_split} images, {train.num_classes} classes")
    ran: dict[str, dict[str, float]] = {}

    # 1. the GAN
    with timed(timings, "gan_s"):
        gan_ran = train_gan(config, train, out / "gan", log)
    if gan_ran is not None:
        ran["gan"] = gan_ran
    log(f"GAN trained in {timings['gan_s']:.0f} s")

    # 2. export, 3. sample through onnxruntime (a stream's images are drawn while c' trains; a pool
    # of the evaluation's size then serves GAN-test and the Fréchet distance)
    with timed(timings, "export_s"):
        generator = export(config, out / "gan", out, train)
        snapshots = export_snapshots(out / "gan", out, train) if config.gan.snapshots else []
    n_synthetic = config.synthetic_images or len(train)
    with timed(timings, "sample_s"):
        pool = sample(config, generator, n_synthetic if config.synthetic == "pool" else min(n_synthetic, len(evaluation)), out, snapshots)
    members = f" from an ensemble of {len(snapshots) + 1} snapshots of G" if snapshots else ""
    log(f"exported {generator.path.name}; sampled {len(pool)} synthetic images{members} with onnxruntime in {timings['sample_s']:.1f} s")

    # 4. classifiers c (real images) and c' (synthetic images), the same recipe; 4b. the reference recipe's pair
    c, c_prime, reference = train_classifiers(config, train, generator, pool, n_synthetic, out, c_folder, timings, ran, log)

    # 5. evaluation on the real held-out images
    with timed(timings, "evaluation_s"):
        measures = evaluate(config, c, c_prime, train, evaluation, pool, inception, reference)
    timings["total_s"] = time.perf_counter() - t_all

    # 6. the report
    sizes = {"train": len(train), "evaluation": len(evaluation), "synthetic": n_synthetic, "gan_test_images": len(pool)}
    report = assemble_report(config, measures, sizes=sizes, ran=ran, timings=timings, device=str(c.device))
    write_report(report, list(train.class_names), out)
    log(f"c {report['c_accuracy']:.3f}, c' {report['c_prime_accuracy']:.3f}, GAN-test {report['gan_test_accuracy']:.3f}, "
        f"Frechet {report['frechet_distance']:.2f}; report in {out / 'report.md'}")
    return report
