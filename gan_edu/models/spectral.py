"""Spectral normalisation of a discriminator's weight layers (Miyato et al. 2018)."""

from __future__ import annotations

from torch import nn

SPECTRAL_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalise every convolution, linear layer and embedding of ``module``, in place.

    Miyato et al., "Spectral Normalization for Generative Adversarial Networks", ICLR 2018: each
    weight ``W`` is used as ``W / sigma(W)``, its largest singular value estimated by one power
    iteration per training forward, so every layer is 1-Lipschitz and D cannot grow arbitrarily
    sharp. Uses :func:`torch.nn.utils.parametrizations.spectral_norm`; layers already normalised
    are left alone.

    >>> d = apply_spectral_norm(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(8, 1)))
    >>> sorted(n for n, _ in d.named_parameters())
    ['0.bias', '0.parametrizations.weight.original', '1.bias', '1.parametrizations.weight.original']
    """
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import spectral_norm

    for layer in list(module.modules()):
        if isinstance(layer, SPECTRAL_LAYERS) and not parametrize.is_parametrized(layer, "weight"):
            dim = 1 if isinstance(layer, nn.ConvTranspose2d) else 0  # the output-channel axis
            spectral_norm(layer, dim=dim)
    return module
