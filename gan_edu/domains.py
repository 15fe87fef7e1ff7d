"""Which values an option takes, written once in its field's type.

``epochs: PositiveInt = 5`` is an int option that must be positive. The config checks it
(:func:`check_domains`, from ``__post_init__``) and ``gan-edu`` parses the flag made from the
field with the same rule (:mod:`gan_edu.cli.options`), so both refuse it in one line:

    >>> POSITIVE_INT.parse("0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: 0 is not positive; expected a positive int
    >>> POSITIVE_INT.parse("3")
    3

This module imports nothing heavy: the commands that never train use it too.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, Union

from .errors import check

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Domain:
    """The values of an int or float option: its kind, a test, and the words for both."""

    kind: type  # int or float
    test: Callable[[Any], bool]  # True for a value the option takes
    expected: str  # what an error says was expected: "a positive int"
    refusal: str = ""  # what an error says of a value of the right kind that fails the test: "is not positive"

    def parse(self, text: str) -> Any:
        """The value of a command-line word; an ``argparse.ArgumentTypeError`` (one line) if it is none."""
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an int' if self.kind is int else 'a number'}; expected {self.expected}") from None
        if not self.test(value):
            raise argparse.ArgumentTypeError(f"{text} {self.refusal}; expected {self.expected}")
        return value

    def accepts(self, value: Any) -> bool:
        """Whether a Python value (from code or a config file) is one this option takes."""
        kinds = (int,) if self.kind is int else (int, float)
        return isinstance(value, kinds) and not isinstance(value, bool) and self.test(value)


INT = Domain(int, lambda v: True, "an int")
NUMBER = Domain(float, lambda v: True, "a number")
POSITIVE_INT = Domain(int, lambda v: v > 0, "a positive int", "is not positive")
NON_NEGATIVE_INT = Domain(int, lambda v: v >= 0, "an int >= 0", "is negative")
POSITIVE_NUMBER = Domain(float, lambda v: v > 0, "a positive number", "is not positive")
NON_NEGATIVE_NUMBER = Domain(float, lambda v: v >= 0, "a number >= 0", "is negative")

PositiveInt = Annotated[int, POSITIVE_INT]
NonNegativeInt = Annotated[int, NON_NEGATIVE_INT]
PositiveFloat = Annotated[float, POSITIVE_NUMBER]
NonNegativeFloat = Annotated[float, NON_NEGATIVE_NUMBER]


@dataclasses.dataclass(frozen=True)
class FieldType:
    """A config field's type, as the CLI and the checks need it."""

    kind: type  # bool, int, float or str (str: anything else)
    optional: bool  # None is a value too
    domain: Domain | None  # the declared domain (PositiveInt...), or None
    nested: type | None = None  # a dataclass field: its class (a nested config)


@functools.cache
def field_types(cls: type) -> dict[str, FieldType]:
    """The type of every field of dataclass ``cls`` (and its bases), by field name."""
    hints = _hints(cls)
    types_: dict[str, FieldType] = {}
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name, f.type)
        optional = False
        if typing.get_origin(hint) in (Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            optional = len(args) < len(typing.get_args(hint))
            hint = args[0] if len(args) == 1 else hint
        domain = next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Domain)), None)
        base = typing.get_origin(hint) if typing.get_origin(hint) is Annotated else None
        base = typing.get_args(hint)[0] if base is not None else hint
        if isinstance(base, type) and dataclasses.is_dataclass(base):
            types_[f.name] = FieldType(dict, optional, None, nested=base)
            continue
        kind = base if base in (bool, int, float) else _kind_of_text(base)
        types_[f.name] = FieldType(kind, optional, domain or {int: INT, float: NUMBER}.get(kind))
    return types_


def _hints(cls: type) -> dict[str, Any]:
    """``cls``'s resolved annotations; those of the nearest base that resolves when a name is unknown here."""
    for klass in cls.__mro__:
        try:
            return typing.get_type_hints(klass, include_extras=True)
        except (NameError, TypeError):  # a variant defined where its annotations cannot be evaluated
            continue
    return {}


def _kind_of_text(annotation: Any) -> type:
    """bool, int, float or str from an annotation that did not resolve (``"int | None"``)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    for name, kind in (("bool", bool), ("int", int), ("float", float)):
        if text.split("|")[0].strip() == name:
            return kind
    return str


def check_domains(config: Any) -> None:
    """Check every bool field of ``config`` and every field declared with a domain; one line naming the first bad value.

    >>> @dataclasses.dataclass(frozen=True)
    ... class Tiny:
    ...     ema: bool = True
    >>> check_domains(Tiny(ema="yes"))
    Traceback (most recent call last):
    gan_edu_runtime.errors.GanEduError: ema='yes': expected True or False
    """
    for name, ft in field_types(type(config)).items():
        value = getattr(config, name)
        if value is None and ft.optional:
            continue
        if ft.kind is bool:  # "no" or 0 from a config file would read as a truth value
            check(isinstance(value, bool), f"{name}={value!r}: expected True{', False or None' if ft.optional else ' or False'}")
            continue
        if ft.domain is None or ft.domain in (INT, NUMBER):
            continue
        check(ft.domain.accepts(value), f"{name}={value!r}: expected {ft.domain.expected}{' or None' if ft.optional else ''}")


def strict_from_dict(cls: type[T], values: dict[str, Any], *, what: str = "config keys", list_options: bool = False) -> T:
    """``cls(**values)`` for a config dataclass; keys that are not its fields are refused in one line, never dropped.

    Args:
        cls: the config class.
        values: its options as plain data (``to_dict``'s shape).
        what: how the message names the keys ("config keys", "trainer config keys").
        list_options: also list the class's options in the message.

    >>> @dataclasses.dataclass(frozen=True)
    ... class Tiny:
    ...     width: int = 8
    >>> strict_from_dict(Tiny, {"width": 4})
    Tiny(width=4)
    >>> strict_from_dict(Tiny, {"widht": 4})
    Traceback (most recent call last):
    gan_edu_runtime.errors.GanEduError: config keys ['widht']: not options of Tiny
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    check(not unknown, f"{what} {unknown}: not options of {cls.__name__}" + (f" ({sorted(names)})" if list_options else ""))
    return cls(**values)
