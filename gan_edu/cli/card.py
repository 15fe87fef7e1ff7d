"""``gan-edu card``: ship a pipeline folder's generator in ``exported/`` with its picture and JSON card.

``gan-edu card RUN_DIR --name NAME --command "..."`` copies ``RUN_DIR/generator.onnx`` to
``exported/NAME.onnx`` and writes ``exported/NAME.png`` and ``exported/NAME.json`` (see
:mod:`gan_edu.export.card` and ``exported/README.md``). Needs no torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "card", help="ship a pipeline folder's generator: exported/NAME.onnx, its picture and its JSON card",
        description="Copy RUN_DIR/generator.onnx to exported/NAME.onnx and write NAME.png (one row per class) and NAME.json "
        "(the client contract, training data and its licence, steps, hardware, c, c', GAN-test, Frechet) from RUN_DIR/report.json.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a folder written by gan-edu pipeline or gan-edu quickstart")
    p.add_argument("--name", required=True, help="the shipped name, e.g. mnist_cdcgan")
    p.add_argument("--command", required=True, help="the command that made RUN_DIR, recorded in the card")
    p.add_argument("--to", type=Path, default=Path("exported"), help="folder of shipped models (default exported)")
    p.add_argument("--licence", help="licence of the training data (known for shapes and mnist; required for others)")
    p.add_argument("--machine", default="", help="where it was trained, in words (e.g. '2-core CPU, idle'); default: what the report says of the hardware")
    p.add_argument("--overwrite", action="store_true", help="replace a different NAME.onnx already shipped")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export.card import make_card

    path = make_card(
        args.run_dir, args.name, to=args.to, command=args.command, licence=args.licence,
        machine=args.machine, overwrite=args.overwrite,
    )
    card = json.loads(path.read_text())
    m = card["metrics"]
    print(f"wrote {args.to / card['file']} ({card['size_bytes'] / 1e6:.2f} MB), {args.to / card['picture']} and {path}")
    print(card["quality_note"])
    print(f"c {m['c_accuracy']:.4f}, c' {m['c_prime_accuracy']:.4f}, GAN-test {m['gan_test_accuracy']:.4f}, Frechet {m['frechet_distance']:.3f}")
    return 0
