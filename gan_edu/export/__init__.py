"""ONNX export of trained generators, and fast sampling from them with onnxruntime.

Two halves, kept apart so that an app can sample without torch:

* :mod:`gan_edu.export.exporter` (needs torch): :func:`export_generator` writes a checked
  ``.onnx`` graph with gan-edu metadata (or, for a per-class bank, one graph per class and a
  manifest), batch norm folded (:mod:`~gan_edu.export.fold`); fp16 and int8 variants with
  their quality cost come from :mod:`~gan_edu.export.variants`.
* :mod:`gan_edu.export.runtime` (numpy and onnxruntime only): :class:`OnnxGenerator` loads the
  file and samples images, with the session settings and optimized-graph cache of
  :mod:`~gan_edu.export.session` and the file checks of :mod:`~gan_edu.export.safety`.

Importing this package does not import torch: ``export_generator`` and ``ExportCheckFailed``
are loaded on first use.
"""

from __future__ import annotations

from typing import Any

from .metadata import KEYS, GeneratorInfo
from .runtime import OnnxGenerator, float_to_uint8, image_grid

_FROM_EXPORTER = ("export_generator", "ExportCheckFailed", "to_uint8")


def __getattr__(name: str) -> Any:
    # PEP 562: the torch-side names are imported only when asked for.
    if name in _FROM_EXPORTER:
        from . import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KEYS", "ExportCheckFailed", "GeneratorInfo", "OnnxGenerator", "export_generator", "float_to_uint8", "image_grid", "to_uint8"]
