"""The light distribution (runtime/, gan-edu-runtime): its sampler and command run in a process where
torch, torchvision and onnx cannot be imported, load without importing onnx, and draw what gan-edu
draws. (.ci/run also builds its wheel and installs it in a fresh environment:
runtime/check_light_install.sh.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from gan_edu.export import OnnxGenerator

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "exported").glob("*.onnx"))

BLOCK = '''
import sys

class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "onnx", "gan_edu"):
            raise ImportError(f"{name} is blocked in this process")
        return None

sys.meta_path.insert(0, _Block())
'''


def run_light(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``python ARGS`` with only the light package importable of gan-edu's own code (and no torch, no onnx)."""
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(BLOCK)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT / "runtime")])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


def test_the_light_package_declares_no_torch_and_no_onnx():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "runtime" / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    names = {d.split(";")[0].split(">")[0].split("=")[0].split("[")[0].strip() for d in wanted}
    assert names == {"numpy", "pillow", "onnxruntime", "onnxruntime-gpu"}
    assert project["scripts"] == {"gan-edu-sample": "gan_edu_runtime.cli:entry_point"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_the_light_package_samples_without_torch_or_onnx(path, tmp_path):
    blocked = run_light(["-c", "import onnx"], tmp_path)
    assert blocked.returncode != 0 and "onnx is blocked" in blocked.stderr  # the blocker works
    np.save(tmp_path / "expected.npy", OnnxGenerator(path).sample(8, seed=5))
    code = f"""
import sys
import numpy as np
from gan_edu_runtime import OnnxGenerator
g = OnnxGenerator({str(path)!r})
assert np.array_equal(g.sample(8, seed=5), np.load("expected.npy")), "other images than gan-edu's"
print(sorted(m for m in sys.modules if m.split(".")[0] in ("onnx", "torch", "gan_edu")))
"""
    out = run_light(["-c", code], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    cmd = run_light(["-m", "gan_edu_runtime", str(path), "-n", "20", "--seed", "0", "-o", "grid.png"], tmp_path)
    assert cmd.returncode == 0 and (tmp_path / "grid.png").is_file(), cmd.stderr
    bad = run_light(["-m", "gan_edu_runtime", str(path), "-n", "2", "--labels", "0,99", "-o", "x.png"], tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("gan-edu-sample: error: labels in [0, 99]") and bad.stderr.count("\n") == 1, bad.stderr


def test_external_data_is_checked_with_onnx_and_refused_clearly_without(tmp_path):
    model = onnx.load(str(SHIPPED[0]))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.onnx.data", size_threshold=0)
    assert OnnxGenerator(tmp_path / "ext.onnx").latent_dim == json.loads(SHIPPED[0].with_suffix(".json").read_text())["contract"]["latent_dim"]
    out = run_light(["-c", f"from gan_edu_runtime import OnnxGenerator; OnnxGenerator({str(tmp_path / 'ext.onnx')!r})"], tmp_path)
    assert out.returncode != 0 and "may store tensors in side files (external data)" in out.stderr and "expected `pip install onnx` first" in out.stderr


NO_TORCH = '''
import sys

class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Block())
'''


def test_gan_edu_without_torch_says_which_commands_need_it(tmp_path):
    """gan-edu installed with --no-deps: --help and the torch-free commands work; the others refuse in one line."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_TORCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}

    def gan_edu(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gan_edu", *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)

    help_ = gan_edu("--help")
    assert help_.returncode == 0 and "Traceback" not in help_.stderr, help_.stderr
    assert re.search(r"\n +train +\(unavailable: torch is not installed\)", help_.stdout) and re.search(r"\n +sample +sample images", help_.stdout), help_.stdout
    train = gan_edu("train", "--dataset", "mnist")
    assert train.returncode == 2 and train.stderr.count("\n") == 1, train.stderr
    assert train.stderr.startswith("gan-edu: error: gan-edu train needs torch, which is not installed; expected")
    sample = gan_edu("sample", str(SHIPPED[0]), "-n", "4", "--seed", "0", "--npz", "s.npz")
    assert sample.returncode == 0 and (tmp_path / "s.npz").is_file(), sample.stderr


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_the_cards_install_line_and_python_line_name_the_light_package(path, tmp_path):
    how = json.loads(path.with_suffix(".json").read_text())["how_to_run"]
    assert how["install"] == 'pip install "./runtime[cpu]"' and how["install"] in (ROOT / "README.md").read_text()
    code = f"import os; os.chdir({str(ROOT)!r}); x = {how['python'].split('; ', 1)[1]}; print(x.shape)"
    out = run_light(["-c", how["python"].split("; ", 1)[0] + "; " + code], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("(16, ")
