"""Fast sampling from an exported generator with onnxruntime and numpy: no torch needed.

:class:`OnnxGenerator` loads a gan-edu ``.onnx`` file (or a per-class bank manifest ``.json``),
reads its shapes and class names from the metadata, and samples images::

    from gan_edu_runtime import OnnxGenerator

    g = OnnxGenerator("exported/shapes_cdcgan.onnx")
    images = g.sample(20, labels=[3] * 20, seed=0)   # (20, 1, 32, 32) float32 in [-1, 1]
    pictures = g.to_uint8(images)                     # (20, 32, 32, 1) uint8, ready for PIL

Reproducible noise: ``z`` is drawn with numpy's ``np.random.default_rng(seed).standard_normal``
in float32, one batch after another, so ``g.latent(n, seed=s)`` is exactly the ``z`` that
``g.sample(n, seed=s)`` used, whatever the batch size. To get the same images from the PyTorch
generator, feed it that ``z``: ``G(torch.from_numpy(g.latent(n, seed=s)), labels)``.

Thread safety: ``sample`` may be called from many threads at once. Each call has its own random
generator (seeded from ``seed``) and its own IO binding; the onnxruntime session is shared, and
``InferenceSession.run`` is safe to call concurrently. Session settings, IO binding and the
optimized-graph cache live in :mod:`gan_edu_runtime.session`.

Safety: before onnxruntime sees the file, every tensor stored as external data must point to a
file inside the model's own folder (after resolving ``..`` and symbolic links); anything else is
refused. Nothing in a gan-edu model file runs code.

This module must import without torch and onnx (tests run it in a process where ``import torch`` fails).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import check
from .files import memory_bytes  # noqa: F401  (used below; its old name here kept)
from .safety import check_external_data
from .session import GraphSession, check_providers, cuda_device_count, default_providers, load_bank  # noqa: F401  (re-exported)

#: Default rows per onnxruntime call. The rule: the smallest batch at which the per-call cost is
#: amortized (img/s within a few percent of the best on the CPU, docs/onnx.md), while one batch's
#: activations stay small (256 images of 3x32x32: under 30 MB). :meth:`OnnxGenerator.tune_batch_size`
#: measures instead.
DEFAULT_BATCH_SIZE = 256

Labels = Sequence[int] | np.ndarray | None


class OnnxGenerator:
    """A gan-edu generator exported to ONNX, sampled with onnxruntime.

    Args:
        path: a ``.onnx`` written by ``export_generator`` (or ``gan-edu export``), or the
            ``.json`` manifest of an exported per-class bank.
        providers: onnxruntime execution providers, in order of preference; default CUDA when
            available, else CPU (see :func:`default_providers`).
        intra_op_num_threads: threads per onnxruntime call on the CPU; None: one per physical core
            this process may use (0: onnxruntime's own choice).
        batch_size: rows per onnxruntime call in :meth:`sample` (a graph exported with a fixed
            batch always uses its own).
        cache: load onnxruntime's optimized graph from the cache file next to the model when there
            is one (written by the export, keyed to the model's content; sampling never writes).

    Attributes:
        info: the model's metadata (:class:`~gan_edu_runtime.metadata.GeneratorInfo`).
        latent_dim, num_classes, class_names, image_shape, output: shortcuts into ``info``.
        providers: the providers the sessions really use (CUDA asked for and unable to start is an
            error naming the missing library, never a quiet fall back to the CPU).
        device: ``"cuda"`` when the sessions run on CUDA (and use IO binding), else ``"cpu"``.
        sessions: one :class:`~gan_edu_runtime.session.GraphSession` (a bank: one per class).

    Raises:
        GanEduError: the file is missing, not ONNX, not a gan-edu generator, or unsafe.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        providers: Sequence[str] | None = None,
        intra_op_num_threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cache: bool = True,
    ) -> None:
        check(isinstance(batch_size, int) and batch_size > 0, f"batch_size={batch_size!r}: expected a positive int")
        check(importlib.util.find_spec("onnxruntime") is not None, "onnxruntime is not installed; expected `pip install \"gan-edu-runtime[cpu]\"` (or [gpu])")
        self.path = Path(path)
        self.batch_size = batch_size
        wanted = list(providers) if providers is not None else default_providers()
        check(bool(wanted), "providers=[]: expected at least one onnxruntime execution provider")
        check_providers(wanted)
        check(not self.path.is_dir(), f"{self.path}: a folder; expected an exported gan-edu generator (.onnx) or bank manifest (.json)")
        check(self.path.is_file(), f"{self.path}: no such file; expected an exported gan-edu generator (.onnx) or bank manifest (.json)")
        options = dict(providers=wanted, intra_op_num_threads=intra_op_num_threads, cache=cache)
        if self.path.suffix == ".json":
            self.info, self.sessions = load_bank(self.path, options)
        else:
            check_external_data(self.path)
            member = GraphSession(self.path, **options)
            self.info, self.sessions = member.info, [member]
        self.providers = self.sessions[0].providers
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"

    # -- what the metadata says ---------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.info.latent_dim

    @property
    def num_classes(self) -> int | None:
        return self.info.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        """One name per class (the label numbers as text when the export had no names)."""
        if self.num_classes is None:
            return ()
        return self.info.class_names or tuple(str(k) for k in range(self.num_classes))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return self.info.image_shape

    @property
    def output(self) -> str:
        """``"float"``: ``(N, C, H, W)`` in [-1, 1]; ``"uint8"``: ``(N, H, W, C)`` in [0, 255]."""
        return self.info.output

    @property
    def is_bank(self) -> bool:
        return len(self.sessions) > 1

    def __repr__(self) -> str:
        kind = f"bank of {len(self.sessions)}" if self.is_bank else self.info.model_class
        return f"OnnxGenerator({str(self.path)!r}, {kind}, latent_dim={self.latent_dim}, num_classes={self.num_classes}, image_shape={self.image_shape}, output={self.output!r}, device={self.device!r})"

    # -- noise and labels ---------------------------------------------------------------------
    def latent(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """The ``z`` that ``sample(n, seed=seed)`` uses: ``(n, latent_dim)`` float32 from N(0, I).

        Drawn with ``np.random.default_rng(seed).standard_normal(..., dtype=np.float32)``.
        """
        self.check_fits(n)
        return np.concatenate(list(_latent_batches(n, self.latent_dim, self.batch_size, seed)))

    def balanced_labels(self, n: int) -> np.ndarray | None:
        """Labels ``0, 1, ..., K-1, 0, 1, ...`` (int64) for ``n`` images; None when unconditional."""
        if self.num_classes is None:
            return None
        return np.arange(n, dtype=np.int64) % self.num_classes

    def check_labels(self, labels: Labels, n: int) -> np.ndarray | None:
        """``labels`` as an int64 array of shape ``(n,)``, or raise a one-line GanEduError."""
        if self.num_classes is None:
            check(labels is None, f"labels given to an unconditional generator ({self.path.name}): expected labels=None")
            return None
        if labels is None:
            return self.balanced_labels(n)
        array = np.asarray(labels)
        check(
            array.shape == (n,) and (array.dtype.kind in "iu" or array.size == 0),
            f"labels of shape {array.shape} and dtype {array.dtype}: expected {n} integer labels, shape ({n},)",
        )
        array = array.astype(np.int64)
        if array.size:
            lo, hi = int(array.min()), int(array.max())
            check(lo >= 0 and hi < self.num_classes, f"labels in [{lo}, {hi}]: expected labels in [0, {self.num_classes - 1}] ({self.num_classes} classes)")
        return array

    # -- sampling -----------------------------------------------------------------------------
    def generate(self, z: np.ndarray, labels: Labels = None, *, batch_size: int | None = None) -> np.ndarray:
        """Images for given noise (and labels), in batches.

        Args:
            z: ``(N, latent_dim)`` noise, any float dtype (run as float32).
            labels: ``(N,)`` integer labels for a conditional model (None: balanced).
            batch_size: rows per onnxruntime call; default the constructor's.

        Returns:
            ``(N, C, H, W)`` float32 in [-1, 1], or ``(N, H, W, C)`` uint8 for a uint8 export.
        """
        z = np.asarray(z)
        check(
            z.ndim == 2 and z.shape[1] == self.latent_dim and z.shape[0] > 0 and z.dtype.kind == "f",
            f"z of shape {z.shape} and dtype {z.dtype}: expected float noise of shape (N, {self.latent_dim}) with N >= 1",
        )
        bad = ~np.isfinite(z).all(axis=1)  # (N,): rows holding a NaN or an infinity
        check(not bad.any(), f"z: {int(bad.sum())} of {len(z)} rows hold NaN or inf (first: row {int(np.argmax(bad))}); expected finite noise")
        n = z.shape[0]
        label_array = self.check_labels(labels, n)
        size = self._batch_size(batch_size)
        images = self._empty_images(n)
        for start in range(0, n, size):
            rows = slice(start, start + size)
            self._generate_into(images[rows], z[rows], None if label_array is None else label_array[rows])
        return images

    def iter_sample(
        self, n: int, labels: Labels = None, *, seed: int | None = None, batch_size: int | None = None
    ) -> Iterator[np.ndarray]:
        """:meth:`sample` one batch at a time: memory stays bounded however large ``n`` is.

        Yields:
            Batches of images (at most ``batch_size`` each); their concatenation equals
            ``sample(n, labels, seed=seed)``.
        """
        _check_n(n)
        label_array = self.check_labels(labels, n)
        size = self._batch_size(batch_size)
        start = 0
        for z in _latent_batches(n, self.latent_dim, size, seed):
            rows = slice(start, start + len(z))
            images = self._empty_images(len(z))
            self._generate_into(images, z, None if label_array is None else label_array[rows])
            yield images
            start += len(z)

    def sample(self, n: int, labels: Labels = None, *, seed: int | None = None, batch_size: int | None = None) -> np.ndarray:
        """Generate ``n`` images.

        Args:
            n: how many images (>= 1).
            labels: ``(n,)`` class labels for a conditional model or bank; None: balanced
                (``0, 1, ..., K-1, 0, ...``). Must be None for an unconditional model.
            seed: seed of the noise (None: fresh entropy); see :meth:`latent`.
            batch_size: rows per onnxruntime call; default the constructor's. The result does
                not depend on it.

        Returns:
            ``(n, C, H, W)`` float32 in [-1, 1], or ``(n, H, W, C)`` uint8 for a uint8 export.

        Raises:
            GanEduError: ``n`` is not a positive int, or the labels do not fit the model.
        """
        self.check_fits(n)
        return np.concatenate(list(self.iter_sample(n, labels, seed=seed, batch_size=batch_size)))

    def to_uint8(self, images: np.ndarray) -> np.ndarray:
        """Ready-to-show ``(N, H, W, C)`` uint8 images, whatever this model's output kind.

        Float images in [-1, 1] become ``round((x + 1) * 127.5)`` clamped to [0, 255], the same
        arithmetic as a uint8 export's graph.
        """
        if self.output == "uint8":
            return np.asarray(images)
        return float_to_uint8(images)

    # -- internals ----------------------------------------------------------------------------
    def check_fits(self, n: int) -> None:
        """Raise a one-line GanEduError unless ``n`` images (with their noise and labels) fit in memory at once.

        :meth:`sample` and :meth:`latent` hold all ``n`` at once; :meth:`iter_sample` does not.
        """
        _check_n(n)
        total = memory_bytes()
        row = 4 * self.latent_dim + 8 + int(np.prod(self.info.output_shape)) * (1 if self.output == "uint8" else 4)
        check(
            total is None or n * row <= total,
            f"n={n}: {n * row / 1e9:,.0f} GB of images at once, more than this machine's {(total or 0) / 1e9:.0f} GB of memory; "
            "expected a smaller n (iter_sample draws any number batch by batch)",
        )

    def _batch_size(self, batch_size: int | None) -> int:
        size = self.batch_size if batch_size is None else batch_size
        check(isinstance(size, int) and size > 0, f"batch_size={size!r}: expected a positive int")
        return size

    def tune_batch_size(self, candidates: Sequence[int] = (32, 64, 128, 256, 512), *, seconds: float = 0.3) -> int:
        """Time :meth:`generate` at each batch size for about ``seconds``, keep the fastest as ``batch_size``.

        Returns:
            The batch size chosen (also stored in ``self.batch_size``).
        """
        import time

        rates = {}
        for size in candidates:
            z = self.latent(self._batch_size(size), seed=0)
            self.generate(z, batch_size=size)  # warm-up: the first call of a shape plans its memory
            calls, t0 = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - t0) < seconds or calls == 0:
                self.generate(z, batch_size=size)
                calls += 1
            rates[size] = size * calls / elapsed
        self.batch_size = max(rates, key=rates.__getitem__)
        return self.batch_size

    def _empty_images(self, n: int) -> np.ndarray:
        return np.empty((n, *self.info.output_shape), dtype=np.uint8 if self.output == "uint8" else np.float32)

    def _generate_into(self, images: np.ndarray, z: np.ndarray, labels: np.ndarray | None) -> None:
        """One chunk through the graph into ``images`` (for a bank, each class's rows through its member)."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        if not self.is_bank:
            self.sessions[0].run(z, labels, images)
            return
        assert labels is not None
        for k in np.unique(labels):
            rows = labels == k  # the rows of class k go to member k
            part = self._empty_images(int(rows.sum()))
            self.sessions[int(k)].run(np.ascontiguousarray(z[rows]), None, part)
            images[rows] = part


def float_to_uint8(images: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` float in [-1, 1] to ``(N, H, W, C)`` uint8: ``round((x + 1) * 127.5)`` clamped."""
    x = np.asarray(images, dtype=np.float32)
    check(x.ndim == 4, f"images of shape {x.shape}: expected (N, C, H, W)")
    return np.clip(np.rint((x + 1) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)  # (N, H, W, C)


def image_grid(images: np.ndarray, nrow: int, *, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile ``(N, H, W, C)`` uint8 images, ``nrow`` per row, into one ``(H', W', 3)`` uint8 picture."""
    x = np.asarray(images)
    check(x.ndim == 4 and x.dtype == np.uint8, f"images of shape {x.shape} and dtype {x.dtype}: expected (N, H, W, C) uint8")
    check(isinstance(nrow, int) and nrow > 0, f"nrow={nrow!r}: expected a positive int")
    if x.shape[3] == 1:
        x = np.repeat(x, 3, axis=3)  # grey to RGB
    n, h, w, c = x.shape
    rows = -(-n // nrow)
    grid = np.full((padding + rows * (h + padding), padding + nrow * (w + padding), c), pad_value, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top : top + h, left : left + w] = x[i]
    return grid


def _check_n(n: Any) -> None:
    check(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0, f"n={n!r}: expected a positive int")


def _latent_batches(n: int, latent_dim: int, batch_size: int, seed: int | None) -> Iterator[np.ndarray]:
    """``z ~ N(0, I)`` for ``n`` rows in float32, drawn in batches from one numpy Generator.

    numpy fills arrays in order from its bit stream, so the batches joined equal one draw of
    ``n`` rows: the noise does not depend on the batch size.
    """
    check(seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0), f"seed={seed!r}: expected None or an int >= 0")
    rng = np.random.default_rng(seed)
    for start in range(0, n, batch_size):
        yield rng.standard_normal((min(batch_size, n - start), latent_dim), dtype=np.float32)  # (b, latent_dim)
