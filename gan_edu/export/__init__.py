"""ONNX export of trained generators, and fast sampling from them with onnxruntime.

Two halves, kept apart so that an app can sample without torch:

* :mod:`gan_edu.export.exporter` (needs torch): :func:`export_generator` writes a checked
  ``.onnx`` graph with gan-edu metadata (or, for a per-class bank, one graph per class and a
  manifest), batch norm folded (:mod:`~gan_edu.export.fold`), each graph checked
  (:mod:`~gan_edu.export.graph`); fp16 and int8 variants with their pixel cost come from
  :mod:`~gan_edu.export.variants`. Export takes a model and writes graphs: it never imports the
  training loop, a data set, a metric or the pipeline (a classifier's judgement of a variant is
  :class:`gan_edu.quality.ClassifierJudge`, handed in).
* the runtime (numpy and onnxruntime only), which lives in the light distribution
  ``gan-edu-runtime`` (``runtime/`` in this repository, import name :mod:`gan_edu_runtime`):
  :class:`OnnxGenerator` loads the file and samples images, with the session settings and
  optimized-graph cache of its ``session`` module, the metadata and the file checks. Its modules
  keep their old names here (``gan_edu.export.runtime`` is ``gan_edu_runtime.generator``;
  ``session``, ``safety``, ``metadata`` are the same-named modules): one module object, two names.

Importing this package does not import torch: ``export_generator`` and ``ExportCheckFailed``
are loaded on first use.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from gan_edu_runtime.generator import OnnxGenerator, float_to_uint8, image_grid
from gan_edu_runtime.metadata import KEYS, GeneratorInfo

#: The runtime's modules under their old names in this package.
_MOVED = {"runtime": "generator", "session": "session", "safety": "safety", "metadata": "metadata", "cuda_libs": "cuda_libs"}
for _old, _new in _MOVED.items():
    sys.modules[f"{__name__}.{_old}"] = globals()[_old] = importlib.import_module(f"gan_edu_runtime.{_new}")

_FROM_EXPORTER = ("export_generator", "ExportCheckFailed", "to_uint8")


def __getattr__(name: str) -> Any:
    # PEP 562: the torch-side names are imported only when asked for.
    if name in _FROM_EXPORTER:
        from . import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KEYS", "ExportCheckFailed", "GeneratorInfo", "OnnxGenerator", "export_generator", "float_to_uint8", "image_grid", "to_uint8"]
