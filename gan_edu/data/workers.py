"""Decoding image files in worker processes, for :class:`~gan_edu.data.images.ImageFiles`.

Used by :meth:`ImageFiles.load <gan_edu.data.images.ImageFiles.load>` (decode a whole set once)
and by :class:`~gan_edu.data.loader.FileLoader` (decode each batch when it is needed).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch

from ..errors import GanEduError

if TYPE_CHECKING:
    from .images import ImageFiles


def default_num_workers() -> int:
    """Worker processes for decoding: one per CPU core this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def worker_batches(
    files: ImageFiles, indices: Sequence[int], batch_size: int, *, num_workers: int, pin_memory: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Decode ``files[indices]`` in that order, ``batch_size`` at a time, in ``num_workers`` processes.

    Yields uint8 images ``(B, C, H, W)`` and int64 labels ``(B,)``. A bad file stops it with the
    one-line error the worker raised (not the worker's traceback).
    """
    loader = torch.utils.data.DataLoader(
        files,  # type: ignore[arg-type]
        batch_size=batch_size,
        sampler=indices,  # the order is fixed by the caller: deterministic, resumable
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
    )
    try:
        yield from loader
    except GanEduError as e:
        # The DataLoader re-raises a worker's error with its traceback in the message: keep the last line.
        last = str(e).strip().splitlines()[-1]
        raise GanEduError(last.split("GanEduError: ", 1)[-1]) from None
