"""Argument types shared by the commands: one-line argparse errors that say what was expected.

They are the parsers of the domains options declare (:mod:`gan_edu.domains`), for the flags a
command writes by hand. This module imports nothing heavy, so commands that never train
(``sample``, ``card``, ``serve-demo``) start without torch.
"""

from __future__ import annotations

from ..domains import NON_NEGATIVE_INT, POSITIVE_INT, POSITIVE_NUMBER

positive_int = POSITIVE_INT.parse
non_negative_int = NON_NEGATIVE_INT.parse
positive_float = POSITIVE_NUMBER.parse
