"""``gan-edu export`` and ``gan-edu sample``: a run folder to an ONNX file, an ONNX file to images.

``gan-edu export RUN_DIR -o exported/NAME.onnx [--uint8] [--precision fp16 | --quantize int8]``
writes a checked graph (see :mod:`gan_edu.export.exporter`; a variant also writes its quality
cost against fp32 in ``NAME.quality.json``); ``gan-edu sample MODEL.onnx -n 64 [--labels 0,1,...] [--seed S]
-o grid.png [--npz FILE]`` draws images with onnxruntime alone (the light package's command,
:mod:`gan_edu_runtime.cli`, also installed alone as ``gan-edu-sample``). Neither overwrites an existing
file without ``--overwrite``, and every file is written atomically (never half a file).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from gan_edu_runtime.cli import add_sample_arguments, labels_list, run_sample  # noqa: F401  (gan-edu sample is the light package's command)

from ..errors import check
from ..io import check_writable
from .args import positive_int


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export", help="export a run's generator to ONNX",
        description="Export the generator of a run folder (or a save_pretrained folder) to a checked ONNX file.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run folder (with generator/ and config.json)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="the .onnx file to write (a bank: its .json manifest)")
    p.add_argument("--uint8", action="store_true", help="output ready-to-show (N, H, W, C) uint8 images instead of (N, C, H, W) floats in [-1, 1]")
    p.add_argument("--opset", type=positive_int, help="ONNX opset (default: the exporter's)")
    p.add_argument("--static-batch", action="store_true", help="fixed batch of 1 instead of a dynamic batch axis")
    p.add_argument("--dynamo", action="store_true", help="use torch's dynamo-based exporter (default: TorchScript; see docs/onnx.md)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="fp16: the half-precision variant, for GPUs and the browser (default fp32)")
    p.add_argument("--quantize", choices=("int8",), help="int8: the statically quantized variant, for CPUs")
    p.add_argument("--quality-run", type=Path, metavar="EXPERIMENT_DIR", help="a gan-edu pipeline folder: its classifier c measures a variant's change in GAN-test and Fréchet distance")
    p.add_argument("--allow-quality-loss", action="store_true", help="write a variant past its quality bounds, with a warning, instead of refusing")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=run_export)

    s = sub.add_parser(
        "sample", help="sample images from an exported ONNX generator",
        description="Draw images from an exported generator with onnxruntime (no torch needed) and save a grid.",
    )
    add_sample_arguments(s)
    s.set_defaults(func=run_sample)


def refuse_existing(path: Path, overwrite: bool, flag: str) -> None:
    check(overwrite or not path.exists(), f"{flag} {path}: file exists; use --overwrite to replace it")


def run_export(args: argparse.Namespace) -> int:
    from ..export.exporter import export_generator
    from ..quality import ClassifierJudge

    variant = args.quantize or (args.precision if args.precision != "fp32" else None)
    check(variant is not None or args.quality_run is None, "quality_run is for a variant: expected precision='fp16' or quantize='int8' with it")
    refuse_existing(args.output, args.overwrite, "-o")
    check_writable(args.output, "-o")
    judge = ClassifierJudge(args.quality_run) if args.quality_run is not None else None  # the evaluation layer measures, export writes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = export_generator(
            args.run_dir, args.output, opset=args.opset, dynamic_batch=not args.static_batch,
            output="uint8" if args.uint8 else "float", dynamo=args.dynamo, precision=args.precision,
            quantize=args.quantize, judge=judge, allow_quality_loss=args.allow_quality_loss,
        )
    for w in caught:
        if "quality bounds" in str(w.message):
            print(f"warning: {w.message}", file=sys.stderr)
    size = path.stat().st_size
    print(f"exported {args.run_dir} -> {path} ({size / 1e6:.2f} MB, checked: onnx.checker and parity with PyTorch)")
    record = path.with_suffix(".quality.json")
    if variant is not None:
        cost = json.loads(record.read_text())["cost"]
        line = f"{variant} vs fp32 on {cost['images']} images: mean {cost['mean_level_diff']:.3f} levels, max {cost['max_level_diff']} levels"
        if "gan_test" in cost:
            line += f"; GAN-test {cost['gan_test']['fp32']:.3f} -> {cost['gan_test']['variant']:.3f}; Fréchet {cost['frechet']['fp32']:.3f} -> {cost['frechet']['variant']:.3f}"
        print(f"{line} (in {record})")
    return 0
