"""Models: the Generator / Discriminator contracts and the registry of concrete GANs.

``MODELS`` is an explicit dict from a name (as used by ``gan-edu train --model``) to a
:class:`ModelSpec`; :func:`build_gan` makes a generator and discriminator pair from it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import GanEduError
from .bank import BankConfig, GeneratorBank
from .base import MODULE_CLASSES, Discriminator, GANConfig, Generator
from .dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One registry entry: which classes, which config, and where the design comes from."""

    generator: type[Generator]
    discriminator: type[Discriminator]
    config: type[GANConfig]
    source: str  # where the architecture comes from
    sizes: tuple[tuple[int, int, int], ...]  # the image shapes it is documented and tested for
    conditional: bool = False  # True: needs num_classes (one model for all classes)
    tiny: dict[str, Any] = dataclasses.field(default_factory=dict)  # config overrides for a tiny model (tests, docs)


MODELS: dict[str, ModelSpec] = {
    "dcgan": ModelSpec(
        DCGANGenerator, DCGANDiscriminator, DCGANConfig,
        source="Radford et al. 2015; PyTorch examples dcgan/main.py",
        sizes=((1, 28, 28), (3, 32, 32), (3, 64, 64)),
        tiny={"g_channels": 4, "d_channels": 4},
    ),
    "cdcgan": ModelSpec(
        DCGANGenerator, DCGANDiscriminator, DCGANConfig,
        source="DCGAN with a class embedding in G and a projection D (Miyato & Koyama 2018)",
        sizes=((1, 28, 28), (3, 32, 32), (3, 64, 64)),
        conditional=True,
        tiny={"g_channels": 4, "d_channels": 4, "embed_dim": 4},
    ),
}


def build_gan(name: str, **config: Any) -> tuple[Generator, Discriminator]:
    """Build a generator and discriminator pair from the registry.

    Args:
        name: a key of :data:`MODELS`.
        **config: fields of the model's config (``image_shape``, ``num_classes``, widths...).

    >>> g, d = build_gan("dcgan", image_shape=(1, 28, 28), g_channels=8, d_channels=8)
    >>> g.image_shape, d.num_classes
    ((1, 28, 28), None)
    """
    if name not in MODELS:
        raise GanEduError(f"model {name!r}: expected one of {', '.join(MODELS)}")
    spec = MODELS[name]
    if spec.conditional and config.get("num_classes") is None:
        raise GanEduError(f"model {name!r} is conditional: expected num_classes (an int >= 2)")
    if not spec.conditional:
        config["num_classes"] = None
    cfg = spec.config.from_dict(config)
    return spec.generator(cfg), spec.discriminator(cfg)


__all__ = [
    "MODELS",
    "BankConfig",
    "GeneratorBank",
    "MODULE_CLASSES",
    "DCGANConfig",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "Discriminator",
    "GANConfig",
    "Generator",
    "ModelSpec",
    "build_gan",
]
