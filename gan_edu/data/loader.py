"""Loaders: shuffled batches of float images in [-1, 1] on the training device.

The usual PyTorch loop decodes and transforms every image with PIL in worker processes, every
epoch. For MNIST / CIFAR-10-sized sets that is the bottleneck. :class:`DeviceLoader` instead
moves the uint8 images to the device once; each batch is an index into them, converted to float
in [-1, 1] (and optionally flipped) on the device, with no per-image Python work.

Sets that do not fit in memory (CelebA, large folders: :class:`~gan_edu.data.images.ImageFiles`)
go through :class:`FileLoader`: a ``torch.utils.data.DataLoader`` whose workers decode, crop and
resize each image to uint8, with pinned memory for the copy to the GPU. The float conversion and
the flips happen on the device, the same as in :class:`DeviceLoader`.

Both share :class:`Loader`: the order (and flips) of epoch ``e`` come from a CPU generator seeded
with ``(seed, e)``, so any epoch, or any batch inside it (for resuming mid-epoch), is reproduced
exactly on any device. :func:`make_loader` picks the right one for a data set; the Trainer uses it.

To make a loader, subclass :class:`Loader` and implement :meth:`Loader.iterate`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import torch

from ..errors import GanEduError, check
from .images import ImageDataset, ImageFiles, ImageSet
from .workers import default_num_workers, worker_batches

Batch = tuple[torch.Tensor, torch.Tensor]  # images (B, C, H, W) float in [-1, 1], labels (B,)


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] to float [-1, 1]: ``x / 127.5 - 1``."""
    return images.float().div_(127.5).sub_(1.0)


class Loader(ABC):
    """Shuffled batches of a labelled image set; what the Trainer draws from.

    Args:
        dataset: the images and labels.
        batch_size: images per batch.
        device: where batches are made.
        seed: with the epoch number, fixes the order and the flips.
        shuffle: draw a new order each epoch.
        drop_last: skip the last incomplete batch (keeps batch-norm statistics steady).
        flip: random horizontal flip of each image, with probability 1/2.
        balanced: draw every class equally often (with replacement), however unbalanced the
            set; an epoch is still ``len(dataset)`` images.
        rank: this process among ``world_size`` (torchrun): it yields its slice of each batch.
        world_size: processes sharing each batch of ``batch_size`` (which must divide by it); every
            process computes the same order and keeps positions ``[rank b, (rank + 1) b)`` of
            each batch, ``b = batch_size / world_size``.
    """

    def __init__(
        self,
        dataset: ImageSet,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        flip: bool = False,
        balanced: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check(isinstance(batch_size, int) and batch_size > 0, f"batch_size={batch_size!r}: expected a positive int")
        check(0 <= rank < world_size, f"rank={rank}, world_size={world_size}: expected 0 <= rank < world_size")
        check(
            batch_size % world_size == 0,
            f"batch_size={batch_size} over {world_size} processes: expected a multiple of {world_size} (the batch size is the global one)",
        )
        check(drop_last or world_size == 1, "drop_last=False with several processes: expected drop_last=True (equal slices)")
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
        self.balanced = balanced
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The image indices ``(N,)`` of ``epoch`` in order, and the flip of each position ``(N,)``.

        Made on the CPU from a generator seeded with ``(seed, epoch)``: the same on every device.
        Balanced: each position draws a class uniformly, then an image of it uniformly.
        """
        n = len(self.dataset)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if self.balanced:
            counts = torch.bincount(self.dataset.labels, minlength=self.dataset.num_classes).double()  # (K,)
            weights = 1.0 / counts[self.dataset.labels]  # (N,): each class sums to 1
            order = torch.multinomial(weights, n, replacement=True, generator=g)
        else:
            order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        flips = torch.rand(n, generator=g) < 0.5 if self.flip else None
        return order, flips

    def positions(self, b: int) -> slice:
        """The positions of the epoch's order that make this process's part of batch ``b``."""
        local = self.batch_size // self.world_size
        start = b * self.batch_size + self.rank * local
        return slice(start, start + local)

    def finish(self, images: torch.Tensor, flips: torch.Tensor | None) -> torch.Tensor:
        """uint8 ``(B, C, H, W)`` on the device to float in [-1, 1], flipped where ``flips`` ``(B,)`` says."""
        x = to_unit_range(images)  # (B, C, H, W) in [-1, 1]
        if flips is not None:
            x = torch.where(flips[:, None, None, None], x.flip(-1), x)
        return x

    @abstractmethod
    def iterate(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """Batches ``start, start + 1, ...`` of ``epoch``."""

    def __iter__(self) -> Iterator[Batch]:
        return self.iterate(0)


class DeviceLoader(Loader):
    """Batches from an :class:`ImageDataset` held, whole, on ``device``.

    Takes the arguments of :class:`Loader`; the uint8 images are copied to ``device`` once here.
    """

    def __init__(self, dataset: ImageDataset, batch_size: int, **options: Any) -> None:
        check(isinstance(dataset, ImageDataset), f"data of type {type(dataset).__name__}: DeviceLoader expects an ImageDataset")
        super().__init__(dataset, batch_size, **options)
        self.images = dataset.images.to(self.device)  # (N, C, H, W) uint8, once
        self.labels = dataset.labels.to(self.device)  # (N,)

    def iterate(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        for idx, flips in self.iterate_plan(epoch, start):
            yield self.gather(idx, flips)

    def iterate_plan(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """What :meth:`iterate` yields, before :meth:`gather`: each batch's image indices and flips
        (``(B,)`` each, on the device; all False without ``flip``). A training step recorded as a
        CUDA graph takes these and gathers inside the graph."""
        order, flips = self.epoch_plan(epoch)
        order = order.to(self.device)
        flips = flips.to(self.device) if flips is not None else torch.zeros(len(order), dtype=torch.bool, device=self.device)
        for b in range(start, len(self)):
            at = self.positions(b)
            yield order[at], flips[at]  # (B / world_size,) each

    def gather(self, idx: torch.Tensor, flips: torch.Tensor) -> Batch:
        """The batch of images ``idx`` ``(B,)``, as floats in [-1, 1], flipped where ``flips`` says, with their labels."""
        return self.finish(self.images[idx], flips if self.flip else None), self.labels[idx]


class FileLoader(Loader):
    """Batches from :class:`ImageFiles`, decoded by ``DataLoader`` workers into pinned memory.

    Takes the arguments of :class:`Loader`, and:

    Args:
        num_workers: decoding processes (default: one per core, at most 8); 0 decodes in this process.
        pin_memory: page-locked batches for fast, asynchronous copies (default: on for CUDA).
    """

    def __init__(self, dataset: ImageFiles, batch_size: int, *, num_workers: int | None = None, pin_memory: bool | None = None, **options: Any) -> None:
        check(isinstance(dataset, ImageFiles), f"data of type {type(dataset).__name__}: FileLoader expects ImageFiles")
        super().__init__(dataset, batch_size, **options)
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        check(isinstance(self.num_workers, int) and self.num_workers >= 0, f"num_workers={num_workers!r}: expected an int >= 0")
        self.pin_memory = self.device.type == "cuda" if pin_memory is None else pin_memory

    def iterate(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        order, flips = self.epoch_plan(epoch)
        spans = [self.positions(b) for b in range(start, len(self))]  # this process's part of each batch
        indices = torch.cat([order[at] for at in spans]).tolist() if spans else []
        local = self.batch_size // self.world_size
        batches = worker_batches(self.dataset, indices, local, num_workers=self.num_workers, pin_memory=self.pin_memory)
        for (images, labels), at in zip(batches, spans):
            x = images.to(self.device, non_blocking=True)  # (B / world_size, C, H, W) uint8
            f = flips[at].to(self.device) if flips is not None else None
            yield self.finish(x, f), labels.to(self.device, non_blocking=True)


def make_loader(dataset: ImageSet, batch_size: int, **options: Any) -> Loader:
    """The right loader for ``dataset``: :class:`DeviceLoader` in memory, :class:`FileLoader` on disk.

    >>> from gan_edu.data import load_dataset
    >>> type(make_loader(load_dataset("shapes", n=20), 10)).__name__
    'DeviceLoader'
    """
    if isinstance(dataset, ImageDataset):
        return DeviceLoader(dataset, batch_size, **options)
    if isinstance(dataset, ImageFiles):
        return FileLoader(dataset, batch_size, **options)
    raise GanEduError(f"training data of type {type(dataset).__name__}: expected an ImageDataset, ImageFiles or a Loader")
