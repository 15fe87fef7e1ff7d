"""onnxruntime sessions for exported generators: providers, chosen settings, the optimized-model cache.

:class:`GraphSession` is one onnxruntime session of one gan-edu graph (a bank has one per
member); :class:`~gan_edu_runtime.OnnxGenerator` holds them. The settings are chosen,
not defaulted (docs/onnx.md, "Session settings", has the measurements behind them):

* threads (CPU): one intra-op thread per call, and a batch split into row blocks run side by side,
  one per physical core this process may use (:meth:`GraphSession.row_blocks`). onnxruntime's CPU
  ConvTranspose loops over the images of a batch with one small GEMM each, which its intra-op pool
  barely shares out (a second thread ran 0 to 4 of 64 blocks); whole rows per thread keep every
  core busy (measured: docs/performance.md, "Sampling"). An explicit ``intra_op_num_threads``
  gives the session that many threads and no split. The graph is a chain of convolutions, so
  operators run one after another (``ORT_SEQUENTIAL``, no inter-op pool);
* one session shared by every thread of the process (``InferenceSession.run`` is thread-safe):
  one copy of the weights and one thread pool, instead of one per caller;
* memory: the CPU arena and memory patterns on (each batch shape is planned once, then its
  buffers are reused), denormal floats flushed to zero;
* IO binding: the images are written straight into the caller's preallocated array on the CPU;
  on CUDA the inputs are copied to the GPU once, the output goes to a buffer kept per thread
  and batch shape, and comes back with one copy;
* the graph: onnxruntime's optimizations run once and the result is cached next to the model
  (:func:`optimized_model`), keyed to the model file's content, so later loads skip them.

The settings themselves are :mod:`gan_edu_runtime.settings`, the cache :mod:`gan_edu_runtime.cache`
(both importable from here too).

This module must import without torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from .cache import CACHE_TAG, SOURCE_KEY, optimized_model, source_entry, source_hash  # noqa: F401  (re-exported: the cache's old home)
from .cuda_libs import cuda_start_error, require_cuda_provider
from .errors import GanEduError, check, first_line
from .metadata import BANK_FORMAT, IMAGES_OUTPUT, LABELS_INPUT, Z_INPUT, GeneratorInfo
from .safety import check_external_data, inside
from .settings import physical_cores, session_options  # noqa: F401  (re-exported: the settings' old home)

#: Fewest rows a CPU batch gives each worker thread (smaller batches run whole on one thread).
#: Measured on 2 cores (docs/performance.md): at 8 rows split and unsplit were even, above it the
#: split won; at batch 1 one thread beat two intra-op threads.
MIN_ROWS_PER_WORKER = 8


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


def cuda_failed(path: Path) -> bool:
    """After a CUDA session of ``path`` failed: True when the model itself loads on the CPU (so CUDA is what failed)."""
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception:
        return False
    return True


class GraphSession:
    """One onnxruntime session of one gan-edu graph, with its metadata and its IO binding.

    Args:
        path: the ``.onnx`` file (already checked by the caller).
        providers: onnxruntime providers, in order of preference.
        intra_op_num_threads: threads per onnxruntime call (see :func:`session_options`); None
            (the default): on the CPU one thread per call and batches split into row blocks
            across one worker per physical core (``workers``); on CUDA onnxruntime's own.
        cache: load the cached optimized graph (:func:`optimized_model`) when there is one.
    """

    def __init__(self, path: Path, *, providers: list[str], intra_op_num_threads: int | None, cache: bool = True) -> None:
        import onnxruntime as ort

        wants_cuda = "CUDAExecutionProvider" in providers
        #: threads that run row blocks of one CPU batch side by side (1: no split)
        self.workers = physical_cores() if intra_op_num_threads is None and not wants_cuda else 1
        self._pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): made on first use, again after a fork
        self._pool_lock = threading.Lock()
        options = session_options(intra_op_num_threads=1 if self.workers > 1 else intra_op_num_threads)
        if wants_cuda:
            require_cuda_provider()  # the nvidia wheels' libraries loaded, or one line naming the missing one
        no_fallback = {"enable_fallback": 0} if wants_cuda else {}  # CUDA asked for: its error, not a quiet retry on the CPU
        cached = optimized_model(path, providers, make=False) if cache else None
        self.session, self.optimized_path = None, None  # optimized_path: the cached graph really loaded
        if cached is not None:
            with contextlib.suppress(Exception):  # a cache onnxruntime cannot load: the model itself
                session = ort.InferenceSession(str(cached), options, providers=providers, **no_fallback)
                if session.get_modelmeta().custom_metadata_map.get(SOURCE_KEY) == source_hash(path.read_bytes()):
                    self.session, self.optimized_path = session, cached  # made from this very model
        if self.session is None:  # no cache, or one made from another model: optimized in memory
            try:
                self.session = ort.InferenceSession(str(path), options, providers=providers, **no_fallback)
            except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
                if wants_cuda and cuda_failed(path):
                    raise GanEduError(cuda_start_error(str(e))) from None
                raise GanEduError(f"{path}: not an ONNX model onnxruntime can load ({first_line(e)}); expected an exported gan-edu generator") from None
        if wants_cuda and "CUDAExecutionProvider" not in self.session.get_providers():
            raise GanEduError(cuda_start_error())  # onnxruntime fell back to the CPU: the caller asked for CUDA
        self.info = GeneratorInfo.from_props(self.session.get_modelmeta().custom_metadata_map, str(path))
        self.providers = self.session.get_providers()
        self.on_cuda = self.providers[0] == "CUDAExecutionProvider"  # (only when asked for: then workers is 1)
        self._cuda_outputs = threading.local()  # per thread: {batch shape: OrtValue on the GPU}
        inputs = {i.name: i for i in self.session.get_inputs()}
        expected = [Z_INPUT] + ([LABELS_INPUT] if self.info.num_classes is not None else [])
        outputs = [o.name for o in self.session.get_outputs()]
        check(
            sorted(inputs) == sorted(expected) and outputs == [IMAGES_OUTPUT],
            f"{path}: graph inputs {sorted(inputs)} and outputs {outputs}: expected inputs {expected} and output ['images']",
        )
        batch = inputs[Z_INPUT].shape[0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None  # exported with dynamic_batch=False

    def run(self, z: np.ndarray, labels: np.ndarray | None, out: np.ndarray) -> None:
        """Write the images of ``z`` (float32 ``(n, latent_dim)``) and ``labels`` into ``out``.

        ``out`` is a C-contiguous ``(n, *output_shape)`` array (a slice of the caller's result):
        onnxruntime writes into it directly. A fixed-batch graph is fed its own batch size, the
        last chunk padded with zero noise and label 0.
        """
        step = self.fixed_batch or len(z)
        for start in range(0, len(z), step):
            zc, lc, oc = z[start : start + step], None if labels is None else labels[start : start + step], out[start : start + step]
            if len(zc) == step:
                self._bound_run(zc, lc, oc)
                continue
            short = step - len(zc)  # pad, run, keep the real rows
            padded = np.empty((step, *out.shape[1:]), out.dtype)
            zp = np.concatenate([zc, np.zeros((short, z.shape[1]), np.float32)])
            lp = None if lc is None else np.concatenate([lc, np.zeros(short, np.int64)])
            self._bound_run(zp, lp, padded)
            oc[:] = padded[: len(zc)]

    def row_blocks(self, n: int) -> list[tuple[int, int]]:
        """``[(start, stop), ...]``: how a CPU batch of ``n`` rows is shared out among the workers, at
        least :data:`MIN_ROWS_PER_WORKER` rows each (one block: no split).

        >>> session = GraphSession.__new__(GraphSession); session.workers = 2
        >>> session.row_blocks(64), session.row_blocks(9)
        ([(0, 32), (32, 64)], [(0, 9)])
        """
        parts = max(1, min(self.workers, n // MIN_ROWS_PER_WORKER))
        edges = [n * i // parts for i in range(parts + 1)]
        return list(zip(edges[:-1], edges[1:]))

    def _in_blocks(self, n: int, run_rows: Any) -> None:
        """``run_rows(start, stop)`` for each of :meth:`row_blocks`, the first on this thread, the rest
        on the worker pool at the same time; the first error is raised after all have finished."""
        blocks = self.row_blocks(n)
        if len(blocks) == 1:
            run_rows(0, n)
            return
        with self._pool_lock:
            if self._pool is None or self._pool[0] != os.getpid():  # a forked child has the pool object, not its threads
                self._pool = (os.getpid(), ThreadPoolExecutor(self.workers - 1, thread_name_prefix="gan-edu-onnx"))
            pool = self._pool[1]
        futures = [pool.submit(run_rows, a, b) for a, b in blocks[1:]]
        try:
            run_rows(*blocks[0])
        finally:
            wait(futures)  # every block done (or failed) before the caller's arrays can go away
        for future in futures:
            future.result()  # re-raises a worker's error

    def _bound_run(self, z: np.ndarray, labels: np.ndarray | None, out: np.ndarray) -> None:
        if not out.flags.c_contiguous:  # (on CUDA, workers is 1: one block)
            self._bound_run_block(z, labels, out)
            return
        self._in_blocks(len(z), lambda a, b: self._bound_run_block(z[a:b], None if labels is None else labels[a:b], out[a:b]))

    def _bound_run_block(self, z: np.ndarray, labels: np.ndarray | None, out: np.ndarray) -> None:
        import onnxruntime as ort

        feed = {Z_INPUT: np.ascontiguousarray(z, np.float32)}
        if labels is not None:
            feed[LABELS_INPUT] = np.ascontiguousarray(labels, np.int64)
        binding = self.session.io_binding()  # one per call: concurrent calls stay independent
        if not self.on_cuda:
            for name, array in feed.items():
                binding.bind_cpu_input(name, array)
            if out.flags.c_contiguous:
                binding.bind_output(IMAGES_OUTPUT, "cpu", 0, out.dtype.type, list(out.shape), out.ctypes.data)
                self.session.run_with_iobinding(binding)
                return
            binding.bind_output(IMAGES_OUTPUT, "cpu")
            self.session.run_with_iobinding(binding)
            out[:] = binding.get_outputs()[0].numpy()
            return
        # CUDA: inputs copied to the GPU once; the output buffer is kept per thread and shape.
        for name, array in feed.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
        buffers = self._cuda_outputs.__dict__.setdefault("by_shape", {})
        if out.shape not in buffers:
            buffers[out.shape] = ort.OrtValue.ortvalue_from_shape_and_type(list(out.shape), out.dtype.type, "cuda", 0)
        binding.bind_ortvalue_output(IMAGES_OUTPUT, buffers[out.shape])
        self.session.run_with_iobinding(binding)
        out[:] = buffers[out.shape].numpy()  # the one copy back to the host


    def run_torch(self, z: Any, labels: Any, out: Any) -> None:
        """Read torch tensors ``z`` ``(n, latent_dim)`` float32 and ``labels`` ``(n,)`` int64 (or
        None) and write the images into torch tensor ``out``, in place, where they live (IO binding
        on torch's memory: on the GPU with the CUDA provider, nothing crosses to the host).
        Used by :func:`gan_edu.synthetic.sample_images`."""
        import torch

        if z.is_cuda:
            torch.cuda.current_stream(z.device).synchronize()  # torch's writes are done before onnxruntime's stream reads
            self._run_torch_block(z, labels, out)
        elif out.is_contiguous() and z.is_contiguous():
            self._in_blocks(len(z), lambda a, b: self._run_torch_block(z[a:b], None if labels is None else labels[a:b].contiguous(), out[a:b]))
        else:
            self._run_torch_block(z, labels, out)

    def _run_torch_block(self, z: Any, labels: Any, out: Any) -> None:
        import torch

        kind, index = ("cuda", z.device.index or 0) if z.is_cuda else ("cpu", 0)
        binding = self.session.io_binding()
        binding.bind_input(Z_INPUT, kind, index, np.float32, list(z.shape), z.data_ptr())
        if labels is not None:
            binding.bind_input(LABELS_INPUT, kind, index, np.int64, list(labels.shape), labels.data_ptr())
        dtype = np.uint8 if out.dtype == torch.uint8 else np.float32
        binding.bind_output(IMAGES_OUTPUT, kind, index, dtype, list(out.shape), out.data_ptr())
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()  # written before torch reads them


def load_bank(path: Path, options: dict[str, Any]) -> tuple[GeneratorInfo, list[GraphSession]]:
    """Read a bank manifest and load its member graphs (each an unconditional gan-edu generator)."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise GanEduError(f"{path}: not a gan-edu bank manifest (not JSON: {first_line(e)})") from None
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
        check(inside(member_path, folder), f"{path}: member {k} {name!r} points outside the manifest's folder {folder}; expected a file inside it")
        check(member_path.is_file(), f"{member_path}: no such file; expected an exported gan-edu generator (.onnx)")
        check_external_data(member_path)
        graph = GraphSession(member_path, **options)
        mi = graph.info
        check(
            mi.num_classes is None and mi.latent_dim == info.latent_dim and mi.image_shape == info.image_shape and mi.output == info.output,
            f"{member_path}: member {k} (latent_dim={mi.latent_dim}, num_classes={mi.num_classes}, image_shape={mi.image_shape}, output={mi.output!r}) does not match the manifest (latent_dim={info.latent_dim}, unconditional, image_shape={info.image_shape}, output={info.output!r})",
        )
        graphs.append(graph)
    return info, graphs
