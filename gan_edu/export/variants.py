"""Smaller variants of an exported graph (fp16, int8) and their measured quality cost.

* ``fp16``: weights and activations in half precision (onnxruntime's float16 converter, inputs
  and outputs kept as the fp32 graph's, so an app feeds the same ``z``). For GPUs and the
  browser: half the file, and tensor cores. On a CPU onnxruntime runs the nodes it has no fp16
  kernel for in float32 after inserted casts: no faster there.
* ``int8``: static quantization with onnxruntime's tools (QDQ format, int8 weights per output
  channel, uint8 activations), calibrated on noise batches drawn with their own seed; the output
  layer (the last convolution, a few hundred weights) stays in float, since its rounding lands
  directly on the pixels. Four times smaller; for CPUs.

Every variant is judged against the fp32 graph of the same export on the same noise
(:func:`quality_cost`): the pixel difference always; given a judge (:class:`VariantJudge`, a plain
object the caller hands in), also what the judge measures on both image sets. The evaluation
layer's judge, :class:`gan_edu.quality.ClassifierJudge`, uses an experiment folder's test
classifier c: the change in GAN-test accuracy and in the Fréchet distance of c's features to the
real images. Export itself never loads a classifier, a data set or a metric. :func:`check_bounds`
compares the cost with the stated bounds (:data:`BOUNDS`).
"""

from __future__ import annotations

import dataclasses
import tempfile
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import check
from .graph import ExportCheckFailed
from .metadata import IMAGES_OUTPUT, LABELS_INPUT, Z_INPUT, GeneratorInfo

VARIANTS = ("fp16", "int8")


class VariantJudge(Protocol):
    """What measures a variant beyond its pixels: called with both image sets, returns cost entries.

    ``reference`` and ``candidate`` are uint8 ``(N, C, H, W)`` images of the fp32 graph and of the
    variant on the same noise; ``labels`` their intended classes (None: unconditional). The
    entries it returns join the cost; ``gan_test`` and ``frechet`` (each ``{"fp32", "variant",
    "change"}``) are checked against :data:`BOUNDS`.
    """

    def __call__(self, reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None) -> dict[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class VariantRequest:
    """Which smaller variant to write and how its cost is judged (checked when made)."""

    precision: str = "fp32"  # "fp16": the half-precision variant (GPUs, the browser)
    quantize: str | None = None  # "int8": the statically quantized variant (CPUs)
    judge: VariantJudge | None = None  # also measure the variant with this (gan_edu.quality.ClassifierJudge)
    allow_quality_loss: bool = False  # write a variant past its bounds, with a warning, instead of refusing

    def __post_init__(self) -> None:
        check(self.precision in ("fp32", "fp16"), f"precision={self.precision!r}: expected 'fp32' or 'fp16'")
        check(self.quantize in (None, "int8"), f"quantize={self.quantize!r}: expected None or 'int8'")
        check(self.precision == "fp32" or self.quantize is None, "precision='fp16' with quantize='int8': expected one variant at a time")
        check(self.name is not None or self.judge is None, "judge is for a variant: expected precision='fp16' or quantize='int8' with it")

    @property
    def name(self) -> str | None:
        """``"fp16"``, ``"int8"``, or None for the fp32 graph itself."""
        return self.quantize or (self.precision if self.precision != "fp32" else None)


@dataclasses.dataclass(frozen=True)
class QualityBounds:
    """How much worse than fp32 a variant may be before the export refuses it."""

    mean_level_diff: float  # mean |variant - fp32| over all pixels, in uint8 levels (0-255)
    gan_test_drop: float = 0.01  # GAN-test accuracy may fall by at most one point (needs a classifier)
    frechet_rise: float = 0.10  # Fréchet distance to the real images may grow by at most 10% (needs a classifier)


#: The bounds of each variant. fp16 rounds to 11 significant bits: well under one level on average.
#: int8 has 256 levels per tensor: a few levels on average is the usual cost.
BOUNDS = {"fp16": QualityBounds(mean_level_diff=0.5), "int8": QualityBounds(mean_level_diff=4.0)}

#: Noise batches that calibrate int8 (seed 1; the quality cost is measured on seed 0).
CALIBRATION_BATCHES, CALIBRATION_BATCH_SIZE, CALIBRATION_SEED = 8, 64, 1


def make_variant(data: bytes, variant: str, info: GeneratorInfo) -> bytes:
    """The ``variant`` (``"fp16"`` or ``"int8"``) of the fp32 graph ``data``, metadata kept."""
    import onnx

    check(variant in VARIANTS, f"variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    model = onnx.load_from_string(data)
    props = {p.key: p.value for p in model.metadata_props}
    if variant == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(model, keep_io_types=True)
    else:
        model = _quantize_int8(data, info)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = f"gan-edu {info.model_class} ({info.output} output), {variant} variant of the fp32 export"
    return model.SerializeToString()


def _quantize_int8(data: bytes, info: GeneratorInfo) -> Any:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    step = graph_batch(data) or CALIBRATION_BATCH_SIZE  # a graph of fixed batch 1 (--static-batch) is fed one image at a time

    class NoiseBatches(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(CALIBRATION_SEED)
            feeds = [noise_feed(info, CALIBRATION_BATCH_SIZE, rng) for _ in range(CALIBRATION_BATCHES)]
            self.feeds = iter([{k: v[i : i + step] for k, v in f.items()} for f in feeds for i in range(0, CALIBRATION_BATCH_SIZE, step)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as tmp:
        source, prepared, out = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(data)
        quant_pre_process(str(source), str(prepared))  # shape inference and onnxruntime's graph clean-up, as its docs ask
        convolutions = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in ("Conv", "ConvTranspose")]
        quantize_static(
            str(prepared), str(out), NoiseBatches(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=convolutions[-1:],  # the output layer in float: mean cost 2.0 -> 0.8 levels on the shipped model
        )
        return onnx.load(str(out))


def noise_feed(info: GeneratorInfo, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``z`` (and balanced labels) for ``n`` images, as the graph's inputs."""
    feed = {Z_INPUT: rng.standard_normal((n, info.latent_dim), dtype=np.float32)}
    if info.num_classes is not None:
        feed[LABELS_INPUT] = np.arange(n, dtype=np.int64) % info.num_classes
    return feed


def graph_batch(data: bytes) -> int | None:
    """The fixed batch size of the graph ``data`` (exported with ``dynamic_batch=False``), or None when its batch axis is dynamic."""
    import onnx

    dim = onnx.load_from_string(data).graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") else None


def run_graph(data: bytes, feed: dict[str, np.ndarray], batch_size: int = 256) -> np.ndarray:
    """The graph's images for ``feed`` on the CPU, in batches (of the graph's own size when it is fixed)."""
    import onnxruntime as ort

    from .session import session_options

    batch_size = graph_batch(data) or batch_size
    session = ort.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
    n = len(feed[Z_INPUT])
    parts = [session.run([IMAGES_OUTPUT], {k: v[i : i + batch_size] for k, v in feed.items()})[0] for i in range(0, n, batch_size)]
    return np.concatenate(parts)


def as_levels(images: np.ndarray, info: GeneratorInfo) -> np.ndarray:
    """``(N, C, H, W)`` uint8 images from the graph's output (float in [-1, 1] or uint8 NHWC)."""
    if info.output == "uint8":
        return images.transpose(0, 3, 1, 2)
    from .runtime import float_to_uint8

    return float_to_uint8(images).transpose(0, 3, 1, 2)


def quality_cost(reference: bytes, candidate: bytes, info: GeneratorInfo, *, n: int = 1000, seed: int = 0, judge: VariantJudge | None = None) -> dict[str, Any]:
    """How far ``candidate`` is from the fp32 graph ``reference`` on the same ``n`` noise vectors.

    Returns:
        ``max_abs_diff`` and ``mean_abs_diff`` (output units: [-1, 1] or levels), ``max_level_diff``
        and ``mean_level_diff`` (uint8 levels), ``same_level_fraction``; with ``judge`` also
        what it measures (:class:`gan_edu.quality.ClassifierJudge`: ``gan_test`` and ``frechet``,
        each ``{"fp32", "variant", "change"}``, from an experiment's classifier c).
    """
    feed = noise_feed(info, n, np.random.default_rng(seed))
    a, b = run_graph(reference, feed), run_graph(candidate, feed)
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    la, lb = as_levels(a, info), as_levels(b, info)
    levels = np.abs(la.astype(np.int16) - lb.astype(np.int16))
    cost: dict[str, Any] = {
        "images": n, "seed": seed,
        "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
        "max_level_diff": int(levels.max()), "mean_level_diff": float(levels.mean()), "same_level_fraction": float((levels == 0).mean()),
    }
    if judge is not None:
        cost.update(judge(la, lb, feed.get(LABELS_INPUT)))
    return cost


def check_bounds(variant: str, cost: dict[str, Any]) -> list[str]:
    """The bounds of :data:`BOUNDS` that ``cost`` exceeds, one line each (empty: within bounds)."""
    bounds, problems = BOUNDS[variant], []
    if not cost["mean_level_diff"] <= bounds.mean_level_diff:
        problems.append(f"mean pixel difference {cost['mean_level_diff']:.3g} levels > {bounds.mean_level_diff:g}")
    if "gan_test" in cost and not -cost["gan_test"]["change"] <= bounds.gan_test_drop:
        problems.append(f"GAN-test fell by {-cost['gan_test']['change']:.3f} > {bounds.gan_test_drop:g}")
    if "frechet" in cost and not cost["frechet"]["change"] <= bounds.frechet_rise * cost["frechet"]["fp32"]:
        problems.append(f"Fréchet distance rose by {cost['frechet']['change']:.3g} > {bounds.frechet_rise:.0%} of fp32's {cost['frechet']['fp32']:.3g}")
    return problems


def checked_variant(data: bytes, variant: str, info: GeneratorInfo, *, judge: VariantJudge | None = None, allow_quality_loss: bool = False) -> tuple[bytes, dict[str, Any]]:
    """The variant of the fp32 graph ``data`` and its quality record; refuse (or warn) past its bounds.

    Raises:
        ExportCheckFailed: the cost exceeds :data:`BOUNDS` and ``allow_quality_loss`` is False.
    """
    candidate = make_variant(data, variant, info)
    cost = quality_cost(data, candidate, info, judge=judge)
    problems = check_bounds(variant, cost)
    if problems and not allow_quality_loss:
        raise ExportCheckFailed(f"the {variant} variant costs too much quality against fp32: {'; '.join(problems)} (allow_quality_loss / --allow-quality-loss writes it anyway)")
    if problems:
        warnings.warn(f"the {variant} variant exceeds its quality bounds: {'; '.join(problems)}", stacklevel=3)
    return candidate, quality_record(variant, cost, problems)


def quality_record(variant: str, cost: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """What is written next to a variant as ``NAME.quality.json``."""
    return {
        "variant": variant, "reference": "the fp32 graph of the same export, same noise (seed 0) and labels",
        "cost": cost, "bounds": dataclasses.asdict(BOUNDS[variant]), "within_bounds": not problems, "exceeded": problems,
    }
