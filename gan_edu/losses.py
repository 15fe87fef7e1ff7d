"""GAN losses as pure functions on discriminator logits, plus small classes that pair them.

Notation: ``D(x) = sigmoid(l)`` where ``l`` is the discriminator's raw logit. Every formula
below is written with ``softplus(u) = log(1 + exp(u))``, which is stable for any logit:

    -log D(x)       = -log sigmoid(l)  = softplus(-l)
    -log(1 - D(x))  = -log sigmoid(-l) = softplus(l)

The discriminator of Goodfellow et al. (2014) maximises ``log D(x) + log(1 - D(G(z)))``; both
losses below share it. They differ in the generator's objective:

* minimax (saturating): G minimises ``log(1 - D(G(z)))``, the game's value as written. When D
  confidently rejects fakes (``D(G(z)) -> 0``, early in training) its gradient vanishes.
* non-saturating: G minimises ``-log D(G(z))``, same fixed point, strong gradients exactly when
  G is losing. The paper recommends it and DCGAN uses it.

A loss never touches an optimizer. To make a new loss, subclass :class:`GANLoss` and implement
``discriminator_loss`` and ``generator_loss``; override ``penalty`` for a regulariser that needs
the discriminator itself (gradient penalties).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .errors import GanEduError

REAL_LABEL = 1.0  # the target for real images in the BCE view of the discriminator
FAKE_LABEL = 0.0  # the target for generated images


def minimax_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's loss: ``-log D(x) - log(1 - D(G(z)))``, averaged over each batch.

    ``= mean(softplus(-real_logits)) + mean(softplus(fake_logits))``, the binary cross entropy
    with targets REAL_LABEL for real and FAKE_LABEL for fake images.

    >>> float(minimax_discriminator_loss(torch.zeros(3), torch.zeros(3)))  # 2 log 2
    1.3862943649291992
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Saturating G loss: ``log(1 - D(G(z))) = -softplus(fake_logits)``, averaged.

    Its gradient with respect to the logit is ``-sigmoid(l)``, which vanishes as ``D(G(z)) -> 0``.
    """
    return -F.softplus(fake_logits).mean()


def nonsaturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss: ``-log D(G(z)) = softplus(-fake_logits)``, averaged.

    Its gradient with respect to the logit is ``sigmoid(l) - 1``, which tends to ``-1`` as
    ``D(G(z)) -> 0``: strongest when the generator is losing.
    """
    return F.softplus(-fake_logits).mean()


class GANLoss(ABC):
    """A discriminator loss and a generator loss that belong together.

    Class attributes say how the trainer should use the loss: ``d_steps`` is the recommended
    number of discriminator updates per generator update (5 for WGAN-GP, 1 otherwise).
    """

    name: ClassVar[str] = "abstract"
    d_steps: ClassVar[int] = 1

    @abstractmethod
    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss the discriminator minimises, from its logits on a real and a fake batch."""

    @abstractmethod
    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss the generator minimises, from the discriminator's logits on its fakes."""

    def penalty(
        self,
        discriminator: nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        labels: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """An extra discriminator term that needs D itself (a gradient penalty); None by default."""
        return None

    def options(self) -> dict[str, Any]:
        """The constructor arguments, recorded in a run's config.json to rebuild the loss."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({args})"


class MinimaxLoss(GANLoss):
    """The original two-player game: D minimises BCE, G minimises ``log(1 - D(G(z)))``."""

    name = "minimax"

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return minimax_discriminator_loss(real_logits, fake_logits)

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return minimax_generator_loss(fake_logits)


class NonSaturatingLoss(MinimaxLoss):
    """Same discriminator; G minimises ``-log D(G(z))`` (Goodfellow et al. 2014, section 3)."""

    name = "non-saturating"

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return nonsaturating_generator_loss(fake_logits)


#: Losses by the name ``--loss`` takes.
LOSSES: dict[str, type[GANLoss]] = {
    MinimaxLoss.name: MinimaxLoss,
    NonSaturatingLoss.name: NonSaturatingLoss,
}


def get_loss(name: str, **options: Any) -> GANLoss:
    """A loss instance from its registry name.

    >>> get_loss("non-saturating")
    NonSaturatingLoss()
    """
    if name not in LOSSES:
        raise GanEduError(f"loss {name!r}: expected one of {', '.join(LOSSES)}")
    return LOSSES[name](**options)
