"""GAN trainer classes by name: a run records its trainer's class, and resume rebuilds that class.

:data:`TRAINERS` maps a name to a :class:`~.gan_trainer.GANTrainer` subclass. The name is the
class's ``__name__``: what ``config.json`` records as ``trainer_class`` and what
``gan-edu train --trainer`` and ``PipelineConfig.trainer`` take. A class gets in only by being
registered, by :func:`register_trainer` in Python, or by an entry point of the group
``gan_edu.trainers`` of an installed package; a file never names code to import. A registered
class keeps ``GANTrainer``'s constructor (runs and resume call it so) and sets ``config_class`` when it
has options of its own.

How the ``gan-edu`` command sees your class (docs/training.md has both in full):

* your own script registers it, then hands over to the command line::

      # my_trainers.py
      from gan_edu.cli import main
      from gan_edu.training import GANTrainer, register_trainer

      @register_trainer
      class SmoothedGANTrainer(GANTrainer): ...

      if __name__ == "__main__":
          raise SystemExit(main())

      python my_trainers.py train --trainer SmoothedGANTrainer --out runs/smooth
      python my_trainers.py train --resume runs/smooth      # torchrun my_trainers.py ... too

* or a package you install declares it, and plain ``gan-edu train --trainer`` / ``--resume``
  find it::

      [project.entry-points."gan_edu.trainers"]
      SmoothedGANTrainer = "my_package.trainers:SmoothedGANTrainer"
"""

from __future__ import annotations

from ..errors import check
from ..registry import Registry
from .commands import ENTRY_POINT_GROUP
from .gan_trainer import GANTrainer

HOW_TO_REGISTER = (
    "register it with gan_edu.training.register_trainer({name}) in your script and run the command through it "
    f"(python your_script.py train ...), or declare it as an entry point of group {ENTRY_POINT_GROUP} (docs/training.md)"
)

#: Every GAN trainer class a run may name, by class name.
TRAINERS: Registry[type[GANTrainer]] = Registry("trainer class", ENTRY_POINT_GROUP, kind=GANTrainer, subclass=True, how=HOW_TO_REGISTER)
TRAINERS.register(GANTrainer)


def register_trainer(cls: type[GANTrainer]) -> type[GANTrainer]:
    """Make ``cls`` known by its name to new runs, resume, the pipeline and the CLI; returns it (a decorator).

    Defining the same class again (a notebook cell run twice) replaces it; another class of the
    same name is refused.

    >>> @register_trainer
    ... class QuietGANTrainer(GANTrainer):
    ...     pass
    >>> get_trainer_class("QuietGANTrainer") is QuietGANTrainer
    True
    """
    return TRAINERS.register(cls)


def get_trainer_class(trainer: type[GANTrainer] | str, *, where: str = "") -> type[GANTrainer]:
    """The registered class named ``trainer`` (or the one an installed package declares under that
    name); given a class, the class itself once checked to be registered.

    Args:
        trainer: a class name, as ``--trainer`` takes it and ``config.json`` records it; or a class.
        where: what names the class (a run folder), for the error.

    Raises:
        GanEduError: one line naming the class and how to register it.
    """
    if not isinstance(trainer, str):
        name = getattr(trainer, "__name__", repr(trainer))
        check(TRAINERS.get(name) is trainer, f"trainer class {name!r} is not registered, so its runs could not be resumed; " + HOW_TO_REGISTER.format(name=name))
        return trainer
    return TRAINERS.lookup(trainer, where=f"{where}: trained by" if where else "")
