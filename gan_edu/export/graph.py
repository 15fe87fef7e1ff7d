"""One checked ONNX graph of a generator: export it, then prove it computes what the module does.

:func:`export_graph` writes the graph of a CPU generator in eval mode (batch norm folded first,
:mod:`gan_edu.export.fold`) with the TorchScript exporter or, asked for, the dynamo one, and sets
its metadata. Two checks pass before its bytes are returned: ``onnx.checker`` on the graph, then
:func:`check_parity`, which runs the graph with onnxruntime on the CPU at batch 1 and 64 and
compares it with the unfolded PyTorch module on the same ``z`` and labels (max abs difference at
most 1e-4 for float output, at most one level for uint8). A failed check raises
:class:`ExportCheckFailed`. Writing the file, variants and banks: :mod:`gan_edu.export.exporter`.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import GanEduError, check
from ..models.base import Generator
from .fold import fold_batchnorm
from .metadata import IMAGES_OUTPUT, LABELS_INPUT, OUTPUTS, Z_INPUT, GeneratorInfo
from .session import session_options

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


@dataclasses.dataclass(frozen=True)
class GraphOptions:
    """How the graph is written (checked when made: a bad value raises one line naming it)."""

    opset: int | None = None  # ONNX opset; None: the exporter's default
    dynamic_batch: bool = True  # True: any batch size; False: a fixed batch of 1
    output: str = "float"  # "float": (N, C, H, W) in [-1, 1]; "uint8": (N, H, W, C) ready to show
    dynamo: bool = False  # torch.export-based exporter instead of the TorchScript one (docs/onnx.md says why not by default)

    def __post_init__(self) -> None:
        check(self.output in OUTPUTS, f"output={self.output!r}: expected one of {', '.join(OUTPUTS)}")
        top = onnx_max_opset() if self.dynamo else TORCHSCRIPT_MAX_OPSET
        opset = self.opset
        check(
            opset is None or (isinstance(opset, int) and not isinstance(opset, bool) and 13 <= opset <= top),
            f"opset={opset!r}: expected None or an int in [13, {top}] (the {'dynamo' if self.dynamo else 'TorchScript'} exporter's range)",
        )


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


def export_graph(generator: Generator, info: GeneratorInfo, options: GraphOptions = GraphOptions()) -> bytes:
    """Export ``generator`` (a CPU module in eval mode) to checked ONNX bytes with ``info`` as metadata.

    ``info.output`` says what the graph outputs; ``options`` the opset, batch axis and exporter.

    Raises:
        ExportCheckFailed: ``onnx.checker`` or the parity check failed.
    """
    import onnx

    reference = ExportModule(generator, info.output).eval()  # what the graph must compute
    folded = copy.deepcopy(generator).eval()
    fold_batchnorm(folded)
    module = ExportModule(folded, info.output).eval()  # what is exported
    conditional = generator.num_classes is not None
    opset, dynamic_batch = options.opset, options.dynamic_batch
    n = 2 if dynamic_batch else 1  # torch.export specializes a dimension of size 0 or 1
    example: tuple[torch.Tensor, ...] = (torch.zeros(n, generator.latent_dim),)  # (n, latent_dim)
    if conditional:
        example += (torch.zeros(n, dtype=torch.int64),)  # (n,)
    names = [Z_INPUT, LABELS_INPUT][: len(example)]
    with torch.no_grad():
        proto = _export_dynamo(module, example, names, opset, dynamic_batch) if options.dynamo else _export_torchscript(module, example, names, opset, dynamic_batch)
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
