"""The ``gan-edu`` command: a thin layer over the library's objects.

Each sub-command lives in its own module with a ``register(subparsers)`` function that adds its
parser and sets ``func``. Errors a user can fix come out as one line on stderr and exit code 2;
an interrupted run exits 130 after saying how to resume; a diverged run exits 1.
"""

from __future__ import annotations

import argparse
import functools
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


#: Each command's module, in the order of ``gan-edu --help``. ``main`` imports only the module
#: of the command it runs, so ``gan-edu sample`` (onnxruntime and numpy only) starts without torch.
COMMANDS = {
    "quickstart": "quickstart", "train": "train", "data": "data", "export": "export", "sample": "export",
    "models": "models", "pipeline": "pipeline", "card": "card", "serve-demo": "serve_demo", "fid": "fid",
    "doctor": "doctor",
}


def build_parser(command: str | None = None) -> ArgumentParser:
    """The ``gan-edu`` parser: every command, or only ``command``'s module when it is known."""
    import importlib

    parser = ArgumentParser(prog=PROG, description="gan-edu: learn, try and ship DCGANs in plain PyTorch.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--import", metavar="MODULE", action="append", help="import MODULE first (before the command): "
                        "its trainer classes, losses and models register themselves (docs/training.md)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    names = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in names:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ImportError as e:  # installed without torch (pip install --no-deps): the other commands still run
            for word in [c for c, m in COMMANDS.items() if m == name]:
                stub = sub.add_parser(word, help=f"(unavailable: {e.name or 'a dependency'} is not installed)", prefix_chars="\0", add_help=False)
                stub.add_argument("rest", nargs=argparse.REMAINDER)
                stub.set_defaults(func=functools.partial(_unavailable, word, e.name or str(e)))
            continue
        module.register(sub)
    return parser


def _unavailable(word: str, missing: str, args: argparse.Namespace) -> int:
    raise GanEduError(
        f"gan-edu {word} needs {missing}, which is not installed; expected gan-edu installed with its dependencies "
        '(only sampling needs none of them: pip install "./runtime[cpu]", then gan-edu-sample)'
    )


def command_word(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` (its first word that is not an option), or None."""
    return next((a for a in argv if not a.startswith("-")), None)


def import_modules(argv: list[str]) -> list[str]:
    """Import the modules of the leading ``--import MODULE`` options (a module of yours whose
    trainers, losses or models register themselves); returns the rest of ``argv``."""
    import importlib
    import os

    rest = list(argv)
    while rest and (rest[0] == "--import" or rest[0].startswith("--import=")):
        name, rest = (rest[0].split("=", 1)[1], rest[1:]) if "=" in rest[0] else ((rest[1:2] or [""])[0], rest[2:])
        if not name or name.startswith("-"):
            raise GanEduError(f"--import {name!r}: expected a module name (python -m gan_edu --import my_trainers train ...)")
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # the console script does not look in the current folder by itself
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise GanEduError(f"--import {name}: cannot be imported ({type(e).__name__}: {e}); expected a module on the Python path "
                              "(run the command from the folder that holds it)") from None
    return rest


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = import_modules(argv)
    except GanEduError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    parser = build_parser(command_word(argv))
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except GanEduError as e:
        # The training errors exist only where the trainer was loaded: never in `gan-edu sample`.
        trainer = sys.modules.get("gan_edu.training.trainer")
        if trainer is not None and isinstance(e, trainer.TrainingInterrupted):
            print(f"{PROG}: {e}", file=sys.stderr)
            return 130
        if trainer is not None and isinstance(e, trainer.TrainingDiverged):
            print(f"{PROG}: error: {e}", file=sys.stderr)
            return 1
        distributed = sys.modules.get("gan_edu.training.distributed")
        if distributed is not None and isinstance(e, distributed.RefusedOnEveryRank) and not distributed.World.from_env().is_main:
            return 2  # rank 0 says it: once, not once per process
        sys.stderr.write(f"{PROG}: error: {e}\n")  # one write: processes of a torchrun run do not interleave within a line
        sys.stderr.flush()
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
