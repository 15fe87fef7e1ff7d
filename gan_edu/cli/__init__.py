"""The ``gan-edu`` command: a thin layer over the library's objects.

Each sub-command lives in its own module with a ``register(subparsers)`` function that adds its
parser and sets ``func``. Errors a user can fix come out as one line on stderr and exit code 2;
an interrupted run exits 130 after saying how to resume; a diverged run exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from ..errors import GanEduError

PROG = "gan-edu"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``gan-edu train: error: ...`` and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> ArgumentParser:
    from . import data, export, fid, models, pipeline, quickstart, train

    parser = ArgumentParser(prog=PROG, description="gan-edu: learn, try and ship DCGANs in plain PyTorch.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for module in (quickstart, train, data, export, models, pipeline, fid):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from ..training.trainer import TrainingDiverged, TrainingInterrupted

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except TrainingInterrupted as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 130
    except TrainingDiverged as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except GanEduError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # unwritable output, full disk, missing file outside our checks
        where = f" {e.filename!s}:" if getattr(e, "filename", None) else ""
        print(f"{PROG}: error:{where} {e.strerror or e}", file=sys.stderr)
        return 2


def entry_point() -> NoReturn:
    sys.exit(main())
