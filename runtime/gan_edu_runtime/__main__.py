"""``python -m gan_edu_runtime``: the ``gan-edu-sample`` command."""

from .cli import entry_point

if __name__ == "__main__":
    entry_point()
