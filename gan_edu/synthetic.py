"""Synthetic data from an exported generator, for training classifier c'.

The generator is used the way an app would use it: through its ONNX file and onnxruntime
(:class:`~gan_edu.export.runtime.OnnxGenerator`), not through PyTorch. Two ways to feed c':

* a fixed pool: :func:`sample_pool` draws ``n`` images with balanced labels once, as an
  :class:`~gan_edu.data.ImageDataset` (uint8, like any real set), which can be saved to and
  loaded from ``.npz`` (:func:`save_pool`, :func:`load_pool`); :func:`sample_ensemble_pool`
  draws it from several generators at once (the EMA snapshots of one run: a snapshot ensemble);
* a stream: :class:`FreshSyntheticLoader` draws a new balanced set every epoch (seeded by
  ``(seed, epoch)``, so a resumed run sees the same images), a chunk at a time just before
  use, so its memory stays bounded however many images an epoch has.

Labels are the classes the images were generated FOR: that is the c' experiment's premise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from .data.images import ImageDataset
from .data.loader import Batch, Loader
from .errors import GanEduError, check
from .export.runtime import OnnxGenerator, _latent_batches
from .io import atomic_open


def balanced_labels(n: int, num_classes: int, *, seed: int = 0) -> np.ndarray:
    """``n`` labels, every class ``n // K`` or ``n // K + 1`` times, in a seeded random order."""
    labels = np.arange(n) % num_classes
    np.random.default_rng(seed).shuffle(labels)
    return labels.astype(np.int64)


def _as_generator(generator: OnnxGenerator | str | Path) -> OnnxGenerator:
    g = generator if isinstance(generator, OnnxGenerator) else OnnxGenerator(generator)
    check(g.num_classes is not None, f"{g}: an unconditional generator cannot make a labelled data set; expected a conditional model or a per-class bank")
    return g


def sample_images(generator: OnnxGenerator, labels: np.ndarray, *, seed: int, batch_size: int = 512, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` images for ``labels`` on ``device``, streamed through onnxruntime in batches.

    With onnxruntime's CUDA provider and a CUDA ``device``, onnxruntime reads the noise from and
    writes the images into torch's GPU memory (IO binding on torch's buffers) and the uint8
    conversion runs there too: nothing crosses to the host but the noise. Elsewhere the images
    are made on the host and moved. The noise is the same either way (``OnnxGenerator.iter_sample``'s).
    """
    device = torch.device(device)
    if device.type == "cuda" and writes_to_cuda(generator, device):
        return sample_into_torch(generator, labels, seed=seed, batch_size=batch_size, device=device)
    c, h, w = generator.image_shape
    out = np.empty((len(labels), c, h, w), dtype=np.uint8)
    start = 0
    for batch in generator.iter_sample(len(labels), labels, seed=seed, batch_size=batch_size):
        pictures = generator.to_uint8(batch)  # (B, H, W, C) uint8
        out[start : start + len(batch)] = pictures.transpose(0, 3, 1, 2)  # (B, C, H, W)
        start += len(batch)
    return torch.from_numpy(out).to(device)


def writes_to_cuda(generator: OnnxGenerator, device: torch.device) -> bool:
    """Whether ``generator`` can write straight into torch's memory on ``device``: one graph (not a
    bank) on onnxruntime's CUDA provider, on the same GPU (the provider's device 0), any batch size."""
    member = generator.sessions[0]
    return (
        not generator.is_bank and member.on_cuda and (device.index or 0) == 0 and member.fixed_batch is None and torch.cuda.is_available()
    )


def sample_into_torch(generator: OnnxGenerator, labels: np.ndarray, *, seed: int, batch_size: int, device: torch.device) -> torch.Tensor:
    """:func:`sample_images` with onnxruntime bound to torch's buffers on ``device`` (the GPU path;
    on the CPU, with the CPU provider, the same code, which tests check); the host path's noise."""
    from .export.exporter import to_uint8

    label_array = generator.check_labels(labels, len(labels))
    c, h, w = generator.image_shape
    out = torch.empty((len(labels), c, h, w), dtype=torch.uint8, device=device)
    uint8_graph = generator.output == "uint8"
    buffer = torch.empty((batch_size, *generator.info.output_shape), dtype=torch.uint8 if uint8_graph else torch.float32, device=device)
    start = 0
    for z in _latent_batches(len(labels), generator.latent_dim, batch_size, seed):
        n = len(z)
        z_t = torch.from_numpy(np.ascontiguousarray(z, np.float32)).to(device)
        l_t = None if label_array is None else torch.from_numpy(label_array[start : start + n]).to(device)
        generator.sessions[0].run_torch(z_t, l_t, buffer[:n])
        pictures = buffer[:n] if uint8_graph else to_uint8(buffer[:n])  # (n, H, W, C) uint8
        out[start : start + n] = pictures.permute(0, 3, 1, 2)
        start += n
    return out


def sample_pool(
    generator: OnnxGenerator | str | Path, n: int, *, seed: int = 0, batch_size: int = 512, device: torch.device | str = "cpu"
) -> ImageDataset:
    """A fixed synthetic data set of ``n`` images with balanced labels.

    Args:
        generator: an exported conditional generator or bank (an :class:`OnnxGenerator` or its path).
        n: images in all (>= 1).
        seed: seeds both the labels' order and the noise.
        batch_size: images per onnxruntime call; memory stays bounded by it plus the uint8 pool.
        device: where the images are made (CUDA: on the GPU with onnxruntime's CUDA provider, see
            :func:`sample_images`); the pool itself is kept in host memory, like a real set.
    """
    g = _as_generator(generator)
    check(isinstance(n, int) and n > 0, f"n={n!r}: expected a positive int")
    labels = balanced_labels(n, g.num_classes or 0, seed=seed)
    images = sample_images(g, labels, seed=seed, batch_size=batch_size, device=device)
    return ImageDataset(
        "synthetic", images.cpu(), torch.from_numpy(labels), tuple(g.class_names),
        {"source": str(getattr(g, "path", "")), "n": n, "seed": seed},
    )


def sample_ensemble_pool(
    generators: list[OnnxGenerator], n: int, *, seed: int = 0, batch_size: int = 512, device: torch.device | str = "cpu"
) -> ImageDataset:
    """A fixed synthetic set of ``n`` images drawn from several generators (a snapshot ensemble).

    Each generator makes an equal share (balanced labels in each), with its own seed; the shares
    are shuffled together in a seeded order, so any prefix of the pool mixes all members.

    Args:
        generators: exported conditional generators with the same classes and image shape (e.g.
            the EMA snapshots of one run, ``GANTrainerConfig.snapshots``).
        n: images in all (>= the number of generators).
        seed: seeds the labels, the noise (``seed + i`` for member ``i``) and the final order.
    """
    check(len(generators) >= 1 and n >= len(generators), f"{len(generators)} generators for n={n} images: expected at least one image per generator")
    first = generators[0]
    for g in generators[1:]:
        check(tuple(g.class_names) == tuple(first.class_names) and tuple(g.image_shape) == tuple(first.image_shape),
              f"{g}: classes {g.class_names} and image shape {g.image_shape}; expected those of {first} in one ensemble")
    shares = [n // len(generators) + (i < n % len(generators)) for i in range(len(generators))]
    parts = [sample_pool(g, k, seed=seed + i, batch_size=batch_size, device=device) for i, (g, k) in enumerate(zip(generators, shares))]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return ImageDataset(
        "synthetic", torch.cat([p.images for p in parts])[order], torch.cat([p.labels for p in parts])[order], tuple(first.class_names),
        {"source": [str(getattr(g, "path", "")) for g in generators], "n": n, "seed": seed, "ensemble": len(generators)},
    )


def save_pool(pool: ImageDataset, path: str | Path) -> Path:
    """Write a pool as ``.npz`` (``images`` uint8 NCHW, ``labels`` int64, ``class_names``), atomically."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        np.savez_compressed(
            f, images=pool.images.numpy(), labels=pool.labels.numpy(), class_names=np.array(pool.class_names),
        )
    return path


def load_pool(path: str | Path) -> ImageDataset:
    """Read a pool written by :func:`save_pool` (no pickles: ``allow_pickle=False``)."""
    path = Path(path)
    check(path.is_file(), f"{path}: no such file; expected a .npz pool written by save_pool")
    try:
        with np.load(path, allow_pickle=False) as data:
            images, labels, names = data["images"], data["labels"], [str(s) for s in data["class_names"]]
    except (ValueError, KeyError, OSError) as e:
        raise GanEduError(f"{path}: not a synthetic pool ({e})") from None
    return ImageDataset("synthetic", torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), tuple(names), {"pool": str(path)})


class FreshSyntheticLoader(Loader):
    """A stream: every epoch, ``n`` new balanced images from the generator, in batches on ``device``.

    Images are drawn ``chunk_images`` at a time, just before they are used, so memory stays
    bounded (one chunk of uint8 images, plus the epoch's ``n`` labels) however large ``n`` is:
    a stream of 5x the real set costs no more memory than one of 1x. Epoch ``e`` draws its labels
    from seed ``seed * 1_000_003 + e`` and each chunk its noise from a seed of its own, so every
    epoch sees images no earlier epoch saw, and any batch is reproducible (resume is exact).

    Args:
        generator: an exported conditional generator or bank.
        n: images per epoch (>= ``batch_size``).
        batch_size: images per batch.
        device: where batches are made.
        seed: fixes every epoch's labels, noise and flips.
        flip: random horizontal flips.
        chunk_images: images drawn per onnxruntime burst (rounded to whole batches).
    """

    def __init__(
        self, generator: OnnxGenerator | str | Path, n: int, batch_size: int, *, device: torch.device | str = "cpu", seed: int = 0,
        flip: bool = False, chunk_images: int = 4096,
    ) -> None:
        self.generator = _as_generator(generator)
        check(isinstance(n, int) and n >= batch_size, f"n={n!r}: expected an int >= batch_size ({batch_size})")
        check(isinstance(chunk_images, int) and chunk_images > 0, f"chunk_images={chunk_images!r}: expected a positive int")
        shape = (0, *self.generator.image_shape)
        placeholder = ImageDataset("synthetic", torch.zeros(shape, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64), tuple(self.generator.class_names), {"fresh": True, "n": n, "seed": seed})
        super().__init__(placeholder, batch_size, device=device, seed=seed, flip=flip, drop_last=False)  # the set is drawn as it goes
        self.n = n
        self.chunk_batches = max(1, chunk_images // batch_size)

    def __len__(self) -> int:
        return self.n // self.batch_size

    def epoch_labels(self, epoch: int) -> np.ndarray:
        """The ``(n,)`` labels of ``epoch``, balanced, in random order."""
        return balanced_labels(self.n, self.generator.num_classes or 0, seed=self.seed * 1_000_003 + epoch)

    def chunk_seed(self, epoch: int, first_batch: int) -> int:
        """The noise seed of the chunk that starts at batch ``first_batch`` of ``epoch``."""
        return (self.seed * 1_000_003 + epoch) * 1_000_033 + first_batch

    def epoch_data(self, epoch: int) -> ImageDataset:
        """All images of ``epoch`` at once (for a look, or tests; training streams them)."""
        images, labels = [], []
        for batch_images, batch_labels in self._chunks(epoch, 0):
            images.append(batch_images)
            labels.append(batch_labels)
        return ImageDataset("synthetic", torch.cat(images), torch.cat(labels), self.dataset.class_names, {"epoch": epoch})

    def _chunks(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """uint8 ``(B', C, H, W)`` images and ``(B',)`` labels of each chunk from the one holding batch ``start``."""
        labels = self.epoch_labels(epoch)
        first = start - start % self.chunk_batches
        for b0 in range(first, len(self), self.chunk_batches):
            rows = slice(b0 * self.batch_size, min(b0 + self.chunk_batches, len(self)) * self.batch_size)
            images = sample_images(self.generator, labels[rows], seed=self.chunk_seed(epoch, b0), device=self.device)  # (B', C, H, W) uint8
            yield images, torch.from_numpy(labels[rows])

    def iterate(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        flips = (torch.rand(self.n, generator=g) < 0.5).to(self.device) if self.flip else None
        b0 = start - start % self.chunk_batches
        for images, labels in self._chunks(epoch, start):
            images, labels = images.to(self.device), labels.to(self.device)
            for b in range(max(b0, start), b0 + len(labels) // self.batch_size):
                rows = slice((b - b0) * self.batch_size, (b - b0 + 1) * self.batch_size)  # within the chunk
                epoch_rows = slice(b * self.batch_size, (b + 1) * self.batch_size)
                yield self.finish(images[rows], None if flips is None else flips[epoch_rows]), labels[rows]
            b0 += self.chunk_batches
