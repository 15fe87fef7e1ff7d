"""The one exception type users see.

Every error caused by bad input (a wrong argument, a missing file, a checkpoint of another
model) is raised as :class:`GanEduError` with a message that names the bad value and what was
expected. The command line turns it into one line on stderr and exit code 2, no traceback.
Bugs stay ordinary exceptions, so they keep their traceback.

The class itself lives in the light package (:mod:`gan_edu_runtime.errors`), so that the
torch-free sampler and gan-edu raise one and the same type.
"""

from __future__ import annotations

from gan_edu_runtime.errors import DiskFull, GanEduError, check

__all__ = ["DiskFull", "GanEduError", "check"]
