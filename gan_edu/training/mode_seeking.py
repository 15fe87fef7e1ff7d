"""The mode-seeking term: G is paid for making different images from different noise of one class.

Mao, Lee, Tseng, Ma and Yang, "Mode Seeking Generative Adversarial Networks for Diverse Image
Synthesis", CVPR 2019 (MSGAN). A conditional G can ignore part of its noise and draw only the
commonest styles of a class; nothing in the GAN loss makes it draw a style that 8% of the class
has (docs/quality.md, "Which styles are missing", shows one such dropped style). For two images
of one class from noises ``z1``, ``z2``, the term is the ratio of their distances

    d = mean |G(z1, y) - G(z2, y)| / mean |z1 - z2|

and G minimises ``loss_G + mode_seeking_weight / (d + 1e-5)``: images that come out alike from
different noise cost G. Here the pairs come from the batch G already made (no extra forward): its
images are sorted by class and each is paired with the next one of the same class (an
unconditional G: the first half with the second). D's step is unchanged. Built on
:class:`~gan_edu.training.GANTrainer`'s objective hooks, so DiffAugment, EMA and DDP stay; the
term (weighted) is logged as ``g_mode_seeking``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from ..domains import NonNegativeFloat
from .gan_trainer import GANTrainer, GANTrainerConfig, Objective
from .registry import register_trainer


def mode_seeking_term(images: torch.Tensor, latents: torch.Tensor, labels: torch.Tensor | None, *, eps: float = 1e-5) -> torch.Tensor:
    """``1 / (d + eps)``, ``d`` the mean over pairs of one class of image distance / noise distance.

    Args:
        images: ``(N, C, H, W)`` generated images (attached to G's graph: the term's gradient reaches G).
        latents: ``(N, latent_dim)`` the noise each was made from.
        labels: ``(N,)`` their classes, or None (unconditional: image i is paired with image i + N/2).

    A batch with no two images of one class gives ``1 / eps`` and no gradient.

    >>> z = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 2.0], [0.0, 0.0]])
    >>> x = torch.tensor([0.0, 0.5, 9.0, 1.0]).view(4, 1, 1, 1)
    >>> round(float(mode_seeking_term(x, z, torch.tensor([3, 3, 5, 5]))), 4)  # pairs (0, 1): 0.5 / 1 and (2, 3): 8 / 1; 1 / 4.25
    0.2353
    """
    n = images.shape[0]
    x, z = images.float().flatten(1), latents.float()  # (N, C*H*W), (N, latent_dim)
    if labels is None:
        half = n // 2
        first, second, same = slice(0, half), slice(half, 2 * half), torch.ones(half, device=images.device)
    else:
        order = torch.argsort(labels, stable=True)  # images of one class next to each other
        x, z, y = x[order], z[order], labels[order]
        first, second = slice(0, n - 1), slice(1, n)
        same = (y[first] == y[second]).float()  # (N-1,): 1 where neighbours share a class
    ratio = (x[first] - x[second]).abs().mean(1) / (z[first] - z[second]).abs().mean(1).clamp_min(eps)  # (pairs,)
    distance = (ratio * same).sum() / same.sum().clamp_min(1.0)
    return 1.0 / (distance + eps)


@dataclasses.dataclass(frozen=True)
class ModeSeekingTrainerConfig(GANTrainerConfig):
    """GAN training with MSGAN's mode-seeking term in G's objective."""

    mode_seeking_weight: NonNegativeFloat = 1.0  # weight of the term 1/(d + 1e-5) in G's objective (1, as Mao et al.)


@register_trainer
class ModeSeekingTrainer(GANTrainer):
    """:class:`GANTrainer` whose G also minimises ``mode_seeking_weight / (d + 1e-5)``: see the module's text."""

    config: ModeSeekingTrainerConfig
    config_class: ClassVar[type[ModeSeekingTrainerConfig]] = ModeSeekingTrainerConfig
    graph_safe: ClassVar[bool] = True  # tensor ops only: no host reads, no Python numbers per step

    def fake_batch(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        """G's images for fresh noise, the noise kept (``self.latents``) for the term."""
        self.latents = self.latent_batch(n)  # (n, latent_dim)
        return self.g_forward(self.latents, labels)

    def generator_objective(self, fake_logits: torch.Tensor, *, fake: torch.Tensor, labels: torch.Tensor | None) -> Objective:
        """The loss's G term (``g_loss``) and the weighted mode-seeking term (``g_mode_seeking``)."""
        loss = super().generator_objective(fake_logits, fake=fake, labels=labels)
        return {"g_loss": loss, "g_mode_seeking": self.config.mode_seeking_weight * mode_seeking_term(fake, self.latents, labels)}
