"""The data set registry: a name to a function that loads it as an :class:`ImageDataset`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..errors import GanEduError, check
from .shapes import SHAPE_CLASSES, make_shapes


@dataclasses.dataclass(frozen=True, eq=False)
class ImageDataset:
    """A labelled image set held in memory as uint8.

    Attributes:
        name: registry name (``"shapes"``, ``"cifar10"``...).
        images: uint8 tensor ``(N, C, H, W)`` with values in [0, 255].
        labels: int64 tensor ``(N,)`` with values in ``[0, len(class_names))``.
        class_names: one name per class.
        options: how it was loaded (split, seed...), recorded in a run's config.json.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check(self.images.dtype == torch.uint8 and self.images.ndim == 4, f"images of dtype {self.images.dtype} and shape {tuple(self.images.shape)}: expected uint8 (N, C, H, W)")
        check(self.labels.shape == (len(self.images),), f"labels of shape {tuple(self.labels.shape)}: expected ({len(self.images)},)")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> list[int]:
        """Number of images of each class."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def subset(self, classes: Sequence[int]) -> ImageDataset:
        """Only the images of ``classes`` (labels kept as they are)."""
        for c in classes:
            check(0 <= c < self.num_classes, f"class {c}: expected a class in [0, {self.num_classes - 1}]")
        keep = torch.isin(self.labels, torch.as_tensor(list(classes)))
        return dataclasses.replace(self, images=self.images[keep], labels=self.labels[keep], options={**self.options, "classes": list(classes)})


def _load_shapes(split: str = "train", *, n: int | None = None, seed: int = 0, channels: int = 3, size: int = 32, **_: Any) -> ImageDataset:
    """The built-in shapes: 20,000 training and 2,000 test images by default."""
    n = n if n is not None else (20_000 if split == "train" else 2_000)
    split_seed = seed * 2 + (0 if split == "train" else 1)  # train and test never share images
    images, labels = make_shapes(n, seed=split_seed, size=size, channels=channels)
    return ImageDataset("shapes", images, labels, SHAPE_CLASSES, {"split": split, "n": n, "seed": seed, "channels": channels, "size": size})


#: Data sets by the name ``--dataset`` takes.
DATASETS: dict[str, Callable[..., ImageDataset]] = {
    "shapes": _load_shapes,
}

SPLITS = ("train", "test")


def load_dataset(name: str, split: str = "train", **options: Any) -> ImageDataset:
    """Load a data set from the registry.

    Args:
        name: a key of :data:`DATASETS`.
        split: ``"train"`` or ``"test"``.
        **options: the data set's own options (``n``, ``seed``, ``channels`` for shapes).

    >>> ds = load_dataset("shapes", n=20)
    >>> len(ds), ds.image_shape, ds.class_names[:3]
    (20, (3, 32, 32), ('circle', 'square', 'triangle'))
    """
    if name not in DATASETS:
        raise GanEduError(f"dataset {name!r}: expected one of {', '.join(DATASETS)}")
    check(split in SPLITS, f"split {split!r}: expected one of {', '.join(SPLITS)}")
    return DATASETS[name](split, **options)
