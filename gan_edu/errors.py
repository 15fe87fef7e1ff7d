"""The one exception type users see.

Every error caused by bad input (a wrong argument, a missing file, a checkpoint of another
model) is raised as :class:`GanEduError` with a message that names the bad value and what was
expected. The command line turns it into one line on stderr and exit code 2, no traceback.
Bugs stay ordinary exceptions, so they keep their traceback.
"""

from __future__ import annotations


class GanEduError(ValueError):
    """Bad input from a user: the message names the bad value and what was expected."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`GanEduError` with ``message`` unless ``condition`` holds.

    >>> check(1 + 1 == 2, "never raised")
    """
    if not condition:
        raise GanEduError(message)
