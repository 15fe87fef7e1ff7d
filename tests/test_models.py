"""Contract tests, run against every entry of the model registry at every documented size."""

from __future__ import annotations

import pytest
import torch

from gan_edu.errors import GanEduError
from gan_edu.losses import NonSaturatingLoss
from gan_edu.models import MODELS, Discriminator, Generator, build_gan
from gan_edu.models.sizes import doublings

CASES = [(name, shape) for name, spec in MODELS.items() for shape in spec.sizes]
IDS = [f"{name}-{shape[0]}x{shape[1]}x{shape[2]}" for name, shape in CASES]


def make(name, shape, seed=0):
    torch.manual_seed(seed)
    spec = MODELS[name]
    return build_gan(name, image_shape=shape, num_classes=10 if spec.conditional else None, **spec.tiny)


def labels_for(g, n):
    return None if g.num_classes is None else torch.arange(n) % g.num_classes


@pytest.mark.parametrize(("name", "shape"), CASES, ids=IDS)
def test_shapes_and_range(name, shape):
    g, d = make(name, shape)
    assert isinstance(g, Generator) and isinstance(d, Discriminator)
    assert g.image_shape == shape == d.image_shape
    z = g.sample_latent(5, generator=torch.Generator().manual_seed(0))
    assert z.shape == (5, g.latent_dim)
    images = g(z, labels_for(g, 5))
    assert images.shape == (5, *shape)
    assert images.min() >= -1 and images.max() <= 1
    logits = d(images, labels_for(g, 5))
    assert logits.shape == (5,)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(("name", "shape"), CASES, ids=IDS)
def test_seeded_sampling_is_deterministic(name, shape):
    g, _ = make(name, shape)
    a = g.sample(6, generator=torch.Generator().manual_seed(7))
    b = g.sample(6, generator=torch.Generator().manual_seed(7))
    c = g.sample(6, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert g.training  # sample() restores the training mode


@pytest.mark.parametrize(("name", "shape"), CASES, ids=IDS)
def test_save_and_load_round_trip(name, shape, tmp_path):
    g, d = make(name, shape)
    for module, base in ((g, Generator), (d, Discriminator)):
        module.save_pretrained(tmp_path / type(module).__name__)
        loaded = base.from_pretrained(tmp_path / type(module).__name__)
        assert type(loaded) is type(module) and loaded.config == module.config
        for k, v in module.state_dict().items():
            assert torch.equal(v, loaded.state_dict()[k]), k
    z = g.sample_latent(3, generator=torch.Generator().manual_seed(1))
    g.eval()
    g2 = Generator.from_pretrained(tmp_path / type(g).__name__).eval()
    assert torch.equal(g(z, labels_for(g, 3)), g2(z, labels_for(g, 3)))


@pytest.mark.parametrize(("name", "shape"), CASES, ids=IDS)
def test_one_training_step_changes_weights_and_stays_finite(name, shape):
    g, d = make(name, shape)
    loss = NonSaturatingLoss()
    opt_g, opt_d = torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)
    before_g = {k: v.clone() for k, v in g.state_dict().items()}
    before_d = {k: v.clone() for k, v in d.state_dict().items()}
    real = torch.rand(4, *shape) * 2 - 1
    y = labels_for(g, 4)
    fake = g(g.sample_latent(4), y)
    loss_d = loss.discriminator_loss(d(real, y), d(fake.detach(), y))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    loss_g = loss.generator_loss(d(g(g.sample_latent(4), y), y))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    for before, module in ((before_g, g), (before_d, d)):
        changed = [k for k, v in module.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
        assert changed, f"{type(module).__name__}: no weight changed"
        assert all(torch.isfinite(v).all() for v in module.state_dict().values() if v.is_floating_point())


def test_dcgan_64_matches_the_pytorch_example_layer_for_layer():
    """Radford et al. at 64x64 with ngf = ndf = 64: the PyTorch example's parameter counts."""
    g, d = build_gan("dcgan", image_shape=(3, 64, 64))
    # G: ConvT(100,512,4) + BN(512) + ConvT(512,256,4) + BN + ConvT(256,128,4) + BN + ConvT(128,64,4) + BN + ConvT(64,3,4)
    g_expected = 100 * 512 * 16 + 2 * 512 + 512 * 256 * 16 + 2 * 256 + 256 * 128 * 16 + 2 * 128 + 128 * 64 * 16 + 2 * 64 + 64 * 3 * 16
    # D: Conv(3,64,4) + Conv(64,128,4) + BN + Conv(128,256,4) + BN + Conv(256,512,4) + BN + Conv(512,1,4)
    d_expected = 3 * 64 * 16 + 64 * 128 * 16 + 2 * 128 + 128 * 256 * 16 + 2 * 256 + 256 * 512 * 16 + 2 * 512 + 512 * 16
    assert g.num_parameters() == g_expected == 3_576_704
    assert d.num_parameters() == d_expected == 2_765_568


def test_init_follows_radford():
    g, _ = build_gan("dcgan", image_shape=(3, 64, 64))
    w = g.main[0].weight
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3


def test_bad_sizes_and_labels_are_clear_errors():
    with pytest.raises(GanEduError, match="image size 30"):
        build_gan("dcgan", image_shape=(3, 30, 30))
    with pytest.raises(GanEduError, match="channels=2"):
        build_gan("dcgan", image_shape=(2, 32, 32))
    with pytest.raises(GanEduError, match="model 'nope'"):
        build_gan("nope")
    with pytest.raises(GanEduError, match="conditional"):
        build_gan("cdcgan", image_shape=(3, 32, 32))
    g, _ = build_gan("cdcgan", image_shape=(3, 32, 32), num_classes=10, g_channels=4, d_channels=4)
    with pytest.raises(GanEduError, match=r"labels in \[0, 10\]"):
        g.sample(2, labels=torch.tensor([0, 10]))
    with pytest.raises(GanEduError, match="n=0"):
        g.sample(0)
    u, _ = build_gan("dcgan", image_shape=(3, 32, 32), g_channels=4, d_channels=4)
    with pytest.raises(GanEduError, match="unconditional"):
        u.sample(2, labels=torch.tensor([0, 1]))


def test_from_pretrained_refuses_another_model(tmp_path):
    g, d = build_gan("dcgan", image_shape=(3, 32, 32), g_channels=4, d_channels=4)
    d.save_pretrained(tmp_path / "d")
    with pytest.raises(GanEduError, match="not a Generator"):
        Generator.from_pretrained(tmp_path / "d")
    g.save_pretrained(tmp_path / "g")
    (tmp_path / "g" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(GanEduError, match="corrupt or truncated"):
        Generator.from_pretrained(tmp_path / "g")
    with pytest.raises(GanEduError, match="no such file"):
        Generator.from_pretrained(tmp_path / "missing")


def test_doublings():
    assert doublings(64) == (4, 4) and doublings(32) == (4, 3) and doublings(28) == (7, 2)
    with pytest.raises(GanEduError, match="image size 100"):
        doublings(100)


def test_bank_routes_each_label_to_its_member_and_round_trips(tmp_path):
    from gan_edu.models import GeneratorBank

    torch.manual_seed(0)
    members = [build_gan("dcgan", image_shape=(1, 28, 28), g_channels=4)[0].eval() for _ in range(3)]
    bank = GeneratorBank.from_members(members, ["a", "b", "c"]).eval()
    z = torch.randn(6, 100)
    labels = torch.tensor([2, 0, 1, 1, 0, 2])
    out = bank(z, labels)
    for i, k in enumerate(labels.tolist()):
        assert torch.allclose(out[i], members[k](z[i : i + 1])[0], atol=1e-6)
    bank.save_pretrained(tmp_path / "bank")
    loaded = Generator.from_pretrained(tmp_path / "bank").eval()
    assert isinstance(loaded, GeneratorBank) and loaded.config.class_names == ("a", "b", "c")
    assert torch.equal(loaded(z, labels), out)
    with pytest.raises(GanEduError, match="labels in"):
        bank.sample(2, labels=torch.tensor([0, 3]))
