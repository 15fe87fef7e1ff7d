"""Held-out parts of a data set: the validation split an experiment chooses its settings on."""

from __future__ import annotations

import dataclasses

import torch

from ..errors import check
from .images import ImageDataset


def split_off(dataset: ImageDataset, n: int, *, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """A seeded random split: ``(rest, held_out)`` with ``n`` images held out."""
    check(0 < n < len(dataset), f"validation_images={n}: expected between 1 and {len(dataset) - 1}")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    held, rest = order[:n], order[n:]

    def part(idx: torch.Tensor, split: str) -> ImageDataset:
        return dataclasses.replace(dataset, images=dataset.images[idx], labels=dataset.labels[idx], options={**dataset.options, "split": split})

    return part(rest, "train-minus-validation"), part(held, "validation")
