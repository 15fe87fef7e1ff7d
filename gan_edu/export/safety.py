"""Checks on a model file before onnxruntime opens it: external data must stay in the model's folder.

Nothing in a gan-edu model file runs code; the one way a model file reaches outside itself is
external data (tensors stored in side files), so every such location is checked. This module
must import without torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import GanEduError, check


def check_external_data(path: str | os.PathLike[str]) -> None:
    """Refuse a model whose external data lives outside its folder (or that is not ONNX at all).

    Reads the graph without its external data (``onnx.load(..., load_external_data=False)``) and
    checks every tensor stored outside the file: its ``location`` must be a relative path that,
    with ``..`` and symbolic links resolved, stays inside the model's folder.

    Raises:
        GanEduError: the file is not ONNX, or a location points outside the folder.
    """
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
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


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
