"""Fast sampling from an exported generator with onnxruntime and numpy: no torch needed.

:class:`OnnxGenerator` loads a gan-edu ``.onnx`` file (or a per-class bank manifest ``.json``),
reads its shapes and class names from the metadata, and samples images::

    from gan_edu.export.runtime import OnnxGenerator

    g = OnnxGenerator("exported/shapes_cdcgan.onnx")
    images = g.sample(20, labels=[3] * 20, seed=0)   # (20, 3, 32, 32) float32 in [-1, 1]
    pictures = g.to_uint8(images)                     # (20, 32, 32, 3) uint8, ready for PIL

Reproducible noise: ``z`` is drawn with numpy's ``np.random.default_rng(seed).standard_normal``
in float32, one batch after another, so ``g.latent(n, seed=s)`` is exactly the ``z`` that
``g.sample(n, seed=s)`` used, whatever the batch size. To get the same images from the PyTorch
generator, feed it that ``z``: ``G(torch.from_numpy(g.latent(n, seed=s)), labels)``.

Thread safety: ``sample`` may be called from many threads at once. Each call has its own random
generator (seeded from ``seed``) and its own IO binding; the onnxruntime session is shared, and
``InferenceSession.run`` is safe to call concurrently.

Safety: before onnxruntime sees the file, every tensor stored as external data must point to a
file inside the model's own folder (after resolving ``..`` and symbolic links); anything else is
refused. Nothing in a gan-edu model file runs code.

This module must import without torch (tests run it in a process where ``import torch`` fails).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GanEduError, check
from .metadata import (
    BANK_FORMAT,
    IMAGES_OUTPUT,
    LABELS_INPUT,
    Z_INPUT,
    GeneratorInfo,
)

#: Default rows per onnxruntime call: large enough to amortize the call, small enough to bound memory.
DEFAULT_BATCH_SIZE = 256

Labels = Sequence[int] | np.ndarray | None


def default_providers() -> list[str]:
    """``["CUDAExecutionProvider", "CPUExecutionProvider"]`` when onnxruntime has CUDA and a GPU is
    present, else ``["CPUExecutionProvider"]``."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers() and cuda_device_count() > 0:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def cuda_device_count() -> int:
    """Number of CUDA devices the driver reports (0 when there is no driver), without torch.

    onnxruntime-gpu lists the CUDA provider even on a machine with no GPU and then logs an error
    when a session asks for it; asking the driver first keeps the CPU-only case quiet.
    """
    import ctypes
    import ctypes.util

    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll", ctypes.util.find_library("cuda")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        try:
            if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
                return 0
        except AttributeError:
            return 0
        return count.value
    return 0


def check_providers(providers: Sequence[str]) -> None:
    """Raise a one-line GanEduError for a provider name this onnxruntime does not have.

    (onnxruntime itself only warns and falls back to the CPU: a typo would go unnoticed.)
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    unknown = [p for p in providers if not isinstance(p, str) or p not in available]
    if unknown:
        raise GanEduError(f"provider {unknown[0]!r}: not in this onnxruntime; expected one of {', '.join(available)}")


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


class OnnxGenerator:
    """A gan-edu generator exported to ONNX, sampled with onnxruntime.

    Args:
        path: a ``.onnx`` written by ``export_generator`` (or ``gan-edu export``), or the
            ``.json`` manifest of an exported per-class bank.
        providers: onnxruntime execution providers, in order of preference; default CUDA when
            available, else CPU (see :func:`default_providers`).
        intra_op_num_threads: threads per onnxruntime call on the CPU; None: onnxruntime's default
            (one per physical core).
        batch_size: rows per onnxruntime call in :meth:`sample` (a graph exported with a fixed
            batch always uses its own).

    Attributes:
        info: the model's metadata (:class:`~gan_edu.export.metadata.GeneratorInfo`).
        latent_dim, num_classes, class_names, image_shape, output: shortcuts into ``info``.
        providers: the providers the sessions really use (CUDA is dropped when it cannot start).
        device: ``"cuda"`` when the sessions run on CUDA (and use IO binding), else ``"cpu"``.

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
    ) -> None:
        check(isinstance(batch_size, int) and batch_size > 0, f"batch_size={batch_size!r}: expected a positive int")
        self.path = Path(path)
        self.batch_size = batch_size
        wanted = list(providers) if providers is not None else default_providers()
        check(bool(wanted), "providers=[]: expected at least one onnxruntime execution provider")
        check_providers(wanted)
        check(not self.path.is_dir(), f"{self.path}: a folder; expected an exported gan-edu generator (.onnx) or bank manifest (.json)")
        check(self.path.is_file(), f"{self.path}: no such file; expected an exported gan-edu generator (.onnx) or bank manifest (.json)")
        options = dict(providers=wanted, intra_op_num_threads=intra_op_num_threads)
        if self.path.suffix == ".json":
            self.info, self._members = _load_bank(self.path, options)
        else:
            member = _Graph(self.path, **options)
            self.info, self._members = member.info, [member]
        self.providers = self._members[0].providers
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
        return len(self._members) > 1

    def __repr__(self) -> str:
        kind = f"bank of {len(self._members)}" if self.is_bank else self.info.model_class
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
        out = np.empty((n, *self.info.output_shape), dtype=np.uint8 if self.output == "uint8" else np.float32)
        for start in range(0, n, size):
            rows = slice(start, start + size)
            out[rows] = self._run(z[rows], None if label_array is None else label_array[rows])
        return out

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
            yield self._run(z, None if label_array is None else label_array[rows])
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

    def _run(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """One chunk through the graph (or, for a bank, each class's rows through its member)."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        if not self.is_bank:
            return self._members[0].run(z, labels)
        assert labels is not None
        out = np.empty((len(z), *self.info.output_shape), dtype=np.uint8 if self.output == "uint8" else np.float32)
        for k in np.unique(labels):
            rows = labels == k  # the rows of class k go to member k
            out[rows] = self._members[int(k)].run(np.ascontiguousarray(z[rows]), None)
        return out


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


class _Graph:
    """One checked onnxruntime session of a gan-edu graph, with its metadata."""

    def __init__(self, path: Path, *, providers: list[str], intra_op_num_threads: int | None) -> None:
        import onnxruntime as ort

        check(path.is_file(), f"{path}: no such file; expected an exported gan-edu generator (.onnx)")
        check_external_data(path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_num_threads is not None:
            check(isinstance(intra_op_num_threads, int) and intra_op_num_threads >= 0, f"intra_op_num_threads={intra_op_num_threads!r}: expected an int >= 0")
            options.intra_op_num_threads = intra_op_num_threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise GanEduError(f"{path}: onnxruntime cannot load it ({_first_line(e)}); expected an exported gan-edu generator") from None
        self.info = GeneratorInfo.from_props(self.session.get_modelmeta().custom_metadata_map, str(path))
        self.providers = self.session.get_providers()
        self.io_binding = self.providers[0] == "CUDAExecutionProvider"
        inputs = {i.name: i for i in self.session.get_inputs()}
        expected = [Z_INPUT] + ([LABELS_INPUT] if self.info.num_classes is not None else [])
        check(
            sorted(inputs) == sorted(expected) and [o.name for o in self.session.get_outputs()] == [IMAGES_OUTPUT],
            f"{path}: graph inputs {sorted(inputs)} and outputs {[o.name for o in self.session.get_outputs()]}: expected inputs {expected} and output ['images']",
        )
        batch = inputs[Z_INPUT].shape[0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None  # exported with dynamic_batch=False

    def run(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """Images for one chunk; a fixed-batch graph is fed its own batch size (the last chunk padded)."""
        if self.fixed_batch is None:
            return self._run(z, labels)
        b, n = self.fixed_batch, len(z)
        parts = []
        for start in range(0, n, b):
            zc = z[start : start + b]
            lc = None if labels is None else labels[start : start + b]
            short = b - len(zc)
            if short:  # pad with zeros and label 0, then drop the padding rows
                zc = np.concatenate([zc, np.zeros((short, z.shape[1]), np.float32)])
                lc = None if lc is None else np.concatenate([lc, np.zeros(short, np.int64)])
            parts.append(self._run(zc, lc)[: b - short])
        return np.concatenate(parts)

    def _run(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        feed = {Z_INPUT: z} if labels is None else {Z_INPUT: z, LABELS_INPUT: np.ascontiguousarray(labels, dtype=np.int64)}
        if not self.io_binding:
            return self.session.run([IMAGES_OUTPUT], feed)[0]
        # CUDA: inputs copied to the GPU once, output allocated there by onnxruntime, one copy back.
        # A binding per call keeps concurrent calls independent.
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, array in feed.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
        binding.bind_output(IMAGES_OUTPUT, "cuda")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]


def _load_bank(path: Path, options: dict[str, Any]) -> tuple[GeneratorInfo, list[_Graph]]:
    """Read a bank manifest and load its member graphs (each an unconditional gan-edu generator)."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise GanEduError(f"{path}: not a gan-edu bank manifest (not JSON: {_first_line(e)})") from None
    check(isinstance(manifest, dict), f"{path}: not a gan-edu bank manifest (expected a JSON object)")
    info = GeneratorInfo.from_dict(manifest, str(path), fmt=BANK_FORMAT)
    members = manifest.get("members")
    check(
        info.num_classes is not None and isinstance(members, list) and len(members) == info.num_classes and all(isinstance(m, str) for m in members),
        f"{path}: 'members' must list {info.num_classes} .onnx file names, one per class",
    )
    folder = path.parent.resolve()
    graphs = []
    for k, name in enumerate(members):
        member_path = (path.parent / name)
        check(_inside(member_path, folder), f"{path}: member {k} {name!r} points outside the manifest's folder {folder}; expected a file inside it")
        graph = _Graph(member_path, **options)
        mi = graph.info
        check(
            mi.num_classes is None and mi.latent_dim == info.latent_dim and mi.image_shape == info.image_shape and mi.output == info.output,
            f"{member_path}: member {k} (latent_dim={mi.latent_dim}, num_classes={mi.num_classes}, image_shape={mi.image_shape}, output={mi.output!r}) does not match the manifest (latent_dim={info.latent_dim}, unconditional, image_shape={info.image_shape}, output={info.output!r})",
        )
        graphs.append(graph)
    return info, graphs


def check_external_data(path: str | os.PathLike[str]) -> None:
    """Refuse a model whose external data lives outside its folder (or that is not ONNX at all).

    Reads the graph without its external data (``onnx.load(..., load_external_data=False)``) and
    checks every tensor stored outside the file: its ``location`` must be a relative path that,
    with ``..`` and symbolic links resolved, stays inside the model's folder.

    Raises:
        GanEduError: the file is not ONNX, or a location points outside the folder.
    """
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and onnx's own errors
        raise GanEduError(f"{path}: not an ONNX model ({_first_line(e)}); expected an exported gan-edu generator") from None
    folder = path.parent.resolve()
    for tensor in _all_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        check(
            bool(location) and not os.path.isabs(location) and _inside(path.parent / location, folder),
            f"{path}: tensor {tensor.name!r} has external data at {location!r}, outside the model's folder {folder}; expected a file inside it",
        )


def _all_tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto of a graph: initializers, Constant/attribute tensors, and subgraphs'."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def _inside(candidate: Path, folder: Path) -> bool:
    """Whether ``candidate`` (``..`` and symbolic links resolved) lies inside ``folder``."""
    try:
        candidate.resolve().relative_to(folder)
    except ValueError:
        return False
    return True


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
