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

Beyond these two (see ``docs/losses.md`` for when to use which):

* hinge (Lim & Ye 2017; Miyato et al. 2018): D minimises ``relu(1 - l_real) + relu(1 + l_fake)``,
  G minimises ``-l_fake``;
* Wasserstein with gradient penalty (Gulrajani et al. 2017): D (the critic) minimises
  ``l_fake - l_real + lambda (||grad D(x_hat)|| - 1)^2``, G minimises ``-l_fake``, with 5 critic
  steps per generator step;
* least squares (Mao et al. 2017): D minimises ``(l_real - 1)^2 / 2 + l_fake^2 / 2``, G minimises
  ``(l_fake - 1)^2 / 2``;
* and, with any of them, the R1 penalty (Mescheder et al. 2018): ``gamma / 2 ||grad D(x)||^2`` on
  real images, the ``r1`` option of every loss.

A loss never touches an optimizer. To make a new loss, subclass :class:`GANLoss` and implement
``discriminator_loss`` and ``generator_loss``; override ``penalty`` for a regulariser that needs
the discriminator itself (gradient penalties), adding ``super().penalty(...)`` to keep R1. Give
it a ``name`` of its own and register it (``@register_loss``, or an entry point of the group
``gan_edu.losses``): a run records the name and the constructor's options, and resume rebuilds it.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .errors import GanEduError, check
from .registry import Registry

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


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge D loss: ``mean(relu(1 - l_real)) + mean(relu(1 + l_fake))``.

    D is only pushed until real logits reach +1 and fake ones -1; beyond that margin it stops.

    >>> float(hinge_discriminator_loss(torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])))  # (0 + 0.5)/2 + (0 + 1)/2
    0.75
    """
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def wasserstein_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """``-mean(l_fake)``: G raises the critic's score of its images (hinge and WGAN share it)."""
    return -fake_logits.mean()


def wasserstein_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Critic loss: ``mean(l_fake) - mean(l_real)``, minus an estimate of the Wasserstein-1 distance.

    The estimate is only meaningful while the critic is (close to) 1-Lipschitz, which the penalty enforces.
    """
    return fake_logits.mean() - real_logits.mean()


def least_squares_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """LSGAN D loss with targets b = 1 (real), a = 0 (fake): ``mean((l_real - 1)^2) / 2 + mean(l_fake^2) / 2``."""
    return 0.5 * ((real_logits - REAL_LABEL) ** 2).mean() + 0.5 * ((fake_logits - FAKE_LABEL) ** 2).mean()


def least_squares_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """LSGAN G loss with target c = 1: ``mean((l_fake - 1)^2) / 2``."""
    return 0.5 * ((fake_logits - REAL_LABEL) ** 2).mean()


def gradient_penalty(
    discriminator: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP's penalty, without its weight: ``mean_i (||grad_x D(x_hat_i)||_2 - 1)^2``.

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U[0, 1]`` per image: the critic's
    gradient norm is pulled to 1 on the lines between real and fake images.

    Args:
        discriminator: D, called as ``discriminator(x_hat, labels)``.
        real, fake: ``(N, C, H, W)`` images (fake detached or not: only ``x_hat`` is differentiated).
        labels: ``(N,)`` labels for a conditional D.
        eps: ``(N,)`` mixing weights; default drawn with torch's global generator, which the
            trainer's checkpoints save, so a resumed run draws the same.

    Returns:
        A scalar with a graph to D's weights (``create_graph=True``).
    """
    if eps is None:
        eps = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)  # (N,)
    e = eps.view(-1, 1, 1, 1)  # (N, 1, 1, 1)
    x_hat = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)  # (N, C, H, W)
    scores = discriminator(x_hat, labels)  # (N,)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)  # (N, C, H, W): per-image gradients
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def r1_penalty(discriminator: nn.Module, real: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """R1, without its weight: ``mean_i ||grad_x D(x_i)||_2^2`` on real images (Mescheder et al. 2018).

    Multiply by ``gamma / 2``. It penalises the discriminator for a steep slope at the data, which
    keeps GAN training near the equilibrium from oscillating.

    Returns:
        A scalar with a graph to D's weights (``create_graph=True``).
    """
    x = real.detach().requires_grad_(True)  # (N, C, H, W)
    logits = discriminator(x, labels)  # (N,)
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)  # (N, C, H, W)
    return grad.flatten(1).pow(2).sum(dim=1).mean()


class GANLoss(ABC):
    """A discriminator loss and a generator loss that belong together.

    Class attributes say how the trainer should use the loss: ``d_steps`` is the recommended
    number of discriminator updates per generator update (5 for WGAN-GP, 1 otherwise).

    Args:
        r1: weight ``gamma`` of the R1 penalty ``gamma / 2 * ||grad D(x)||^2`` on real images;
            0 (default) turns it off. Any loss takes it.
    """

    name: ClassVar[str] = "abstract"
    d_steps: ClassVar[int] = 1

    def __init__(self, *, r1: float = 0.0) -> None:
        check(isinstance(r1, (int, float)) and r1 >= 0, f"r1={r1!r}: expected a penalty weight >= 0")
        self.r1 = float(r1)

    @abstractmethod
    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss the discriminator minimises, from its logits on a real and a fake batch."""

    @abstractmethod
    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss the generator minimises, from the discriminator's logits on its fakes."""

    @property
    def has_penalty(self) -> bool:
        """Whether :meth:`penalty` can add a term (R1, or a subclass's own): a double backward each D step."""
        return bool(self.r1) or type(self).penalty is not GANLoss.penalty

    def penalty(
        self,
        discriminator: nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        labels: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """An extra discriminator term that needs D itself: here R1 when ``r1 > 0``, else None.

        Subclasses with their own penalty add ``super().penalty(...)`` to keep R1.
        """
        if not self.r1:
            return None
        return 0.5 * self.r1 * r1_penalty(discriminator, real, labels)

    def options(self) -> dict[str, Any]:
        """The constructor arguments, recorded in a run's config.json to rebuild the loss.

        Read from the constructor's signature: each argument kept as an attribute of the same name
        (``self.margin = margin``). Defaults are left out, so ``get_loss(name, **loss.options())``
        rebuilds the same loss. A subclass that keeps an argument otherwise overrides this.
        """
        options = {}
        for arg in list(inspect.signature(type(self).__init__).parameters.values())[1:]:
            if arg.kind in (arg.VAR_POSITIONAL, arg.VAR_KEYWORD):
                continue
            check(hasattr(self, arg.name), f"{type(self).__name__}: constructor argument {arg.name!r} is not kept as self.{arg.name}, "
                  "so a run could not record it; expected self.{0} = {0} (or an options() of its own)".format(arg.name))
            value = getattr(self, arg.name)
            if value != arg.default:
                options[arg.name] = value
        return options

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


class HingeLoss(GANLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018).

    D minimises ``mean(relu(1 - l_real)) + mean(relu(1 + l_fake))``; G minimises ``-mean(l_fake)``.
    """

    name = "hinge"

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return hinge_discriminator_loss(real_logits, fake_logits)

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return wasserstein_generator_loss(fake_logits)


class WGANGPLoss(GANLoss):
    """Wasserstein loss with gradient penalty (Gulrajani et al. 2017), 5 critic steps per G step.

    D (a critic, its logit a score) minimises ``mean(l_fake) - mean(l_real) +
    gp_weight * mean((||grad_x D(x_hat)|| - 1)^2)``; G minimises ``-mean(l_fake)``.

    Args:
        gp_weight: the penalty weight lambda; 10 as in the paper.
        r1: optional R1 penalty weight, added on top.
    """

    name = "wgan-gp"
    d_steps = 5  # the paper's n_critic

    def __init__(self, gp_weight: float = 10.0, *, r1: float = 0.0) -> None:
        super().__init__(r1=r1)
        check(isinstance(gp_weight, (int, float)) and gp_weight > 0, f"gp_weight={gp_weight!r}: expected a positive weight")
        self.gp_weight = float(gp_weight)

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return wasserstein_discriminator_loss(real_logits, fake_logits)

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return wasserstein_generator_loss(fake_logits)

    def penalty(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor | None:
        gp = self.gp_weight * gradient_penalty(discriminator, real, fake, labels)
        r1 = super().penalty(discriminator, real, fake, labels)
        return gp if r1 is None else gp + r1



class LeastSquaresLoss(GANLoss):
    """Least squares (Mao et al. 2017, targets a = 0, b = c = 1).

    D minimises ``mean((l_real - 1)^2) / 2 + mean(l_fake^2) / 2``; G minimises
    ``mean((l_fake - 1)^2) / 2``. The logit is D's raw output, no sigmoid.
    """

    name = "least-squares"

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return least_squares_discriminator_loss(real_logits, fake_logits)

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return least_squares_generator_loss(fake_logits)


#: Losses by the name ``--loss`` takes (and a run's ``config.json`` records).
LOSSES: Registry[type[GANLoss]] = Registry(
    "loss", "gan_edu.losses", kind=GANLoss, subclass=True, name_of=lambda cls: cls.__dict__.get("name", ""),
    how="register its class (name = {name!r}) with @gan_edu.losses.register_loss before the run starts or resumes, "
    "or declare it as an entry point of group gan_edu.losses (docs/losses.md)",
)


def register_loss(cls: type[GANLoss]) -> type[GANLoss]:
    """Make loss class ``cls`` known by its own ``name`` to runs, resume, the pipeline and the CLI; returns it (a decorator).

    A run records the loss's name and :meth:`GANLoss.options`; resume rebuilds it from them.
    """
    return LOSSES.register(cls)


for _loss in (MinimaxLoss, NonSaturatingLoss, HingeLoss, WGANGPLoss, LeastSquaresLoss):
    register_loss(_loss)


def get_loss(name: str, **options: Any) -> GANLoss:
    """A loss instance from its registry name.

    >>> get_loss("non-saturating")
    NonSaturatingLoss()
    >>> get_loss("wgan-gp", r1=1.0)
    WGANGPLoss(r1=1.0)
    """
    cls = LOSSES.lookup(name)
    try:
        return cls(**options)
    except TypeError:
        raise GanEduError(f"loss {name!r} options {sorted(options)}: not options of {cls.__name__}") from None
