"""Models: the Generator / Discriminator contracts and the registry of concrete GANs.

``MODELS`` is an explicit dict from a name (as used by ``gan-edu train --model``) to a
:class:`ModelSpec`; :func:`build_gan` makes a generator and discriminator pair from it. It holds
Radford et al.'s DCGAN (``dcgan``), its conditional version (``cdcgan``) and every model of the
reference projects (``ref000-dcgan`` ... ``ref004-celeba``), each in its own file whose docstring
says where it comes from and how it differs from Radford et al. Every model's widths are the
options ``g_channels`` and ``d_channels``. ``gan-edu models`` lists them; ``docs/models.md``
tabulates them (a test keeps the two in step).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..errors import GanEduError
from ..registry import Registry
from .bank import BankConfig, GeneratorBank
from .base import MODULE_CLASSES, Discriminator, GANConfig, Generator
from .conditional import CBNGenerator, ConditionalBatchNorm2d, SNProjectionDiscriminator
from .dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator, MinibatchStd
from .ref000_dcgan import Ref000Config, Ref000Discriminator, Ref000Generator
from .ref001_conv import Ref001ConvConfig, Ref001ConvDiscriminator, Ref001ConvGenerator
from .ref001_lin import Ref001LinConfig, Ref001LinDiscriminator, Ref001LinGenerator
from .ref002_perclass import Ref002Config, Ref002Discriminator, Ref002Generator
from .ref003_keras import Ref003Config, Ref003Discriminator, Ref003Generator
from .ref004_celeba import Ref004Config, Ref004Discriminator, Ref004Generator

TINY = {"g_channels": 4, "d_channels": 4}  # every model's widths are g_channels / d_channels


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One registry entry: which classes, which config, and where the design comes from."""

    generator: type[Generator]
    discriminator: type[Discriminator]
    config: type[GANConfig]
    source: str  # where the architecture comes from
    sizes: tuple[tuple[int, int, int], ...]  # the image shapes it is documented and tested for
    layers: str = ""  # the layers in a few words, for `gan-edu models` and docs/models.md
    conditional: bool = False  # True: needs num_classes (one model for all classes)
    tiny: dict[str, Any] = dataclasses.field(default_factory=dict)  # config overrides for a tiny model (tests, docs)


_BUILT_IN: dict[str, ModelSpec] = {
    "dcgan": ModelSpec(
        DCGANGenerator, DCGANDiscriminator, DCGANConfig,
        source="Radford et al. 2015; PyTorch examples dcgan/main.py",
        sizes=((1, 28, 28), (3, 32, 32), (3, 64, 64)),
        layers="G: 3-5 conv-T (one per doubling); D: the mirror, conv to logit",
        tiny=TINY,
    ),
    "cdcgan": ModelSpec(
        DCGANGenerator, DCGANDiscriminator, DCGANConfig,
        source="DCGAN with a class embedding in G and a projection D (Miyato & Koyama 2018)",
        sizes=((1, 28, 28), (3, 32, 32), (3, 64, 64)),
        layers="dcgan + class embedding concatenated to z; projection D",
        conditional=True,
        tiny={**TINY, "embed_dim": 4},
    ),
    "cdcgan-cbn": ModelSpec(
        CBNGenerator, DCGANDiscriminator, DCGANConfig,
        source="cdcgan with conditional batch norm in G (de Vries et al. 2017; Miyato & Koyama 2018)",
        sizes=((1, 28, 28), (3, 32, 32), (3, 64, 64)),
        layers="G: dcgan, each BN's scale and shift per class; D: cdcgan's projection D",
        conditional=True,
        tiny={**TINY, "embed_dim": 4},
    ),
    "cdcgan-snproj": ModelSpec(
        DCGANGenerator, SNProjectionDiscriminator, DCGANConfig,
        source="cdcgan's G with SNGAN's D: spectral norm, no BN, projection head (Miyato et al. 2018)",
        sizes=((1, 28, 28), (3, 32, 32), (3, 64, 64)),
        layers="G: cdcgan; D: SN conv 3x3 + 4x4/2 per stage, LeakyReLU 0.1, sum pool, projection",
        conditional=True,
        tiny={**TINY, "embed_dim": 4},
    ),
    "cbn-snproj": ModelSpec(
        CBNGenerator, SNProjectionDiscriminator, DCGANConfig,
        source="the class-conditional recipe: CBN generator and SN projection D (Miyato & Koyama 2018)",
        sizes=((1, 28, 28), (3, 32, 32), (3, 64, 64)),
        layers="G: dcgan with class-conditional BN; D: SNGAN's standard CNN with a projection head",
        conditional=True,
        tiny={**TINY, "embed_dim": 4},
    ),
    "ref000-dcgan": ModelSpec(
        Ref000Generator, Ref000Discriminator, Ref000Config,
        source="reference 000: DCGAN on CIFAR-10 (then classifiers c and c')",
        sizes=((3, 32, 32),),
        layers="G: 3 conv-T; D: 4 conv + 1 FC",
        tiny=TINY,
    ),
    "ref001-conv": ModelSpec(
        Ref001ConvGenerator, Ref001ConvDiscriminator, Ref001ConvConfig,
        source="reference 001: convDCGAN (and classDCGAN with --per-class)",
        sizes=((1, 28, 28), (3, 32, 32), (3, 64, 64)),
        layers="G: 5 conv-T; D: 5 conv; BN after every hidden layer, LeakyReLU 0.1 in D",
        tiny=TINY,
    ),
    "ref001-lin": ModelSpec(
        Ref001LinGenerator, Ref001LinDiscriminator, Ref001LinConfig,
        source="reference 001: linDCGAN",
        sizes=((3, 32, 32),),
        layers="G: 3 conv-T + 1 conv; D: 4 conv + 1 linear; BN, LeakyReLU 0.1 in D",
        tiny=TINY,
    ),
    "ref002-perclass": ModelSpec(
        Ref002Generator, Ref002Discriminator, Ref002Config,
        source="reference 002: one Keras GAN per CIFAR-10 class (train with --per-class)",
        sizes=((3, 32, 32),),
        layers="G: dense + 3 conv-T + conv; D: 4 conv + dropout + dense; LeakyReLU, no BN",
        tiny=TINY,
    ),
    "ref003-keras": ModelSpec(
        Ref003Generator, Ref003Discriminator, Ref003Config,
        source="reference 003: Keras DCGAN after the TensorFlow tutorial",
        sizes=((1, 28, 28), (3, 32, 32)),
        layers="G: dense + 3 conv-T 5x5, BN + LeakyReLU; D: 2 conv 5x5 + dropout + dense",
        tiny=TINY,
    ),
    "ref004-celeba": ModelSpec(
        Ref004Generator, Ref004Discriminator, Ref004Config,
        source="reference 004: TensorFlow DCGAN on CelebA 64x64",
        sizes=((3, 64, 64),),
        layers="G: dense + 4 conv-T 5x5; D: 4 conv 5x5 + dense",
        tiny=TINY,
    ),
}


#: Every model ``--model`` takes, by name: gan-edu's, those registered, and installed packages' (entry points).
MODELS: Registry[ModelSpec] = Registry(
    "model", "gan_edu.models", kind=ModelSpec,
    how="register it with gan_edu.models.register_model(ModelSpec(...), name={name!r}) before the command line is built, "
    "or declare its ModelSpec as an entry point of group gan_edu.models (docs/models.md)",
)


def register_model(spec: ModelSpec, *, name: str) -> ModelSpec:
    """Make a generator / discriminator pair known as ``name`` to runs, the pipeline and the CLI; returns ``spec``."""
    return MODELS.register(spec, name=name)


for _name, _spec in _BUILT_IN.items():
    register_model(_spec, name=_name)


def build_gan(name: str, **config: Any) -> tuple[Generator, Discriminator]:
    """Build a generator and discriminator pair from the registry.

    Args:
        name: a key of :data:`MODELS`.
        **config: fields of the model's config (``image_shape``, ``num_classes``, widths...).

    >>> g, d = build_gan("dcgan", image_shape=(1, 28, 28), g_channels=8, d_channels=8)
    >>> g.image_shape, d.num_classes
    ((1, 28, 28), None)
    """
    spec = MODELS.lookup(name)
    if spec.conditional and config.get("num_classes") is None:
        raise GanEduError(f"model {name!r} is conditional: expected num_classes (an int >= 2)")
    if not spec.conditional:
        config["num_classes"] = None
    cfg = spec.config.from_dict(config)
    return spec.generator(cfg), spec.discriminator(cfg)


def parameter_counts(name: str, image_shape: tuple[int, int, int], *, num_classes: int = 10, **config: Any) -> tuple[int, int]:
    """Trainable parameters of a registry model's generator and discriminator.

    Built on the ``meta`` device: no memory is allocated and no weights are drawn. Conditional
    models are counted with ``num_classes`` classes (ignored by unconditional ones).

    >>> parameter_counts("dcgan", (3, 64, 64))
    (3576704, 2765568)
    """
    with torch.device("meta"):
        g, d = build_gan(name, image_shape=image_shape, num_classes=num_classes, **config)
    return g.num_parameters(), d.num_parameters()


__all__ = [
    "MODELS",
    "BankConfig",
    "GeneratorBank",
    "MODULE_CLASSES",
    "CBNGenerator",
    "ConditionalBatchNorm2d",
    "SNProjectionDiscriminator",
    "DCGANConfig",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MinibatchStd",
    "Ref000Config",
    "Ref000Discriminator",
    "Ref000Generator",
    "Ref001ConvConfig",
    "Ref001ConvDiscriminator",
    "Ref001ConvGenerator",
    "Ref001LinConfig",
    "Ref001LinDiscriminator",
    "Ref001LinGenerator",
    "Ref002Config",
    "Ref002Discriminator",
    "Ref002Generator",
    "Ref003Config",
    "Ref003Discriminator",
    "Ref003Generator",
    "Ref004Config",
    "Ref004Discriminator",
    "Ref004Generator",
    "Discriminator",
    "GANConfig",
    "Generator",
    "ModelSpec",
    "build_gan",
    "register_model",
    "parameter_counts",
]
