"""Command-line flags made from a config dataclass: each option is written once, as a field.

A field ``gan_epochs: int = 5  # GAN budget in epochs`` becomes ``--gan-epochs N`` with that
comment as its help; a bool field becomes ``--name`` / ``--no-name``. Flags default to "not
given", so a command can tell what the user typed from what a preset or the dataclass supplies.
Values are converted here (int, float, str) and checked by the dataclass itself, which names the
bad value in one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import typing
from typing import Any

_FIELD_LINE = re.compile(r"^\s+(\w+)\s*:[^=]*(?:=[^#]*)?#\s*(.+)$")


def field_comments(cls: type) -> dict[str, str]:
    """The why-comment after each field of dataclass ``cls`` (and its bases), by field name."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # no source (frozen app): flags without help
            continue
        for line in source.splitlines():
            m = _FIELD_LINE.match(line)
            if m:
                comments[m.group(1)] = m.group(2).strip()
    return comments


def _converter(annotation: Any) -> Any:
    """int, float or str for a field's type (``int | None`` -> int)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    for name, kind in (("bool", bool), ("int", int), ("float", float)):
        if re.search(rf"\b{name}\b", text):
            return kind
    return str


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, *, exclude: tuple[str, ...] = ()) -> list[str]:
    """Add one flag per field of ``cls`` (except ``exclude``); returns the field names added."""
    comments = field_comments(cls)
    hints = typing.get_type_hints(cls) if not any(isinstance(f.type, str) for f in dataclasses.fields(cls)) else {}
    names = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        kind = _converter(hints.get(f.name, f.type))
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f"{comments.get(f.name, '')} (default {default})".strip()
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=None, metavar=f.name.split("_")[-1].upper(), help=help_text)
        names.append(f.name)
    return names


def given_options(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """The options the user gave on the command line, under their field names."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
