"""``gan-edu-sample`` (and ``gan-edu sample``): draw images from an exported generator, no torch.

``gan-edu-sample MODEL.onnx -n 64 [--labels 0,1,...] [--seed S] [--scale K] -o grid.png [--npz FILE]``
loads the model with :class:`~gan_edu_runtime.OnnxGenerator`, draws ``-n`` images and writes a
grid picture (:func:`picture`) and/or the arrays. Nothing existing is overwritten without
``--overwrite``; every file is written atomically. Errors a user can fix come out as one line
on stderr and exit code 2. gan-edu's own ``gan-edu sample`` is this same command.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .errors import GanEduError, check
from .files import atomic_open, check_writable, remove_stale_temporaries


def labels_list(text: str) -> list[int]:
    """``"0,1,2"`` to ``[0, 1, 2]`` (range checks happen against the model's classes)."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of ints; expected e.g. 0,1,2") from None
    return values


def int_argument(ok: Callable[[int], bool], expected: str, refusal: str) -> Callable[[str], int]:
    """An argparse type for ints: one-line errors in gan-edu's words (as :mod:`gan_edu.domains` says them)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an int; expected {expected}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text} {refusal}; expected {expected}")
        return value

    return parse


positive_int = int_argument(lambda v: v > 0, "a positive int", "is not positive")
non_negative_int = int_argument(lambda v: v >= 0, "an int >= 0", "is negative")


def add_sample_arguments(s: argparse.ArgumentParser) -> None:
    """The sample command's arguments (shared by ``gan-edu-sample`` and ``gan-edu sample``)."""
    s.add_argument("model", type=Path, metavar="MODEL", help="an exported .onnx (or a bank's .json manifest)")
    s.add_argument("-n", type=positive_int, default=64, help="number of images (default 64)")
    s.add_argument("--labels", type=labels_list, help="comma-separated labels: one per image, or one for all (default balanced)")
    s.add_argument("--seed", type=non_negative_int, help="seed of the noise (default: a fresh one)")
    s.add_argument("-o", "--output", type=Path, metavar="PNG", help="grid picture to write")
    s.add_argument("--npz", type=Path, metavar="FILE", help="also write images, labels and z as a .npz")
    s.add_argument("--nrow", type=positive_int, help="images per grid row (default 8; with balanced labels, one row per class)")
    s.add_argument("--scale", type=positive_int, default=1, help="enlarge the picture K times, pixels kept sharp (default 1)")
    s.add_argument("--batch-size", type=positive_int, help="images per onnxruntime call (default 256)")
    s.add_argument("--provider", action="append", metavar="NAME", help="onnxruntime provider, e.g. CPUExecutionProvider (repeatable; default CUDA when present, else CPU)")
    s.add_argument("--overwrite", action="store_true", help="replace existing output files")


def picture(generator: Any, images: np.ndarray, labels: np.ndarray | None, *, balanced: bool, nrow: int | None = None, scale: int = 1) -> Any:
    """The grid picture (a PIL image) of sampled ``images``.

    With ``balanced`` labels the images are sorted by class, stably, one row per class; else
    ``nrow`` per row (default 8). ``scale`` enlarges it (nearest neighbour: no blur).
    """
    from PIL import Image

    from .generator import image_grid

    shown, per_row = generator.to_uint8(images), nrow or 8
    if labels is not None and balanced:  # one row per class
        shown = shown[np.argsort(labels, kind="stable")]
        per_row = nrow or -(-len(labels) // generator.num_classes)
    grid = Image.fromarray(image_grid(shown, per_row))
    if scale > 1:
        grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    return grid


def run_sample(args: argparse.Namespace) -> int:
    """Run the sample command on parsed arguments (see :func:`add_sample_arguments`)."""
    from .generator import OnnxGenerator

    if args.output is None and args.npz is None:
        raise GanEduError("nothing to write: expected -o PNG and/or --npz FILE")
    for path, flag in ((args.output, "-o"), (args.npz, "--npz")):
        if path is not None:
            check(args.overwrite or not path.exists(), f"{flag} {path}: file exists; use --overwrite to replace it")
            check_writable(path, flag)
    g = OnnxGenerator(args.model, providers=args.provider, **({"batch_size": args.batch_size} if args.batch_size else {}))
    g.check_fits(args.n)
    labels = args.labels
    if labels is not None:
        check(g.num_classes is not None, f"--labels given for the unconditional {args.model}: expected no --labels")
        if len(labels) == 1:
            labels = labels * args.n
        check(len(labels) == args.n, f"--labels has {len(labels)} values: expected 1 or -n ({args.n})")
    labels = g.check_labels(labels, args.n)
    z = g.latent(args.n, seed=args.seed)
    images = g.generate(z, labels)
    if args.output is not None:
        grid = picture(g, images, labels, balanced=args.labels is None, nrow=args.nrow, scale=getattr(args, "scale", 1))
        remove_stale_temporaries(args.output)  # left by a sample killed mid-write (a live writer's are kept)
        with atomic_open(args.output, "wb") as f:
            grid.save(f, format="PNG")
        print(f"wrote {args.output} ({args.n} images, {grid.width}x{grid.height} pixels, on {g.device})")
    if args.npz is not None:
        buffer = io.BytesIO()
        arrays = {"images": images, "z": z}
        if labels is not None:
            arrays["labels"] = labels
        np.savez_compressed(buffer, **arrays)
        remove_stale_temporaries(args.npz)
        with atomic_open(args.npz, "wb") as f:
            f.write(buffer.getvalue())
        print(f"wrote {args.npz} ({', '.join(f'{k} {v.shape}' for k, v in arrays.items())})")
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``gan-edu-sample``: returns the exit code."""
    from . import __version__

    parser = _Parser(prog="gan-edu-sample", description="Draw images from an exported gan-edu generator with onnxruntime (no torch) and save a grid.")
    parser.add_argument("--version", action="version", version=f"gan-edu-sample {__version__}")
    add_sample_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_sample(args)
    except GanEduError as e:
        print(f"gan-edu-sample: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gan-edu-sample: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # unwritable output, full disk
        where = f" {e.filename!s}:" if getattr(e, "filename", None) else ""
        print(f"gan-edu-sample: error:{where} {e.strerror or e}", file=sys.stderr)
        return 2


def entry_point() -> NoReturn:
    sys.exit(main())
