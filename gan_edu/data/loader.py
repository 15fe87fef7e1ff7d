"""A loader that keeps a whole small-image data set on the training device.

The usual PyTorch loop decodes and transforms every image with PIL in worker processes, every
epoch. For MNIST / CIFAR-10-sized sets that is the bottleneck. :class:`DeviceLoader` instead
moves the uint8 images to the device once; each batch is an index into them, converted to float
in [-1, 1] (and optionally flipped) on the device, with no per-image Python work.

Randomness is explicit and per epoch: the order and flips of epoch ``e`` come from a CPU
generator seeded with ``(seed, e)``, so any epoch (or any batch inside it, for resuming
mid-epoch) can be reproduced exactly on any device.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..errors import check
from .datasets import ImageDataset

Batch = tuple[torch.Tensor, torch.Tensor]  # images (B, C, H, W) float in [-1, 1], labels (B,)


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] to float [-1, 1]: ``x / 127.5 - 1``."""
    return images.float().div_(127.5).sub_(1.0)


class DeviceLoader:
    """Shuffled batches from an :class:`ImageDataset` held on ``device``.

    Args:
        dataset: the images and labels.
        batch_size: images per batch.
        device: where the set lives and batches are made.
        seed: with the epoch number, fixes the order and the flips.
        shuffle: draw a new order each epoch.
        drop_last: skip the last incomplete batch (keeps batch-norm statistics steady).
        flip: random horizontal flip of each image, with probability 1/2.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        flip: bool = False,
    ) -> None:
        check(isinstance(batch_size, int) and batch_size > 0, f"batch_size={batch_size!r}: expected a positive int")
        check(
            len(dataset) >= batch_size or not drop_last,
            f"batch_size={batch_size}: larger than the {len(dataset)} images of {dataset.name!r}; expected at most {len(dataset)}",
        )
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.flip = flip
        self.images = dataset.images.to(self.device)  # (N, C, H, W) uint8, once
        self.labels = dataset.labels.to(self.device)  # (N,)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The order ``(N,)`` and flip mask ``(N,)`` of ``epoch``, made on the CPU, then moved."""
        n = len(self.dataset)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        flips = torch.rand(n, generator=g) < 0.5 if self.flip else None
        return order.to(self.device), (flips.to(self.device) if flips is not None else None)

    def iterate(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """Batches ``start, start + 1, ...`` of ``epoch``."""
        order, flips = self.epoch_plan(epoch)
        for b in range(start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = to_unit_range(self.images[idx])  # (B, C, H, W) in [-1, 1]
            if flips is not None:
                x = torch.where(flips[idx, None, None, None], x.flip(-1), x)
            yield x, self.labels[idx]

    def __iter__(self) -> Iterator[Batch]:
        return self.iterate(0)
