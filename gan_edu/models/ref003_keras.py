"""Reference 003's Keras DCGAN, after the TensorFlow DCGAN tutorial, for 28x28x1 and 32x32x3.

Source: reference project 003 ("DCGAN", TensorFlow / Keras, MNIST and CIFAR-10), which cites the
TensorFlow DCGAN tutorial. Its text fixes:

* "The generator model takes input as 100 dimensional noise and produces an image of dimensions
  (28 x 28 x 1) for MNIST and (32 x 32 x 3) for CIFAR-10";
* "upsampling of the input by using Transpose Convolution, followed by Batch Normalization and
  Leaky Relu layers at each step. The last layer is a Transpose Convolution with tanh";
* "Each [discriminator] layer is a Conv2D layer, followed by LeakyRelu and Dropout Layers", and
  the discriminator "gives a single number as output";
* Adam 1e-4 (beta1 0.5 for CIFAR-10), batch 256 (MNIST) / 128 (CIFAR-10), 50 / 100 epochs
  (``gan-edu train --lr 1e-4 --beta1 0.9 --batch-size 256`` for MNIST; Keras' default beta1 is 0.9).

Reading chosen, for everything the text leaves open: the TensorFlow tutorial's layers, which it
cites. The tutorial starts with a dense projection (with batch norm and LeakyReLU, like every
upsampling step) to a (s/4)x(s/4)x256 map, then 5x5 transposed convolutions: stride 1 to 128
maps, stride 2 to 64, stride 2 to the image. Its discriminator has two 5x5 stride-2 convolutions
(64 and 128 filters), each followed by LeakyReLU and dropout 0.3, then a dense layer to one number.
Keras' defaults are kept: LeakyReLU slope 0.3, batch norm epsilon 1e-3 and momentum 0.99
(PyTorch's momentum 0.01), no biases where the tutorial says ``use_bias=False``, Glorot-uniform
initialisation.

How it differs from Radford et al.:

1. A dense projection at G's input and a dense logit at D's output (Radford et al. use neither
   as a separate layer); 5x5 kernels, as in the paper's figure, but a stride-1 layer in G.
2. LeakyReLU (slope 0.3) in the generator, not ReLU; no batch norm in the discriminator, which
   uses dropout instead.
3. Keras' "same" padding for a stride-2 5x5 convolution pads 1 pixel before and 2 after; PyTorch's
   padding 2 pads 2 on both sides. The shapes are equal; the sampling grid is shifted by half a
   pixel. Transposed convolutions use ``output_padding=1`` to double the size exactly.
4. D returns a raw logit (the tutorial's D also ends without a sigmoid and uses
   ``from_logits=True``).

Shapes (``ngf = g_channels``, ``ndf = d_channels``; b = s/4: 7 for MNIST, 8 for CIFAR-10)::

    generator      z (N, nz) -> dense (N, 4ngf * b * b) -> (N, 4ngf, b, b) -> (N, 2ngf, b, b)
                   -> (N, ngf, 2b, 2b) -> (N, C, 4b, 4b)
    discriminator  (N, C, s, s) -> (N, ndf, s/2, s/2) -> (N, 2ndf, s/4, s/4) -> dense (N,)
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..errors import check
from .base import Discriminator, GANConfig, Generator
from .ref002_perclass import keras_init
from .sizes import check_positive_ints, check_square_side

NAME = "ref003-keras"

KERAS_BN = {"eps": 1e-3, "momentum": 0.01}  # Keras BatchNormalization(epsilon=1e-3, momentum=0.99)


@dataclasses.dataclass(frozen=True)
class Ref003Config(GANConfig):
    """Options of reference 003's generator and discriminator."""

    g_channels: int = 64  # ngf: filters of G's last hidden layer; 2ngf and 4ngf (= 256) inward
    d_channels: int = 64  # ndf: filters of D's first conv (64 in the tutorial), 2ndf after it
    slope: float = 0.3  # LeakyReLU slope: Keras' default alpha, which the tutorial keeps
    dropout: float = 0.3  # dropout after each D conv, as in the tutorial

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "g_channels", "d_channels")
        check(0 <= self.dropout < 1, f"dropout={self.dropout!r}: expected a probability in [0, 1)")
        check_square_side(self, NAME, multiple=4, minimum=8)


class Ref003Generator(Generator):
    """Dense, then 5x5 transposed convolutions (stride 1, 2, 2); batch norm and LeakyReLU; tanh.

    >>> g = Ref003Generator(Ref003Config(image_shape=(1, 28, 28), g_channels=4))
    >>> g(torch.randn(2, 100)).shape
    torch.Size([2, 1, 28, 28])
    """

    config_class = Ref003Config
    config: Ref003Config

    def __init__(self, config: Ref003Config) -> None:
        super().__init__(config)
        c, s, _ = config.image_shape
        ngf, b = config.g_channels, s // 4
        self.base = b
        # dense: (N, nz) -> (N, 4ngf * b * b), normalised per feature, reshaped in forward
        self.project = nn.Sequential(
            nn.Linear(config.latent_dim, 4 * ngf * b * b, bias=False),
            nn.BatchNorm1d(4 * ngf * b * b, **KERAS_BN),
            nn.LeakyReLU(config.slope),
        )
        self.main = nn.Sequential(
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 5, 1, 2, bias=False),  # (N, 4ngf, b, b) -> (N, 2ngf, b, b)
            nn.BatchNorm2d(2 * ngf, **KERAS_BN),
            nn.LeakyReLU(config.slope),
            nn.ConvTranspose2d(2 * ngf, ngf, 5, 2, 2, output_padding=1, bias=False),  # -> (N, ngf, 2b, 2b)
            nn.BatchNorm2d(ngf, **KERAS_BN),
            nn.LeakyReLU(config.slope),
            nn.ConvTranspose2d(ngf, c, 5, 2, 2, output_padding=1, bias=False),  # -> (N, C, 4b, 4b)
            nn.Tanh(),  # images in [-1, 1]
        )
        self.apply(keras_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(z).view(-1, 4 * self.config.g_channels, self.base, self.base)  # (N, 4ngf, b, b)
        return self.main(h)  # (N, C, H, W)


class Ref003Discriminator(Discriminator):
    """Two 5x5 stride-2 convolutions, each with LeakyReLU and dropout, then a dense logit.

    >>> d = Ref003Discriminator(Ref003Config(image_shape=(1, 28, 28), d_channels=4))
    >>> d(torch.randn(2, 1, 28, 28)).shape
    torch.Size([2])
    """

    config_class = Ref003Config
    config: Ref003Config

    def __init__(self, config: Ref003Config) -> None:
        super().__init__(config)
        c, s, _ = config.image_shape
        ndf = config.d_channels
        self.features = nn.Sequential(
            nn.Conv2d(c, ndf, 5, 2, 2),  # (N, C, s, s) -> (N, ndf, s/2, s/2)
            nn.LeakyReLU(config.slope),
            nn.Dropout(config.dropout),
            nn.Conv2d(ndf, 2 * ndf, 5, 2, 2),  # -> (N, 2ndf, s/4, s/4)
            nn.LeakyReLU(config.slope),
            nn.Dropout(config.dropout),
        )
        self.dense = nn.Linear(2 * ndf * (s // 4) ** 2, 1)  # (N, 2ndf (s/4)^2) -> (N, 1)
        self.apply(keras_init)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.dense(self.features(images).flatten(1)).flatten()  # (N,)
