"""Reading and checking a generator's JSON card (``NAME.json`` beside ``NAME.onnx``).

An ONNX file carries its own metadata (:mod:`gan_edu_runtime.metadata`), but not every client can
read it: onnxruntime's JavaScript API gives input and output names, not ``metadata_props``. So a
shipped generator has a card whose ``contract`` says, in plain JSON, everything a client needs:
names, shapes and dtypes, the noise to draw, the label rule, the value range and how values become
pixels, the ONNX opset and the oldest onnxruntime that runs it. ``card.schema.json`` (in this
package) is the card's JSON Schema, for clients in any language; :func:`card_problems` checks a
card against the file it describes. gan-edu writes cards with ``gan-edu card``
(:mod:`gan_edu.export.card`).

Needs numpy and onnxruntime only.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import GanEduError, check
from .metadata import GeneratorInfo

#: Value of a card's ``format`` key.
CARD_FORMAT = "gan-edu-card/2"

#: The metadata keys a card's ``contract`` repeats, equal to the graph's own.
CONTRACT_KEYS = ("latent_dim", "num_classes", "class_names", "image_shape", "output", "layout", "value_range")

#: onnxruntime's type names to numpy's.
DTYPES = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(uint8)": "uint8"}

#: The oldest onnxruntime release that implements each default-domain ONNX opset (onnxruntime's
#: versioning table, docs/Versioning.md in its repository). An opset missing here is refused by
#: :func:`graph_contract`: add its row first.
MIN_ONNXRUNTIME = {17: "1.13", 18: "1.14", 19: "1.15", 20: "1.17", 21: "1.18"}

#: The noise every gan-edu generator expects, and how gan-edu's samplers draw it from a seed.
NOISE = {
    "distribution": "normal",
    "mean": 0.0,
    "std": 1.0,
    "dtype": "float32",
    "independent": True,
    "numpy": "np.random.default_rng(seed).standard_normal((n, latent_dim), dtype=np.float32)",
}

#: How the outputs of a float generator become 8-bit pixels (a uint8 graph does it itself).
PIXELS = {
    "float": "pixel = clip(round((x + 1) * 127.5), 0, 255) as uint8, per channel; NCHW to NHWC for display",
    "uint8": "the output already holds the pixels: (N, H, W, C) uint8",
}

#: How far a float output may stray outside ``value_range``: a few float32 steps (tanh in float32
#: gives -1.0000002 or 1.0000001 on onnxruntime's CPU kernels in graphs exported before gan-edu's
#: exporter ended every float graph with a Clip to [-1, 1]); the pixel formula's clip absorbs it.
VALUE_TOLERANCE = {"float": 1e-6, "uint8": 0}


def label_rule(num_classes: int | None) -> str | None:
    """The sentence a client needs about labels (None for an unconditional model)."""
    if num_classes is None:
        return None
    return (
        f"labels: int64, one per image, each in [0, {num_classes - 1}]; check them before running: "
        f"the graph itself does not (an embedding lookup: -1 reads class {num_classes - 1}, "
        f"{num_classes} or more fails inside onnxruntime). gan-edu's samplers refuse anything else"
    )


def onnx_opsets(data: bytes) -> dict[str, int]:
    """The ``opset_import`` of a serialized ONNX model, ``{domain: version}`` (``""``: the default).

    Reads the top level of the protobuf wire format (ModelProto field 8, OperatorSetIdProto
    fields 1 domain and 2 version), skipping every other field by its length: no onnx package.
    """
    opsets, pos = {}, 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            if number == 8:
                domain, version, inner = "", 0, data[pos : pos + size]
                i = 0
                while i < len(inner):
                    t, i = _varint(inner, i)
                    if t & 7 == 2:
                        n, i = _varint(inner, i)
                        if t >> 3 == 1:
                            domain = inner[i : i + n].decode()
                        i += n
                    elif t & 7 == 0:
                        v, i = _varint(inner, i)
                        if t >> 3 == 2:
                            version = v
                    else:
                        raise GanEduError("not an ONNX model (unexpected wire type in opset_import)")
                opsets[domain] = version
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise GanEduError(f"not an ONNX model (wire type {wire} at byte {pos})")
    return opsets


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise GanEduError("not an ONNX model (truncated varint)")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def graph_contract(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The contract as the ``.onnx`` itself states it: its metadata, its graph's inputs and outputs, its opset.

    Returns:
        ``{latent_dim, num_classes, class_names, image_shape, output, layout, value_range,
        value_tolerance, inputs, outputs, noise, labels, pixels, opset, min_onnxruntime}``;
        ``inputs`` and ``outputs`` list ``{name, dtype, shape}`` in graph order, with the
        dynamic batch axis written as its name (``"N"``).
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    info = GeneratorInfo.from_props(session.get_modelmeta().custom_metadata_map, str(path))
    opset = onnx_opsets(Path(path).read_bytes()).get("", 0)
    check(opset in MIN_ONNXRUNTIME, f"{path}: ONNX opset {opset}; expected one of {sorted(MIN_ONNXRUNTIME)} (the opsets whose oldest onnxruntime gan-edu knows)")

    def describe(nodes: Any) -> list[dict[str, Any]]:
        return [{"name": n.name, "dtype": DTYPES.get(n.type, n.type), "shape": [d if isinstance(d, int) else str(d) for d in n.shape]} for n in nodes]

    values = info.to_dict()
    return {
        **{k: values[k] for k in CONTRACT_KEYS},
        "value_tolerance": VALUE_TOLERANCE[info.output],
        "inputs": describe(session.get_inputs()),
        "outputs": describe(session.get_outputs()),
        "noise": {**NOISE, "shape": ["N", info.latent_dim]},
        "labels": label_rule(info.num_classes),
        "pixels": PIXELS[info.output],
        "opset": opset,
        "min_onnxruntime": MIN_ONNXRUNTIME[opset],
    }


def card_problems(card: dict[str, Any], onnx_path: str | os.PathLike[str]) -> list[str]:
    """What in ``card`` disagrees with the file it describes or with the card schema (empty when nothing does).

    Checks the format, the file's name, size and SHA-256, the picture's presence, and every key
    of the contract against :func:`graph_contract`. (The JSON Schema, :func:`card_schema`, is
    checked by whoever has a validator: gan-edu's tests use ``jsonschema``.)
    """
    path = Path(onnx_path)
    problems = []
    if card.get("format") != CARD_FORMAT:
        problems.append(f"format={card.get('format')!r}: expected {CARD_FORMAT!r}")
    for key, actual in (("file", path.name), ("size_bytes", path.stat().st_size), ("sha256", sha256(path))):
        if card.get(key) != actual:
            problems.append(f"{key}={card.get(key)!r}: the file has {actual!r}")
    picture = card.get("picture")
    if not isinstance(picture, str) or not (path.parent / picture).is_file():
        problems.append(f"picture={picture!r}: no such file beside {path.name}")
    contract, actual = card.get("contract") or {}, graph_contract(path)
    for key, value in actual.items():
        if contract.get(key) != value:
            problems.append(f"contract.{key}={contract.get(key)!r}: the graph says {value!r}")
    return problems


def card_schema() -> dict[str, Any]:
    """The card's JSON Schema (``card.schema.json`` in this package)."""
    return json.loads(resources.files(__package__).joinpath("card.schema.json").read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a card, or raise a one-line GanEduError."""
    try:
        card = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise GanEduError(f"{path}: not a readable JSON card ({e})") from None
    check(isinstance(card, dict) and card.get("format") == CARD_FORMAT, f"{path}: not a gan-edu card (format {CARD_FORMAT!r})")
    return card
