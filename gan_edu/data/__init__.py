"""Data: the data set registry and the loaders the Trainer draws batches from.

Every data set is loaded by :func:`load_dataset`, either into an :class:`ImageDataset` (uint8
images ``(N, C, H, W)`` in memory, for MNIST, Fashion-MNIST, CIFAR-10, shapes, small folders) or
as :class:`ImageFiles` (files decoded image by image, for CelebA and large folders). Both satisfy
:class:`ImageSet`. The Trainer turns either into batches of float images in [-1, 1] with
:func:`make_loader`: a :class:`DeviceLoader`, which keeps the whole set on the training device,
or a :class:`FileLoader`, whose DataLoader workers decode the files.
"""

from __future__ import annotations

from .datasets import DATASETS, load_dataset
from .images import ImageDataset, ImageFiles, ImageSet
from .loader import DeviceLoader, FileLoader, Loader, make_loader
from .real import DEFAULT_DATA_ROOT
from .shapes import SHAPE_CLASSES, make_shapes

__all__ = [
    "DATASETS", "DEFAULT_DATA_ROOT", "SHAPE_CLASSES", "DeviceLoader", "FileLoader", "ImageDataset", "ImageFiles",
    "ImageSet", "Loader", "load_dataset", "make_loader", "make_shapes",
]
