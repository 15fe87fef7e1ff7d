"""onnxruntime's CUDA provider can load from a fresh install: every library it needs is in the
environment (the driver's libcuda.so.1 excepted), the preload maps them from there, and a CUDA
session that cannot start is one line naming what is missing, never a quiet CPU session.

These run on a CPU-only machine: they read the ELF files and load the libraries, no GPU needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gan_edu.errors import GanEduError
from gan_edu.export import cuda_libs

EXPORTED = Path(__file__).resolve().parent.parent / "exported" / "shapes_cdcgan.onnx"

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="onnxruntime-gpu's CUDA libraries are declared for Linux")


def cuda_needed(path: Path) -> list[str]:
    """The provider's NEEDED entries a wheel must bring (not the OS's, not the driver)."""
    needed, _ = cuda_libs.dynamic_entries(path)
    return [n for n in needed if n not in cuda_libs.SYSTEM and n != cuda_libs.DRIVER]


@linux_only
def test_every_library_of_the_cuda_provider_is_in_the_environment():
    provider = cuda_libs.provider_library()
    assert provider is not None, "onnxruntime-gpu (the CUDA build) is a Linux dependency of gan-edu"
    assert cuda_needed(provider), "the CUDA provider lists its CUDA libraries as NEEDED"
    assert cuda_libs.unresolved_libraries() == []


@linux_only
def test_a_library_left_out_of_the_environment_is_named(tmp_path):
    # The same search with every nvidia library but cuRAND (linked, so the folders look like a
    # venv whose wheels lack it, as torch's alone do).
    provider = cuda_libs.provider_library()
    for folder in cuda_libs.nvidia_library_dirs():
        for lib in folder.iterdir():
            if not lib.name.startswith("libcurand"):
                (tmp_path / lib.name).symlink_to(lib)
    missing = cuda_libs.unresolved_libraries(provider, search=[tmp_path])
    assert missing == [("libcurand.so.10", provider.name)]


@linux_only
@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf (binutils) not installed")
def test_dynamic_entries_read_what_readelf_reads():
    provider = cuda_libs.provider_library()
    out = subprocess.run(["readelf", "-d", str(provider)], capture_output=True, text=True, check=True).stdout
    expected = [line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]
    assert cuda_libs.dynamic_entries(provider)[0] == expected


@linux_only
def test_preload_maps_the_cuda_libraries_from_the_environment():
    # A fresh process with no LD_LIBRARY_PATH: after the preload, each library the provider and
    # onnxruntime's run-time opens need is mapped, and from the environment's nvidia folders
    # (this machine may have a system CUDA too: the path tells which one was taken).
    code = (
        "import json\n"
        "from gan_edu.export import cuda_libs\n"
        "cuda_libs.preload_cuda_libraries()\n"
        "print(json.dumps(sorted({l.split()[-1] for l in open('/proc/self/maps') if '.so' in l})))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    mapped = {Path(p).name: Path(p) for p in json.loads(done.stdout.splitlines()[-1])}
    wanted = cuda_needed(cuda_libs.provider_library()) + cuda_libs.opened_at_run_time(cuda_libs.cuda_major() or 13)
    folders = {d.resolve() for d in cuda_libs.nvidia_library_dirs()}
    assert sorted(n for n in wanted if n not in mapped) == []
    assert sorted(n for n in wanted if mapped[n].resolve().parent not in folders) == []


def driver_present() -> bool:
    import ctypes

    try:
        ctypes.CDLL(cuda_libs.DRIVER)
    except OSError:
        return False
    return True


@linux_only
def test_a_cuda_session_is_on_cuda_or_one_line_naming_what_is_missing():
    from gan_edu.export.runtime import OnnxGenerator

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if driver_present():  # a GPU machine: the session really runs on CUDA
        assert OnnxGenerator(EXPORTED, providers=providers).providers[0] == "CUDAExecutionProvider"
        return
    with pytest.raises(GanEduError) as caught:
        OnnxGenerator(EXPORTED, providers=providers)
    message, missing = str(caught.value), cuda_libs.unresolved_libraries()
    named = missing[0][0] if missing else cuda_libs.DRIVER  # the environment's libraries all load: the driver is what lacks
    assert "\n" not in message and named in message and "CPUExecutionProvider" in message


STUB_DRIVER = """
/* A stand-in for the NVIDIA driver's libcuda.so.1 on a machine without one: every call fails. */
int cuInit(unsigned int flags) { return 100; }
int cuDeviceGetCount(int *count) { *count = 0; return 100; }
int cuDriverGetVersion(int *version) { *version = 0; return 100; }
int cuTensorMapEncodeTiled(void) { return 100; }
"""


@linux_only
@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler to build a stand-in driver")
def test_with_a_driver_the_provider_loads_and_a_device_failure_is_one_line(tmp_path):
    # With a stand-in libcuda.so.1 on the loader's path, the provider library itself loads from
    # the environment (what a GPU machine needs besides its driver); the stand-in then reports no
    # device, and the CUDA session asked for is one line on stderr, nothing from onnxruntime.
    subprocess.run(["cc", "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", str(tmp_path / "libcuda.so.1"), "-x", "c", "-"],
                   input=STUB_DRIVER, text=True, check=True)
    env = {**os.environ, "LD_LIBRARY_PATH": str(tmp_path)}
    load = "from gan_edu.export import cuda_libs; cuda_libs.preload_cuda_libraries(); print(cuda_libs.cuda_load_error())"
    done = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "None", done.stdout + done.stderr
    sample = [sys.executable, "-m", "gan_edu", "sample", str(EXPORTED), "-n", "2", "-o", str(tmp_path / "g.png"), "--provider", "CUDAExecutionProvider"]
    done = subprocess.run(sample, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stdout == "", done.stdout
    assert done.stderr.count("\n") == 1 and "CUDAExecutionProvider did not start (CUDA failure" in done.stderr
    assert not (tmp_path / "g.png").exists()


def test_the_library_checks_leave_other_systems_to_onnxruntime(monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")  # a .dll provider: no ELF to read, the session says it
    assert cuda_libs.provider_library() is None and cuda_libs.cuda_load_error() is None
