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
(:func:`quality_cost`): the pixel difference always; with an experiment folder's test classifier
c, the change in GAN-test accuracy and in the Fréchet distance of c's features to the real
images. :func:`check_bounds` compares the cost with the stated bounds (:data:`BOUNDS`).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import check
from .metadata import IMAGES_OUTPUT, LABELS_INPUT, Z_INPUT, GeneratorInfo

VARIANTS = ("fp16", "int8")


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


def quality_cost(reference: bytes, candidate: bytes, info: GeneratorInfo, *, n: int = 1000, seed: int = 0, quality_run: str | Path | None = None) -> dict[str, Any]:
    """How far ``candidate`` is from the fp32 graph ``reference`` on the same ``n`` noise vectors.

    Returns:
        ``max_abs_diff`` and ``mean_abs_diff`` (output units: [-1, 1] or levels), ``max_level_diff``
        and ``mean_level_diff`` (uint8 levels), ``same_level_fraction``; with ``quality_run``
        also ``gan_test`` and ``frechet`` (each ``{"fp32", "variant", "change"}``) from the
        experiment's classifier c.
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
    if quality_run is not None:
        cost.update(classifier_cost(Path(quality_run), la, lb, feed.get(LABELS_INPUT)))
    return cost


def classifier_cost(experiment: Path, reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None) -> dict[str, Any]:
    """GAN-test and Fréchet distance (features of the experiment's classifier c) of both image sets.

    Args:
        experiment: a ``gan-edu pipeline`` folder (``c/classifier`` and ``report.json``).
        reference, candidate: uint8 ``(N, C, H, W)`` images of the fp32 graph and of the variant.
        labels: their intended classes.
    """
    from .. import models  # noqa: F401  (registers the classifier classes from_pretrained may name)
    from ..errors import GanEduError
    from ..metrics import accuracy, frechet_distance
    from ..models.base import GANModule
    from ..training.classifier_trainer import predict

    check(labels is not None, "a quality run needs a conditional generator (GAN-test asks c for each image's intended class)")
    folder, report_path = experiment / "c" / "classifier", experiment / "report.json"
    check(folder.is_dir() and report_path.is_file(), f"--quality-run {experiment}: expected a gan-edu pipeline folder (with c/classifier and report.json)")
    c = GANModule.from_pretrained(folder)
    check(tuple(c.config.image_shape) == reference.shape[1:], f"--quality-run {experiment}: its classifier takes images {tuple(c.config.image_shape)}, the generator makes {reference.shape[1:]}")
    try:
        real = experiment_real_images(json.loads(report_path.read_text())["settings"], len(reference))
    except (KeyError, ValueError, OSError, GanEduError) as e:
        raise GanEduError(f"--quality-run {experiment}: cannot load its real evaluation images ({e})") from None
    real_features = predict(c, real, features=True).numpy()
    result: dict[str, Any] = {"quality_run": str(experiment), "real_images": len(real)}
    gan_test, frechet = {}, {}
    for name, images in (("fp32", reference), ("variant", candidate)):
        gan_test[name] = accuracy(predict(c, images).numpy(), labels)
        frechet[name] = frechet_distance(real_features, predict(c, images, features=True).numpy())
    result["gan_test"] = {**gan_test, "change": gan_test["variant"] - gan_test["fp32"]}
    result["frechet"] = {**frechet, "change": frechet["variant"] - frechet["fp32"]}
    return result


def experiment_real_images(settings: dict[str, Any], n: int) -> np.ndarray:
    """Up to ``n`` uint8 ``(N, C, H, W)`` images of the split an experiment evaluated on (its ``settings``)."""
    from ..data.datasets import load_dataset

    options: dict[str, Any] = {}
    if settings["dataset"] == "shapes":
        options = {k: settings[k2] for k, k2 in (("n", "num_images"), ("channels", "channels")) if settings.get(k2) is not None}
    else:
        options = {k: settings[k] for k in ("data_root", "download") if settings.get(k) is not None}
    if settings.get("eval_split") == "validation":
        from ..pipeline import split_off

        _, evaluation = split_off(load_dataset(settings["dataset"], "train", **options), settings["validation_images"], seed=settings["seed"])
    else:
        evaluation = load_dataset(settings["dataset"], "test", **{k: v for k, v in options.items() if k != "n"})
    return evaluation.images[:n].numpy()


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


def checked_variant(data: bytes, variant: str, info: GeneratorInfo, *, quality_run: str | Path | None = None, allow_quality_loss: bool = False) -> tuple[bytes, dict[str, Any]]:
    """The variant of the fp32 graph ``data`` and its quality record; refuse (or warn) past its bounds.

    Raises:
        ExportCheckFailed: the cost exceeds :data:`BOUNDS` and ``allow_quality_loss`` is False.
    """
    from .exporter import ExportCheckFailed

    candidate = make_variant(data, variant, info)
    cost = quality_cost(data, candidate, info, quality_run=quality_run)
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
