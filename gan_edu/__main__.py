"""``python -m gan_edu`` is the ``gan-edu`` command."""

from .cli import entry_point

entry_point()
