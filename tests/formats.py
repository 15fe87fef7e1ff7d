"""Small data sets written in the real on-disk formats that torchvision reads.

Each writer makes a few images in the exact layout of the original release, so the tests load
them through the same code path as a user's call. The files differ from the originals, so their
md5 differs too: tests of CIFAR-10 and CelebA pass ``verify_checksums=False``.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(root: Path, per_batch: int = 10, n_test: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """``root/cifar-10-batches-py/``: data_batch_1..5, test_batch, batches.meta as python pickles.

    Labels cycle 0..9 (so with 10 per batch: 5 train and 1 test image per class). Returns the
    ``data`` rows (N, 3072: R plane, G plane, B plane) of the train and test split.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for name, n, split in [*((f"data_batch_{i}", per_batch, "train") for i in range(1, 6)), ("test_batch", n_test, "test")]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        entry = {"batch_label": name, "labels": [i % 10 for i in range(n)], "data": data, "filenames": [f"img_{i}.png" for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)  # the release's pickles are protocol 2
        rows[split].append(data)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"num_cases_per_batch": per_batch, "label_names": CIFAR_CLASSES, "num_vis": 3072}, f, protocol=2)
    return {k: np.concatenate(v) for k, v in rows.items()}


def tar_cifar10(src: Path, dest_root: Path) -> Path:
    """``dest_root/cifar-10-python.tar.gz`` holding ``cifar-10-batches-py/`` of ``src``, as released."""
    dest_root.mkdir(parents=True, exist_ok=True)
    archive = dest_root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive


def _idx_bytes(array: np.ndarray) -> bytes:
    """The idx format: 0, 0, type 0x08 (uint8), ndim; then each dim big-endian int32; then the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">i", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 20, n_test: int = 10, gz: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """``root/FOLDER/raw/``: the four idx files (``.gz`` when ``gz``). Labels cycle 0..9."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    images = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images[prefix] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        for name, array in ((f"{prefix}-images-idx3-ubyte", images[prefix]), (f"{prefix}-labels-idx1-ubyte", labels)):
            if gz:
                with gzip.open(raw / f"{name}.gz", "wb") as f:
                    f.write(_idx_bytes(array))
            else:
                (raw / name).write_bytes(_idx_bytes(array))
    return images


def face(number: int, size: tuple[int, int] = (178, 218)) -> Image.Image:
    """A CelebA-sized (178x218) JPEG-able image: blue in the centre 178x178, red bands above and below."""
    w, h = size
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[:, :, 0] = 230  # red everywhere...
    band = (h - w) // 2
    a[band : h - band, :, 0] = 10  # ...but the centre square is blue
    a[band : h - band, :, 2] = 230
    a[band : h - band, : number % 7 + 1, 1] = 255  # something that differs between images
    return Image.fromarray(a)


#: Numbered like the release: 1..162770 train, 162771..182637 valid, 182638..202599 test.
CELEBA_NUMBERS = (1, 2, 3, 4, 162_771, 182_638, 182_639)


def write_celeba_jpegs(folder: Path, numbers: tuple[int, ...] = CELEBA_NUMBERS) -> None:
    """``folder/000001.jpg ...``: the common ``img_align_celeba/`` folder of JPEGs."""
    folder.mkdir(parents=True)
    for n in numbers:
        face(n).save(folder / f"{n:06d}.jpg", quality=95)


def write_celeba_torchvision(root: Path, partition: dict[int, int]) -> None:
    """torchvision's layout ``root/celeba/``: ``img_align_celeba/`` and the five ``list_*.txt`` files.

    Args:
        partition: image number to 0 (train), 1 (valid) or 2 (test).
    """
    base = root / "celeba"
    write_celeba_jpegs(base / "img_align_celeba", tuple(partition))
    names = [f"{n:06d}.jpg" for n in partition]
    count = f"{len(names)}\n"
    (base / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(names, partition.values())))
    (base / "identity_CelebA.txt").write_text("".join(f"{f} {i + 1}\n" for i, f in enumerate(names)))
    (base / "list_attr_celeba.txt").write_text(count + "Male Smiling\n" + "".join(f"{f}  1 -1\n" for f in names))
    (base / "list_bbox_celeba.txt").write_text(count + "image_id x_1 y_1 width height\n" + "".join(f"{f} 95 71 226 313\n" for f in names))
    (base / "list_landmarks_align_celeba.txt").write_text(
        count + "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n"
        + "".join(f"{f} 69 109 106 113 77 142 73 152 108 154\n" for f in names)
    )


def write_image_tree(root: Path) -> None:
    """A class-folder tree: ``root/cat/`` (3 PNGs of mixed sizes and modes), ``root/dog/`` (2 JPEGs)."""
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(root / "cat" / "a.png")
    Image.new("RGBA", (20, 20), (10, 200, 10, 128)).save(root / "cat" / "b.png")
    Image.new("L", (50, 64), 90).save(root / "cat" / "c.png")
    Image.new("RGB", (64, 64), (10, 10, 200)).save(root / "dog" / "a.jpg")
    Image.new("RGB", (33, 17), (250, 250, 250)).save(root / "dog" / "b.JPEG")
    (root / "dog" / "notes.txt").write_text("not an image")


def write_installed_package(site: Path, module: str, source: str, entry_points: dict[str, dict[str, str]]) -> Path:
    """A package as pip installs it into ``site``: ``module.py`` holding ``source``, and its
    dist-info declaring ``entry_points`` (group -> name -> "module:attribute"). Put ``site`` on
    ``sys.path`` and ``importlib.metadata.entry_points`` finds them. Returns ``site``."""
    info = site / f"{module}-1.0.dist-info"
    info.mkdir(parents=True)
    (site / f"{module}.py").write_text(source)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("".join(f"[{g}]\n" + "".join(f"{n} = {v}\n" for n, v in eps.items()) for g, eps in entry_points.items()))
    return site
