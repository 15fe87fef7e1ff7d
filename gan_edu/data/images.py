"""The two kinds of labelled image set, and the small protocol both satisfy.

* :class:`ImageDataset`: every image decoded once into one uint8 tensor ``(N, C, H, W)``. Sets
  that fit in memory (MNIST, Fashion-MNIST, CIFAR-10, shapes, small folders) are held this way,
  and :class:`~gan_edu.data.loader.DeviceLoader` keeps them on the training device.
* :class:`ImageFiles`: a list of image files and their labels, decoded (cropped, resized) one
  image at a time when a batch needs it. Sets too large for memory (CelebA, large folders) are
  held this way, and :class:`~gan_edu.data.loader.FileLoader` decodes them in worker processes.

Whatever takes training data (the loaders, the Trainer, a run's ``config.json``) needs only what
:class:`ImageSet` lists, so either kind can be used anywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from ..errors import GanEduError, check
from .workers import default_num_workers, worker_batches


@runtime_checkable
class ImageSet(Protocol):
    """What every labelled image set offers, in memory or on disk.

    Attributes:
        name: registry name (``"cifar10"``, ``"celeba"``...).
        labels: int64 tensor ``(N,)`` with values in ``[0, num_classes)``.
        class_names: one name per class.
        options: how it was loaded: ``load_dataset(name, split, **options)`` loads it again.
    """

    name: str
    labels: torch.Tensor
    class_names: tuple[str, ...]
    options: dict[str, Any]

    def __len__(self) -> int: ...

    @property
    def image_shape(self) -> tuple[int, int, int]: ...

    @property
    def num_classes(self) -> int: ...

    def class_counts(self) -> list[int]: ...

    def subset(self, classes: Sequence[int]) -> ImageSet: ...


def _check_classes(classes: Sequence[int], num_classes: int) -> torch.Tensor:
    """``classes`` as a tensor, each checked to be a class index."""
    check(len(classes) > 0, "classes=[]: expected at least one class")
    for c in classes:
        check(isinstance(c, int) and 0 <= c < num_classes, f"class {c!r}: expected a class in [0, {num_classes - 1}]")
    return torch.as_tensor(list(classes), dtype=torch.int64)


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
        keep = torch.isin(self.labels, _check_classes(classes, self.num_classes))
        return dataclasses.replace(self, images=self.images[keep], labels=self.labels[keep], options={**self.options, "classes": list(classes)})


@dataclasses.dataclass(frozen=True, eq=False)
class ImageFiles:
    """A labelled set of image files, decoded one at a time: centre crop, resize, uint8.

    Each image is read with PIL, converted to RGB (or grey), centre-cropped to a ``crop`` x
    ``crop`` square (the shorter side when ``crop`` is None), and resized to ``size`` x
    ``size`` with antialiasing; the float conversion to [-1, 1] and the flips happen later,
    on the training device, exactly as for :class:`ImageDataset`.

    It is a map-style data set for ``torch.utils.data.DataLoader``: ``files[i]`` is
    ``(image, label)`` with ``image`` a uint8 tensor ``(C, size, size)``.

    Attributes:
        name: registry name (``"celeba"``, ``"folder"``).
        paths: one file path per image.
        labels: int64 tensor ``(N,)``.
        class_names: one name per class.
        size: side of the square images produced.
        channels: 3 (RGB) or 1 (grey).
        crop: side of the centre square cut before resizing (178 for CelebA); None: the shorter side.
        options: how it was loaded, recorded in a run's config.json.
    """

    name: str
    paths: tuple[str, ...]
    labels: torch.Tensor
    class_names: tuple[str, ...]
    size: int = 64
    channels: int = 3
    crop: int | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check(self.labels.shape == (len(self.paths),), f"labels of shape {tuple(self.labels.shape)}: expected ({len(self.paths)},)")
        check(isinstance(self.size, int) and self.size >= 4, f"size={self.size!r}: expected an int >= 4")
        check(self.channels in (1, 3), f"channels={self.channels!r}: expected 1 or 3")
        check(self.crop is None or (isinstance(self.crop, int) and self.crop > 0), f"crop={self.crop!r}: expected a positive int or None")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> list[int]:
        """Number of images of each class."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def subset(self, classes: Sequence[int]) -> ImageFiles:
        """Only the images of ``classes`` (labels kept as they are)."""
        keep = torch.isin(self.labels, _check_classes(classes, self.num_classes))
        paths = tuple(p for p, k in zip(self.paths, keep.tolist()) if k)
        return dataclasses.replace(self, paths=paths, labels=self.labels[keep], options={**self.options, "classes": list(classes)})

    def read(self, index: int) -> torch.Tensor:
        """Image ``index`` decoded: uint8 ``(C, size, size)``."""
        from PIL import Image, UnidentifiedImageError
        from torchvision.transforms import functional as TF

        path = self.paths[index]
        try:
            with Image.open(path) as file:
                image = file.convert("RGB" if self.channels == 3 else "L")
        except (OSError, UnidentifiedImageError) as e:
            raise GanEduError(f"{path}: not a readable image ({type(e).__name__}); expected an image file PIL can open") from None
        side = self.crop if self.crop is not None else min(image.size)
        image = TF.center_crop(image, [side, side])  # (side, side): the centre square
        image = TF.resize(image, [self.size, self.size], antialias=True)  # (size, size)
        return TF.pil_to_tensor(image)  # (C, size, size) uint8

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.read(index), int(self.labels[index])

    def load(self, *, num_workers: int | None = None) -> ImageDataset:
        """Decode every image once into an :class:`ImageDataset` (workers decode in parallel)."""
        check(len(self) > 0, f"{self.name}: no images to load")
        images = torch.empty(len(self), *self.image_shape, dtype=torch.uint8)  # (N, C, size, size)
        at = 0
        for x, _ in worker_batches(self, list(range(len(self))), 256, num_workers=default_num_workers() if num_workers is None else num_workers):
            images[at : at + len(x)] = x
            at += len(x)
        return ImageDataset(self.name, images, self.labels.clone(), self.class_names, {**self.options})
