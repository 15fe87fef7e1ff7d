"""The measures of the c vs c' experiment and the report that holds them (``report.json``, ``report.md``).

:func:`measure` tests c and c' on the real held-out images and judges the synthetic ones
(GAN-test, Fréchet distance of c's features, class histogram, colour statistics);
:func:`write_report` writes the numbers, the pictures and the page a person reads. The stages
that lead here are in :mod:`gan_edu.pipeline`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .data.images import ImageDataset
from .io import atomic_open, atomic_write_json
from .metrics import (
    DROPPED_MAX_FAKE_SHARE,
    DROPPED_MIN_REAL_SHARE,
    accuracy,
    class_histogram,
    colour_statistics,
    confusion_matrix,
    dropped_styles,
    frechet_distance,
    per_class_accuracy,
    per_class_precision_recall,
    precision_recall,
)
from .models.classifier import predict
from .plots import plot_confusions, plot_per_class_accuracy

PR_IMAGES = 5000  # real and synthetic images of the precision / recall manifolds (distances grow as N^2)
PR_K = 3  # neighbours of the k-NN manifolds: 3, as in Kynkaanniemi et al.
STYLES = 8  # styles (k-means clusters of c's features) each class is split into for the dropped-style count


def measure(c: torch.nn.Module, c_prime: torch.nn.Module, train: ImageDataset, evaluation: ImageDataset, pool: ImageDataset, *, tta: bool) -> dict[str, Any]:
    """The experiment's numbers: c and c' on the real ``evaluation`` images, c on the synthetic ``pool``.

    Args:
        c, c_prime: the classifiers trained on real and on synthetic images.
        train: the real training images (their colour statistics are the reference).
        evaluation: the real held-out images (test split, or validation).
        pool: labelled synthetic images (GAN-test, Fréchet distance, histograms).
        tta: predict from each test image and its mirror image.

    Returns:
        accuracies, GAN-test, Fréchet distance, per-class rows, colour statistics and both
        confusion matrices, under the keys ``report.json`` uses.
    """
    k, names = train.num_classes, list(train.class_names)
    y = evaluation.labels.numpy()
    pred_c, pred_cp = predict(c, evaluation.images, tta_flip=tta).numpy(), predict(c_prime, evaluation.images, tta_flip=tta).numpy()
    cm_c, cm_cp = confusion_matrix(pred_c, y, k), confusion_matrix(pred_cp, y, k)
    pred_synth = predict(c, pool.images).numpy()  # GAN-test: c judges the synthetic images
    n_fd = min(len(evaluation), len(pool), 10_000)
    feats_real = predict(c, evaluation.images[:n_fd], features=True).numpy()
    feats_fake = predict(c, pool.images[:n_fd], features=True).numpy()
    n_pr = min(n_fd, PR_IMAGES)  # k-NN manifolds: the same number of real and synthetic images, as in the paper
    real_pr, y_pr, fake_pr, fake_y_pr = feats_real[:n_pr], y[:n_pr], feats_fake[:n_pr], pool.labels[:n_pr].numpy()
    pr = precision_recall(real_pr, fake_pr, k=PR_K)
    pr_class = per_class_precision_recall(real_pr, y_pr, fake_pr, fake_y_pr, k, k=PR_K)
    styles = dropped_styles(real_pr, y_pr, fake_pr, fake_y_pr, k, modes=STYLES)
    return {
        "c_accuracy": accuracy(pred_c, y),
        "c_prime_accuracy": accuracy(pred_cp, y),
        "gan_test_accuracy": accuracy(pred_synth, pool.labels.numpy()),
        "frechet_distance": frechet_distance(feats_real, feats_fake),
        "frechet_distance_note": "between features of classifier c on real and synthetic images; not comparable with Inception FID",
        "precision": pr["precision"],
        "recall": pr["recall"],
        "precision_recall_note": f"improved precision and recall (Kynkaanniemi et al. 2019, k={PR_K}) in c's features, {n_pr} real and {n_pr} synthetic images",
        "styles_dropped": sum(int(row["styles_dropped"] or 0) for row in styles),
        "styles_dropped_note": f"per class, {STYLES} styles (k-means of c's features of the same {n_pr} real images); dropped: at least "
                               f"{DROPPED_MIN_REAL_SHARE:.0%} of the class's real images and under {DROPPED_MAX_FAKE_SHARE:.1%} of its synthetic ones",
        "per_class": [
            {"class": names[i], "c": float(per_class_accuracy(cm_c)[i]), "c_prime": float(per_class_accuracy(cm_cp)[i]),
             "judged_as_fraction": float(class_histogram(pred_synth, k)[i]),
             "gan_test": float(per_class_accuracy(confusion_matrix(pred_synth, pool.labels.numpy(), k))[i]),
             "precision": pr_class[i]["precision"], "recall": pr_class[i]["recall"], **styles[i]}
            for i in range(k)
        ],
        "colour_statistics": {
            "synthetic": colour_statistics(pool.images.numpy(), pool.labels.numpy(), k),
            "real": colour_statistics(train.images[: len(pool)].numpy(), train.labels[: len(pool)].numpy(), k),
        },
        "confusion": {"c": cm_c.tolist(), "c_prime": cm_cp.tolist(),
                      "gan_test": confusion_matrix(pred_synth, pool.labels.numpy(), k).tolist()},  # rows: the class asked for; columns: c's judgement
        "frechet_images": n_fd,
    }


def measure_reference(c: torch.nn.Module, c_prime: torch.nn.Module, evaluation: ImageDataset, recipe: Any) -> dict[str, Any]:
    """The second pair's numbers: c and c' of the plain recipe on the real ``evaluation`` images, overall and per class."""
    y = evaluation.labels.numpy()
    k = evaluation.num_classes
    pred_c, pred_cp = predict(c, evaluation.images).numpy(), predict(c_prime, evaluation.images).numpy()
    per_c, per_cp = per_class_accuracy(confusion_matrix(pred_c, y, k)), per_class_accuracy(confusion_matrix(pred_cp, y, k))
    return {
        "classifier": type(c).__name__,
        "recipe": {key: value for key, value in recipe.to_dict().items() if key in ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "crop_padding", "schedule", "label_smoothing", "flip")},
        "c_accuracy": accuracy(pred_c, y),
        "c_prime_accuracy": accuracy(pred_cp, y),
        "per_class": [{"class": evaluation.class_names[i], "c": float(per_c[i]), "c_prime": float(per_cp[i])} for i in range(k)],
    }


def inception_scores(inception: tuple[Any, dict[str, Any]], train: ImageDataset, pool: ImageDataset) -> dict[str, Any]:
    """Inception FID and IS of the synthetic ``pool`` against the real training images, comparable with papers (docs/fid.md)."""
    from .inception import fid_and_is, inception_features, uint8_batches

    model, weights = inception
    n = min(len(train), len(pool), 10_000)
    scores = fid_and_is(inception_features(model, uint8_batches(train.images[:n], 50)),
                        inception_features(model, uint8_batches(pool.images[:n], 50)), splits=min(10, n))
    return {**scores, "images": n, "real": "train", "standard_weights": weights["standard"]}


def write_report(report: dict[str, Any], class_names: list[str], out: Path) -> None:
    """``report.json``, ``report.md``, ``confusion.png`` and ``per_class_accuracy.png`` in ``out``."""
    cm = report["confusion"]
    plot_confusions({"c (real training images)": cm["c"], "c' (synthetic training images)": cm["c_prime"]}, class_names, out / "confusion.png")
    rows = report["per_class"]
    plot_per_class_accuracy(class_names, {"c": [r["c"] for r in rows], "c'": [r["c_prime"] for r in rows]}, out / "per_class_accuracy.png")
    atomic_write_json(out / "report.json", report)
    with atomic_open(out / "report.md", "w") as f:
        f.write(report_markdown(report))


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


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _styles(row: dict[str, Any]) -> str:
    """A per-class row's dropped styles: ``1 (0.105)``, ``0``, or ``n/a`` for a class too small to split."""
    if row["styles_dropped"] is None:
        return "n/a"
    return f"{row['styles_dropped']} ({row['dropped_real_share']:.3f})" if row["styles_dropped"] else "0"


def per_class_table(report: dict[str, Any]) -> list[str]:
    """The report page's per-class table: accuracies, GAN-test and, where the report has them, precision,
    recall, dropped styles and the reference recipe's c'."""
    ref = report.get("reference")
    pr_cols = "precision" in report["per_class"][0]
    style_cols = "styles_dropped" in report["per_class"][0]
    ref_rows = {row["class"]: row for row in ref["per_class"]} if ref else {}
    head = (["class", "c", "c'"] + (["c' (reference recipe)"] if ref else []) + ["GAN-test"] + (["precision", "recall"] if pr_cols else [])
            + (["dropped styles (their share of real)"] if style_cols else []) + ["share of synthetic images c assigns to it"])
    lines = ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["per_class"]:
        cells = [row["class"], f"{row['c']:.3f}", f"{row['c_prime']:.3f}"]
        cells += [f"{ref_rows[row['class']]['c_prime']:.3f}"] if ref else []
        cells += [f"{row['gan_test']:.3f}"]
        cells += [_num(row["precision"]), _num(row["recall"])] if pr_cols else []
        cells += [_styles(row)] if style_cols else []
        cells += [f"{row['judged_as_fraction']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _r1_words(settings: dict[str, Any]) -> str:
    """The words after the loss's name when the run had the R1 penalty ("with R1 (gamma 1, every 4 steps)"); "" otherwise, and for older reports."""
    gamma = settings.get("r1") or 0
    if not gamma:
        return ""
    every = settings.get("gan", {}).get("penalty_every", 1)
    return f" with R1 (gamma {gamma:g}{f', every {every} steps' if every > 1 else ''})"


def report_markdown(report: dict[str, Any]) -> str:
    """The report as a page a person reads."""
    s = report["settings"]
    split = report["eval_split"]
    lines = [
        f"# c vs c' on {s['dataset']}",
        "",
        f"Generator: `{s['model']}`{' per class' if s['per_class'] else ''}, {s['loss']} loss{_r1_words(s)}{_ran(report, 'gan')}; classifier `{s['classifier_model']}` "
        f"(width {s['classifier_width']}) for both c{_ran(report, 'c')} and c'{_ran(report, 'c_prime')}. Evaluated on the real **{split}** split "
        f"({report['sizes']['evaluation']} images).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| c: trained on real images, accuracy on real {split} images | {report['c_accuracy']:.4f} |",
        f"| c': trained on {synthetic_words(report)}, accuracy on real {split} images (GAN-train) | {report['c_prime_accuracy']:.4f} |",
        f"| GAN-test: c's accuracy on synthetic images (their intended class) | {report['gan_test_accuracy']:.4f} |",
        f"| Fréchet distance, features of c, real vs synthetic (not Inception FID) | {report['frechet_distance']:.3f} |",
    ]
    if "precision" in report:
        lines += [
            f"| precision: share of synthetic images inside the real images' manifold (c's features) | {report['precision']:.4f} |",
            f"| recall: share of real images inside the synthetic images' manifold | {report['recall']:.4f} |",
        ]
    if "styles_dropped" in report:
        lines.append(f"| dropped styles: clusters of a class's real images the generator (almost) never draws, all classes ({report['styles_dropped_note']}) | {report['styles_dropped']} |")
    ref = report.get("reference")
    if ref:
        r = ref["recipe"]
        lines += [
            f"| c, reference recipe ({ref['classifier']}, {r['optimizer']} lr {r['lr']:g} {r['schedule']}, {r['epochs']} epochs) | {ref['c_accuracy']:.4f} |",
            f"| c', reference recipe | {ref['c_prime_accuracy']:.4f} |",
        ]
    lines += per_class_table(report)
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
