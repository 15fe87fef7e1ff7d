"""The class-conditional recipe of the literature, as two parts that pair with DCGAN's.

* :class:`ConditionalBatchNorm2d` and :class:`CBNGenerator`: conditional batch norm (de Vries et
  al., "Modulating early visual processing by language", NeurIPS 2017; used for class labels by
  Miyato & Koyama 2018 and BigGAN). Each batch norm of DCGAN's generator loses its own scale and
  shift; a per-class gain and bias, looked up from the label, take their place, so the class acts
  at every layer, not only through an embedding concatenated to ``z`` at the input.
* :class:`SNProjectionDiscriminator`: the discriminator as SNGAN builds it (Miyato et al.,
  "Spectral Normalization for Generative Adversarial Networks", ICLR 2018, the "standard CNN"):
  spectral norm on every weight layer, **no batch norm**, LeakyReLU(0.1), 3x3 stride-1
  convolutions before each 4x4 stride-2 one, global sum pooling, and the projection head of
  Miyato & Koyama ("cGANs with Projection Discriminator", ICLR 2018):
  ``logit = w . phi(x) + embed(y) . phi(x)``. Batch norm in a spectrally normalised D mixes
  the batch into every logit and undoes the Lipschitz bound; SNGAN leaves it out.

The papers train these with the hinge loss, Adam with betas (0, 0.9), and a D that learns faster
than G (more D steps per G step, ``d_steps``, or a larger D rate, TTUR): ``docs/quality.md``
gives the flags. Both classes take :class:`~gan_edu.models.dcgan.DCGANConfig`, so each pairs with
DCGAN's other half (``cdcgan-cbn``, ``cdcgan-snproj`` and ``cbn-snproj`` in the registry).

Shapes (``ngf = g_channels``, ``ndf = d_channels``, 32x32; 28x28 has one stage fewer from 7x7)::

    CBNGenerator:  [z, embed(y)] (N, nz', 1, 1) -> CBN-ReLU (N, 4ngf, 4, 4) -> (N, 2ngf, 8, 8)
                   -> (N, ngf, 16, 16) -> tanh (N, C, 32, 32)
    SNProjectionDiscriminator: (N, C, 32, 32) -> [3x3, 4x4/2] (N, ndf, 16, 16) -> (N, 2ndf, 8, 8)
                   -> (N, 4ndf, 4, 4) -> 3x3 (N, 8ndf, 4, 4) -> sum over H, W (N, 8ndf) -> logit (N,)

To make a variant, subclass and override ``forward``; the blocks are plain modules.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import check
from .base import Discriminator, Generator
from .dcgan import DCGANConfig, class_logits, dcgan_init
from .sizes import doublings
from .spectral import apply_spectral_norm


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up per class: ``gain[y] * BN(x) + bias[y]``.

    Args:
        num_features: channels ``F`` of the ``(N, F, H, W)`` input.
        num_classes: classes ``K``; the gain table starts at 1, the bias table at 0 (plain BN).

    >>> cbn = ConditionalBatchNorm2d(4, num_classes=3)
    >>> cbn(torch.randn(2, 4, 5, 5), torch.tensor([0, 2])).shape
    torch.Size([2, 4, 5, 5])
    """

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, affine=False)  # the batch statistics, no scale or shift of its own
        self.gain = nn.Embedding(num_classes, num_features)  # y -> (F,) scale
        self.bias = nn.Embedding(num_classes, num_features)  # y -> (F,) shift
        self.reset_class_parameters()

    def reset_class_parameters(self) -> None:
        """Gains N(1, 0.02) and biases 0, as DCGAN initialises batch norm's own scale and shift."""
        nn.init.normal_(self.gain.weight, 1.0, 0.02)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)  # (N, F, H, W), zero mean and unit variance per channel
        return h * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]  # (N, F, H, W)


class CBNGenerator(Generator):
    """DCGAN's generator with conditional batch norm: the class modulates every hidden layer.

    >>> g = CBNGenerator(DCGANConfig(image_shape=(1, 28, 28), g_channels=8, num_classes=10))
    >>> g(torch.randn(2, 100), torch.tensor([3, 7])).shape
    torch.Size([2, 1, 28, 28])
    """

    config_class = DCGANConfig
    config: DCGANConfig

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__(config)
        check(config.num_classes is not None, "CBNGenerator with num_classes=None: expected a conditional model (num_classes >= 2)")
        assert config.num_classes is not None
        c, size, _ = config.image_shape
        base, k = doublings(size)
        widths = [config.g_channels * 2 ** (k - 1 - i) for i in range(k)]  # e.g. 32x32: [4ngf, 2ngf, ngf]
        in_dim = config.latent_dim
        if config.class_input:
            self.embed = nn.Embedding(config.num_classes, config.embed_dim)
            in_dim += config.embed_dim
        # (N, nz', 1, 1) -> (N, widths[0], base, base), then one doubling per layer
        self.convs = nn.ModuleList(
            [nn.ConvTranspose2d(in_dim, widths[0], base, 1, 0, bias=False)]
            + [nn.ConvTranspose2d(widths[i - 1], widths[i], 4, 2, 1, bias=False) for i in range(1, k)]
        )
        self.norms = nn.ModuleList([ConditionalBatchNorm2d(w, config.num_classes) for w in widths])
        self.to_image = nn.ConvTranspose2d(widths[-1], c, 4, 2, 1, bias=False)  # (N, ngf, s/2, s/2) -> (N, C, s, s)
        self.apply(dcgan_init)  # convolutions N(0, 0.02)
        for norm in self.norms:  # dcgan_init drew the tables as N(0, 0.02): back to gain 1, bias 0
            norm.reset_class_parameters()
        if config.class_input:
            nn.init.normal_(self.embed.weight, 0.0, 0.2)  # as DCGANGenerator: visible next to z ~ N(0, 1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        assert labels is not None, "conditional generator needs labels"
        h = torch.cat([z, self.embed(labels)], dim=1) if self.config.class_input else z  # (N, nz')
        h = h[:, :, None, None]  # (N, nz', 1, 1)
        for conv, norm in zip(self.convs, self.norms):
            h = torch.relu(norm(conv(h), labels))  # (N, widths[i], s, s), scaled and shifted for each image's class
        return torch.tanh(self.to_image(h))  # (N, C, H, W) in [-1, 1]


class SNProjectionDiscriminator(Discriminator):
    """SNGAN's discriminator with a projection head: spectral norm everywhere, no batch norm.

    Spectral norm is always on here (``config.spectral_norm`` is not needed); with ``aux_head`` it
    also returns class logits for AC-GAN.

    >>> d = SNProjectionDiscriminator(DCGANConfig(image_shape=(3, 32, 32), d_channels=8, num_classes=10))
    >>> d(torch.randn(2, 3, 32, 32), torch.tensor([0, 9])).shape
    torch.Size([2])
    """

    config_class = DCGANConfig
    config: DCGANConfig

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__(config)
        check(config.minibatch_std == 0, f"minibatch_std={config.minibatch_std} with {type(self).__name__}: expected 0; the minibatch standard deviation channel is DCGANDiscriminator's (models cdcgan, cdcgan-cbn, dcgan)")
        c, size, _ = config.image_shape
        _, k = doublings(size)
        widths = [config.d_channels * 2**i for i in range(k)]  # e.g. 32x32: [ndf, 2ndf, 4ndf]
        act = nn.LeakyReLU(config.d_slope)
        layers: list[nn.Module] = []
        cin = c
        for w in widths:
            for _ in range(config.d_convs_per_stage):  # (N, cin, s, s) -> (N, w, s, s)
                layers += [nn.Conv2d(cin, w, 3, 1, 1), act]
                cin = w
            layers += [nn.Conv2d(cin, w, 4, 2, 1), act]  # (N, w, s, s) -> (N, w, s/2, s/2)
            cin = w
        features = 2 * cin if config.d_convs_per_stage else cin
        if config.d_convs_per_stage:
            layers += [nn.Conv2d(cin, features, 3, 1, 1), act]  # (N, 2w, base, base), SNGAN's last 3x3
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(features, 1)  # (N, F) -> (N, 1): how real, whatever the class
        if config.num_classes is not None:
            self.embed = nn.Embedding(config.num_classes, features)  # projection: y -> (F,)
        if config.aux_head:
            assert config.num_classes is not None
            self.classes = nn.Linear(features, config.num_classes)  # AC-GAN: (F,) -> (K,)
        apply_spectral_norm(self)  # every conv, linear layer and embedding

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, *, with_classes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``(N, C, H, W)`` images to ``(N,)`` logits; ``with_classes`` (an ``aux_head`` D): also ``(N, K)`` class logits."""
        h = self.features(images).sum(dim=(2, 3))  # (N, F): global sum pooling
        logits = self.head(h).flatten()  # (N,)
        if self.num_classes is not None:
            assert labels is not None, "conditional discriminator needs labels"
            logits = logits + (self.embed(labels) * h).sum(dim=1)  # + <embed(y), phi(x)>
        if with_classes:
            return logits, class_logits(self, h)  # (N,), (N, K)
        return logits
