"""The one exception type users see (gan-edu's :class:`GanEduError`, defined here so that the light
package and gan-edu raise the same class).

Every error caused by bad input (a wrong argument, a missing file, a model of another kind) is
raised as :class:`GanEduError` with a message that names the bad value and what was expected. The
command lines turn it into one line on stderr and exit code 2, no traceback. Bugs stay ordinary
exceptions, so they keep their traceback.
"""

from __future__ import annotations


class GanEduError(ValueError):
    """Bad input from a user: the message names the bad value and what was expected."""


class DiskFull(GanEduError):
    """A file could not be written: the disk (or the user's quota) is full. The message names the file;
    what was there before is unchanged. A trainer adds where its last checkpoint is."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`GanEduError` with ``message`` unless ``condition`` holds.

    >>> check(1 + 1 == 2, "never raised")
    """
    if not condition:
        raise GanEduError(message)


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), or its type's name."""
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
