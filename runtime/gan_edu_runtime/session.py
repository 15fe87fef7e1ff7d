"""onnxruntime sessions for exported generators: providers, chosen settings, the optimized-model cache.

:class:`GraphSession` is one onnxruntime session of one gan-edu graph (a bank has one per
member); :class:`~gan_edu_runtime.OnnxGenerator` holds them. The settings are chosen,
not defaulted (docs/onnx.md, "Session settings", has the measurements behind them):

* threads: one intra-op thread per physical core this process may use; the graph is a chain of
  convolutions, so operators run one after another (``ORT_SEQUENTIAL``, no inter-op pool);
* one session shared by every thread of the process (``InferenceSession.run`` is thread-safe):
  one copy of the weights and one thread pool, instead of one per caller;
* memory: the CPU arena and memory patterns on (each batch shape is planned once, then its
  buffers are reused), denormal floats flushed to zero;
* IO binding: the images are written straight into the caller's preallocated array on the CPU;
  on CUDA the inputs are copied to the GPU once, the output goes to a buffer kept per thread
  and batch shape, and comes back with one copy;
* the graph: onnxruntime's optimizations run once and the result is cached next to the model
  (:func:`optimized_model`), keyed to the model file's content, so later loads skip them.

This module must import without torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .cuda_libs import cuda_start_error, preload_cuda_libraries, require_cuda_provider
from .errors import GanEduError, check, first_line
from .files import TEMPORARY_NAME, glob_escape, locked_temporary, remove_if_stale
from .metadata import BANK_FORMAT, IMAGES_OUTPUT, LABELS_INPUT, Z_INPUT, GeneratorInfo
from .safety import check_external_data, inside, may_have_external_data

#: A cached optimized model is the hidden file ``.NAME.optimized-KEY.onnx`` next to ``NAME.onnx``.
CACHE_TAG = ".optimized-"
#: The metadata key of a cached optimized graph that holds the SHA-256 of the model it was made from.
SOURCE_KEY = "optimized_from_sha256"


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


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads count once), at least 1.

    Linux: the distinct (package, core) pairs of ``/proc/cpuinfo`` among the CPUs of the
    process's affinity mask; elsewhere ``os.cpu_count()``.
    """
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores, cpu, package = set(), None, "0"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "processor":
                    cpu, package = int(value), "0"
                elif key == "physical id":
                    package = value
                elif key == "core id" and cpu in allowed:
                    cores.add((package, value))
    except (OSError, ValueError):
        pass
    return max(1, min(len(cores) or len(allowed), len(allowed)))


def session_options(*, intra_op_num_threads: int | None = None, level: str = "all") -> Any:
    """The :class:`onnxruntime.SessionOptions` every gan-edu session uses (see the module docstring).

    Args:
        intra_op_num_threads: threads per call; None: :func:`physical_cores` (0: onnxruntime's own choice).
        level: graph optimizations: ``"all"``, ``"extended"`` (no hardware-specific layouts: what
            the cache stores) or ``"none"``.
    """
    import onnxruntime as ort

    check(
        intra_op_num_threads is None or (isinstance(intra_op_num_threads, int) and intra_op_num_threads >= 0),
        f"intra_op_num_threads={intra_op_num_threads!r}: expected an int >= 0",
    )
    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.intra_op_num_threads = physical_cores() if intra_op_num_threads is None else intra_op_num_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # a chain of layers: nothing to run side by side
    options.enable_cpu_mem_arena = True  # reuse freed blocks instead of asking the OS per call
    options.enable_mem_pattern = True  # plan each batch shape's buffers once, then reuse the plan
    options.add_session_config_entry("session.set_denormal_as_zero", "1")  # denormals are slow on x86 and invisible in an image
    return options


def optimized_model(path: Path, providers: Sequence[str], *, make: bool = True) -> Path | None:
    """The cached optimized version of ``path``, made now if missing (``make``); None when there is none.

    The exporter makes it (``make=True``) right after writing a checked graph; loading a model
    only reads it (``make=False``), so sampling never writes next to a model.

    The cache is the hidden file ``.NAME.optimized-KEY.onnx`` next to ``NAME.onnx``; ``KEY`` hashes the model
    file's bytes, the onnxruntime version and the providers, so a changed model (or runtime) gets
    a new file and the stale ones of the same model are deleted. The graph is stored at the
    "extended" level (fusions and constant folding, none of the CPU-specific layouts), so it stays
    valid on another CPU; the session still applies the layout passes when it loads it. The file
    is written atomically; a folder that cannot be written (read-only, no permission), a model
    with external data, or any failure gives None: the caller loads the model itself.

    The name is no proof: the cache carries the SHA-256 of the model it was made from in its own
    ONNX metadata (:data:`SOURCE_KEY`, the file's last field). A cache that is a symbolic link,
    may hold external data or does not end with this model's hash is not returned (a writer makes
    it again); :class:`GraphSession` also compares the hash the loaded session reports.
    """
    import onnxruntime as ort

    try:
        data = path.read_bytes()
    except OSError:
        return None
    key = hashlib.sha256(data + json.dumps([ort.__version__, list(providers)]).encode()).hexdigest()[:16]
    cached = path.with_name(f".{path.stem}{CACHE_TAG}{key}.onnx")
    stamp = source_entry(data)
    if cached.is_file() or cached.is_symlink():
        if _is_cache_of(cached, stamp):
            return cached
        if not make:
            return None
        with contextlib.suppress(OSError):
            cached.unlink()
    if not make or may_have_external_data(data):
        return None
    for leftover in path.parent.glob(f"..{glob_escape(path.stem)}{CACHE_TAG}*.onnx.*.tmp"):  # of a writer killed before
        if TEMPORARY_NAME.fullmatch(leftover.name):
            remove_if_stale(leftover)
    try:  # onnxruntime writes a temporary sibling (atomic_open's naming, locked while written), then it is moved into place
        fd, tmp = locked_temporary(cached)
    except OSError:  # a read-only folder, no permission: no cache, same results
        return None
    if "CUDAExecutionProvider" in providers:
        preload_cuda_libraries()
    try:
        options = session_options(intra_op_num_threads=1, level="extended")
        options.optimized_model_filepath = tmp
        ort.InferenceSession(str(path), options, providers=list(providers))
        with open(tmp, "ab") as f:  # the source's hash, inside the cache itself
            f.write(stamp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, cached)
    except Exception:  # onnxruntime's own errors, a full disk: no cache
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return None
    finally:
        os.close(fd)  # the lock goes with it
    for stale in path.parent.glob(f".{path.stem}{CACHE_TAG}*.onnx"):
        if stale != cached:
            with contextlib.suppress(OSError):
                stale.unlink()
    return cached


def source_hash(data: bytes) -> str:
    """The value of :data:`SOURCE_KEY` for a model whose file holds ``data``: its SHA-256, JSON-encoded."""
    return json.dumps(hashlib.sha256(data).hexdigest())


def source_entry(data: bytes) -> bytes:
    """The serialized ``metadata_props`` entry ``{SOURCE_KEY: source_hash(data)}``.

    Protocol buffers merge a repeated field written at the end of a message into the fields
    before it, so appending these bytes to a serialized ModelProto adds one metadata entry (no
    onnx package needed): ModelProto.metadata_props is field 14, the entry's key field 1, its value
    field 2, all length-delimited (wire type 2).
    """
    key, value = SOURCE_KEY.encode(), source_hash(data).encode()
    entry = _field(1, key) + _field(2, value)
    return _field(14, entry)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field: tag, varint length, bytes."""
    out, n = bytearray([number << 3 | 2]), len(payload)
    while True:  # varint: 7 bits per byte, high bit set on all but the last
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out) + payload


def _is_cache_of(cached: Path, stamp: bytes) -> bool:
    """Whether ``cached`` is a regular file, with no external data, ending with the source entry ``stamp``."""
    if cached.is_symlink() or not cached.is_file():
        return False
    try:
        data = cached.read_bytes()
    except OSError:
        return False
    return data.endswith(stamp) and not may_have_external_data(data)


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
        intra_op_num_threads: see :func:`session_options`.
        cache: load the cached optimized graph (:func:`optimized_model`) when there is one.
    """

    def __init__(self, path: Path, *, providers: list[str], intra_op_num_threads: int | None, cache: bool = True) -> None:
        import onnxruntime as ort

        options = session_options(intra_op_num_threads=intra_op_num_threads)
        wants_cuda = "CUDAExecutionProvider" in providers
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
        self.on_cuda = self.providers[0] == "CUDAExecutionProvider"
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

    def _bound_run(self, z: np.ndarray, labels: np.ndarray | None, out: np.ndarray) -> None:
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

        kind, index = ("cuda", z.device.index or 0) if z.is_cuda else ("cpu", 0)
        if z.is_cuda:
            torch.cuda.current_stream(z.device).synchronize()  # torch's writes are done before onnxruntime's stream reads
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
