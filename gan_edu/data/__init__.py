"""Data: the data set registry and the loaders the Trainer draws batches from.

Every data set is loaded by :func:`load_dataset` into an :class:`ImageDataset`: uint8 images of
shape ``(N, C, H, W)``, int64 labels ``(N,)`` and the class names. The Trainer turns it into
batches of float images in [-1, 1] with :class:`DeviceLoader`, which keeps the whole set on the
training device.
"""

from __future__ import annotations

from .datasets import DATASETS, ImageDataset, load_dataset
from .loader import DeviceLoader
from .shapes import SHAPE_CLASSES, make_shapes

__all__ = ["DATASETS", "SHAPE_CLASSES", "DeviceLoader", "ImageDataset", "load_dataset", "make_shapes"]
