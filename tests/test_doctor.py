"""``gan-edu doctor``: the report of this machine, its exit status, and problems with their fix lines.

These run on a CPU-only machine. The GPU lines (devices, a CUDA session that runs) are checked
only where a GPU is lent: here the driver is faked to say "one GPU" to see the problems reported.
"""

from __future__ import annotations

import json
import sys

import onnxruntime as ort
import pytest
import torch

from gan_edu.cli import doctor, main
from gan_edu.export import cuda_libs, session


def test_doctor_reports_versions_and_providers_that_run(capsys):
    assert main(["doctor"]) == 0  # the declared environment on this machine: nothing missing
    out = capsys.readouterr().out
    assert torch.__version__ in out and ort.__version__ in out
    assert "CPUExecutionProvider: works" in out
    for name in ort.get_available_providers():
        assert f"{name}: " in out, name
    assert f"torch: {torch.get_num_threads()} intra-op" in out
    assert "ok: nothing missing" in out


def test_doctor_json_is_the_same_report(capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["torch"] == torch.__version__ and report["onnxruntime"] == ort.__version__
    assert sorted(report["providers"]) == sorted(ort.get_available_providers())
    assert report["providers"]["CPUExecutionProvider"] == "works" and report["problems"] == []


def test_the_tiny_session_checks_the_numbers():
    assert doctor.try_provider("CPUExecutionProvider") is None


def test_a_provider_that_cannot_run_a_session_is_a_problem(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "tiny_model", lambda: b"not an onnx model")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "CPUExecutionProvider: FAILS" in out and "fix: uv sync" in out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="onnxruntime-gpu's CUDA libraries are declared for Linux")
def test_a_cuda_library_missing_from_the_environment_is_named_with_its_fix(monkeypatch, tmp_path, capsys):
    for folder in cuda_libs.nvidia_library_dirs():  # the environment's nvidia folders, less cuRAND
        for lib in folder.iterdir():
            if not lib.name.startswith("libcurand"):
                (tmp_path / lib.name).symlink_to(lib)
    monkeypatch.setattr(cuda_libs, "nvidia_library_dirs", lambda: [tmp_path])
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "CUDAExecutionProvider: libcurand.so.10 not in the environment" in out
    assert "fix: uv sync (or: pip install 'onnxruntime-gpu[cuda,cudnn]')" in out


@pytest.mark.skipif(session.cuda_device_count() > 0, reason="a real GPU here: nothing to fake")
def test_a_gpu_that_nothing_can_use_is_a_problem(monkeypatch, capsys):
    monkeypatch.setattr(session, "cuda_device_count", lambda: 1)  # the driver "reports" a GPU
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "torch cannot use them" in out
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert "CUDAExecutionProvider does not start on this GPU machine" in out
