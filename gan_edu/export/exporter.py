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

Every export is checked before the file appears: ``onnx.checker`` on the graph, then the graph
is run with onnxruntime on the CPU at batch 1 and 64 and compared with the PyTorch module on the
same ``z`` and labels (max abs difference at most 1e-4 for float output, at most one level for
uint8). A failed check raises :class:`ExportCheckFailed` and leaves no file: the graph is written
to a temporary sibling and moved into place only after it passed.

Before export, batch norm is folded into the convolution before it (:mod:`gan_edu.export.fold`)
and the parity check compares the folded graph with the unfolded module. ``precision="fp16"``
and ``quantize="int8"`` write a smaller variant with its measured quality cost
(:mod:`gan_edu.export.variants`). A :class:`~gan_edu.models.bank.GeneratorBank` exports to a
manifest and one graph per class. Why this shape (one graph per class, the TorchScript exporter
by default): docs/onnx.md.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import GanEduError, check
from ..io import atomic_open, atomic_write_json, remove_stale_temporaries
from ..models.bank import GeneratorBank
from ..models.base import Generator
from .fold import fold_batchnorm
from .metadata import (
    BANK_FORMAT,
    IMAGES_OUTPUT,
    LABELS_INPUT,
    OUTPUTS,
    Z_INPUT,
    GeneratorInfo,
    strip_local_paths,
)
from .session import default_providers, optimized_model, session_options

#: Parity tolerance of float output: max abs difference between onnxruntime and PyTorch.
FLOAT_TOLERANCE = 1e-4
#: Parity tolerance of uint8 output, in levels (a value on a rounding edge may round either way).
UINT8_TOLERANCE = 1
#: Batch sizes of the parity check (only 1 for a graph with a fixed batch).
CHECK_BATCHES = (1, 64)
#: The newest opset of torch's TorchScript exporter (deprecated, so frozen there); asked for more, it
#: prints a page of graph to stderr before failing, so the range is checked first.
TORCHSCRIPT_MAX_OPSET = 20


def onnx_max_opset() -> int:
    """The newest opset the installed onnx package knows (the dynamo exporter's ceiling)."""
    import onnx

    return int(onnx.defs.onnx_opset_version())


class ExportCheckFailed(GanEduError):
    """The exported graph failed ``onnx.checker`` or differs from the PyTorch module."""


class ExportModule(nn.Module):
    """What the exported graph computes: the generator, then (uint8) the display rescaling.

    Args:
        generator: the generator, in eval mode.
        output: ``"float"``: ``(N, C, H, W)`` in [-1, 1]; ``"uint8"``: ``(N, H, W, C)`` in [0, 255].
    """

    def __init__(self, generator: Generator, output: str = "float") -> None:
        super().__init__()
        self.generator = generator
        self.output = output

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.generator(z, labels)  # (N, C, H, W) in [-1, 1]
        return to_uint8(x) if self.output == "uint8" else x.clamp(-1, 1)  # float32 tanh can land one step past +-1: the card promises [-1, 1]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """The display rescaling, in the uint8 graph and in PyTorch: ``round((x + 1) * 127.5)`` clamped.

    (numpy's twin, for float images after sampling: :func:`gan_edu.export.runtime.float_to_uint8`.)

    Args:
        images: ``(N, C, H, W)`` in [-1, 1].

    Returns:
        ``(N, H, W, C)`` uint8.
    """
    x = ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)  # (N, C, H, W) in [0, 255]
    return x.permute(0, 2, 3, 1)  # (N, H, W, C): the layout of PIL and image widgets


def export_generator(
    model_or_run_dir: Generator | str | Path,
    path: str | Path,
    *,
    opset: int | None = None,
    dynamic_batch: bool = True,
    output: str = "float",
    class_names: list[str] | tuple[str, ...] | None = None,
    training_data: dict[str, Any] | None = None,
    dynamo: bool = False,
    precision: str = "fp32",
    quantize: str | None = None,
    quality_run: str | Path | None = None,
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
        opset: ONNX opset; None: the exporter's default.
        dynamic_batch: True: any batch size; False: a fixed batch of 1.
        output: ``"float"`` (``(N, C, H, W)`` in [-1, 1]) or ``"uint8"`` (``(N, H, W, C)``).
        class_names: names of the classes; default: the bank's or the run's training data's.
        training_data: what the model was trained on; default: from the run folder.
        dynamo: use the torch.export-based exporter instead of the TorchScript one (see
            docs/onnx.md for why the default is False).
        precision: ``"fp32"``, or ``"fp16"`` for the half-precision variant (GPUs, the browser).
        quantize: None, or ``"int8"`` for the statically quantized variant (CPUs).
        quality_run: for a variant: a ``gan-edu pipeline`` folder whose classifier c measures the
            change in GAN-test and Fréchet distance (see :mod:`gan_edu.export.variants`).
        allow_quality_loss: write a variant past its quality bounds (with a warning) instead of refusing.

    A variant is written with its quality cost against the fp32 graph in ``NAME.quality.json``.

    Returns:
        The file written (the manifest for a bank).

    Raises:
        GanEduError: a bad argument, or a folder that holds no generator.
        ExportCheckFailed: the graph failed ``onnx.checker`` or the parity check, or a variant
            exceeds its quality bounds (without ``allow_quality_loss``).
    """
    check(precision in ("fp32", "fp16"), f"precision={precision!r}: expected 'fp32' or 'fp16'")
    check(quantize in (None, "int8"), f"quantize={quantize!r}: expected None or 'int8'")
    check(precision == "fp32" or quantize is None, "precision='fp16' with quantize='int8': expected one variant at a time")
    variant = quantize or (precision if precision != "fp32" else None)
    check(variant is not None or quality_run is None, "quality_run is for a variant: expected precision='fp16' or quantize='int8' with it")
    check(output in OUTPUTS, f"output={output!r}: expected one of {', '.join(OUTPUTS)}")
    top = onnx_max_opset() if dynamo else TORCHSCRIPT_MAX_OPSET
    check(
        opset is None or (isinstance(opset, int) and not isinstance(opset, bool) and 13 <= opset <= top),
        f"opset={opset!r}: expected None or an int in [13, {top}] (the {'dynamo' if dynamo else 'TorchScript'} exporter's range)",
    )
    model, run = load_generator(model_or_run_dir)
    path = Path(path)
    if class_names is None:
        class_names = (getattr(model.config, "class_names", ()) or (run.get("data") or {}).get("class_names") or ()) if model.num_classes else ()
    class_names = tuple(str(c) for c in class_names)
    if model.num_classes is None:
        check(not class_names, f"class_names given for an unconditional generator ({len(class_names)} names): expected none")
    else:
        check(not class_names or len(class_names) == model.num_classes, f"{len(class_names)} class_names: expected {model.num_classes} (one per class)")
    info = GeneratorInfo(
        latent_dim=model.latent_dim, num_classes=model.num_classes, class_names=class_names,
        image_shape=model.image_shape, output=output, gan_edu_version=__version__,
        model_class=type(model).__name__, model_config=model.config.to_dict(),
        training_data=strip_local_paths(training_data if training_data is not None else run.get("data")),  # no folder of this machine
        training=run.get("training"),
    )
    options = {"opset": opset, "dynamic_batch": dynamic_batch, "dynamo": dynamo}
    model = copy.deepcopy(model).cpu().eval()  # the caller's module keeps its device and mode
    if isinstance(model, GeneratorBank):
        check(variant is None, f"a {variant} variant of a GeneratorBank: not supported; expected a single generator (export the bank in fp32)")
        return _export_bank(model, path, info, **options)
    check(path.suffix == ".onnx", f"{path}: expected a path ending in .onnx")
    data = export_graph(model, info, **options)
    record = None
    if variant is not None:
        from .variants import checked_variant

        data, record = checked_variant(data, variant, info, quality_run=quality_run, allow_quality_loss=allow_quality_loss)
    for target in (path, path.with_suffix(".quality.json")):
        remove_stale_temporaries(target)  # left by an export killed mid-write (a live writer's are kept)
    with atomic_open(path, "wb") as f:
        f.write(data)
    if record is not None:
        atomic_write_json(path.with_suffix(".quality.json"), record)
    optimized_model(path, default_providers())  # onnxruntime's optimized graph, cached next to the file (best effort)
    return path


def _export_bank(bank: GeneratorBank, path: Path, info: GeneratorInfo, **options: Any) -> Path:
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
        data = export_graph(member, member_info, **options)
        remove_stale_temporaries(path.with_name(name))
        with atomic_open(path.with_name(name), "wb") as f:
            f.write(data)
        optimized_model(path.with_name(name), default_providers())
        members.append(name)
    # The manifest is written last: it exists only when every member it names does.
    remove_stale_temporaries(path)
    atomic_write_json(path, {**info.to_dict(BANK_FORMAT), "members": members})
    return path


def export_graph(generator: Generator, info: GeneratorInfo, *, opset: int | None = None, dynamic_batch: bool = True, dynamo: bool = False) -> bytes:
    """Export ``generator`` (a CPU module in eval mode) to checked ONNX bytes with ``info`` as metadata.

    Raises:
        ExportCheckFailed: ``onnx.checker`` or the parity check failed.
    """
    import onnx

    reference = ExportModule(generator, info.output).eval()  # what the graph must compute
    folded = copy.deepcopy(generator).eval()
    fold_batchnorm(folded)
    module = ExportModule(folded, info.output).eval()  # what is exported
    conditional = generator.num_classes is not None
    n = 2 if dynamic_batch else 1  # torch.export specializes a dimension of size 0 or 1
    example: tuple[torch.Tensor, ...] = (torch.zeros(n, generator.latent_dim),)  # (n, latent_dim)
    if conditional:
        example += (torch.zeros(n, dtype=torch.int64),)  # (n,)
    names = [Z_INPUT, LABELS_INPUT][: len(example)]
    with torch.no_grad():
        proto = _export_dynamo(module, example, names, opset, dynamic_batch) if dynamo else _export_torchscript(module, example, names, opset, dynamic_batch)
    del proto.metadata_props[:]
    for key, value in info.to_props().items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f"gan-edu {info.model_class} ({info.output} output); metadata keys: {', '.join(info.to_props())}"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportCheckFailed(f"exported {info.model_class} failed onnx.checker: {str(e).splitlines()[0]}") from None
    data = proto.SerializeToString()
    check_parity(reference, data, batches=CHECK_BATCHES if dynamic_batch else (1,))
    return data


def _export_torchscript(module: nn.Module, example: tuple[torch.Tensor, ...], names: list[str], opset: int | None, dynamic_batch: bool) -> Any:
    import onnx

    f = io.BytesIO()
    axes = {name: {0: "N"} for name in [*names, IMAGES_OUTPUT]} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript-based exporter": see the module docstring
        torch.onnx.export(
            module, example, f, input_names=names, output_names=[IMAGES_OUTPUT], dynamic_axes=axes,
            opset_version=opset, do_constant_folding=True, dynamo=False,
        )
    return onnx.load_from_string(f.getvalue())


def _export_dynamo(module: nn.Module, example: tuple[torch.Tensor, ...], names: list[str], opset: int | None, dynamic_batch: bool) -> Any:
    shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("N")
        shapes = {name: {0: batch} for name in names}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used", category=UserWarning)  # z and labels share N
        program = torch.onnx.export(
            module, example, input_names=names, output_names=[IMAGES_OUTPUT], dynamic_shapes=shapes,
            opset_version=opset, dynamo=True, verbose=False,
        )
    return program.model_proto


def check_parity(module: ExportModule, data: bytes, *, batches: tuple[int, ...] = CHECK_BATCHES, seed: int = 0) -> float:
    """Run the graph with onnxruntime (CPU, the runtime's session settings and graph optimizations)
    and ``module`` on the same inputs; raise if they differ.

    Returns:
        The largest absolute difference seen (in [-1, 1] units, or levels for uint8).

    Raises:
        ExportCheckFailed: a difference above :data:`FLOAT_TOLERANCE` (float) or
            :data:`UINT8_TOLERANCE` levels (uint8), or a wrong output shape or dtype.
    """
    import onnxruntime as ort

    generator = module.generator
    assert isinstance(generator, Generator)
    try:
        session = ort.InferenceSession(data, session_options(intra_op_num_threads=1), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise ExportCheckFailed(f"onnxruntime cannot load the exported {type(generator).__name__}: {str(e).splitlines()[0]}") from None
    source = torch.Generator().manual_seed(seed)
    worst = 0.0
    for n in batches:
        z = torch.randn(n, generator.latent_dim, generator=source)  # (n, latent_dim)
        feed = {Z_INPUT: z.numpy()}
        labels = None
        if generator.num_classes is not None:
            labels = torch.randint(0, generator.num_classes, (n,), generator=source)  # (n,)
            feed[LABELS_INPUT] = labels.numpy()
        with torch.no_grad():
            expected = module(z, labels).numpy()
        got = session.run([IMAGES_OUTPUT], feed)[0]
        if got.shape != expected.shape or got.dtype != expected.dtype:
            raise ExportCheckFailed(f"exported graph gives {got.dtype} {got.shape} at batch {n}: expected {expected.dtype} {expected.shape}")
        diff = float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max())
        limit = UINT8_TOLERANCE if module.output == "uint8" else FLOAT_TOLERANCE
        if not diff <= limit:  # also catches NaN
            raise ExportCheckFailed(f"exported graph differs from PyTorch at batch {n}: max abs difference {diff:.3g} > {limit:g}")
        worst = max(worst, diff)
    return worst


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
    from ..training.trainer import read_history

    try:
        cfg = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return {"data": None, "training": None}
    trainer = cfg.get("trainer") or {}
    history = read_history(run_dir / "history.jsonl") if (run_dir / "history.jsonl").is_file() else []
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
