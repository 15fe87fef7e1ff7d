"""Export a trained run to ONNX, then sample from the file with onnxruntime.

    python examples/export_and_sample.py runs/conditional -o exported/shapes.onnx --grid grid.png

``export_generator`` checks the graph against PyTorch before writing it; ``OnnxGenerator`` reads
it back with numpy and onnxruntime only (no torch), as an app would. ``examples/onnx_app.py``
is that app without gan-edu at all.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from gan_edu.errors import GanEduError
from gan_edu.export import OnnxGenerator, export_generator, image_grid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder (gan-edu train / new_gan_run) or a save_pretrained folder")
    parser.add_argument("-o", "--output", default="generator.onnx", help="the .onnx to write")
    parser.add_argument("--grid", default="grid.png", help="a PNG of samples drawn from the exported file")
    parser.add_argument("-n", type=int, default=64, help="images in the grid")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        path = export_generator(args.run, args.output)
        generator = OnnxGenerator(path)  # numpy + onnxruntime from here on
        images = generator.sample(args.n, seed=args.seed)  # (n, C, H, W) in [-1, 1]; balanced labels when conditional
    except GanEduError as e:
        print(f"export_and_sample: {e}", file=sys.stderr)
        return 2
    from PIL import Image

    per_row = generator.num_classes or int(np.sqrt(args.n)) or 1
    Image.fromarray(image_grid(generator.to_uint8(images), per_row)).save(args.grid)
    print(f"wrote {path} ({generator}); {args.n} samples in {args.grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
