"""Which styles of a class does the generator drop? Mode shares of a pipeline experiment's class.

    python examples/mode_shares.py runs/mnist --class 7                  # the table
    python examples/mode_shares.py runs/mnist --class 7 --out modes_7    # and a picture per mode

The real training images of the class are split into styles (k-means of c's penultimate
features); images the experiment's generator makes for the class are assigned to the nearest
style. A style the data has often and the generator never draws is a dropped mode: c', trained on
the generator's images, then misreads the real images of that style. Each row gives the style's
share of the real and of the generated images, and c' and c's recall on the evaluation images of
that style. ``--out`` writes ``mode_NN.png`` (a row of real images over a row of generated ones,
when the generator drew any) and ``modes.json``. docs/quality.md has a worked example.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_edu.errors import GanEduError, check
from gan_edu.export import OnnxGenerator, image_grid
from gan_edu.metrics import kmeans, mode_shares, nearest_centre
from gan_edu.models.base import GANModule
from gan_edu.models.classifier import predict
from gan_edu.pipeline import PipelineConfig, load_data
from gan_edu.synthetic import sample_images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path, help="a gan-edu pipeline folder (report.json, generator.onnx, c_prime/)")
    parser.add_argument("--class", dest="label", type=int, required=True, help="the class index to look at")
    parser.add_argument("--modes", type=int, default=8, help="styles to split the class into (k of k-means)")
    parser.add_argument("--images", type=int, default=5000, help="images to generate for the class")
    parser.add_argument("--seed", type=int, default=0, help="seed of k-means and of the generator's noise")
    parser.add_argument("--out", type=Path, default=None, help="folder for a picture per mode and modes.json")
    args = parser.parse_args(argv)
    try:
        rows = run(args)
    except GanEduError as e:
        print(f"mode_shares: {e}", file=sys.stderr)
        return 2
    print(f"{'mode':>4} {'real':>6} {'generated':>9} {'eval images':>11} {'c recall':>8} {'c_prime recall':>14}")
    for r in rows:
        recall = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{r['mode']:>4} {r['real_share']:>6.3f} {r['fake_share']:>9.3f} {r['eval_images']:>11} {recall(r['c_recall']):>8} {recall(r['c_prime_recall']):>14}")
    return 0


def run(args: argparse.Namespace) -> list[dict]:
    exp = args.experiment
    check((exp / "report.json").is_file() and (exp / "generator.onnx").is_file(), f"{exp}: expected a gan-edu pipeline folder (report.json, generator.onnx)")
    config = PipelineConfig.from_dict(json.loads((exp / "report.json").read_text())["settings"])
    c_dir = (Path(config.reuse_c) if config.reuse_c else exp) / "c" / "classifier"  # c may live in the experiment it was reused from
    c, c_prime = GANModule.from_pretrained(c_dir), GANModule.from_pretrained(exp / "c_prime" / "classifier")
    generator = OnnxGenerator(exp / "generator.onnx")
    check(generator.num_classes is not None and 0 <= args.label < generator.num_classes,
          f"--class {args.label}: expected a class index in [0, {generator.num_classes}) of a conditional generator")
    train, evaluation = load_data(config)
    real, held = train.images[train.labels == args.label], evaluation.images[evaluation.labels == args.label]  # uint8 (N, C, H, W)
    check(len(real) >= args.modes, f"--modes {args.modes}: class {args.label} has {len(real)} training images; expected at least one per mode")
    fake = sample_images(generator, np.full(args.images, args.label, dtype=np.int64), seed=args.seed)  # uint8 (M, C, H, W)
    real_f, fake_f, held_f = (predict(c, x, features=True).numpy() for x in (real, fake, held))
    centres = kmeans(real_f, args.modes, seed=args.seed)
    rows = mode_shares(real_f, fake_f, centres=centres)
    held_mode = nearest_centre(held_f, centres)
    right = {name: (predict(model, held).numpy() == args.label) for name, model in (("c", c), ("c_prime", c_prime))}
    for r in rows:
        here = held_mode == r["mode"]
        r["eval_images"] = int(here.sum())
        for name, ok in right.items():
            r[f"{name}_recall"] = round(float(ok[here].mean()), 4) if here.any() else None
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        real_mode, fake_mode = nearest_centre(real_f, centres), nearest_centre(fake_f, centres)  # for the pictures only
        for r in rows:
            pictures = torch.cat([real[torch.from_numpy(real_mode == r["mode"])][:10], fake[torch.from_numpy(fake_mode == r["mode"])][:10]])
            grid = image_grid(pictures.permute(0, 2, 3, 1).numpy(), 10)  # real row, then generated row
            Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(args.out / f"mode_{r['mode']:02d}.png")
        (args.out / "modes.json").write_text(json.dumps({"experiment": str(exp), "class": args.label, "modes": rows}, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
