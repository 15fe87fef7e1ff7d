"""Reference 002's per-class GAN: a small Keras-style DCGAN with LeakyReLU everywhere, one per class.

Source: reference project 002 ("CIFAR10 GAN", Keras). Its text fixes:

* "LeakyReLU was used as the activation function of each layer. tanh was used as the activation
  of the output layer of the generator";
* "A new instance of the GAN was used to train the classes separately": one G/D pair per
  CIFAR-10 class (``gan-edu train --model ref002-perclass --per-class``, see
  :mod:`gan_edu.training.bank`); a CNN trained on the generated set reached 21% on the real test
  set against 81% when trained on real images, and the ``dog`` generator collapsed.

Its layers are drawn only in figures that are not part of its text. Reading chosen: the standard
Keras CIFAR-10 DCGAN of that time, which matches every stated fact and uses nothing the text
leaves out (no batch norm, which the text never mentions):

* generator: a dense projection of ``z`` to a 4x4 map, three 4x4 stride-2 transposed
  convolutions to 32x32 (all LeakyReLU(0.2)), a 3x3 convolution to the image with tanh;
* discriminator: a 3x3 convolution, three 3x3 stride-2 convolutions (all LeakyReLU(0.2)),
  flatten, dropout 0.4, a dense layer to the logit;
* Keras' default initialisation (Glorot uniform weights, zero biases), biases on every layer.

How it differs from Radford et al.:

1. No batch norm anywhere; LeakyReLU (not ReLU) in the generator too.
2. Fully connected layers at both ends (a dense projection in G, a dense logit in D) and dropout
   before D's dense layer; 3x3 kernels in D.
3. Keras' "same" padding pads a stride-2 3x3 convolution only at the bottom/right; PyTorch's
   padding 1 pads both sides. The shapes are the same, the sampling grid is shifted by one pixel.
4. D returns a raw logit where the Keras model ends in a sigmoid; the loss applies it.

Shapes at 32x32 (``ngf = g_channels``, default 128; ``ndf = d_channels``, default 64)::

    generator      z (N, nz) -> dense (N, 2ngf * 4 * 4) -> (N, 2ngf, 4, 4) -> (N, ngf, 8, 8)
                   -> (N, ngf, 16, 16) -> (N, ngf, 32, 32) -> conv (N, C, 32, 32)
    discriminator  (N, C, 32, 32) -> (N, ndf, 32, 32) -> (N, 2ndf, 16, 16) -> (N, 2ndf, 8, 8)
                   -> (N, 4ndf, 4, 4) -> flatten, dropout -> dense (N,)

Any side that is a multiple of 8 works (the dense map is s/8).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..errors import check
from .base import Discriminator, GANConfig, Generator
from .sizes import check_positive_ints, check_square_side

NAME = "ref002-perclass"


def keras_init(module: nn.Module) -> None:
    """Keras' defaults: Glorot-uniform weights and zero biases for dense and convolution layers."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


@dataclasses.dataclass(frozen=True)
class Ref002Config(GANConfig):
    """Options of reference 002's generator and discriminator."""

    g_channels: int = 128  # ngf: filters of every G transposed conv (the dense map has 2ngf)
    d_channels: int = 64  # ndf: filters of D's first conv; 2ndf, 2ndf, 4ndf after it
    slope: float = 0.2  # LeakyReLU slope of every layer, in both networks
    dropout: float = 0.4  # dropout before D's dense layer: regularises the small D

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "g_channels", "d_channels")
        check(0 <= self.dropout < 1, f"dropout={self.dropout!r}: expected a probability in [0, 1)")
        check_square_side(self, NAME, multiple=8, minimum=8)


class Ref002Generator(Generator):
    """Dense projection, three stride-2 transposed convolutions, a 3x3 convolution; LeakyReLU, tanh.

    >>> g = Ref002Generator(Ref002Config(g_channels=4))
    >>> g(torch.randn(2, 100)).shape
    torch.Size([2, 3, 32, 32])
    """

    config_class = Ref002Config
    config: Ref002Config

    def __init__(self, config: Ref002Config) -> None:
        super().__init__(config)
        c, s, _ = config.image_shape
        ngf, b = config.g_channels, s // 8
        self.base = b
        # dense: (N, nz) -> (N, 2ngf * b * b), reshaped in forward to (N, 2ngf, b, b)
        self.project = nn.Sequential(nn.Linear(config.latent_dim, 2 * ngf * b * b), nn.LeakyReLU(config.slope))
        self.main = nn.Sequential(
            nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1),  # -> (N, ngf, 2b, 2b)
            nn.LeakyReLU(config.slope),
            nn.ConvTranspose2d(ngf, ngf, 4, 2, 1),  # -> (N, ngf, 4b, 4b)
            nn.LeakyReLU(config.slope),
            nn.ConvTranspose2d(ngf, ngf, 4, 2, 1),  # -> (N, ngf, s, s)
            nn.LeakyReLU(config.slope),
            nn.Conv2d(ngf, c, 3, 1, 1),  # -> (N, C, s, s)
            nn.Tanh(),  # images in [-1, 1]
        )
        self.apply(keras_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(z).view(-1, 2 * self.config.g_channels, self.base, self.base)  # (N, 2ngf, b, b)
        return self.main(h)  # (N, C, H, W)


class Ref002Discriminator(Discriminator):
    """A 3x3 convolution, three 3x3 stride-2 convolutions, dropout and a dense logit; LeakyReLU.

    >>> d = Ref002Discriminator(Ref002Config(d_channels=4))
    >>> d(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2])
    """

    config_class = Ref002Config
    config: Ref002Config

    def __init__(self, config: Ref002Config) -> None:
        super().__init__(config)
        c, s, _ = config.image_shape
        ndf = config.d_channels
        self.features = nn.Sequential(
            nn.Conv2d(c, ndf, 3, 1, 1),  # (N, C, s, s) -> (N, ndf, s, s)
            nn.LeakyReLU(config.slope),
            nn.Conv2d(ndf, 2 * ndf, 3, 2, 1),  # -> (N, 2ndf, s/2, s/2)
            nn.LeakyReLU(config.slope),
            nn.Conv2d(2 * ndf, 2 * ndf, 3, 2, 1),  # -> (N, 2ndf, s/4, s/4)
            nn.LeakyReLU(config.slope),
            nn.Conv2d(2 * ndf, 4 * ndf, 3, 2, 1),  # -> (N, 4ndf, s/8, s/8)
            nn.LeakyReLU(config.slope),
        )
        self.dropout = nn.Dropout(config.dropout)
        self.dense = nn.Linear(4 * ndf * (s // 8) ** 2, 1)  # (N, 4ndf (s/8)^2) -> (N, 1)
        self.apply(keras_init)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(images).flatten(1)  # (N, 4ndf (s/8)^2)
        return self.dense(self.dropout(h)).flatten()  # (N,)
