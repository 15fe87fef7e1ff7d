"""Reference 000's DCGAN: a three-layer generator and a "4 conv + 1 FC" discriminator, for CIFAR-10.

Source: reference project 000 ("Deep-Convolutional-GAN-and-Classifier", a class project that
trains a DCGAN on CIFAR-10 and then classifiers on real versus generated images). Its text fixes
two facts about the networks:

* "Generator structure: 3 convolutional layers";
* "Discriminator structure: 4 convolutional layers and 1 FC layer".

Everything else follows Radford et al. (2016), which is what "DCGAN" meant in that project:
stride-2 4x4 (transposed) convolutions, batch norm, ReLU in G with tanh on the output,
LeakyReLU(0.2) in D, weights from N(0, 0.02).

How it differs from Radford et al. (and from the ``dcgan`` entry):

1. Three generator layers, no more: the first transposed convolution takes the 1x1 noise map
   straight to an (s/4)x(s/4) map (its kernel is that whole map: 8x8 for CIFAR's 32x32), then two
   stride-2 layers double it twice. Radford et al. reach 4x4 first and need one more layer per
   doubling. Reading chosen: "3 convolutional layers" counts every layer of G, with no fully
   connected projection in front (the text names an FC layer for D only).
2. The discriminator ends in a fully connected layer on the flattened last feature map instead of
   a convolution covering it: four stride-2 4x4 convolutions (32 -> 16 -> 8 -> 4 -> 2), then
   ``Linear(8ndf * 2 * 2, 1)``. Radford et al. have no fully connected hidden layers, and their
   last layer is a convolution (which is the same kind of map, counted differently).
3. The discriminator returns a raw logit; the sigmoid lives in the loss.

Shapes at 32x32 (``ngf = g_channels``, ``ndf = d_channels``)::

    generator      z (N, nz, 1, 1) -> (N, 2ngf, 8, 8) -> (N, ngf, 16, 16) -> (N, C, 32, 32)
    discriminator  (N, C, 32, 32) -> (N, ndf, 16, 16) -> (N, 2ndf, 8, 8) -> (N, 4ndf, 4, 4)
                   -> (N, 8ndf, 2, 2) -> flatten (N, 32ndf) -> (N,) logits

The reference used CIFAR-10 (32x32 RGB) only; any side that is a multiple of 4, at least 16,
works (28x28: first map 7x7, D's last map 1x1).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .base import Discriminator, GANConfig, Generator
from .dcgan import dcgan_init
from .sizes import check_positive_ints, check_square_side

NAME = "ref000-dcgan"


def conv_out(side: int, layers: int) -> int:
    """Side after ``layers`` 4x4 stride-2 padding-1 convolutions: ``floor(side / 2)`` each."""
    for _ in range(layers):
        side = (side + 2 - 4) // 2 + 1
    return side


@dataclasses.dataclass(frozen=True)
class Ref000Config(GANConfig):
    """Options of reference 000's generator and discriminator."""

    g_channels: int = 64  # ngf: G width next to the image; the first map has 2ngf (two hidden widths only)
    d_channels: int = 64  # ndf: D width next to the image; doubles per layer to 8ndf, as in Radford et al.

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "g_channels", "d_channels")
        check_square_side(self, NAME, multiple=4, minimum=16)  # G: s/4 first map; D: 4 halvings leave >= 1


class Ref000Generator(Generator):
    """Three transposed convolutions: z -> (s/4)^2 -> (s/2)^2 -> s^2.

    >>> g = Ref000Generator(Ref000Config(g_channels=8))
    >>> g(torch.randn(2, 100)).shape
    torch.Size([2, 3, 32, 32])
    """

    config_class = Ref000Config
    config: Ref000Config

    def __init__(self, config: Ref000Config) -> None:
        super().__init__(config)
        c, s, _ = config.image_shape
        ngf = config.g_channels
        self.main = nn.Sequential(
            # layer 1: (N, nz, 1, 1) -> (N, 2ngf, s/4, s/4); the kernel covers the whole first map
            nn.ConvTranspose2d(config.latent_dim, 2 * ngf, s // 4, 1, 0, bias=False),
            nn.BatchNorm2d(2 * ngf),
            nn.ReLU(True),
            # layer 2: -> (N, ngf, s/2, s/2)
            nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            # layer 3: -> (N, C, s, s) in [-1, 1]; no batch norm on the output
            nn.ConvTranspose2d(ngf, c, 4, 2, 1, bias=False),
            nn.Tanh(),
        )
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.main(z[:, :, None, None])  # (N, nz, 1, 1) -> (N, C, H, W)


class Ref000Discriminator(Discriminator):
    """Four stride-2 convolutions, then one fully connected layer to the logit.

    >>> d = Ref000Discriminator(Ref000Config(d_channels=8))
    >>> d(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2])
    """

    config_class = Ref000Config
    config: Ref000Config

    def __init__(self, config: Ref000Config) -> None:
        super().__init__(config)
        c, s, _ = config.image_shape
        ndf = config.d_channels
        self.features = nn.Sequential(
            # conv 1: (N, C, s, s) -> (N, ndf, s/2, s/2); no batch norm on the input layer (Radford et al.)
            nn.Conv2d(c, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # conv 2: -> (N, 2ndf, s/4, s/4)
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * ndf),
            nn.LeakyReLU(0.2, inplace=True),
            # conv 3: -> (N, 4ndf, s/8, s/8)
            nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(4 * ndf),
            nn.LeakyReLU(0.2, inplace=True),
            # conv 4: -> (N, 8ndf, f, f), f = s/16 rounded down (2 for 32x32)
            nn.Conv2d(4 * ndf, 8 * ndf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(8 * ndf),
            nn.LeakyReLU(0.2, inplace=True),
        )
        f = conv_out(s, 4)
        # FC: (N, 8ndf * f * f) -> (N, 1), one logit per image
        self.fc = nn.Linear(8 * ndf * f * f, 1)
        self.apply(dcgan_init)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(images)  # (N, 8ndf, f, f)
        return self.fc(h.flatten(1)).flatten()  # (N, 8ndf f^2) -> (N,)
