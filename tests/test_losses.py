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


# -- hinge, Wasserstein, least squares: values by hand -----------------------------------------
def test_hinge_by_hand():
    from gan_edu.losses import HingeLoss

    # D: mean(max(0, 1 - r)) + mean(max(0, 1 + f)); G: -mean(f)
    d_expected = sum(max(0.0, 1 - r) for r in REAL) / 3 + sum(max(0.0, 1 + f) for f in FAKE) / 3
    assert d_expected == pytest.approx((1 + 0 + 2.5) / 3 + (0 + 2 + 4) / 3)
    loss = HingeLoss()
    assert loss.discriminator_loss(torch.tensor(REAL), torch.tensor(FAKE)).item() == pytest.approx(d_expected, rel=1e-6)
    assert loss.generator_loss(torch.tensor(FAKE)).item() == pytest.approx(-sum(FAKE) / 3, rel=1e-6)


def test_wasserstein_by_hand():
    from gan_edu.losses import WGANGPLoss

    loss = WGANGPLoss()
    assert loss.d_steps == 5
    # critic: mean(f) - mean(r) = 1 - 1/6
    assert loss.discriminator_loss(torch.tensor(REAL), torch.tensor(FAKE)).item() == pytest.approx(sum(FAKE) / 3 - sum(REAL) / 3, rel=1e-6)
    assert loss.generator_loss(torch.tensor(FAKE)).item() == pytest.approx(-1.0, rel=1e-6)


def test_least_squares_by_hand():
    from gan_edu.losses import LeastSquaresLoss

    d_expected = 0.5 * sum((r - 1) ** 2 for r in REAL) / 3 + 0.5 * sum(f**2 for f in FAKE) / 3
    g_expected = 0.5 * sum((f - 1) ** 2 for f in FAKE) / 3
    assert d_expected == pytest.approx(0.5 * (1 + 1 + 6.25) / 3 + 0.5 * (1 + 1 + 9) / 3)
    loss = LeastSquaresLoss()
    assert loss.discriminator_loss(torch.tensor(REAL), torch.tensor(FAKE)).item() == pytest.approx(d_expected, rel=1e-6)
    assert loss.generator_loss(torch.tensor(FAKE)).item() == pytest.approx(g_expected, rel=1e-6)


# -- gradient penalty and R1 against references written here -------------------------------------
class QuadraticD(torch.nn.Module):
    """D(x) = a * sum(x^2) / 2: its input gradient is a * x, so every norm is known by hand."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(a))

    def forward(self, x, labels=None):
        return self.a * x.pow(2).flatten(1).sum(1) / 2


class SmallCritic(torch.nn.Module):
    """A conv and a linear layer, no batch norm: per-image gradients are independent."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, 2, 1)
        self.fc = torch.nn.Linear(4 * 4 * 4, 1)

    def forward(self, x, labels=None):
        return self.fc(torch.nn.functional.leaky_relu(self.conv(x), 0.2).flatten(1)).flatten()


def small_critic():
    return SmallCritic()


def weight_grads(value, module):
    """d value / d weights, zeros for weights it does not depend on (the last bias)."""
    grads = torch.autograd.grad(value, list(module.parameters()), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, module.parameters())]


def test_gradient_penalty_by_hand_on_a_quadratic_critic():
    from gan_edu.losses import gradient_penalty

    real = torch.ones(2, 1, 2, 2)  # ||x|| = 2
    fake = torch.zeros(2, 1, 2, 2)
    eps = torch.tensor([0.25, 1.0])  # x_hat = eps * real: norms 0.5 and 2
    d = QuadraticD(3.0)  # grad = 3 x_hat: norms 1.5 and 6
    expected = ((1.5 - 1) ** 2 + (6 - 1) ** 2) / 2
    gp = gradient_penalty(d, real, fake, eps=eps)
    assert gp.item() == pytest.approx(expected, rel=1e-6)
    # and through to D's weight: d/da mean((a ||x_hat|| - 1)^2) = mean(2 (a n - 1) n)
    (grad_a,) = torch.autograd.grad(gp, d.a)
    assert grad_a.item() == pytest.approx((2 * (1.5 - 1) * 0.5 + 2 * (6 - 1) * 2) / 2, rel=1e-6)


def test_gradient_penalty_matches_a_per_image_autograd_reference():
    from gan_edu.losses import gradient_penalty

    d = small_critic()
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(5, 3, 8, 8, generator=g), torch.randn(5, 3, 8, 8, generator=g)
    eps = torch.rand(5, generator=g)
    # reference: one image at a time, its own gradient, its own norm
    terms = []
    for i in range(5):
        x = (eps[i] * real[i : i + 1] + (1 - eps[i]) * fake[i : i + 1]).requires_grad_(True)
        (gx,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
        terms.append((gx.pow(2).sum().sqrt() - 1) ** 2)
    reference = torch.stack(terms).mean()
    gp = gradient_penalty(d, real, fake, eps=eps)
    assert gp.item() == pytest.approx(reference.item(), rel=1e-5)
    for a, b in zip(weight_grads(gp, d), weight_grads(reference, d)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)


def test_r1_by_hand_and_against_a_per_image_reference():
    from gan_edu.losses import NonSaturatingLoss, r1_penalty

    real = torch.ones(2, 1, 2, 2)
    real[1] *= 2  # norms 2 and 4
    d = QuadraticD(0.5)  # grad = 0.5 x: squared norms 1 and 4
    assert r1_penalty(d, real).item() == pytest.approx((1 + 4) / 2, rel=1e-6)
    # the loss option: gamma / 2 * that
    loss = NonSaturatingLoss(r1=3.0)
    assert loss.penalty(d, real, real * 0, None).item() == pytest.approx(1.5 * 2.5, rel=1e-6)
    assert NonSaturatingLoss().penalty(d, real, real, None) is None

    critic = small_critic()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    terms = []
    for i in range(4):
        xi = x[i : i + 1].clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(critic(xi).sum(), xi, create_graph=True)
        terms.append(gx.pow(2).sum())
    reference = torch.stack(terms).mean()
    r1 = r1_penalty(critic, x)
    assert r1.item() == pytest.approx(reference.item(), rel=1e-5)
    for a, b in zip(weight_grads(r1, critic), weight_grads(reference, critic)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)


def test_wgan_gp_penalty_adds_gp_and_r1():
    from gan_edu.losses import WGANGPLoss, gradient_penalty, r1_penalty

    d = small_critic()
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(3, 3, 8, 8, generator=g), torch.randn(3, 3, 8, 8, generator=g)
    torch.manual_seed(9)
    plain = WGANGPLoss(gp_weight=4.0).penalty(d, real, fake, None)
    torch.manual_seed(9)
    eps = torch.rand(3)  # the draw the loss made
    assert plain.item() == pytest.approx(4.0 * gradient_penalty(d, real, fake, eps=eps).item(), rel=1e-5)
    torch.manual_seed(9)
    both = WGANGPLoss(gp_weight=4.0, r1=2.0).penalty(d, real, fake, None)
    assert both.item() == pytest.approx(plain.item() + r1_penalty(d, real).item(), rel=1e-5)


@pytest.mark.parametrize("name", ["minimax", "non-saturating", "hinge", "wgan-gp", "least-squares"])
def test_every_loss_rebuilds_from_its_name_and_options(name):
    for options in ({}, {"r1": 0.5}):
        loss = get_loss(name, **options)
        assert loss.name == name and loss.r1 == options.get("r1", 0.0)
        again = get_loss(loss.name, **loss.options())
        assert type(again) is type(loss) and again.options() == loss.options()
    assert get_loss("wgan-gp", gp_weight=5.0).options() == {"gp_weight": 5.0}
    with pytest.raises(GanEduError, match="r1=-1"):
        get_loss(name, r1=-1)
    with pytest.raises(GanEduError, match="not options of"):
        get_loss(name, margin=2)


def test_wgan_gp_training_resumes_exactly(tiny_shapes, tmp_path):
    """The penalty's random mixing weights come from torch's RNG, which checkpoints restore."""
    from gan_edu.training import GANTrainerConfig
    from gan_edu.training.runs import new_gan_run, resume_gan_run

    def cfg(**kw):
        return GANTrainerConfig(**{"epochs": 1, "batch_size": 16, "progress": False, "seed": 2, "d_steps": 2, **kw})

    tiny = {"g_channels": 4, "d_channels": 4}
    straight = new_gan_run("dcgan", tiny_shapes, loss=get_loss("wgan-gp", r1=1.0), config=cfg(), out_dir=tmp_path / "a", **tiny)
    straight.fit(tiny_shapes)
    first = new_gan_run("dcgan", tiny_shapes, loss=get_loss("wgan-gp", r1=1.0), config=cfg(max_steps=1), out_dir=tmp_path / "b", **tiny)
    first.fit(tiny_shapes)
    torch.manual_seed(77)
    resumed, data = resume_gan_run(tmp_path / "b", max_steps=None)
    assert resumed.loss.options() == {"r1": 1.0} and resumed.d_steps == 2 and resumed.step == 1
    resumed.fit(data)
    for name, module in straight.modules().items():
        for k, v in module.state_dict().items():
            assert torch.equal(v, resumed.modules()[name].state_dict()[k]), f"{name}.{k}"
    assert any("d_penalty" in r for r in straight.history)


# -- lazy regularisation: the penalty on every N-th step, weighted by N ----------------------------------
def test_a_lazy_penalty_is_computed_on_every_nth_step_of_a_run(tiny_shapes):
    """penalty_every=3 over 7 steps of a real run: the penalty is computed at steps 0, 3 and 6 only."""
    from gan_edu.models import build_gan
    from gan_edu.training import GANTrainer, GANTrainerConfig

    at: list[int] = []

    class CountingR1(NonSaturatingLoss):
        def penalty(self, discriminator, real, fake, labels):
            at.append(trainer.step)
            return super().penalty(discriminator, real, fake, labels)

    torch.manual_seed(0)
    g, d = build_gan("cdcgan", image_shape=(3, 32, 32), num_classes=10, g_channels=4, d_channels=4, embed_dim=4)
    config = GANTrainerConfig(epochs=1, max_steps=7, batch_size=8, device="cpu", progress=False, log_every=1, penalty_every=3)
    trainer = GANTrainer(g, d, CountingR1(r1=1.0), config)
    trainer.fit(tiny_shapes)
    assert trainer.step == 7 and at == [0, 3, 6]


def test_a_lazy_penalty_weights_the_penalty_by_n():
    """The step's objective is loss_d + N * penalty (R1 of a quadratic D, known by hand)."""
    from types import SimpleNamespace

    from gan_edu.training.gan_trainer import GANTrainer

    seen = []
    stub = SimpleNamespace(step=0, config=SimpleNamespace(penalty_every=4), loss=NonSaturatingLoss(r1=3.0), discriminator=QuadraticD(0.5),
                           optimize=lambda total, opt: seen.append(float(total.detach())), opt_d=None)
    real = torch.ones(2, 1, 2, 2)
    real[1] *= 2  # R1 = (1 + 4) / 2, weighted gamma / 2 = 1.5: 3.75
    loss_d = torch.tensor(0.25)
    out = GANTrainer.update_discriminator(stub, loss_d, real, real * 0, None, real_logits=torch.zeros(2), fake_logits=torch.zeros(2))
    assert seen == [pytest.approx(0.25 + 4 * 3.75)]
    assert float(out["d_penalty"]) == pytest.approx(3.75)  # logged unweighted
    stub.step = 1
    out = GANTrainer.update_discriminator(stub, loss_d, real, real * 0, None, real_logits=torch.zeros(2), fake_logits=torch.zeros(2))
    assert seen[-1] == pytest.approx(0.25) and "d_penalty" not in out


# -- the benchmark of the penalty's cost per step ----------------------------------------------------
@pytest.mark.slow  # the benchmark script, in a subprocess
def test_penalty_cost_benchmark_times_three_settings_and_counts_their_penalty_steps():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "penalty_cost.py"
    out = subprocess.run(
        [sys.executable, str(script), "--num-images", "64", "--width", "4", "--batch-size", "8", "--steps", "8", "--warmup", "2", "--repeats", "1"],
        capture_output=True, text=True, timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split("  ") for line in out.stdout.splitlines() if line.startswith("  ")]
    names = [r[1].strip() for r in rows]
    assert names == ["no penalty", "R1 every 4", "R1 every step"], out.stdout
    assert "(1.00x no penalty)" in rows[0]
    counts = [line.split("penalty on ")[1].split(" of")[0] for line in out.stdout.splitlines() if line.startswith("  ")]
    assert counts == ["0", "2", "8"], out.stdout  # the lazy setting's penalty ran on every 4th of 8 steps
    assert "median of 1 x 8 steps" in out.stdout and "channels-last True" in out.stdout


@pytest.mark.slow  # the benchmark script, in a subprocess
def test_penalty_cost_benchmark_times_d_alone_in_both_layouts():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "penalty_cost.py"
    out = subprocess.run(
        [sys.executable, str(script), "--num-images", "64", "--width", "4", "--batch-size", "8", "--steps", "2", "--warmup", "1", "--d-alone"],
        capture_output=True, text=True, timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("  ")]
    assert [(r[0], " ".join(r[1:-2])) for r in rows] == [
        (layout, name) for layout in ("channels-last", "NCHW") for name in ("plain step", "R1 term", "both, one forward")
    ], out.stdout
    assert all(float(r[-2]) > 0 and r[-1] == "ms" for r in rows)
