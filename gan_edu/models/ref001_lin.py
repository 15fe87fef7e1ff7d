"""Reference 001's linDCGAN: a "4 conv + linear" discriminator and a "3 transposed conv + conv" generator.

Source: reference project 001 (PyTorch, CIFAR-10 for this model). Its text fixes:

* "linDCGAN: A discriminator that has 4 convolutional and a linear layer layered, and 3
  transposed convolutional and a convolutional layered Generator (to CIFAR-10)";
* batch norm after each layer, LeakyReLU(0.1) in D, ReLU in G, 4x4 filters with stride 2 and
  padding 1 (shared with :mod:`gan_edu.models.ref001_conv`).

How it differs from Radford et al. (and from ``ref001-conv``):

1. The discriminator's last layer is a linear layer on the flattened 2x2 map, not a convolution.
2. The generator has three transposed convolutions and then a plain convolution at full size
   that maps ``ngf`` feature maps to the image's channels. Three stride-2 layers from a 1x1 map
   only reach 8x8, so the first transposed convolution's kernel is the whole first map
   (1x1 -> 8x8 for 32x32), then two 4x4 stride-2 layers reach 16 and 32. A 4x4 stride-1
   convolution cannot keep a 32x32 map at 32x32 with symmetric padding, so the final convolution
   is 3x3 with padding 1. Reading chosen: every layer is counted in the text (no hidden fully
   connected projection in G), and "4x4, stride 2, padding 1" holds wherever it can.
3. Batch norm after every hidden layer, the discriminator's first included; none on the
   generator's image or the discriminator's logit (see ``ref001-conv`` for why).
4. LeakyReLU slope 0.1 in D; a raw logit out, the sigmoid lives in the loss.

Shapes at 32x32 (``ngf = g_channels``, ``ndf = d_channels``)::

    generator      z (N, nz, 1, 1) -> (N, 4ngf, 8, 8) -> (N, 2ngf, 16, 16) -> (N, ngf, 32, 32)
                   -> conv (N, C, 32, 32)
    discriminator  (N, C, 32, 32) -> (N, ndf, 16, 16) -> (N, 2ndf, 8, 8) -> (N, 4ndf, 4, 4)
                   -> (N, 8ndf, 2, 2) -> linear (N,)

The reference used it on CIFAR-10 only; any side that is a multiple of 4, at least 16, works.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .base import Discriminator, GANConfig, Generator
from .dcgan import dcgan_init
from .ref000_dcgan import conv_out
from .sizes import check_positive_ints, check_square_side

NAME = "ref001-lin"


@dataclasses.dataclass(frozen=True)
class Ref001LinConfig(GANConfig):
    """Options of reference 001's linDCGAN generator and discriminator."""

    g_channels: int = 64  # ngf: width of G's last transposed conv; 2ngf and 4ngf inward
    d_channels: int = 64  # ndf: D width next to the image; doubles per layer to 8ndf
    d_slope: float = 0.1  # LeakyReLU slope in D: the reference's 0.1 (Radford et al.: 0.2)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "g_channels", "d_channels")
        check_square_side(self, NAME, multiple=4, minimum=16)


class Ref001LinGenerator(Generator):
    """Three transposed convolutions up to full size, then one convolution to the image.

    >>> g = Ref001LinGenerator(Ref001LinConfig(g_channels=4))
    >>> g(torch.randn(2, 100)).shape
    torch.Size([2, 3, 32, 32])
    """

    config_class = Ref001LinConfig
    config: Ref001LinConfig

    def __init__(self, config: Ref001LinConfig) -> None:
        super().__init__(config)
        c, s, _ = config.image_shape
        ngf = config.g_channels
        self.main = nn.Sequential(
            # transposed conv 1: (N, nz, 1, 1) -> (N, 4ngf, s/4, s/4); the kernel covers the first map
            nn.ConvTranspose2d(config.latent_dim, 4 * ngf, s // 4, 1, 0, bias=False),
            nn.BatchNorm2d(4 * ngf),
            nn.ReLU(True),
            # transposed conv 2: -> (N, 2ngf, s/2, s/2)
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * ngf),
            nn.ReLU(True),
            # transposed conv 3: -> (N, ngf, s, s)
            nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            # conv: (N, ngf, s, s) -> (N, C, s, s) in [-1, 1]; 3x3 padding 1 keeps the size
            nn.Conv2d(ngf, c, 3, 1, 1, bias=False),
            nn.Tanh(),
        )
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.main(z[:, :, None, None])  # (N, nz, 1, 1) -> (N, C, H, W)


class Ref001LinDiscriminator(Discriminator):
    """Four 4x4 stride-2 convolutions with batch norm and LeakyReLU(0.1), then a linear logit.

    >>> d = Ref001LinDiscriminator(Ref001LinConfig(d_channels=4))
    >>> d(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2])
    """

    config_class = Ref001LinConfig
    config: Ref001LinConfig

    def __init__(self, config: Ref001LinConfig) -> None:
        super().__init__(config)
        c, s, _ = config.image_shape
        ndf = config.d_channels
        w = [ndf, 2 * ndf, 4 * ndf, 8 * ndf]

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(config.d_slope, inplace=True)]

        self.features = nn.Sequential(
            *block(c, w[0]),  # conv 1: (N, C, s, s) -> (N, ndf, s/2, s/2); batch norm here too
            *block(w[0], w[1]),  # conv 2: -> (N, 2ndf, s/4, s/4)
            *block(w[1], w[2]),  # conv 3: -> (N, 4ndf, s/8, s/8)
            *block(w[2], w[3]),  # conv 4: -> (N, 8ndf, f, f), f = s/16 rounded down
        )
        f = conv_out(s, 4)
        self.linear = nn.Linear(w[3] * f * f, 1)  # linear: (N, 8ndf f^2) -> (N, 1)
        self.apply(dcgan_init)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(images)  # (N, 8ndf, f, f)
        return self.linear(h.flatten(1)).flatten()  # (N,)
