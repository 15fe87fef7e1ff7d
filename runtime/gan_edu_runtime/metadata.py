"""The metadata every exported gan-edu generator carries, and how it is written and read.

An ONNX model has ``metadata_props``: string keys mapped to string values. gan-edu writes the
keys below, each value JSON-encoded (so ``json.loads`` gives back the int, list or dict), using
the same names as the code (``latent_dim``, ``num_classes``, ``image_shape``...). An app reads
them with onnxruntime alone::

    meta = session.get_modelmeta().custom_metadata_map
    latent_dim = json.loads(meta["latent_dim"])

A per-class bank is a folder of unconditional member graphs plus a JSON manifest holding the
same keys (as plain JSON values) and ``members``: one ``.onnx`` file name per class.

This module imports neither torch nor onnx: the runtime and the exporter both use it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from .errors import GanEduError

#: Value of the ``format`` key: says "this file is a gan-edu generator" (and which layout version).
GENERATOR_FORMAT = "gan-edu-generator/1"
#: Value of the ``format`` key of a bank manifest.
BANK_FORMAT = "gan-edu-bank/1"

#: Input and output names of every exported graph.
Z_INPUT, LABELS_INPUT, IMAGES_OUTPUT = "z", "labels", "images"

#: The two output kinds: "float" images (N, C, H, W) in [-1, 1], or "uint8" images (N, H, W, C) in [0, 255].
OUTPUTS = ("float", "uint8")

#: Every key written, with what it means (docs/onnx.md shows the same table).
KEYS: dict[str, str] = {
    "format": f"{GENERATOR_FORMAT!r} (or {BANK_FORMAT!r} in a bank manifest)",
    "latent_dim": "size of z: the graph's input z has shape (N, latent_dim)",
    "num_classes": "K for a conditional generator (input labels of shape (N,), values in [0, K)), null otherwise",
    "class_names": "one name per class, in label order ([] when unconditional or unknown)",
    "image_shape": "(C, H, W) of one image",
    "output": "'float' or 'uint8': what the output images holds",
    "layout": "'NCHW' (float output) or 'NHWC' (uint8 output, ready to show)",
    "value_range": "[-1, 1] for float output, [0, 255] for uint8",
    "gan_edu_version": "version of gan-edu that exported the model",
    "model_class": "the PyTorch class that was exported (e.g. DCGANGenerator)",
    "model_config": "that class's config: enough to rebuild the PyTorch module",
    "training_data": "the training data's name, options, class names and size (null when unknown)",
    "training": "how it was trained: loss, steps, epochs, batch size, seed (null when unknown)",
}


@dataclasses.dataclass(frozen=True)
class GeneratorInfo:
    """What a gan-edu ONNX generator (or bank) says about itself."""

    latent_dim: int  # size of z
    num_classes: int | None  # None: unconditional
    class_names: tuple[str, ...]  # one per class; () when unconditional
    image_shape: tuple[int, int, int]  # (C, H, W)
    output: str  # "float" or "uint8"
    gan_edu_version: str = "unknown"  # who exported it
    model_class: str = ""  # the exported PyTorch class
    model_config: dict[str, Any] = dataclasses.field(default_factory=dict)  # its config
    training_data: dict[str, Any] | None = None  # what it learned from
    training: dict[str, Any] | None = None  # how it learned

    @property
    def layout(self) -> str:
        return "NHWC" if self.output == "uint8" else "NCHW"

    @property
    def value_range(self) -> tuple[int, int]:
        return (0, 255) if self.output == "uint8" else (-1, 1)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """Shape of one output image: ``(C, H, W)`` or, for uint8 output, ``(H, W, C)``."""
        c, h, w = self.image_shape
        return (h, w, c) if self.output == "uint8" else (c, h, w)

    def to_dict(self, fmt: str = GENERATOR_FORMAT) -> dict[str, Any]:
        """Every key of :data:`KEYS` as plain JSON values."""
        return {
            "format": fmt,
            "latent_dim": self.latent_dim,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "image_shape": list(self.image_shape),
            "output": self.output,
            "layout": self.layout,
            "value_range": list(self.value_range),
            "gan_edu_version": self.gan_edu_version,
            "model_class": self.model_class,
            "model_config": self.model_config,
            "training_data": self.training_data,
            "training": self.training,
        }

    def to_props(self) -> dict[str, str]:
        """The ONNX ``metadata_props``: every value JSON-encoded."""
        return {k: json.dumps(v, sort_keys=True) for k, v in self.to_dict().items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str, fmt: str = GENERATOR_FORMAT) -> GeneratorInfo:
        """Read and check the keys of :meth:`to_dict`.

        Raises:
            GanEduError: ``source`` is not a gan-edu generator, or its metadata is inconsistent.
        """
        if values.get("format") != fmt:
            raise GanEduError(f"{source}: not a gan-edu generator (metadata format={values.get('format')!r}; expected {fmt!r})")
        try:
            info = cls(
                latent_dim=int(values["latent_dim"]),
                num_classes=None if values["num_classes"] is None else int(values["num_classes"]),
                class_names=tuple(str(c) for c in values.get("class_names") or ()),
                image_shape=tuple(int(s) for s in values["image_shape"]),  # type: ignore[arg-type]
                output=str(values["output"]),
                gan_edu_version=str(values.get("gan_edu_version", "unknown")),
                model_class=str(values.get("model_class", "")),
                model_config=dict(values.get("model_config") or {}),
                training_data=values.get("training_data"),
                training=values.get("training"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise GanEduError(f"{source}: gan-edu metadata is incomplete or malformed ({type(e).__name__}: {e})") from None
        problems = []
        if info.latent_dim <= 0:
            problems.append(f"latent_dim={info.latent_dim}")
        if info.num_classes is not None and info.num_classes < 2:
            problems.append(f"num_classes={info.num_classes}")
        if len(info.image_shape) != 3 or min(info.image_shape) <= 0:
            problems.append(f"image_shape={info.image_shape}")
        if info.output not in OUTPUTS:
            problems.append(f"output={info.output!r}")
        if info.class_names and len(info.class_names) != (info.num_classes or 0):
            problems.append(f"{len(info.class_names)} class_names for num_classes={info.num_classes}")
        if problems:
            raise GanEduError(f"{source}: inconsistent gan-edu metadata ({'; '.join(problems)})")
        return info

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str) -> GeneratorInfo:
        """Read the ONNX ``metadata_props`` written by :meth:`to_props`."""
        if "format" not in props:
            raise GanEduError(f"{source}: not a gan-edu generator (no 'format' in its ONNX metadata); expected a file written by gan-edu export")
        values: dict[str, Any] = {}
        for key, text in props.items():
            if key in KEYS:
                try:
                    values[key] = json.loads(text)
                except ValueError:
                    raise GanEduError(f"{source}: metadata {key}={text[:40]!r} is not JSON; expected a gan-edu generator") from None
        return cls.from_dict(values, source)


def strip_local_paths(value: Any) -> Any:
    """``value`` (JSON-like) without what names a place on one machine: ``data_root`` keys and absolute paths.

    Shipped files (ONNX metadata, cards) must not carry the exporter's folders.

    >>> strip_local_paths({"name": "mnist", "options": {"data_root": "/home/me/data", "split": "train"}, "log": "C:/runs/x"})
    {'name': 'mnist', 'options': {'split': 'train'}}
    """
    if isinstance(value, dict):
        return {k: strip_local_paths(v) for k, v in value.items() if k != "data_root" and not is_local_path(v)}
    if isinstance(value, list):
        return [strip_local_paths(v) for v in value if not is_local_path(v)]
    return value


def is_local_path(value: Any) -> bool:
    """Whether ``value`` is a string that names an absolute path (``/...``, ``~/...``, ``C:\\...``)."""
    import ntpath
    import posixpath

    return isinstance(value, str) and (posixpath.isabs(value) or value.startswith("~/") or (ntpath.isabs(value) and ":" in value[:3]))
