"""Things known by name: one registry shape for models, model classes, losses and trainers.

A :class:`Registry` is a dict from a name to a thing (a :class:`~gan_edu.models.ModelSpec`, a
``GANLoss`` or trainer class...) with the same three ways in and one way out everywhere:

* ``register_X(thing)`` in Python, usable as a decorator (the name comes from the thing: a
  class's ``__name__``, a loss's ``name``), or ``register_X(thing, name="...")``;
* an installed package's entry point of the group ``gan_edu.X`` (``gan_edu.models``,
  ``gan_edu.losses``, ``gan_edu.trainers``), loaded when its name is asked for;
* a lookup by name (:meth:`Registry.lookup`) that refuses an unknown name in one line listing
  only the concrete registered names (never an abstract base) and how to register one.

A file (a run's ``config.json``) only ever names a thing; it never names code to import.

>>> shapes = Registry("shape", "gan_edu.shapes", kind=str, how="register it first")
>>> shapes.register("circle", name="round")
'circle'
>>> shapes.lookup("round")
'circle'
>>> try:
...     shapes.lookup("square")
... except GanEduError as refusal:
...     print(refusal)
shape 'square' is not registered; expected one of round; register it first
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from .errors import GanEduError, check

T = TypeVar("T")


def _default_name(thing: Any) -> str:
    return str(getattr(thing, "__name__", ""))


class Registry(dict[str, T], Generic[T]):
    """Things of one kind by name; a dict, so ``REG[name]``, ``name in REG`` and ``list(REG)`` work.

    Args:
        what: what a thing is called in messages (``"trainer class"``).
        group: the entry-point group of installed packages (``"gan_edu.trainers"``).
        kind: what every thing must be: a base class its subclasses (when ``subclass``) or instances of.
        subclass: True: things are subclasses of ``kind``; False: instances.
        name_of: the name a thing registers under when none is given (default its ``__name__``).
        how: how to register one, the end of the unknown-name message (``{name}`` is filled in).
        replace: True: a new thing under a taken name replaces the old one (model classes redefined
            in a notebook); False: only the same definition again (same module and qualified name) may.
        on_miss: called once before an unknown name is refused (may register more things).
    """

    def __init__(
        self, what: str, group: str, *, kind: type, subclass: bool = False, name_of: Callable[[Any], str] = _default_name,
        how: str = "", replace: bool = False, on_miss: Callable[[], object] | None = None,
    ) -> None:
        super().__init__()
        self.what, self.group, self.kind, self.subclass = what, group, kind, subclass
        self.name_of, self.how, self.replace = name_of, how, replace
        self.on_miss = on_miss  # called before refusing an unknown name (model classes: import the installed models)

    def _fits(self, thing: Any) -> bool:
        return isinstance(thing, type) and issubclass(thing, self.kind) if self.subclass else isinstance(thing, self.kind)

    def register(self, thing: T, *, name: str | None = None) -> T:
        """Make ``thing`` known under ``name`` (default: its own name); returns it, so it is a decorator too.

        Raises:
            GanEduError: ``thing`` is not of the registry's kind, or another thing holds the name.
        """
        expected = f"a subclass of {self.kind.__name__}" if self.subclass else f"a {self.kind.__name__}"
        check(self._fits(thing), f"register {self.what} {thing!r}: expected {expected}")
        name = name if name is not None else self.name_of(thing)
        check(isinstance(name, str) and bool(name), f"register {self.what} {thing!r}: expected a name")
        old = self.get(name)
        if old is not None and old is not thing and not self.replace:
            same = [(getattr(x, "__module__", None), getattr(x, "__qualname__", None)) for x in (old, thing)]
            where = f"{same[0][0]}.{same[0][1]}" if same[0][1] else repr(old)
            check(same[0] == same[1] and same[0][1] is not None and not str(same[0][0]).startswith("gan_edu."),
                  f"{self.what} {name!r} of {same[1][0]}: the name is taken by {where}; rename it")
        self[name] = thing
        return thing

    def names(self) -> list[str]:
        """The names a lookup may take: the concrete things (abstract classes are bases, not choices)."""
        return [n for n, t in self.items() if not (isinstance(t, type) and inspect.isabstract(t))]

    def lookup(self, name: str, *, where: str = "") -> T:
        """The thing registered as ``name``, or the one an installed package declares under it.

        Args:
            name: as a flag or a ``config.json`` names it.
            where: who names it (``"RUN: trained by"``), to start the message with.

        Raises:
            GanEduError: one line: the name, the concrete registered names, how to register one.
        """
        if name in self and name in self.names():
            return self[name]
        if self.load_entry_point(name) and name in self.names():
            return self[name]
        if self.on_miss is not None:
            self.on_miss()
            if name in self.names():
                return self[name]
        what = f"{where} {self.what} {name!r}, which is not registered here" if where else f"{self.what} {name!r} is not registered"
        how = f"; {self.how.format(name=name)}" if self.how else ""
        raise GanEduError(f"{what}; expected one of {', '.join(self.names()) or '(none)'}{how}")

    def load_entry_point(self, name: str | None = None, *, strict: bool = True) -> bool:
        """Load the entry points of :attr:`group` named ``name`` (every one when None); True if one was.

        ``strict=False`` (the command line building its flags from every installed trainer) skips
        an entry point that cannot be loaded: a lookup of its name then says why.
        """
        found = False
        for ep in entry_points(group=self.group):
            if name is not None and ep.name != name:
                continue
            try:
                found = self._load(ep) or found
            except GanEduError:
                if strict:
                    raise
        return found

    def _load(self, ep: Any) -> bool:
        try:
            thing = ep.load()
        except (ImportError, AttributeError) as e:  # the package is half installed, or names something it lacks
            raise GanEduError(f"entry point {ep.name} = {ep.value} (group {self.group}): cannot be loaded ({type(e).__name__}: {e}); "
                              f"expected an importable {self.kind.__name__}{' subclass' if self.subclass else ''}: "
                              "reinstall the package that declares it") from None
        if self.subclass:
            check(self._fits(thing) and self.name_of(thing) == ep.name,
                  f"entry point {ep.name} = {ep.value} (group {self.group}): expected a {self.kind.__name__} subclass named {ep.name}")
        self.register(thing, name=ep.name)
        return True
