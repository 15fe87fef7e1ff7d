"""Reference 001's convDCGAN: five transposed convolutions against five convolutions.

Source: reference project 001 ("Deep Convolutional Generative Adversarial Networks", PyTorch, on
MNIST, CIFAR-10 and CelebA). Its text fixes:

* "convDCGAN: 5 convolutional layered Discriminator and 5 transposed convolutional layered
  Generator (to MNIST, CelebA and CIFAR-10)";
* "Batch normalization is used after each layer for all models with LeakyReLU of alpha 0.1 for
  the discriminators while the generators use standard ReLU";
* "(4,4) filters with stride 2 and padding 1, so that the number of pixels are either upsampled
  or downsampled by a factor of 4 in each layer";
* Adam 2e-4, betas (0.5, 0.999), batch 128, binary cross entropy (the ``minimax`` /
  ``non-saturating`` losses here, with gan-edu's defaults).

Its classDCGAN is this model trained once per class: ``gan-edu train --model ref001-conv
--per-class`` (see :mod:`gan_edu.training.bank`).

How it differs from Radford et al. (and from the ``dcgan`` entry):

1. Batch norm after every hidden layer, the discriminator's first layer included (Radford et al.
   leave that one out). Reading chosen: "after each layer" means each layer but the two outputs:
   on the generator's image it would undo tanh's range control (Radford et al. saw samples
   oscillate), and on the discriminator's single logit it would force a batch's logits to mean 0,
   so D could never call a whole batch real or fake.
2. LeakyReLU slope 0.1 in D, not 0.2.
3. Exactly five layers on each side, each 4x4 with stride 2 and padding 1 wherever that can make
   the size. At 32x32 (CIFAR-10) that is every layer, literally: 1 -> 2 -> 4 -> 8 -> 16 -> 32 in G
   and the mirror image in D. Five doublings cannot make 64 or 28 from a 1x1 noise map, so:

   * 64x64 (CelebA): G's first layer is 4x4 stride 1 padding 0 (1x1 -> 4x4) and D's last layer
     the same (4x4 -> 1x1), as in the PyTorch DCGAN example the reference builds on;
   * 28x28 (MNIST): G's output layer and D's input layer use padding 3 instead of 1
     (16 -> 28 and 28 -> 16), which is exactly the 32x32 stack with a 2-pixel border cropped from
     G's output and zero-padded around D's input (MNIST's borders are empty anyway).
4. The discriminator returns a raw logit; the sigmoid lives in the loss.

Shapes (``ngf = g_channels``, ``ndf = d_channels``)::

    generator  32x32: z (N, nz, 1, 1) -> (N, 8ngf, 2, 2) -> (N, 4ngf, 4, 4) -> (N, 2ngf, 8, 8)
                      -> (N, ngf, 16, 16) -> (N, C, 32, 32)
               64x64: z -> (N, 8ngf, 4, 4) -> ... -> (N, ngf, 32, 32) -> (N, C, 64, 64)
               28x28: as 32x32 up to (N, ngf, 16, 16) -> (N, C, 28, 28)
    discriminator: the mirror image, (N, C, s, s) -> (N, ndf, ., .) -> ... -> (N, 8ndf, ., .) -> (N,)
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .base import Discriminator, GANConfig, Generator
from .dcgan import dcgan_init
from .sizes import check_positive_ints, check_square_side

NAME = "ref001-conv"

#: Per image side: (stride, padding) of the layer at the 1x1 end (G's first, D's last) and the
#: padding of the layer at the image end (G's last, D's first). Every other layer is 4x4 s2 p1.
PLANS: dict[int, tuple[tuple[int, int], int]] = {
    32: ((2, 1), 1),  # 1 -> 2 -> 4 -> 8 -> 16 -> 32: every layer 4x4 stride 2 padding 1
    64: ((1, 0), 1),  # 1 -> 4 (4x4 stride 1) -> 8 -> 16 -> 32 -> 64
    28: ((2, 1), 3),  # 1 -> 2 -> 4 -> 8 -> 16 -> 28 (padding 3 crops 32 to 28)
}


@dataclasses.dataclass(frozen=True)
class Ref001ConvConfig(GANConfig):
    """Options of reference 001's convDCGAN generator and discriminator."""

    g_channels: int = 64  # ngf: G width next to the image; doubles per layer inward to 8ngf
    d_channels: int = 64  # ndf: D width next to the image; doubles per layer inward to 8ndf
    d_slope: float = 0.1  # LeakyReLU slope in D: the reference's 0.1 (Radford et al.: 0.2)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "g_channels", "d_channels")
        check_square_side(self, NAME, tuple(PLANS))


class Ref001ConvGenerator(Generator):
    """Five 4x4 transposed convolutions, batch norm and ReLU after each hidden one, tanh on the image.

    >>> g = Ref001ConvGenerator(Ref001ConvConfig(g_channels=4))
    >>> g(torch.randn(2, 100)).shape
    torch.Size([2, 3, 32, 32])
    """

    config_class = Ref001ConvConfig
    config: Ref001ConvConfig

    def __init__(self, config: Ref001ConvConfig) -> None:
        super().__init__(config)
        c, s, _ = config.image_shape
        (stride, pad), edge_pad = PLANS[s]
        ngf = config.g_channels
        w = [8 * ngf, 4 * ngf, 2 * ngf, ngf]

        def block(cin: int, cout: int, stride: int = 2, pad: int = 1) -> list[nn.Module]:
            return [nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]

        self.main = nn.Sequential(
            *block(config.latent_dim, w[0], stride, pad),  # 1: (N, nz, 1, 1) -> (N, 8ngf, b, b), b = 2 (32, 28) or 4 (64)
            *block(w[0], w[1]),  # 2: -> (N, 4ngf, 2b, 2b)
            *block(w[1], w[2]),  # 3: -> (N, 2ngf, 4b, 4b)
            *block(w[2], w[3]),  # 4: -> (N, ngf, 8b, 8b)
            nn.ConvTranspose2d(w[3], c, 4, 2, edge_pad, bias=False),  # 5: -> (N, C, s, s)
            nn.Tanh(),  # images in [-1, 1]; no batch norm on the output
        )
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.main(z[:, :, None, None])  # (N, nz, 1, 1) -> (N, C, H, W)


class Ref001ConvDiscriminator(Discriminator):
    """Five 4x4 convolutions, batch norm and LeakyReLU(0.1) after each hidden one, a logit out.

    >>> d = Ref001ConvDiscriminator(Ref001ConvConfig(d_channels=4))
    >>> d(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2])
    """

    config_class = Ref001ConvConfig
    config: Ref001ConvConfig

    def __init__(self, config: Ref001ConvConfig) -> None:
        super().__init__(config)
        c, s, _ = config.image_shape
        (stride, pad), edge_pad = PLANS[s]
        ndf = config.d_channels
        w = [ndf, 2 * ndf, 4 * ndf, 8 * ndf]

        def block(cin: int, cout: int, pad: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 4, 2, pad, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(config.d_slope, inplace=True)]

        self.main = nn.Sequential(
            *block(c, w[0], edge_pad),  # 1: (N, C, s, s) -> (N, ndf, 8b, 8b); batch norm here too
            *block(w[0], w[1]),  # 2: -> (N, 2ndf, 4b, 4b)
            *block(w[1], w[2]),  # 3: -> (N, 4ndf, 2b, 2b)
            *block(w[2], w[3]),  # 4: -> (N, 8ndf, b, b)
            nn.Conv2d(w[3], 1, 4, stride, pad, bias=False),  # 5: -> (N, 1, 1, 1), one logit
        )
        self.apply(dcgan_init)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.main(images).flatten()  # (N, C, H, W) -> (N, 1, 1, 1) -> (N,)
