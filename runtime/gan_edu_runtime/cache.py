"""The optimized-model cache: onnxruntime's graph optimizations run once, the result is kept next to the model.

:func:`optimized_model` makes or finds ``.NAME.optimized-KEY.onnx``; the cache carries the
SHA-256 of its source in its own metadata (:data:`SOURCE_KEY`), appended as one protobuf field
(:func:`source_entry`), so a cache is only ever used for the model it was made from: the name
is no proof. A cache that is a symbolic link, may hold external data or does not end with this
model's hash is not returned (a writer makes it again);
:class:`~gan_edu_runtime.session.GraphSession` also compares the hash the loaded session reports.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from .cuda_libs import preload_cuda_libraries
from .files import TEMPORARY_NAME, glob_escape, locked_temporary, remove_if_stale
from .safety import may_have_external_data
from .settings import session_options

#: A cached optimized model is the hidden file ``.NAME.optimized-KEY.onnx`` next to ``NAME.onnx``.
CACHE_TAG = ".optimized-"
#: The metadata key of a cached optimized graph that holds the SHA-256 of the model it was made from.
SOURCE_KEY = "optimized_from_sha256"


def optimized_model(path: Path, providers: Sequence[str], *, make: bool = True) -> Path | None:
    """The cached optimized version of ``path``, made now if missing (``make``); None when there is none.

    The exporter makes it right after writing a checked graph; loading a model only reads it
    (``make=False``): sampling never writes next to a model.

    The cache is the hidden file ``.NAME.optimized-KEY.onnx`` next to ``NAME.onnx``; ``KEY`` hashes the model
    file's bytes, the onnxruntime version and the providers, so a changed model (or runtime) gets
    a new file and the stale ones of the same model are deleted. The graph is stored at the
    "extended" level (fusions and constant folding, none of the CPU-specific layouts), so it stays
    valid on another CPU; the session still applies the layout passes when it loads it. The file
    is written atomically; a folder that cannot be written (read-only, no permission), a model
    with external data, or any failure gives None: the caller loads the model itself.

    (The name is no proof of the source: see the module docstring.)
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
    _remove_killed_writers(path)
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


def _remove_killed_writers(path: Path) -> None:
    """Delete the temporaries that writers of ``path``'s cache left when killed (a live writer's are locked, and kept)."""
    for leftover in path.parent.glob(f"..{glob_escape(path.stem)}{CACHE_TAG}*.onnx.*.tmp"):
        if TEMPORARY_NAME.fullmatch(leftover.name):
            remove_if_stale(leftover)


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
