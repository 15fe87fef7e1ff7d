"""Reference 004's CelebA DCGAN: Radford et al.'s 64x64 network as the original TensorFlow code builds it.

Source: reference project 004 ("Deep Convolutional Generative Adversarial Network", TensorFlow,
CelebA). Its text fixes:

* CelebA at 64x64, 50 epochs, batch 128;
* "Discriminator use multiple Conv2D layers to reduce the size of image and then classify it as
  real or fake. Generator uses ConvTranspose2D layers to increase the size of image gradually
  till it reaches desired image size";
* the paper it implements (Radford et al., arXiv:1511.06434) and the TensorFlow DCGAN tutorial;
* the discriminator's BCE loss and both generator losses, ``log(1 - D(G(z)))`` and the
  paper's ``-log D(G(z))`` (``--loss minimax`` and ``--loss non-saturating`` here).

Reading chosen: the network of the paper's Figure 1 as TensorFlow code of the paper writes it
(64x64 is the paper's own size): a dense "project and reshape" of ``z`` to a 4x4 map, four 5x5
stride-2 transposed convolutions (batch norm and ReLU between them, tanh on the image), and a
discriminator of four 5x5 stride-2 convolutions (batch norm on all but the first,
LeakyReLU(0.2)) whose flattened 4x4 map feeds a dense layer to the logit. Convolutions carry
biases, as TensorFlow layers do; weights start from N(0, 0.02) as the paper says.

How it differs from Radford et al.: it *is* their architecture, at ``ngf = ndf = 64`` (the
paper's figure uses 1024 maps at 4x4, i.e. ``g_channels=128``). Against the ``dcgan`` entry
(the PyTorch example): 5x5 kernels instead of 4x4, a dense projection instead of a 4x4
transposed convolution on a 1x1 map, a dense logit instead of a 4x4 convolution, biases on the
convolutions. And as everywhere in gan-edu, D returns a raw logit; the loss applies the sigmoid.
PyTorch needs ``padding=2, output_padding=1`` for TensorFlow's "same" 5x5 stride-2 layers; the
shapes agree, the sampling grid is shifted by half a pixel.

Shapes at 64x64 (``ngf = g_channels``, ``ndf = d_channels``)::

    generator      z (N, nz) -> dense (N, 8ngf * 4 * 4) -> (N, 8ngf, 4, 4) -> (N, 4ngf, 8, 8)
                   -> (N, 2ngf, 16, 16) -> (N, ngf, 32, 32) -> (N, C, 64, 64)
    discriminator  (N, C, 64, 64) -> (N, ndf, 32, 32) -> (N, 2ndf, 16, 16) -> (N, 4ndf, 8, 8)
                   -> (N, 8ndf, 4, 4) -> dense (N,)

Any side that is a multiple of 16 works (the first map is s/16).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .base import Discriminator, GANConfig, Generator
from .dcgan import dcgan_init
from .sizes import check_positive_ints, check_square_side

NAME = "ref004-celeba"


@dataclasses.dataclass(frozen=True)
class Ref004Config(GANConfig):
    """Options of reference 004's generator and discriminator."""

    g_channels: int = 64  # ngf (TensorFlow code: gf_dim): G width next to the image; 8ngf at 4x4
    d_channels: int = 64  # ndf (df_dim): D width next to the image; 8ndf at 4x4

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "g_channels", "d_channels")
        check_square_side(self, NAME, multiple=16, minimum=16)


class Ref004Generator(Generator):
    """Project and reshape, then four 5x5 stride-2 transposed convolutions (BN + ReLU; tanh).

    >>> g = Ref004Generator(Ref004Config(image_shape=(3, 64, 64), g_channels=4))
    >>> g(torch.randn(2, 100)).shape
    torch.Size([2, 3, 64, 64])
    """

    config_class = Ref004Config
    config: Ref004Config

    def __init__(self, config: Ref004Config) -> None:
        super().__init__(config)
        c, s, _ = config.image_shape
        ngf, b = config.g_channels, s // 16
        self.base = b
        # project: (N, nz) -> (N, 8ngf * b * b), reshaped in forward to (N, 8ngf, b, b)
        self.project = nn.Linear(config.latent_dim, 8 * ngf * b * b)

        def up(cin: int, cout: int) -> nn.ConvTranspose2d:
            return nn.ConvTranspose2d(cin, cout, 5, 2, 2, output_padding=1)  # doubles the side

        self.main = nn.Sequential(
            nn.BatchNorm2d(8 * ngf),  # on the reshaped (N, 8ngf, b, b) map
            nn.ReLU(True),
            up(8 * ngf, 4 * ngf),  # -> (N, 4ngf, 2b, 2b)
            nn.BatchNorm2d(4 * ngf),
            nn.ReLU(True),
            up(4 * ngf, 2 * ngf),  # -> (N, 2ngf, 4b, 4b)
            nn.BatchNorm2d(2 * ngf),
            nn.ReLU(True),
            up(2 * ngf, ngf),  # -> (N, ngf, 8b, 8b)
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            up(ngf, c),  # -> (N, C, s, s)
            nn.Tanh(),  # images in [-1, 1]; no batch norm on the output
        )
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(z).view(-1, 8 * self.config.g_channels, self.base, self.base)  # (N, 8ngf, b, b)
        return self.main(h)  # (N, C, H, W)


class Ref004Discriminator(Discriminator):
    """Four 5x5 stride-2 convolutions (BN after all but the first, LeakyReLU 0.2), a dense logit.

    >>> d = Ref004Discriminator(Ref004Config(image_shape=(3, 64, 64), d_channels=4))
    >>> d(torch.randn(2, 3, 64, 64)).shape
    torch.Size([2])
    """

    config_class = Ref004Config
    config: Ref004Config

    def __init__(self, config: Ref004Config) -> None:
        super().__init__(config)
        c, s, _ = config.image_shape
        ndf = config.d_channels
        self.features = nn.Sequential(
            nn.Conv2d(c, ndf, 5, 2, 2),  # (N, C, s, s) -> (N, ndf, s/2, s/2); no batch norm on the input layer
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, 2 * ndf, 5, 2, 2),  # -> (N, 2ndf, s/4, s/4)
            nn.BatchNorm2d(2 * ndf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * ndf, 4 * ndf, 5, 2, 2),  # -> (N, 4ndf, s/8, s/8)
            nn.BatchNorm2d(4 * ndf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * ndf, 8 * ndf, 5, 2, 2),  # -> (N, 8ndf, s/16, s/16)
            nn.BatchNorm2d(8 * ndf),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.dense = nn.Linear(8 * ndf * (s // 16) ** 2, 1)  # (N, 8ndf (s/16)^2) -> (N, 1)
        self.apply(dcgan_init)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.dense(self.features(images).flatten(1)).flatten()  # (N,)
