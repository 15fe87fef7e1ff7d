#!/usr/bin/env bash
# The light distribution, as an app developer installs it: build the gan-edu-runtime wheel, install
# it with its [cpu] extra in a fresh virtual environment, check that torch and onnx are absent,
# sample every shipped generator with the gan-edu-sample command and the Python API, and print the
# environment's size and the time to a ready OnnxGenerator. Fails on any of it. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
uv build --quiet --wheel runtime --out-dir "$work/dist"
wheel="$(ls "$work"/dist/gan_edu_runtime-*.whl)"
uv venv --quiet "$work/venv"
# One install line (here with uv's pip; `pip install "WHEEL[cpu]"` is the same):
uv pip install --quiet --python "$work/venv/bin/python" "$wheel[cpu]"
py="$work/venv/bin/python"
"$py" - <<'PY'
import importlib.util, sys
for absent in ("torch", "onnx", "torchvision"):
    assert importlib.util.find_spec(absent) is None, f"{absent} is installed in the light environment"
print("light environment: no torch, no onnx")
PY
for model in exported/*.onnx; do
  "$work/venv/bin/gan-edu-sample" "$model" -n 20 --seed 0 -o "$work/$(basename "$model" .onnx).png"
done
"$py" - exported/*.onnx <<'PY'
import sys, time
t0 = time.perf_counter()
import onnxruntime  # noqa: F401  (timed apart: the first OnnxGenerator would otherwise pay for it)
from gan_edu_runtime import OnnxGenerator
print(f"import onnxruntime and gan_edu_runtime: {time.perf_counter() - t0:.2f} s")
for path in sys.argv[1:]:
    t = time.perf_counter()
    g = OnnxGenerator(path)
    ready = time.perf_counter() - t
    images = g.sample(16, labels=[3] * 16 if g.num_classes else None, seed=0)
    assert images.shape == (16, *g.image_shape) and abs(images).max() <= 1 + 1e-6, images.shape
    assert "onnx" not in sys.modules and "torch" not in sys.modules
    print(f"{path}: OnnxGenerator ready in {ready:.3f} s (rough: one run on a possibly shared machine), sample(16) {images.shape}")
PY
echo "light environment size: $(du -sm "$work/venv" | cut -f1) MB ($(du -sh "$work/venv" | cut -f1))"
