"""Loss values against hand computation, stability, and the saturation property."""

from __future__ import annotations

import math

import pytest
import torch

from gan_edu.errors import GanEduError
from gan_edu.losses import (
    LOSSES,
    MinimaxLoss,
    NonSaturatingLoss,
    get_loss,
    minimax_discriminator_loss,
    minimax_generator_loss,
    nonsaturating_generator_loss,
)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


REAL = [0.0, 2.0, -1.5]
FAKE = [-1.0, 1.0, 3.0]


def test_discriminator_loss_by_hand():
    # -mean(log D(x)) - mean(log(1 - D(G(z)))) with D = sigmoid(logit)
    expected = -sum(math.log(sigmoid(r)) for r in REAL) / 3 - sum(math.log(1 - sigmoid(f)) for f in FAKE) / 3
    got = minimax_discriminator_loss(torch.tensor(REAL), torch.tensor(FAKE)).item()
    assert got == pytest.approx(expected, rel=1e-6)
    for cls in (MinimaxLoss, NonSaturatingLoss):
        assert cls().discriminator_loss(torch.tensor(REAL), torch.tensor(FAKE)).item() == pytest.approx(expected, rel=1e-6)


def test_generator_losses_by_hand():
    minimax = sum(math.log(1 - sigmoid(f)) for f in FAKE) / 3  # G minimises log(1 - D(G(z)))
    nonsat = -sum(math.log(sigmoid(f)) for f in FAKE) / 3  # G minimises -log D(G(z))
    assert minimax_generator_loss(torch.tensor(FAKE)).item() == pytest.approx(minimax, rel=1e-6)
    assert nonsaturating_generator_loss(torch.tensor(FAKE)).item() == pytest.approx(nonsat, rel=1e-6)
    assert MinimaxLoss().generator_loss(torch.tensor(FAKE)).item() == pytest.approx(minimax, rel=1e-6)
    assert NonSaturatingLoss().generator_loss(torch.tensor(FAKE)).item() == pytest.approx(nonsat, rel=1e-6)


def test_losses_are_stable_for_extreme_logits():
    extreme = torch.tensor([-200.0, 200.0], requires_grad=True)
    for value in (
        minimax_discriminator_loss(extreme, extreme),
        minimax_generator_loss(extreme),
        nonsaturating_generator_loss(extreme),
    ):
        (grad,) = torch.autograd.grad(value, extreme)
        assert torch.isfinite(value) and torch.isfinite(grad).all()
    # A hand check far in the tail: -log sigmoid(-200) = 200 (+ e^-200)
    assert nonsaturating_generator_loss(torch.tensor([-200.0])).item() == pytest.approx(200.0)


@pytest.mark.parametrize("d_of_g", [1e-2, 1e-4, 1e-6])
def test_minimax_saturates_where_nonsaturating_does_not(d_of_g):
    """As D(G(z)) -> 0 the minimax gradient vanishes (|dL/dl| = D(G(z))); NS stays near 1."""
    logit = torch.tensor([math.log(d_of_g / (1 - d_of_g))], requires_grad=True)
    (g_mm,) = torch.autograd.grad(minimax_generator_loss(logit), logit)
    (g_ns,) = torch.autograd.grad(nonsaturating_generator_loss(logit), logit)
    assert abs(g_mm.item()) == pytest.approx(d_of_g, rel=1e-3)
    assert abs(g_ns.item()) == pytest.approx(1 - d_of_g, rel=1e-3)
    assert abs(g_mm.item()) < 0.02 * abs(g_ns.item())


def test_saturation_reaches_the_generator_weights():
    """The same holds through a real generator: a confident D starves minimax G of gradient."""
    from gan_edu.models import build_gan

    torch.manual_seed(0)
    g, _ = build_gan("dcgan", image_shape=(1, 28, 28), g_channels=4, d_channels=4)

    def confident_d(images):  # a D that rejects every fake: logit -12, D(G(z)) ~ 6e-6
        return images.mean(dim=(1, 2, 3)) * 0.01 - 12.0

    z = g.sample_latent(8, generator=torch.Generator().manual_seed(0))
    norms = {}
    for loss in (MinimaxLoss(), NonSaturatingLoss()):
        g.zero_grad()
        loss.generator_loss(confident_d(g(z))).backward()
        norms[loss.name] = torch.cat([p.grad.flatten() for p in g.parameters()]).norm().item()
    assert norms["minimax"] < 1e-3 * norms["non-saturating"]
    assert norms["non-saturating"] > 0


def test_registry():
    assert set(LOSSES) >= {"minimax", "non-saturating"}
    assert isinstance(get_loss("minimax"), MinimaxLoss)
    with pytest.raises(GanEduError, match="loss 'hinge-ish'"):
        get_loss("hinge-ish")
