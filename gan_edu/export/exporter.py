"""Export a trained generator to ONNX, with its metadata, and check the file before keeping it.

:func:`export_generator` takes a :class:`~gan_edu.models.base.Generator` or a run folder and
writes one ``.onnx`` graph::

    inputs   z       float32 (N, latent_dim)
             labels  int64   (N,)             conditional generators only
    output   images  float32 (N, C, H, W) in [-1, 1]        output="float"
                     uint8   (N, H, W, C) in [0, 255]       output="uint8" (ready to show)

``N`` is a dynamic axis (``dynamic_batch=True``). The graph carries the metadata of
:mod:`gan_edu.export.metadata` (``latent_dim``, ``num_classes``, ``class_names``,
``image_shape``, ``value_range``, ``gan_edu_version``, ``model_config``, ``training_data``...).

Every export is checked before the file appears (:mod:`gan_edu.export.graph`: ``onnx.checker``,
then parity with the PyTorch module at batch 1 and 64). A failed check raises
:class:`ExportCheckFailed` and leaves no file: the graph is written to a temporary sibling and
moved into place only after it passed.

Batch norm is folded into the convolution before it (:mod:`gan_edu.export.fold`).
``precision="fp16"`` and ``quantize="int8"`` write a smaller variant with its measured quality
cost (:mod:`gan_edu.export.variants`; a classifier's judgement of it comes from the evaluation
layer, :class:`gan_edu.quality.ClassifierJudge`, handed in as ``judge``). A
:class:`~gan_edu.models.bank.GeneratorBank` exports to a manifest and one graph per class. Why
this shape (one graph per class, the TorchScript exporter by default): docs/onnx.md.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import GanEduError, check
from ..io import atomic_open, atomic_write_json, remove_stale_temporaries
from ..models.bank import GeneratorBank
from ..models.base import Generator
from ..outputs import CONFIG_NAME, HISTORY_NAME, read_history
from .graph import (  # noqa: F401  (the graph's names, importable from here as before)
    CHECK_BATCHES,
    FLOAT_TOLERANCE,
    TORCHSCRIPT_MAX_OPSET,
    UINT8_TOLERANCE,
    ExportCheckFailed,
    ExportModule,
    GraphOptions,
    check_parity,
    export_graph,
    onnx_max_opset,
    to_uint8,
)
from .metadata import BANK_FORMAT, GeneratorInfo, strip_local_paths
from .session import default_providers, optimized_model
from .variants import VariantJudge, VariantRequest, checked_variant


def export_generator(
    model_or_run_dir: Generator | str | Path,
    path: str | Path,
    *,
    # what the model is
    class_names: list[str] | tuple[str, ...] | None = None,
    training_data: dict[str, Any] | None = None,
    # how the graph is written (GraphOptions)
    opset: int | None = None,
    dynamic_batch: bool = True,
    output: str = "float",
    dynamo: bool = False,
    # which smaller variant, and how its cost is judged (VariantRequest)
    precision: str = "fp32",
    quantize: str | None = None,
    judge: VariantJudge | None = None,
    allow_quality_loss: bool = False,
) -> Path:
    """Export a generator to ONNX, check it, then write it atomically.

    The module itself is left as it was (device, train/eval mode, weights): a CPU copy in eval
    mode is exported, so batch norm uses its running statistics.

    Args:
        model_or_run_dir: a Generator, a run folder (with ``generator/`` and ``config.json``) or
            a folder written by ``save_pretrained``.
        path: the ``.onnx`` file (for a GeneratorBank: the ``.json`` manifest; the member
            graphs go next to it as ``NAME.classK.onnx``).
        class_names, training_data: default: the bank's, the model's or the run folder's.
        opset, dynamic_batch, output, dynamo: how the graph is written (:class:`GraphOptions`).
        precision, quantize, judge, allow_quality_loss: ``precision="fp16"`` or ``quantize="int8"``
            writes that variant, its cost against fp32 in ``NAME.quality.json``; ``judge``
            measures it beyond its pixels (:class:`gan_edu.quality.ClassifierJudge`);
            ``allow_quality_loss`` writes it past its bounds, with a warning (:class:`VariantRequest`).

    Returns:
        The file written (the manifest for a bank).

    Raises:
        GanEduError: a bad argument, or a folder that holds no generator.
        ExportCheckFailed: the graph failed ``onnx.checker`` or the parity check, or a variant
            exceeds its quality bounds (without ``allow_quality_loss``).
    """
    variant = VariantRequest(precision, quantize, judge, allow_quality_loss)
    options = GraphOptions(opset, dynamic_batch, output, dynamo)
    model, run = load_generator(model_or_run_dir)
    info = describe(model, run, output=output, class_names=class_names, training_data=training_data)
    model = copy.deepcopy(model).cpu().eval()  # the caller's module keeps its device and mode
    path = Path(path)
    if isinstance(model, GeneratorBank):
        check(variant.name is None, f"a {variant.name} variant of a GeneratorBank: not supported; expected a single generator (export the bank in fp32)")
        return _export_bank(model, path, info, options)
    check(path.suffix == ".onnx", f"{path}: expected a path ending in .onnx")
    data, record = export_graph(model, info, options), None
    if variant.name is not None:
        data, record = checked_variant(data, variant.name, info, judge=variant.judge, allow_quality_loss=variant.allow_quality_loss)
    _write_graph(path, data)
    if record is not None:
        _write_record(path.with_suffix(".quality.json"), record)
    return path


def describe(model: Generator, run: dict[str, Any], *, output: str, class_names: Sequence[str] | None, training_data: dict[str, Any] | None) -> GeneratorInfo:
    """The metadata of ``model``'s graph: its shapes and classes, what it was trained on and how (``run``, from :func:`load_generator`).

    ``class_names`` default to the model config's or the run's training data's; ``training_data``
    to the run's, without any folder of this machine.
    """
    if class_names is None:
        class_names = (getattr(model.config, "class_names", ()) or (run.get("data") or {}).get("class_names") or ()) if model.num_classes else ()
    class_names = tuple(str(c) for c in class_names)
    if model.num_classes is None:
        check(not class_names, f"class_names given for an unconditional generator ({len(class_names)} names): expected none")
    else:
        check(not class_names or len(class_names) == model.num_classes, f"{len(class_names)} class_names: expected {model.num_classes} (one per class)")
    return GeneratorInfo(
        latent_dim=model.latent_dim, num_classes=model.num_classes, class_names=class_names,
        image_shape=model.image_shape, output=output, gan_edu_version=__version__,
        model_class=type(model).__name__, model_config=model.config.to_dict(),
        training_data=strip_local_paths(training_data if training_data is not None else run.get("data")),  # no folder of this machine
        training=run.get("training"),
    )


def _write_record(path: Path, record: dict[str, Any]) -> None:
    """Write a variant's quality record atomically, after removing a killed export's leftovers of it."""
    remove_stale_temporaries(path)
    atomic_write_json(path, record)


def _write_graph(path: Path, data: bytes) -> None:
    """Write checked graph bytes atomically, then onnxruntime's optimized graph next to them (best effort)."""
    remove_stale_temporaries(path)  # left by an export killed mid-write (a live writer's are kept)
    with atomic_open(path, "wb") as f:
        f.write(data)
    optimized_model(path, default_providers())


def _export_bank(bank: GeneratorBank, path: Path, info: GeneratorInfo, options: GraphOptions) -> Path:
    """One graph per member (``NAME.classK.onnx``), then the manifest ``NAME.json`` last."""
    check(path.suffix == ".json", f"{path}: a GeneratorBank exports to a manifest; expected a path ending in .json")
    members = []
    for k, member in enumerate(bank.members):
        assert isinstance(member, Generator)
        member_info = GeneratorInfo(
            latent_dim=info.latent_dim, num_classes=None, class_names=(), image_shape=info.image_shape,
            output=info.output, gan_edu_version=info.gan_edu_version, model_class=type(member).__name__,
            model_config=member.config.to_dict(), training_data=info.training_data, training=info.training,
        )
        name = f"{path.stem}.class{k}.onnx"
        _write_graph(path.with_name(name), export_graph(member, member_info, options))
        members.append(name)
    # The manifest is written last: it exists only when every member it names does.
    remove_stale_temporaries(path)
    atomic_write_json(path, {**info.to_dict(BANK_FORMAT), "members": members})
    return path


def load_generator(source: Generator | str | Path) -> tuple[Generator, dict[str, Any]]:
    """The generator to export, and what its run folder says about its training.

    Args:
        source: a Generator, a run folder, or a ``save_pretrained`` folder.

    Returns:
        ``(generator, run)`` where ``run`` has ``data`` (the run's training data: name, options,
        class_names, size) and ``training`` (loss, steps, epochs, batch size, seed), each None
        when unknown.
    """
    from .. import models  # noqa: F401  (registers the model classes from_pretrained may name)

    if isinstance(source, Generator):
        return source, {"data": None, "training": None}
    check(isinstance(source, (str, Path)), f"{source!r}: expected a Generator or a run folder")
    folder = Path(source)
    check(folder.is_dir(), f"{folder}: no such folder; expected a run folder (with generator/) or a saved generator")
    if (folder / "generator").is_dir():
        model = Generator.from_pretrained(folder / "generator")
        return model, _run_facts(folder)  # type: ignore[return-value]
    if (folder / "model.safetensors").is_file():
        return Generator.from_pretrained(folder), {"data": None, "training": None}  # type: ignore[return-value]
    raise GanEduError(f"{folder}: holds no generator; expected a run folder (with generator/) or a folder written by save_pretrained")


def _run_facts(run_dir: Path) -> dict[str, Any]:
    """Training data and training facts from a run's ``config.json`` and ``history.jsonl``."""
    try:
        cfg = json.loads((run_dir / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return {"data": None, "training": None}
    trainer = cfg.get("trainer") or {}
    history = read_history(run_dir / HISTORY_NAME) if (run_dir / HISTORY_NAME).is_file() else []
    steps = max((r.get("step", 0) for r in history), default=None)
    epochs = max((r.get("epoch", 0) for r in history if r.get("kind") == "epoch"), default=None)
    training = {
        "model": cfg.get("model"),
        "loss": (cfg.get("loss") or {}).get("name"),
        "steps": steps,
        "epochs": epochs,
        "batch_size": trainer.get("batch_size"),
        "seed": trainer.get("seed"),
        "lr_g": trainer.get("lr_g"),
        "lr_d": trainer.get("lr_d"),
        "beta1": trainer.get("beta1"),
        "beta2": trainer.get("beta2"),
        "trainer_class": cfg.get("trainer_class"),
    }
    return {"data": cfg.get("data"), "training": training}
