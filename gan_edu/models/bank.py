"""Per-class generator banks: one unconditional generator per class, used like a conditional one.

Reference projects 001 (classDCGAN) and 002 trained one G/D pair per class instead of one
conditional model. :class:`GeneratorBank` wraps the trained generators so that the rest of
gan-edu (sampling by label, export, the synthetic-data stage) treats the bank exactly like a
conditional :class:`~gan_edu.models.base.Generator`: ``forward(z, labels)`` routes each row of
``z`` to the generator of its label.

Training a bank (one run folder per class, a ``bank.json`` manifest, resumable) is
:mod:`gan_edu.training.bank`, behind ``gan-edu train --per-class``.

Saved with ``save_pretrained`` like any generator: its ``config.json`` names the members' class
and config, its ``model.safetensors`` holds every member's weights (``members.K.*``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import check
from .base import MODULE_CLASSES, GANConfig, Generator


@dataclasses.dataclass(frozen=True)
class BankConfig(GANConfig):
    """A bank: ``num_classes`` members of one generator class and config."""

    member_class: str = "DCGANGenerator"  # class name of every member (an unconditional Generator)
    member_config: dict[str, Any] = dataclasses.field(default_factory=dict)  # the members' shared config
    class_names: tuple[str, ...] = ()  # name of each class, in label order

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "class_names", tuple(self.class_names))
        check(self.num_classes is not None, "a generator bank needs num_classes (one member per class)")
        check(
            not self.class_names or len(self.class_names) == self.num_classes,
            f"class_names has {len(self.class_names)} names: expected {self.num_classes}",
        )
        klass = MODULE_CLASSES.lookup(str(self.member_class), where="member_class names")  # one line listing the known classes
        check(issubclass(klass, Generator), f"member_class {self.member_class!r}: expected a Generator class")


class GeneratorBank(Generator):
    """One generator per class; ``forward(z, labels)`` sends each row to its class's generator.

    Build it from trained members with :meth:`from_members`.

    >>> from gan_edu.models import build_gan
    >>> members = [build_gan("dcgan", image_shape=(1, 28, 28), g_channels=4)[0] for _ in range(2)]
    >>> bank = GeneratorBank.from_members(members, ["zero", "one"])
    >>> bank.sample(4).shape, bank.num_classes
    (torch.Size([4, 1, 28, 28]), 2)
    """

    config_class = BankConfig
    config: BankConfig

    def __init__(self, config: BankConfig) -> None:
        super().__init__(config)
        klass = MODULE_CLASSES[config.member_class]
        member_config = klass.config_class.from_dict({**config.member_config, "num_classes": None})
        assert config.num_classes is not None
        self.members = nn.ModuleList(klass(member_config) for _ in range(config.num_classes))

    @classmethod
    def from_members(cls, members: Sequence[Generator], class_names: Sequence[str] | None = None) -> GeneratorBank:
        """A bank of trained generators, ``members[k]`` making class ``k``.

        The members must be unconditional, of one class, with one config (so one shape and one
        latent size).
        """
        check(len(members) >= 2, f"{len(members)} members: a bank needs at least 2 (one per class)")
        first = members[0]
        for k, m in enumerate(members):
            check(type(m) is type(first) and m.config == first.config, f"member {k} ({type(m).__name__}, {m.config}): expected the same class and config as member 0")
            check(m.num_classes is None, f"member {k} is conditional: expected unconditional generators")
        config = BankConfig(
            image_shape=first.image_shape, latent_dim=first.latent_dim, num_classes=len(members),
            member_class=type(first).__name__, member_config=first.config.to_dict(),
            class_names=tuple(class_names) if class_names is not None else (),
        )
        bank = cls(config)
        for target, source in zip(bank.members, members):
            target.load_state_dict(source.state_dict())
        return bank.to(first.device)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        assert labels is not None, "a generator bank needs labels"
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            # Traced or exported (ONNX): every member makes every row and each row keeps its
            # class's image, a graph with fixed shapes that holds all the members.
            every = torch.stack([member(z) for member in self.members], dim=1)  # (N, K, C, H, W)
            return every[torch.arange(z.shape[0], device=z.device), labels]  # (N, C, H, W)
        out = z.new_zeros(z.shape[0], *self.image_shape)  # (N, C, H, W)
        for k, member in enumerate(self.members):
            rows = (labels == k).nonzero().flatten()  # (n_k,): the rows of class k
            if rows.numel():
                out[rows] = member(z[rows])  # each member makes only its own rows
        return out
