"""Pictures of a run: sample grids, loss curves and the progress GIF.

Everything here takes plain tensors, numbers or file paths and writes a PNG / GIF; nothing
reaches back into a trainer. Figures are drawn with matplotlib's object-oriented ``Figure``
(rendered by Agg), never through ``pyplot``: the global backend is left alone, so a notebook
that trains a model keeps showing its own plots inline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .io import atomic_open


def image_grid(images: torch.Tensor | np.ndarray, nrow: int, *, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images in [-1, 1] into one ``(H', W', 3)`` uint8 picture.

    Args:
        images: the images, ``nrow`` per row.
        nrow: images per row.
        padding: pixels between images.
        pad_value: padding colour in [0, 1].
    """
    from torchvision.utils import make_grid

    x = torch.as_tensor(images).detach().float().cpu()
    grid = make_grid((x + 1) / 2, nrow=nrow, padding=padding, pad_value=pad_value)  # (3, H', W') in [0, 1]
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def save_image(picture: np.ndarray, path: str | Path, *, scale: int = 1) -> Path:
    """Write an ``(H, W, 3)`` uint8 array as a PNG (atomically), enlarged ``scale`` times."""
    from PIL import Image

    img = Image.fromarray(picture)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    with atomic_open(path, "wb") as f:
        img.save(f, format="PNG")
    return path


def save_grid(images: torch.Tensor | np.ndarray, path: str | Path, nrow: int, *, scale: int = 1) -> Path:
    """:func:`image_grid` then :func:`save_image`."""
    return save_image(image_grid(images, nrow), path, scale=scale)


def save_gif(frames: Sequence[str | Path], path: str | Path, *, duration_ms: int = 400) -> Path | None:
    """Join PNG frames into a looping GIF (the last frame held longer). None if no frames."""
    from PIL import Image

    if not frames:
        return None
    images = [Image.open(f).convert("RGB") for f in frames]
    durations = [duration_ms] * (len(images) - 1) + [duration_ms * 4]
    path = Path(path)
    with atomic_open(path, "wb") as f:
        images[0].save(f, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    return path


def plot_losses(history: Sequence[dict[str, Any]], path: str | Path, *, keys: Sequence[str] | None = None, title: str = "Training losses") -> Path | None:
    """Plot the per-log ``step`` records of a history against the step number.

    Args:
        history: records as in ``history.jsonl``.
        path: the PNG to write.
        keys: which metrics; default every metric whose name contains ``loss``.
    """
    from matplotlib.figure import Figure

    steps = [r for r in history if r.get("kind") == "step"] or list(history)
    if not steps:
        return None
    keys = list(keys) if keys else sorted({k for r in steps for k in r if "loss" in k})
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    for key in keys:
        points = [(r["step"], r[key]) for r in steps if key in r]
        if points:  # a short run has few logs (one, below log_every steps): markers keep them visible
            ax.plot(*zip(*points), label=key, marker="o" if len(points) < 30 else None, markersize=4)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    return _figure_to(fig, path)


def _figure_to(fig: Any, path: str | Path) -> Path:
    """Write a ``Figure`` as a PNG (atomically); an unreferenced Figure is simply garbage."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    return path


def plot_confusions(matrices: dict[str, np.ndarray], class_names: Sequence[str], path: str | Path) -> Path:
    """Confusion matrices side by side as colour maps, each row normalised to 1 (the recall).

    Args:
        matrices: title -> ``(K, K)`` counts (row: true class, column: predicted class).
        class_names: the K names.
        path: the PNG to write.
    """
    from matplotlib.figure import Figure

    k = len(class_names)
    fig = Figure(figsize=(5.2 * len(matrices), 4.8), dpi=100)
    axes = fig.subplots(1, len(matrices), squeeze=False)
    for ax, (title, cm) in zip(axes[0], matrices.items()):
        cm = np.asarray(cm, dtype=float)
        rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        im = ax.imshow(rates, cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"{title}\naccuracy {np.trace(cm) / max(cm.sum(), 1):.3f}", fontsize=10)
        ax.set_xticks(range(k), class_names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), class_names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for i in range(k):
            for j in range(k):
                if rates[i, j] >= 0.1:
                    ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=6, color="black" if rates[i, j] > 0.6 else "white")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _figure_to(fig, path)


def plot_per_class_accuracy(class_names: Sequence[str], columns: dict[str, Sequence[float]], path: str | Path) -> Path:
    """Grouped bars: per-class accuracy of each classifier (``columns``: name -> K values)."""
    from matplotlib.figure import Figure

    k = len(class_names)
    width = 0.8 / max(1, len(columns))
    fig = Figure(figsize=(max(6, 0.7 * k), 3.6), dpi=100)
    ax = fig.subplots()
    for i, (name, values) in enumerate(columns.items()):
        ax.bar(np.arange(k) + (i - (len(columns) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _figure_to(fig, path)
