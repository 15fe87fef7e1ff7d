"""Argument types shared by the commands: one-line argparse errors that say what was expected.

This module imports nothing heavy, so commands that never train (``sample``, ``card``,
``serve-demo``) start without torch.
"""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an int; expected a positive int") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not positive; expected a positive int")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an int; expected an int >= 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; expected an int >= 0")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected a positive number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not positive; expected a positive number")
    return value
