"""gan-edu: an object-oriented, educational GAN framework in plain PyTorch.

The flow, one direction only::

    data -> models -> losses -> training -> export (ONNX) -> runtime -> synthetic -> evaluation
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gan-edu")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
