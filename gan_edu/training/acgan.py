"""AC-GAN's objective: D also names the class, and G is trained to make images D classifies right.

Odena, Olah and Shlens, "Conditional Image Synthesis with Auxiliary Classifier GANs", ICML 2017.
D has a second head (``aux_head=True`` in the model config: :class:`~gan_edu.models.DCGANDiscriminator`
and :class:`~gan_edu.models.SNProjectionDiscriminator` have one) that predicts the class of each
image. Both objectives get its cross-entropy ``CE``, weighted by ``ac_weight``:

* D minimises ``loss_D + ac_weight * (CE(classes(x), y) + CE(classes(G(z, y)), y))``
  (with ``ac_fake_in_d=False`` only the real term: D never learns G's mistakes as a class);
* G minimises ``loss_G + ac_weight * CE(classes(G(z, y)), y)``: its image of class ``y`` must
  be classified as ``y``.

The term sharpens each class (a 5 that looks like a 6 costs G directly), which is what the
synthetic-data experiment needs; its known cost is diversity within a class (G favours images
that are easy to classify). Built on :class:`~gan_edu.training.GANTrainer`'s objective hooks, so
the penalty, DiffAugment, EMA and DDP's averaging stay; D's class term is logged as ``d_class``,
G's as ``g_class``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..domains import NonNegativeFloat
from ..errors import check
from .gan_trainer import GANTrainer, GANTrainerConfig
from .registry import register_trainer


@dataclasses.dataclass(frozen=True)
class ACGANTrainerConfig(GANTrainerConfig):
    """GAN training with AC-GAN's class term."""

    ac_weight: NonNegativeFloat = 1.0  # weight of the class cross-entropy in D's and G's objectives (1 in Odena et al.)
    ac_fake_in_d: bool = True  # D also learns to classify the fakes by their requested class (Odena et al.); False: reals only

    def __post_init__(self) -> None:
        super().__post_init__()  # ac_weight: its NonNegativeFloat domain is checked there
        check(isinstance(self.ac_fake_in_d, bool), f"ac_fake_in_d={self.ac_fake_in_d!r}: expected True or False")


@register_trainer
class ACGANTrainer(GANTrainer):
    """:class:`GANTrainer` plus AC-GAN's class term; needs a conditional D built with ``aux_head=True``."""

    config: ACGANTrainerConfig
    config_class: ClassVar[type[ACGANTrainerConfig]] = ACGANTrainerConfig
    graph_safe: ClassVar[bool] = True  # the objectives add tensor ops only: no host reads, no Python numbers per step
    wants_class_logits: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        d = self.discriminator
        check(d.num_classes is not None and hasattr(d, "classes"),
              f"{type(d).__name__} with num_classes={d.num_classes} and no class head: ACGANTrainer expects a conditional "
              "discriminator built with aux_head=True (e.g. gan-edu train --model cbn-snproj --aux-head)")
        self.class_terms: dict[str, torch.Tensor] = {}

    def discriminator_objective(
        self, real_logits: torch.Tensor, fake_logits: torch.Tensor, *, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor:
        """The loss's D term plus ``ac_weight`` times the class cross-entropy on the real (and fake) batch."""
        assert labels is not None
        real_classes, fake_classes = self.class_logits  # (N, K) each, from the same D calls as the logits
        term = F.cross_entropy(real_classes, labels)
        if self.config.ac_fake_in_d:
            term = term + F.cross_entropy(fake_classes, labels)
        self.class_terms["d_class"] = term.detach()
        return super().discriminator_objective(real_logits, fake_logits, real=real, fake=fake, labels=labels) + self.config.ac_weight * term

    def generator_objective(self, fake_logits: torch.Tensor, *, fake: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The loss's G term plus ``ac_weight`` times the cross-entropy of D's class for G's images."""
        assert labels is not None
        (fake_classes,) = self.class_logits  # (N, K)
        term = F.cross_entropy(fake_classes, labels)
        self.class_terms["g_class"] = term.detach()
        return super().generator_objective(fake_logits, fake=fake, labels=labels) + self.config.ac_weight * term

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        metrics = super().discriminator_step(real, fake, labels)
        metrics["d_class"] = self.class_terms["d_class"]
        return metrics

    def generator_step(self, fake: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        metrics = super().generator_step(fake, labels)
        metrics["g_class"] = self.class_terms["g_class"]
        return metrics
