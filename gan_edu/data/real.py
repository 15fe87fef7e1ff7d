"""The real data sets, read from ``data_root`` by torchvision's dataset classes.

=================  =====================================  ===========================  ============
name               files under ``data_root``                  images (train / test)        held as
=================  =====================================  ===========================  ============
``mnist``          ``MNIST/raw/*-ubyte`` (or ``.gz``)     60,000 / 10,000, 1x28x28     ImageDataset
``fashion-mnist``  ``FashionMNIST/raw/*-ubyte`` (or .gz)  60,000 / 10,000, 1x28x28     ImageDataset
``cifar10``        ``cifar-10-batches-py/``               50,000 / 10,000, 3x32x32     ImageDataset
``celeba``         ``celeba/img_align_celeba/*.jpg``      162,770 / 19,962, 3x64x64    ImageFiles
``folder``         ``data_root`` itself: any images        all / ``test/`` if present  either
=================  =====================================  ===========================  ============

When the files are missing, torchvision downloads them (``download=True``, the default); when
that fails (no network, a host over quota) the loader stops with one line that says which files
to put where. Nothing is downloaded at import time.

Checksums: torchvision checks the md5 of the CIFAR-10 and CelebA files against the originals.
``verify_checksums=False`` (Python only, not on the command line) skips that check; it exists so
the test suite can load small files written in the same formats, and users never need it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import pickle
import re
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..errors import GanEduError, check
from ..io import atomic_open
from .images import ImageDataset, ImageFiles

#: Where real data sets live unless ``data_root`` (``--data-root``) says otherwise.
DEFAULT_DATA_ROOT = "~/.cache/gan-edu/data"

#: Decode a folder into memory (and keep it on the device) when its uint8 images take at most this.
IN_MEMORY_BYTES = 1 << 30

T = TypeVar("T")


def resolve_root(data_root: str | Path | None) -> Path:
    """``data_root`` (default :data:`DEFAULT_DATA_ROOT`) as an absolute path, ``~`` expanded."""
    return Path(data_root if data_root is not None else DEFAULT_DATA_ROOT).expanduser().resolve()


def _short(e: BaseException) -> str:
    """An exception as a short one-line reason."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:150]}" if text else type(e).__name__


#: What torchvision's readers raise on missing, truncated or corrupt files: its own RuntimeError,
#: the idx reader's assert on a bad header, a pickle or archive that does not parse, a short read.
FILE_ERRORS = (RuntimeError, AssertionError, ValueError, EOFError, OSError, IndexError, KeyError, TypeError, pickle.UnpicklingError, tarfile.TarError, zipfile.BadZipFile)


def open_torchvision(what: str, make: Callable[[bool], T], *, download: bool, files: list[Path], put: str) -> T:
    """Open a torchvision data set, downloading when allowed; any failure becomes one line.

    Args:
        what: the data set's name, for the message.
        make: ``make(download)`` builds the torchvision data set.
        download: try downloading when the files are missing.
        files: the files torchvision needs, to tell "missing" from "corrupt".
        put: what the message tells the user to put where.
    """
    try:
        return make(False)
    except FILE_ERRORS as e:  # torchvision: "Dataset not found or corrupted", or a reader choking on a bad file
        local = e
    missing = [f for f in files if not f.exists()]
    if not missing:  # all there, yet refused: a checksum (or format) failure
        raise GanEduError(
            f"{what}: the files in {files[0].parent} fail torchvision's check ({_short(local)}): corrupt or not the "
            f"original release; replace them: {put}"
        )
    if download:
        chatter = io.StringIO()  # downloaders print progress to stdout: shown only on success
        try:
            with contextlib.redirect_stdout(chatter):
                result = make(True)
        except Exception as e:  # offline, blocked, host over quota, a downloader not installed: all alike here
            reason = f"download failed ({_short(e)})"
        else:
            sys.stderr.write(chatter.getvalue())
            return result
    else:
        reason = "download is off"
    raise GanEduError(f"{what}: {missing[0]} not found and {reason}; {put}")


# -- MNIST and Fashion-MNIST ------------------------------------------------------------------
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _gunzip_missing(raw: Path) -> None:
    """Unpack ``NAME.gz`` into ``NAME`` where only the ``.gz`` is there (as torchvision's download does)."""
    for name in MNIST_FILES:
        if not (raw / name).is_file() and (raw / f"{name}.gz").is_file():
            with gzip.open(raw / f"{name}.gz", "rb") as src, atomic_open(raw / name, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _load_idx(klass_name: str, name: str, class_names: tuple[str, ...], split: str, data_root: str | Path | None, download: bool, page: str) -> ImageDataset:
    import torchvision

    klass = getattr(torchvision.datasets, klass_name)
    root = resolve_root(data_root)
    raw = root / klass_name / "raw"
    _gunzip_missing(raw)
    put = f"put {', '.join(MNIST_FILES)} (or the same with .gz, from {page}) in {raw}/, or point --data-root at the folder that holds {klass_name}/"
    tv = open_torchvision(name, lambda dl: klass(str(root), train=split == "train", download=dl), download=download, files=[raw / f for f in MNIST_FILES], put=put)
    images = tv.data[:, None].contiguous()  # (N, 28, 28) -> (N, 1, 28, 28) uint8
    labels = torch.as_tensor(tv.targets, dtype=torch.int64)  # (N,)
    return ImageDataset(name, images, labels, class_names, {"split": split, "data_root": str(root), "download": download})


def load_mnist(split: str = "train", *, data_root: str | Path | None = None, download: bool = True) -> ImageDataset:
    """MNIST digits, 1x28x28, classes ``"0"`` to ``"9"``, through ``torchvision.datasets.MNIST``."""
    names = tuple(str(d) for d in range(10))
    return _load_idx("MNIST", "mnist", names, split, data_root, download, "https://ossci-datasets.s3.amazonaws.com/mnist/")


def load_fashion_mnist(split: str = "train", *, data_root: str | Path | None = None, download: bool = True) -> ImageDataset:
    """Fashion-MNIST, 1x28x28, ten kinds of clothing, through ``torchvision.datasets.FashionMNIST``."""
    import torchvision

    names = tuple(torchvision.datasets.FashionMNIST.classes)
    return _load_idx("FashionMNIST", "fashion-mnist", names, split, data_root, download, "https://github.com/zalandoresearch/fashion-mnist")


# -- CIFAR-10 ---------------------------------------------------------------------------------
def _cifar10_class(verify_checksums: bool) -> type:
    """torchvision's CIFAR10, or (tests only) a subclass whose file list carries no md5 to check."""
    from torchvision.datasets import CIFAR10

    if verify_checksums:
        return CIFAR10

    class CIFAR10Unverified(CIFAR10):
        """CIFAR10 that checks the files exist but not their md5 (``verify_checksums=False``)."""

        tgz_md5 = None  # type: ignore[assignment]
        train_list = [[name, None] for name, _ in CIFAR10.train_list]
        test_list = [[name, None] for name, _ in CIFAR10.test_list]
        meta = {**CIFAR10.meta, "md5": None}

    return CIFAR10Unverified


def load_cifar10(split: str = "train", *, data_root: str | Path | None = None, download: bool = True, verify_checksums: bool = True) -> ImageDataset:
    """CIFAR-10, 3x32x32, ten classes, through ``torchvision.datasets.CIFAR10``.

    Args:
        split: ``"train"`` (data_batch_1..5) or ``"test"`` (test_batch).
        data_root: the folder that holds ``cifar-10-batches-py/`` (or ``cifar-10-python.tar.gz``).
        download: download when missing.
        verify_checksums: check the files' md5 (keep True; False is for the tests' small files).
    """
    root = resolve_root(data_root)
    klass = _cifar10_class(verify_checksums)
    folder = root / klass.base_folder
    names = [n for n, _ in klass.train_list + klass.test_list] + [klass.meta["filename"]]
    put = (
        f"put data_batch_1..5, test_batch and batches.meta (from {klass.filename}, {klass.url}) in {folder}/, "
        f"or the archive itself in {root}/ with download on, or point --data-root at the folder that holds {klass.base_folder}/"
    )
    tv = open_torchvision("cifar10", lambda dl: klass(str(root), train=split == "train", download=dl), download=download, files=[folder / n for n in names], put=put)
    images = torch.from_numpy(tv.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32) uint8
    labels = torch.as_tensor(tv.targets, dtype=torch.int64)  # (N,)
    options = {"split": split, "data_root": str(root), "download": download, "verify_checksums": verify_checksums}
    return ImageDataset("cifar10", images, labels, tuple(tv.classes), options)


# -- CelebA -----------------------------------------------------------------------------------
CELEBA_TEXT_FILES = ("list_eval_partition.txt", "identity_CelebA.txt", "list_attr_celeba.txt", "list_bbox_celeba.txt", "list_landmarks_align_celeba.txt")
#: The official partition by image number: 1-162770 train, 162771-182637 valid, 182638-202599 test.
CELEBA_FIRST = {"train": 1, "valid": 162_771, "test": 182_638}
CELEBA_LAST = {"train": 162_770, "valid": 182_637, "test": 202_599}


def _celeba_class(verify_checksums: bool) -> type:
    """torchvision's CelebA, or (tests only) a subclass whose file list carries no md5 to check."""
    from torchvision.datasets import CelebA

    if verify_checksums:
        return CelebA

    class CelebAUnverified(CelebA):
        """CelebA that checks the files exist but not their md5 (``verify_checksums=False``)."""

        file_list = [(file_id, None, name) for file_id, _, name in CelebA.file_list]

    return CelebAUnverified


def _numbered_split(folder: Path, split: str) -> list[Path]:
    """The JPEGs of ``folder`` in ``split`` by the official numbering (``000001.jpg``...)."""
    first, last = CELEBA_FIRST[split], CELEBA_LAST[split]
    chosen = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        check(
            re.fullmatch(r"\d+", path.stem) is not None,
            f"{path}: not a numbered CelebA image (000001.jpg...); for other images use --dataset folder",
        )
        if first <= int(path.stem) <= last:
            chosen.append(path)
    return chosen


def load_celeba(
    split: str = "train",
    *,
    data_root: str | Path | None = None,
    download: bool = True,
    verify_checksums: bool = True,
    size: int = 64,
    crop: int = 178,
    in_memory: bool = False,
) -> ImageFiles | ImageDataset:
    """CelebA aligned faces, centre-cropped to 178x178 and resized to ``size`` (DCGAN's 64x64).

    One class, ``"face"``. Split by the official partition (``valid`` is not used).
    Looked for, in order: torchvision's layout ``DATA_ROOT/celeba/`` (``img_align_celeba/`` and
    the five ``list_*.txt`` files, read by ``torchvision.datasets.CelebA``); the JPEG folder
    alone, ``DATA_ROOT/celeba/img_align_celeba/`` or ``DATA_ROOT/img_align_celeba/`` (split by
    file number); then a download through torchvision (Google Drive, often over quota).

    Args:
        in_memory: decode every image once into an :class:`ImageDataset` (about 2.4 GB at 64x64).
    """
    root = resolve_root(data_root)
    base = root / "celeba"
    options = {"split": split, "data_root": str(root), "download": download, "verify_checksums": verify_checksums, "size": size, "crop": crop, "in_memory": in_memory}
    klass = _celeba_class(verify_checksums)
    jpeg_folders = [base / "img_align_celeba", root / "img_align_celeba"]
    have_text = all((base / name).is_file() for name in CELEBA_TEXT_FILES)
    if have_text or not any(f.is_dir() for f in jpeg_folders):  # torchvision's layout, or nothing yet
        put = (
            f"put the aligned JPEGs (unzipped img_align_celeba.zip) as {base}/img_align_celeba/000001.jpg ... "
            f"(the list_*.txt files beside it are optional), or point --data-root at the folder that holds celeba/"
        )
        tv = open_torchvision(
            "celeba", lambda dl: klass(str(root), split=split, target_type=[], download=dl),
            download=download, files=[base / "img_align_celeba"] + [base / n for n in CELEBA_TEXT_FILES], put=put,
        )
        paths = [str(base / "img_align_celeba" / name) for name in tv.filename]
    else:
        folder = next(f for f in jpeg_folders if f.is_dir())
        paths = [str(p) for p in _numbered_split(folder, split)]
        check(len(paths) > 0, f"celeba: no {split} images in {folder} (numbers {CELEBA_FIRST[split]:06d} to {CELEBA_LAST[split]:06d}); expected the aligned CelebA JPEGs")
    files = ImageFiles("celeba", tuple(paths), torch.zeros(len(paths), dtype=torch.int64), ("face",), size=size, crop=crop, options=options)
    return files.load() if in_memory else files


# -- any folder of images -----------------------------------------------------------------------
def _image_files(folder: Path) -> list[Path]:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)


def load_folder(
    split: str = "train",
    *,
    data_root: str | Path | None = None,
    size: int = 64,
    channels: int = 3,
    in_memory: bool | None = None,
) -> ImageFiles | ImageDataset:
    """Any folder of images (``data_root``): class sub-folders when present, else one class.

    ``DIR/train/`` and ``DIR/test/`` are the splits when both exist; otherwise all of ``DIR`` is
    the training split. With class sub-folders (``DIR/cat/*.jpg``, ``DIR/dog/*.jpg``) the
    classes are their sorted names and the images are found as ``torchvision.datasets.ImageFolder``
    finds them (hidden folders skipped; images beside the sub-folders are not used); without
    sub-folders, the one class is the folder's name. Each image is centre-cropped to a square and
    resized to ``size``.

    Args:
        in_memory: decode all images once and keep them on the device; None: when they take at
            most :data:`IN_MEMORY_BYTES` as uint8.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    check(data_root is not None, "folder: no data_root; expected --data-root DIR, the folder of images")
    root = resolve_root(data_root)
    check(root.is_dir(), f"folder: {root} is not a folder; expected --data-root DIR, a folder of images")
    folder = root
    if (root / "train").is_dir() and (root / "test").is_dir():
        folder = root / split
    else:
        check(split == "train", f"folder: {root} has no train/ and test/ sub-folders, so no {split!r} split; all its images are the 'train' split")
    subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subfolders:  # classes: the sorted sub-folder names, files found as torchvision's ImageFolder finds them
        samples = make_dataset(str(folder), {name: i for i, name in enumerate(subfolders)}, IMG_EXTENSIONS, allow_empty=True)
        paths, labels = [p for p, _ in samples], [c for _, c in samples]
        class_names = tuple(subfolders)
    else:
        paths = [str(p) for p in _image_files(folder)]
        labels = [0] * len(paths)
        class_names = (folder.name,)
    check(len(paths) > 0, f"folder: no images in {folder}; expected files ending in .jpg, .png ... (or class sub-folders of them)")
    options = {"split": split, "data_root": str(root), "size": size, "channels": channels, "in_memory": in_memory}
    files = ImageFiles("folder", tuple(paths), torch.as_tensor(labels, dtype=torch.int64), class_names, size=size, channels=channels, options=options)
    if in_memory is None:
        in_memory = len(files) * channels * size * size <= IN_MEMORY_BYTES
    return files.load() if in_memory else files


def load_options(function: Callable[..., Any]) -> list[str]:
    """The keyword options a loader takes (its keyword-only parameters)."""
    import inspect

    return [p.name for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY]
