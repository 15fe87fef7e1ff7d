"""The command line that knows a trainer class: what a stopped run's resume hint names.

Kept apart from :mod:`.registry` (which imports the trainers) so that a trainer can ask for its
own command without an import loop.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

#: The entry-point group under which installed packages declare their trainer classes.
ENTRY_POINT_GROUP = "gan_edu.trainers"


def command_for(cls: type) -> str | None:
    """The command line that knows trainer class ``cls``, for the resume hint of a stopped run.

    ``gan-edu`` for gan-edu's classes and those an installed package declares; for a class defined
    in the script being run, that script (``python my_trainers.py``: it hands over to
    :func:`gan_edu.cli.main`); for one in an importable module of yours,
    ``python -m gan_edu --import MODULE``; None in a notebook or an interactive session, where no
    command defines the class.
    """
    module = cls.__module__
    if module.split(".")[0] == "gan_edu" or any(ep.name == cls.__name__ for ep in entry_points(group=ENTRY_POINT_GROUP)):
        return "gan-edu"
    if module == "__main__":
        script = sys.argv[0] if sys.argv else ""
        return f"python {script}" if script.endswith(".py") and Path(script).is_file() else None
    return f"python -m gan_edu --import {module}"
