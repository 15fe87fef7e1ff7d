"""The data set registry: a name to a function that loads it as an :class:`ImageSet`.

In-memory sets come back as :class:`ImageDataset` (uint8 ``(N, C, H, W)``), sets read from
disk image by image as :class:`ImageFiles`; both normalise to [-1, 1] in the loader
(``x / 127.5 - 1``). Every set records in ``options`` everything needed to load it again, so a
run can be resumed with ``load_dataset(name, split, **options)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import GanEduError, check
from .images import ImageDataset, ImageFiles, ImageSet
from .real import (
    load_celeba,
    load_cifar10,
    load_fashion_mnist,
    load_folder,
    load_mnist,
    load_options,
)
from .shapes import SHAPE_CLASSES, make_shapes

__all__ = ["DATASETS", "SPLITS", "ImageDataset", "ImageFiles", "ImageSet", "load_dataset"]


def _load_shapes(split: str = "train", *, n: int | None = None, seed: int = 0, channels: int = 3, size: int = 32) -> ImageDataset:
    """The built-in shapes: 20,000 training and 2,000 test images by default."""
    n = n if n is not None else (20_000 if split == "train" else 2_000)
    split_seed = seed * 2 + (0 if split == "train" else 1)  # train and test never share images
    images, labels = make_shapes(n, seed=split_seed, size=size, channels=channels)
    return ImageDataset("shapes", images, labels, SHAPE_CLASSES, {"split": split, "n": n, "seed": seed, "channels": channels, "size": size})


#: Data sets by the name ``--dataset`` takes.
DATASETS: dict[str, Callable[..., ImageSet]] = {
    "shapes": _load_shapes,
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "celeba": load_celeba,
    "folder": load_folder,
}

SPLITS = ("train", "test")


def load_dataset(name: str, split: str = "train", *, classes: list[int] | None = None, **options: Any) -> ImageSet:
    """Load a data set from the registry.

    Args:
        name: a key of :data:`DATASETS`.
        split: ``"train"`` or ``"test"``.
        classes: keep only these classes (labels unchanged): per-class training.
        **options: the data set's own options: ``n``, ``seed``, ``channels``, ``size`` for shapes;
            ``data_root``, ``download`` for the real sets; ``size``, ``in_memory`` for celeba and
            folder (see :mod:`gan_edu.data.real`).

    >>> ds = load_dataset("shapes", n=20)
    >>> len(ds), ds.image_shape, ds.class_names[:3]
    (20, (3, 32, 32), ('circle', 'square', 'triangle'))
    >>> load_dataset("shapes", n=20, classes=[1]).class_counts()[:3]
    [0, 2, 0]
    """
    if name not in DATASETS:
        raise GanEduError(f"dataset {name!r}: expected one of {', '.join(DATASETS)}")
    check(split in SPLITS, f"split {split!r}: expected one of {', '.join(SPLITS)}")
    known = load_options(DATASETS[name])
    for key in options:
        check(key in known, f"option {key!r} of dataset {name!r}: expected one of {', '.join(known)}")
    dataset = DATASETS[name](split, **options)
    return dataset.subset(classes) if classes is not None else dataset
