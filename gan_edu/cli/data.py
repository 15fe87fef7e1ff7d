"""``gan-edu data``: look at the data sets. ``gan-edu data info --dataset NAME`` prints, per split,
the image shape, the number of images and the count per class."""

from __future__ import annotations

import argparse
from typing import Any

from ..data.datasets import DATASETS, SPLITS, load_dataset
from ..data.real import load_options
from ..errors import GanEduError
from .train import add_data_arguments, data_options


def register(sub: Any) -> None:
    p = sub.add_parser("data", help="look at the data sets", description="Look at the data sets of the registry.")
    data_sub = p.add_subparsers(dest="data_command", metavar="COMMAND", parser_class=type(p))
    info = data_sub.add_parser("info", help="image shape, number of images and count per class of each split")
    info.add_argument("--dataset", default="shapes", choices=sorted(DATASETS), help="the data set (default shapes)")
    add_data_arguments(info)
    info.set_defaults(func=run_info)
    p.set_defaults(func=lambda args: p.error("expected a command: info"))  # bare `gan-edu data`: one line, exit 2


def run_info(args: argparse.Namespace) -> int:
    options = data_options(args)
    if "in_memory" in load_options(DATASETS[args.dataset]):
        options["in_memory"] = False  # counting needs the file list only, not the decoded images
    for split in SPLITS:
        try:
            ds = load_dataset(args.dataset, split, **options)
        except GanEduError as e:
            if split == "train":
                raise
            print(f"{split}: none ({e})")
            continue
        if split == "train":
            where = ds.options.get("data_root")
            print(f"{args.dataset}" + (f" from {where}" if where else " (built in)"))
        c, h, w = ds.image_shape
        print(f"{split}: {len(ds):,} images of shape {c}x{h}x{w}, {ds.num_classes} classes")
        width = max(len(name) for name in ds.class_names)
        for name, count in zip(ds.class_names, ds.class_counts()):
            print(f"  {name:<{width}}  {count:>9,}")
    return 0
