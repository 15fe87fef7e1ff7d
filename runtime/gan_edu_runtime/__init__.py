"""gan-edu-runtime: sample images from an exported gan-edu generator with numpy and onnxruntime, no torch.

Install (from a gan-edu checkout; ``[gpu]`` instead of ``[cpu]`` for onnxruntime-gpu)::

    pip install "./runtime[cpu]"

Then::

    from gan_edu_runtime import OnnxGenerator

    g = OnnxGenerator("exported/shapes_cdcgan.onnx")
    images = g.sample(16, labels=[3] * 16, seed=0)   # (16, 1, 32, 32) float32 in [-1, 1]
    pictures = g.to_uint8(images)                     # (16, 32, 32, 1) uint8, ready for PIL

or ``gan-edu-sample exported/shapes_cdcgan.onnx -n 80 --seed 0 -o grid.png``. The modules:
:mod:`~gan_edu_runtime.generator` (OnnxGenerator), :mod:`~gan_edu_runtime.session`
(onnxruntime sessions and the optimized-graph cache), :mod:`~gan_edu_runtime.metadata` (what a
gan-edu ONNX file says about itself), :mod:`~gan_edu_runtime.card` (the JSON card and its
schema), :mod:`~gan_edu_runtime.safety` (file checks), :mod:`~gan_edu_runtime.cli` (the command).
gan-edu itself imports all of this from here.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import GanEduError
from .generator import OnnxGenerator, float_to_uint8, image_grid

try:
    __version__ = version("gan-edu-runtime")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["GanEduError", "OnnxGenerator", "__version__", "float_to_uint8", "image_grid"]
