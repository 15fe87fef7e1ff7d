"""``gan-edu fid``: Inception FID and IS of an exported generator against a real data set.

    gan-edu fid exported/cifar10.onnx --dataset cifar10 --data-root ~/data -n 10000 --inception-weights weights-inception-2015-12-05-6726825d.pth

See :mod:`gan_edu.inception` and docs/fid.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from ..data.datasets import DATASETS, load_dataset
from ..errors import check
from ..io import atomic_write_json, check_writable
from .args import non_negative_int, positive_int


def register(sub: Any) -> None:
    p = sub.add_parser("fid", help="Inception FID and IS of an exported generator against real images",
                       description="FID (Heusel et al. 2017) and IS (Salimans et al. 2016) with the standard Inception weights, comparable with papers.")
    p.add_argument("model", type=Path, metavar="MODEL", help="an exported generator (.onnx, or a bank's .json manifest)")
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="the real images")
    p.add_argument("--data-root", type=Path, help="folder of the real data set's files")
    p.add_argument("--no-download", action="store_true", help="never download the data set or the Inception weights")
    p.add_argument("--split", default="train", choices=("train", "test"), help="real split (default train, as most papers)")
    p.add_argument("-n", type=positive_int, default=10_000, help="generated images (default 10000; papers use 10000 or 50000)")
    p.add_argument("--real-n", type=positive_int, help="real images (default: as many as -n, or the whole split if smaller)")
    p.add_argument("--inception-weights", type=Path, metavar="PATH", help="the FID Inception weights file (default: downloaded once into ~/.cache/gan-edu/inception)")
    p.add_argument("--batch-size", type=positive_int, default=50, help="images per Inception call (default 50)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the noise and of the real subset (default 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export.runtime import OnnxGenerator
    from ..inception import (
        fid_and_is,
        generator_batches,
        inception_features,
        load_inception,
        uint8_batches,
    )
    from ..training.trainer import resolve_device

    # every input is checked before the long part: the generator, the output, the weights, the data
    device = resolve_device(args.device)
    generator = OnnxGenerator(args.model)
    generator.check_fits(min(args.n, args.batch_size))
    if args.json is not None:
        check_writable(args.json, "--json")
    model, weights = load_inception(args.inception_weights, download=not args.no_download, device=device)
    options: dict[str, Any] = {}
    if args.data_root is not None:
        options["data_root"] = args.data_root
    if args.dataset == "shapes":
        options.update(n=args.real_n or args.n, channels=generator.image_shape[0])  # the built-in shapes come grey or in colour
    elif args.no_download:
        options["download"] = False
    real = load_dataset(args.dataset, args.split, **options)
    check(hasattr(real, "images"), f"--dataset {args.dataset}: read from disk image by image; expected a data set held in memory (shapes, mnist, fashion-mnist, cifar10)")
    check(real.image_shape == generator.image_shape, f"--dataset {args.dataset} has {real.image_shape} images, {args.model} makes {generator.image_shape}: expected the same shape")
    n_real = min(len(real), args.real_n or args.n)
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(args.seed))[:n_real]
    real_images = real.images[order]  # (n_real, C, H, W) uint8, a seeded random subset

    feats_real = inception_features(model, uint8_batches(real_images, args.batch_size))
    feats_fake = inception_features(model, generator_batches(generator, args.n, seed=args.seed, batch_size=args.batch_size))
    result = {**fid_and_is(feats_real, feats_fake), "generated": args.n, "real": n_real, "dataset": args.dataset, "split": args.split,
              "model": str(args.model), "weights": weights["weights"], "standard_weights": weights["standard"]}
    note = "" if weights["standard"] else " (NOT the standard FID Inception weights: not comparable with papers)"
    print(f"FID {result['fid']:.3f}, IS {result['inception_score']:.3f} ± {result['inception_score_std']:.3f}: "
          f"{args.n} generated vs {n_real} real {args.dataset} {args.split} images{note}")
    if args.json is not None:
        atomic_write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0

