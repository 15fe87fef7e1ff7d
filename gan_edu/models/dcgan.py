"""DCGAN: Radford, Metz and Chintala, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks", ICLR 2016 (arXiv:1511.06434).

The recipe of section 3 of the paper, as in the PyTorch examples' ``dcgan/main.py``:

* no pooling: the generator upsamples with 4x4 stride-2 transposed convolutions, the
  discriminator downsamples with 4x4 stride-2 convolutions;
* batch norm in both networks, except the generator's output layer and the discriminator's
  input layer;
* ReLU in the generator (tanh on the output), LeakyReLU(0.2) in the discriminator;
* no fully connected hidden layers; weights drawn from N(0, 0.02).

Shapes for the three common sizes (``ngf = g_channels``, ``ndf = d_channels``)::

    generator  64x64: z (N, nz, 1, 1) -> (N, 8ngf, 4, 4) -> (N, 4ngf, 8, 8) -> (N, 2ngf, 16, 16)
                      -> (N, ngf, 32, 32) -> (N, C, 64, 64)
               32x32: z -> (N, 4ngf, 4, 4) -> (N, 2ngf, 8, 8) -> (N, ngf, 16, 16) -> (N, C, 32, 32)
               28x28: z -> (N, 2ngf, 7, 7) -> (N, ngf, 14, 14) -> (N, C, 28, 28)
    discriminator: the mirror image, ending in one logit per image.

Deviations from the paper, each deliberate:

1. Sizes other than 64x64: the stack has one stride-2 layer per doubling from a 4x4 base
   (32x32: three) or a 7x7 base (28x28, MNIST: two); the first generator layer's kernel (and the
   last discriminator layer's) is the base size, so a 1x1 input becomes the base map exactly.
2. The discriminator returns a raw logit; the paper's final sigmoid lives in the loss
   (``binary_cross_entropy_with_logits``), which is the same function, computed stably.
3. Optional conditional mode (``num_classes``), which the paper does not have: the generator
   concatenates a learned class embedding to ``z``; the discriminator adds a projection term
   ``<embed(y), sum_hw(h)>`` to its logit (Miyato & Koyama, "cGANs with Projection
   Discriminator", ICLR 2018).
4. Batch-norm scales are initialised from N(1, 0.02) and biases to 0, as the PyTorch examples do.
5. Optional minibatch standard deviation (``minibatch_std``, Karras et al., "Progressive Growing
   of GANs", ICLR 2018): D's last features get one more channel, how much the images of a small
   group of the batch differ from each other, so a G that makes the same image again and again
   is told apart from the varied real batch (:class:`MinibatchStd`).
6. Optional auxiliary class head (``aux_head``, Odena et al., "Conditional Image Synthesis with
   Auxiliary Classifier GANs", ICML 2017): a linear layer from D's pooled features to class
   logits, returned beside the logit by ``forward(..., with_classes=True)`` for
   :class:`~gan_edu.training.acgan.ACGANTrainer`.

The class-conditional parts of the later literature (conditional batch norm in G, a spectrally
normalised projection D without batch norm) are in :mod:`gan_edu.models.conditional`.

To make a variant, subclass :class:`DCGANGenerator` or :class:`DCGANDiscriminator` and override
``forward`` (or ``__init__`` to change the layers); ``config_class`` takes your own config.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..errors import check
from .base import Discriminator, GANConfig, Generator
from .sizes import check_positive_ints, doublings


@dataclasses.dataclass(frozen=True)
class DCGANConfig(GANConfig):
    """Options of the DCGAN generator and discriminator (one config serves both)."""

    g_channels: int = 64  # ngf: generator width next to the image; doubles per layer inward
    d_channels: int = 64  # ndf: discriminator width next to the image; 64 as in the paper
    embed_dim: int = 32  # conditional only: size of the class embedding concatenated to z
    aux_head: bool = False  # conditional D only: also predict the class (AC-GAN's head; ACGANTrainer trains it)
    class_input: bool = True  # CBNGenerator: also concatenate the class embedding to z (False: the class acts through the norms only, as in SNGAN)
    d_convs_per_stage: int = 1  # SNProjectionDiscriminator: 3x3 stride-1 convs before each 4x4 stride-2 one (1 as in SNGAN's standard CNN; 0: the DCGAN mirror)
    d_slope: float = 0.1  # SNProjectionDiscriminator: its LeakyReLU slope (0.1 as in SNGAN)
    minibatch_std: int = 0  # DCGANDiscriminator: group size of the minibatch standard deviation channel before its head (Karras et al. 2018; 4 as there); 0: none

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "g_channels", "d_channels", "embed_dim")
        check(isinstance(self.aux_head, bool) and isinstance(self.class_input, bool), f"aux_head={self.aux_head!r}, class_input={self.class_input!r}: expected True or False")
        check(not self.aux_head or self.num_classes is not None, "aux_head=True with num_classes=None: expected a conditional model (the head predicts the class)")
        check(isinstance(self.d_convs_per_stage, int) and 0 <= self.d_convs_per_stage <= 4, f"d_convs_per_stage={self.d_convs_per_stage!r}: expected an int in [0, 4]")
        check(isinstance(self.d_slope, (int, float)) and 0 <= self.d_slope < 1, f"d_slope={self.d_slope!r}: expected a LeakyReLU slope in [0, 1)")
        check(
            isinstance(self.minibatch_std, int) and not isinstance(self.minibatch_std, bool) and (self.minibatch_std == 0 or 2 <= self.minibatch_std <= 1024),
            f"minibatch_std={self.minibatch_std!r}: expected 0 (off) or a group size in [2, 1024]",
        )
        check(self.image_shape[1] == self.image_shape[2], f"image_shape={self.image_shape}: expected square images (H == W)")
        doublings(self.image_shape[1])  # raises for sizes the stride-2 stack cannot make


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.'s initialisation: convolutions N(0, 0.02); batch norm scale N(1, 0.02), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:  # conditional batch norm keeps its scale elsewhere
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(Generator):
    """DCGAN generator: z (and a class embedding) to an image, by 4x4 stride-2 transposed convs.

    >>> g = DCGANGenerator(DCGANConfig(image_shape=(1, 28, 28), g_channels=8))
    >>> g(torch.randn(2, 100)).shape
    torch.Size([2, 1, 28, 28])
    """

    config_class = DCGANConfig
    config: DCGANConfig

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__(config)
        c, size, _ = config.image_shape
        base, k = doublings(size)
        widths = [config.g_channels * 2 ** (k - 1 - i) for i in range(k)]  # e.g. 64x64: [8ngf, 4ngf, 2ngf, ngf]
        in_dim = config.latent_dim
        if config.num_classes is not None:
            self.embed = nn.Embedding(config.num_classes, config.embed_dim)
            in_dim += config.embed_dim
        layers: list[nn.Module] = [
            # (N, nz, 1, 1) -> (N, widths[0], base, base): "project and reshape"
            nn.ConvTranspose2d(in_dim, widths[0], base, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for i in range(1, k):
            # (N, widths[i-1], s, s) -> (N, widths[i], 2s, 2s), s = base * 2**(i-1)
            layers += [nn.ConvTranspose2d(widths[i - 1], widths[i], 4, 2, 1, bias=False), nn.BatchNorm2d(widths[i]), nn.ReLU(True)]
        # (N, ngf, size/2, size/2) -> (N, C, size, size), no batch norm on the output layer
        layers += [nn.ConvTranspose2d(widths[-1], c, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.apply(dcgan_init)
        if config.num_classes is not None:  # a class code of N(0, 0.02) is invisible next to z ~ N(0, 1)
            nn.init.normal_(self.embed.weight, 0.0, 0.2)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes is not None:
            assert labels is not None, "conditional generator needs labels"
            z = torch.cat([z, self.embed(labels)], dim=1)  # (N, nz + embed_dim)
        return self.main(z[:, :, None, None])  # (N, nz', 1, 1) -> (N, C, H, W) in [-1, 1]


class DCGANDiscriminator(Discriminator):
    """DCGAN discriminator: an image (and its class) to one logit, by 4x4 stride-2 convs.

    >>> d = DCGANDiscriminator(DCGANConfig(image_shape=(3, 32, 32), d_channels=8))
    >>> d(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2])
    """

    config_class = DCGANConfig
    config: DCGANConfig

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__(config)
        c, size, _ = config.image_shape
        base, k = doublings(size)
        widths = [config.d_channels * 2**i for i in range(k)]  # e.g. 64x64: [ndf, 2ndf, 4ndf, 8ndf]
        layers: list[nn.Module] = [
            # (N, C, size, size) -> (N, ndf, size/2, size/2), no batch norm on the input layer
            nn.Conv2d(c, widths[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for i in range(1, k):
            # (N, widths[i-1], s, s) -> (N, widths[i], s/2, s/2)
            layers += [nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1, bias=False), nn.BatchNorm2d(widths[i]), nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)  # -> (N, widths[-1], base, base)
        self.minibatch_std = MinibatchStd(config.minibatch_std) if config.minibatch_std else None  # -> (N, widths[-1] + 1, base, base)
        self.head = nn.Conv2d(widths[-1] + (1 if self.minibatch_std else 0), 1, base, 1, 0, bias=False)  # -> (N, 1, 1, 1): one logit
        if config.num_classes is not None:
            self.embed = nn.Embedding(config.num_classes, widths[-1])  # projection: y -> (F,)
        if config.aux_head:
            self.classes = nn.Linear(widths[-1], config.num_classes)  # AC-GAN: (F,) -> (K,) class logits
        self.apply(dcgan_init)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, *, with_classes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``(N, C, H, W)`` images to ``(N,)`` logits; ``with_classes`` (an ``aux_head`` D): also ``(N, K)`` class logits."""
        h = self.features(images)  # (N, F, base, base)
        logits = self.head(self.minibatch_std(h) if self.minibatch_std else h).flatten()  # (N,)
        if self.num_classes is not None:
            assert labels is not None, "conditional discriminator needs labels"
            logits = logits + (self.embed(labels) * h.sum(dim=(2, 3))).sum(dim=1)  # + <embed(y), sum_hw h>
        if with_classes:
            return logits, class_logits(self, h.sum(dim=(2, 3)))  # (N,), (N, K)
        return logits


class MinibatchStd(nn.Module):
    """Appends one channel to D's features: how much the images of a group differ (Karras et al. 2018).

    The batch is split into groups of ``group`` images (image ``i`` in group ``i % (N / group)``,
    as in ProGAN); for each group the standard deviation of every feature over its images,
    averaged over features and positions, is one number, broadcast as a constant channel to the
    group's images. Real batches vary; a generator that covers only part of the data makes groups
    that vary less, and D can see it. A batch that does not split into whole groups is one group.

    Args:
        group: images per group (>= 2).

    >>> same = torch.ones(4, 3, 2, 2)  # four identical images: no spread
    >>> MinibatchStd(2)(same)[:, 3].abs().max() < 1e-3, MinibatchStd(2)(same).shape
    (tensor(True), torch.Size([4, 4, 2, 2]))
    """

    def __init__(self, group: int) -> None:
        super().__init__()
        check(isinstance(group, int) and group >= 2, f"group={group!r}: expected an int >= 2 (a group of one has no spread)")
        self.group = group

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n, f, height, width = h.shape
        g = self.group if n % self.group == 0 else n
        y = h.float().reshape(g, n // g, f, height, width)  # (g, groups, F, H, W): member j of every group
        centred = y - y.mean(dim=0)  # (torch.var over this layout's dim 0 is many times slower on a CPU)
        spread = (centred.square().mean(dim=0) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (groups,): population std, averaged
        channel = spread.repeat(g).to(h.dtype)[:, None, None, None].expand(n, 1, height, width)  # image i gets its group's, i % groups
        return torch.cat([h, channel], dim=1)  # (N, F + 1, H, W)


def class_logits(discriminator: Discriminator, pooled: torch.Tensor) -> torch.Tensor:
    """AC-GAN's class logits ``(N, K)`` from D's pooled features ``(N, F)``; one line naming a D without the head."""
    check(hasattr(discriminator, "classes"), f"{type(discriminator).__name__} without aux_head: expected aux_head=True in its config for class logits (AC-GAN)")
    return discriminator.classes(pooled)
