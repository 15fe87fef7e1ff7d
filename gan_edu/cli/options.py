"""Command-line flags made from config dataclasses, and option values from a file: each option is written once, as a field.

A field ``epochs: PositiveInt = 5  # passes over the training data`` becomes ``--epochs N`` with
that comment as its help and the field's domain as its parser (``--epochs 0`` is refused in one
line); a bool field becomes ``--name`` / ``--no-name``. A nested config gets a section: its
fields become ``--gan-epochs`` (dest ``gan.epochs``), and :func:`given_options` returns them
nested (``{"gan": {"epochs": 3}}``). Flags default to "not given" (None), so a command can tell
what the user typed from what a preset or the dataclass supplies.

``--config FILE`` (:func:`apply_config_file`) gives the same options from a JSON or TOML file,
under the same names (the field names, nested for nested configs). A value is checked exactly as
the flag's word would be; a key that is no option is refused, naming the ones expected; flags
given beside the file win. The file is read as data (``json``, ``tomllib``), never run.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..domains import Domain, field_types
from ..errors import GanEduError, check

_FIELD_LINE = re.compile(r"^\s+(\w+)\s*:[^=]*(?:=[^#]*)?#\s*(.+)$")

#: Options a file never gives: where a command writes, what it replaces, and the file itself.
COMMAND_LINE_ONLY = ("help", "config", "out", "overwrite", "resume", "preset", "func", "command")


def field_comments(cls: type) -> dict[str, str]:
    """The why-comment after each field of dataclass ``cls`` (and its bases), by field name."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # no source (frozen app, a class made in a notebook): flags without help
            continue
        for line in source.splitlines():
            m = _FIELD_LINE.match(line)
            if m:
                comments[m.group(1)] = m.group(2).strip()
    return comments


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    *,
    section: str = "",
    exclude: Iterable[str] = (),
    bare: Iterable[str] = (),
    defaults: Any = None,
) -> list[str]:
    """Add one flag per field of ``cls``; returns the dests added (``"epochs"``, or ``"gan.epochs"`` in a section).

    Args:
        parser: the parser (or an argument group of it).
        cls: a dataclass; nested dataclass fields are left to the caller (each one a section).
        section: a nested config's name: its flags are ``--SECTION-NAME``, its dests ``SECTION.NAME``.
        exclude: fields that get no flag (options given elsewhere, or derived).
        bare: fields of a section that also answer to ``--NAME`` (a name no other option has).
        defaults: the instance whose values the help calls the defaults (default: the fields' own).
    """
    comments = field_comments(cls)
    types = field_types(cls)
    taken = {a.dest for a in getattr(parser, "_actions", ())}
    skip, bare = set(exclude), set(bare)
    dests = []
    for f in dataclasses.fields(cls):
        ft = types[f.name]
        dest = f"{section}.{f.name}" if section else f.name
        if f.name in skip or ft.nested is not None or dest in taken:
            continue  # a variant's config repeats its base's fields: the first flag serves both
        default = getattr(defaults, f.name, f.default if f.default is not dataclasses.MISSING else None)
        help_text = f"{comments.get(f.name, '')} (default {default!r})".strip()
        flags = [flag_name(dest)] + ([flag_name(f.name)] if section and f.name in bare else [])
        if ft.kind is bool:
            parser.add_argument(*flags, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parse = ft.domain.parse if ft.domain is not None else None
            parser.add_argument(*flags, dest=dest, type=parse, default=None, metavar=f.name.upper(), help=help_text)
        dests.append(dest)
    return dests


def flag_name(dest: str) -> str:
    """``gan.lr_g`` -> ``--gan-lr-g``: the flag of an option."""
    return "--" + dest.replace(".", "-").replace("_", "-")


def given_options(args: argparse.Namespace, dests: Iterable[str]) -> dict[str, Any]:
    """The options given (on the command line or in ``--config``), nested by section: ``{"gan": {"epochs": 3}}``."""
    given: dict[str, Any] = {}
    for dest in dests:
        value = getattr(args, dest, None)
        if value is not None:
            *sections, name = dest.split(".")
            place = given
            for s in sections:
                place = place.setdefault(s, {})
            place[name] = value
    return given


def deep_merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """The layers' values, later ones winning, nested dicts merged key by key (a preset, then a file, then flags)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = deep_merge(merged[key], value)
            else:
                merged[key] = value
    return merged


# -- --config FILE ---------------------------------------------------------------------------------
def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """``--config FILE``: option values from a JSON or TOML file; flags given beside it win."""
    parser.add_argument(
        "--config", type=Path, metavar="FILE",
        help="option values from a JSON or TOML file: the options' names (as in config.json / report.json), "
        "nested for nested configs; flags given beside it win",
    )
    parser.set_defaults(options_parser=parser)


def read_config_file(path: Path) -> dict[str, Any]:
    """The options in a ``.json`` or ``.toml`` file, as a dict (read as data, never run)."""
    where = f"--config {path}"
    check(path.is_file(), f"{where}: no such file; expected a JSON or TOML file of option values")
    suffix = path.suffix.lower()
    check(suffix in (".json", ".toml"), f"{where}: expected a file ending in .json or .toml")
    try:
        if suffix == ".json":
            values = json.loads(path.read_text(encoding="utf-8"))
        else:
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise GanEduError(f"{where}: reading TOML needs Python 3.11 or later (tomllib); expected a .json file here") from None
            values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise GanEduError(f"{where}: not valid {suffix[1:].upper()} ({str(e).splitlines()[0][:120]})") from None
    except RecursionError:  # [[[...]]] thousands deep: the parsers recurse once per level
        raise GanEduError(f"{where}: nested too deeply to read; expected at most {MAX_CONFIG_DEPTH} levels of tables (\"gan\": {{\"epochs\": 3}})") from None
    check(isinstance(values, dict), f"{where}: a {type(values).__name__}; expected a table of option values ({{\"epochs\": 5, ...}})")
    check(config_depth(values) <= MAX_CONFIG_DEPTH, f"{where}: nested more than {MAX_CONFIG_DEPTH} levels deep; expected at most {MAX_CONFIG_DEPTH} levels of tables (\"gan\": {{\"epochs\": 3}})")
    return values


#: The deepest nesting an options file may have: sections hold options, an option a list at most.
MAX_CONFIG_DEPTH = 4


def config_depth(value: Any) -> int:
    """How many levels of tables and lists ``value`` has (0 for a plain value), counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth + 1)
            if deepest > MAX_CONFIG_DEPTH:
                return deepest  # already too deep: no need to walk the rest
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"gan": {"epochs": 3}}`` -> ``{"gan.epochs": 3}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        dest = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, dest + "."))
        else:
            flat[dest] = value
    return flat


def apply_config_file(args: argparse.Namespace) -> None:
    """Fill the options not given on the command line from ``args.config`` (when given), each value
    checked as its flag's word would be."""
    if getattr(args, "config", None) is None:
        return
    parser: argparse.ArgumentParser = args.options_parser
    where = f"--config {args.config}"
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in COMMAND_LINE_ONLY}
    for dest, value in _flatten(read_config_file(args.config)).items():
        action = actions.get(dest)
        if action is None:
            section, _, name = dest.rpartition(".")
            names = sorted({d[len(section) + 1:] for d in actions if d.startswith(section + ".")} if section else ())
            if section and name in actions:  # an option of the whole command, given inside a section
                expected = f"{name!r} at the top (one value for every stage)"
            else:
                expected = f"one of {', '.join(names or sorted({d.split('.')[0] for d in actions}))}"
            raise GanEduError(f"{where}: {dest!r} is not an option here; expected {expected}")
        parsed = file_value(action, value, f"{where}: {dest}")
        if parsed is not None and getattr(args, dest, None) in (None, parser.get_default(dest)):
            setattr(args, dest, parsed)


def file_value(action: argparse.Action, value: Any, where: str) -> Any:
    """A file's value for the option of ``action``, checked as the flag would check its word; None: not given."""
    if value is None:
        return None  # null: the option's default
    if action.nargs == 0:  # a switch (--ema / --no-ema, --per-class)
        check(isinstance(value, bool), f"{where}={value!r}: expected true or false")
        return value if isinstance(action, argparse.BooleanOptionalAction) or value else None
    parse = action.type
    kind = parse.__self__.kind if isinstance(getattr(parse, "__self__", None), Domain) else parse if parse in (int, float) else str
    right_kind = isinstance(value, str) if kind is str else isinstance(value, (int, float) if kind is float else int)
    check(right_kind and not isinstance(value, (bool, list, dict)),
          f"{where}={value!r}: expected {'a string' if kind is str else 'an int' if kind is int else 'a number'}")
    try:
        parsed = parse(str(value)) if parse is not None else value
    except (argparse.ArgumentTypeError, ValueError) as e:
        raise GanEduError(f"{where}={value!r}: {e}") from None
    if action.choices is not None:
        check(parsed in action.choices, f"{where}={value!r}: expected one of {', '.join(map(str, action.choices))}")
    return parsed
