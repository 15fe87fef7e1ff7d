"""The shared libraries onnxruntime's CUDA provider needs, found in the Python environment.

onnxruntime-gpu ships its CUDA provider as ``libonnxruntime_providers_cuda.so`` and leaves the
CUDA libraries to the ``nvidia-*`` wheels (its ``[cuda,cudnn]`` extras, declared by gan-edu on
Linux). Those wheels put the libraries under ``site-packages/nvidia/*/lib``, where the dynamic
loader never looks; without help the provider fails to load and onnxruntime quietly runs the
session on the CPU. So:

* :func:`preload_cuda_libraries` loads them by path (``onnxruntime.preload_dlls``) once, before
  the first CUDA session: the loader then finds them already in memory by name;
* :func:`require_cuda_provider` (before the session) and :func:`cuda_start_error` (after a
  session that came up without CUDA, made without onnxruntime's fallback) say in one line why a
  CUDA session asked for cannot start: the first library the loader cannot open, the missing
  driver, or onnxruntime's own "CUDA failure" reason. The caller never gets a silent CPU session;
* :func:`unresolved_libraries` walks the provider's ``DT_NEEDED`` entries (and those of the
  libraries it opens at run time), read from the ELF files themselves, with the environment's
  nvidia library folders as the search path: what would be missing on a fresh machine.

The one library a Python environment cannot bring is the driver's ``libcuda.so.1``.

This module must import without torch, numpy or onnxruntime (the CUDA provider is looked at only
when a session asks for it).
"""

from __future__ import annotations

import contextlib
import functools
import io
import mmap
import struct
import sys
from pathlib import Path

#: The driver: installed with the GPU's kernel module, never by a wheel.
DRIVER = "libcuda.so.1"

#: Libraries of the operating system itself (glibc, the C++ runtime, zlib), found by the loader
#: in the system folders on any Linux; every other library must come from the environment.
SYSTEM = frozenset({
    "libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0", "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1", "libstdc++.so.6", "libgcc_s.so.1", "libz.so.1",
})

_DT_NEEDED, _DT_STRTAB, _DT_RPATH, _DT_RUNPATH, _PT_LOAD, _PT_DYNAMIC = 1, 5, 15, 29, 1, 2


def provider_library() -> Path | None:
    """``libonnxruntime_providers_cuda.so`` of the installed onnxruntime, or None (no CUDA build, not Linux)."""
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations or not sys.platform.startswith("linux"):
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "capi" / "libonnxruntime_providers_cuda.so"
        if path.is_file():
            return path
    return None


def cuda_major() -> int | None:
    """The CUDA major version onnxruntime-gpu was built for (13 for ``cuda_version = '13.0'``), or None."""
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        info = Path(folder) / "capi" / "build_and_package_info.py"
        with contextlib.suppress(OSError):
            for line in info.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "cuda_version" and value.strip(" '\"").split(".")[0].isdigit():
                    return int(value.strip(" '\"").split(".")[0])
    return None


def nvidia_library_dirs() -> list[Path]:
    """The ``lib`` folders of the installed ``nvidia-*`` wheels (``site-packages/nvidia/*/lib``)."""
    import importlib.util

    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(p for folder in spec.submodule_search_locations for p in Path(folder).glob("*/lib") if p.is_dir())


def dynamic_entries(path: Path) -> tuple[list[str], list[str]]:
    """``(NEEDED names, RUNPATH/RPATH folders)`` of an ELF64 little-endian shared library.

    Read from the file's ``PT_DYNAMIC`` segment (what ``readelf -d`` prints), no tool needed.
    ``$ORIGIN`` in a search path is replaced by the library's own folder.
    """
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if m[:4] != b"\x7fELF" or m[4] != 2 or m[5] != 1:
            raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
        phoff, = struct.unpack_from("<Q", m, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", m, 0x36)
        loads, dynamic = [], None
        for k in range(phnum):  # program headers: (type, flags, offset, vaddr, paddr, filesz, ...)
            kind, _, offset, vaddr, _, filesz = struct.unpack_from("<IIQQQQ", m, phoff + k * phentsize)
            if kind == _PT_LOAD:
                loads.append((vaddr, offset, filesz))
            elif kind == _PT_DYNAMIC:
                dynamic = (offset, filesz)
        if dynamic is None:
            return [], []
        entries = [struct.unpack_from("<qQ", m, dynamic[0] + k) for k in range(0, dynamic[1], 16)]
        strtab_vaddr = next(v for tag, v in entries if tag == _DT_STRTAB)
        strtab = next(off + strtab_vaddr - va for va, off, size in loads if va <= strtab_vaddr < va + size)

        def string(at: int) -> str:
            return m[strtab + at : m.find(b"\0", strtab + at)].decode()

        needed = [string(v) for tag, v in entries if tag == _DT_NEEDED]
        paths = [string(v) for tag, v in entries if tag in (_DT_RUNPATH, _DT_RPATH)]
    folders = [p.replace("$ORIGIN", str(path.parent)).replace("${ORIGIN}", str(path.parent)) for s in paths for p in s.split(":") if p]
    return needed, folders


def opened_at_run_time(major: int) -> list[str]:
    """Libraries the CUDA provider opens itself (``dlopen``), not listed as NEEDED: cuDNN 9,
    cuFFT (11 for CUDA 12, 12 for CUDA 13) and NVRTC of the same major."""
    return ["libcudnn.so.9", f"libcufft.so.{11 if major <= 12 else 12}", f"libnvrtc.so.{major}"]


def unresolved_libraries(provider: Path | None = None, search: list[Path] | None = None) -> list[tuple[str, str]]:
    """Every library the CUDA provider needs that cannot be found, as ``(name, needed by)`` pairs.

    Starts from the provider's NEEDED entries and :func:`opened_at_run_time`, plus cuDNN's own
    sub-libraries (``libcudnn_*.so.9``, which it opens on demand), and follows each library's
    NEEDED entries in turn. A name is found in the library's own RUNPATH or in ``search``
    (default: :func:`nvidia_library_dirs`); :data:`SYSTEM` libraries and the driver
    (:data:`DRIVER`) are left to the operating system. Empty: all there. Linux only.
    """
    provider = provider or provider_library()
    if provider is None:
        return [("libonnxruntime_providers_cuda.so", "onnxruntime (not the onnxruntime-gpu build)")]
    search = nvidia_library_dirs() if search is None else search

    def find(name: str, extra: list[str]) -> Path | None:
        return next((d / name for d in [*map(Path, extra), *search] if (d / name).is_file()), None)

    missing, seen = [], set()
    todo: list[tuple[str, Path | None, str]] = [(provider.name, provider, "")]
    todo += [(name, find(name, []), provider.name) for name in opened_at_run_time(cuda_major() or 13)]
    cudnn = find("libcudnn.so.9", [])
    if cudnn is not None:
        todo += [(p.name, p, "libcudnn.so.9") for p in sorted(cudnn.parent.glob("libcudnn_*.so.9"))]
    while todo:
        name, path, by = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        if path is None:
            missing.append((name, by))
            continue
        needed, runpath = dynamic_entries(path)
        todo += [(n, find(n, runpath), name) for n in needed if n not in SYSTEM and n != DRIVER and n not in seen]
    return missing


@functools.cache
def preload_cuda_libraries() -> None:
    """Load the CUDA libraries of the ``nvidia-*`` wheels by path, once per process.

    Call before the first session that asks for ``CUDAExecutionProvider``: the provider's own
    ``dlopen`` then finds them already loaded. onnxruntime's messages for libraries it cannot
    find are swallowed here; :func:`cuda_start_error` names the missing one if the session
    fails to get CUDA.
    """
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)  # onnxruntime >= 1.21
    if preload is None or "CUDAExecutionProvider" not in ort.get_available_providers():
        return
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
        preload(cuda=True, cudnn=True, msvc=False)


#: The way out that every message offers: choose the CPU explicitly.
CHOOSE_CPU = "or choose the CPU: providers=['CPUExecutionProvider'] (gan-edu sample: --provider CPUExecutionProvider)"


def cuda_load_error() -> str | None:
    """One line naming why onnxruntime's CUDA provider library cannot be loaded here, and the fix;
    None when it loads (call :func:`preload_cuda_libraries` first). Linux only: elsewhere None,
    and onnxruntime's session says it."""
    import ctypes

    import onnxruntime  # noqa: F401  (its import loads libonnxruntime_providers_shared.so globally: the provider's Provider_GetHost)

    if not sys.platform.startswith("linux"):
        return None
    fix = f"reinstall with `uv sync` or `pip install 'onnxruntime-gpu[cuda,cudnn]'`, {CHOOSE_CPU}"
    provider = provider_library()
    if provider is None:
        return f"CUDAExecutionProvider: this onnxruntime has no CUDA provider library; {fix}"
    try:
        ctypes.CDLL(str(provider))  # the loader's own message names the first library it cannot open
    except OSError as e:
        reason = str(e).replace(f"{provider}: ", "")
        if DRIVER in reason:
            return f"CUDAExecutionProvider cannot start: {DRIVER} (the NVIDIA driver) not found; expected a machine with an NVIDIA GPU and its driver, {CHOOSE_CPU}"
        return f"CUDAExecutionProvider cannot start: {reason}; {fix}"
    return None


def require_cuda_provider() -> None:
    """Preload the CUDA libraries, then raise a one-line GanEduError if the CUDA provider still cannot load.

    Called before a session that asks for ``CUDAExecutionProvider``: onnxruntime itself would log
    a few lines and quietly run the session on the CPU.
    """
    from .errors import GanEduError

    preload_cuda_libraries()
    problem = cuda_load_error()
    if problem:
        raise GanEduError(problem)


def cuda_start_error(detail: str | None = None) -> str:
    """One line saying why a session asked for ``CUDAExecutionProvider`` did not get it.

    ``detail``: onnxruntime's error, when it raised one; its ``CUDA failure N: ...`` part is kept.
    """
    import re

    found = re.search(r"CUDA failure \d+: [^;]*", detail or "")
    why = found.group(0).strip() if found else ((detail or "").strip().splitlines() or ["onnxruntime's log says why"])[0][:300]
    return cuda_load_error() or (
        f"CUDAExecutionProvider did not start ({why}); expected a working GPU "
        f"and a driver for CUDA {cuda_major() or '?'} or newer, {CHOOSE_CPU}")
