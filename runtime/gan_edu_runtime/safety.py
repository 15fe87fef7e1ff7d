"""Checks on a model file before onnxruntime opens it: external data must stay in the model's folder.

Nothing in a gan-edu model file runs code; the one way a model file reaches outside itself is
external data (tensors stored in side files), so every such location is checked. This module
must import without torch, and without ``onnx``: a tensor stored outside the file names its side
file under the key ``location``, so a file whose bytes never spell ``location`` has no external
data, and is passed on without parsing (every gan-edu export is such a file). Only a file that
does holds the word is parsed, with the ``onnx`` package (an install of the light package alone
then asks for it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import GanEduError, check, first_line

#: The key every external-data entry of an ONNX tensor holds (``TensorProto.external_data``).
EXTERNAL_KEY = b"location"


def may_have_external_data(data: bytes) -> bool:
    """False when the serialized model ``data`` certainly stores no tensor outside itself.

    >>> may_have_external_data(b"\\x08\\x09 a model without side files")
    False
    """
    return EXTERNAL_KEY in data


def check_external_data(path: str | os.PathLike[str]) -> None:
    """Refuse a model whose external data lives outside its folder.

    A file whose bytes cannot hold external data (:func:`may_have_external_data`) passes at
    once; onnxruntime then says whether it is ONNX at all. Otherwise the graph is read without its
    external data (``onnx.load(..., load_external_data=False)``) and every tensor stored outside
    the file is checked: its ``location`` must be a relative path that, with ``..`` and symbolic
    links resolved, stays inside the model's folder.

    Raises:
        GanEduError: the file cannot be read, is not ONNX, or a location points outside the
            folder (or the ``onnx`` package needed to check it is missing).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise GanEduError(f"{path}: cannot read it ({e.strerror or e}); expected an exported gan-edu generator") from None
    if not may_have_external_data(data):
        return
    try:
        import onnx
    except ImportError:
        raise GanEduError(
            f"{path}: may store tensors in side files (external data), which are checked with the onnx package; "
            "expected `pip install onnx` first (gan-edu's own exports have no external data)"
        ) from None
    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # protobuf's DecodeError and onnx's own errors
        raise GanEduError(f"{path}: not an ONNX model ({first_line(e)}); expected an exported gan-edu generator") from None
    folder = path.parent.resolve()
    for tensor in _all_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        check(
            bool(location) and not os.path.isabs(location) and inside(path.parent / location, folder),
            f"{path}: tensor {tensor.name!r} has external data at {location!r}, outside the model's folder {folder}; expected a file inside it",
        )


def _all_tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto of a graph: initializers, Constant/attribute tensors, and subgraphs'."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def inside(candidate: Path, folder: Path) -> bool:
    """Whether ``candidate`` (``..`` and symbolic links resolved) lies inside ``folder``."""
    try:
        candidate.resolve().relative_to(folder)
    except ValueError:
        return False
    return True
