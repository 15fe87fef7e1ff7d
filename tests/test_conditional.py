"""The class-conditional recipe: conditional batch norm, the SN projection D, AC-GAN, snapshots, precision/recall."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_edu.data import load_dataset
from gan_edu.errors import GanEduError
from gan_edu.metrics import per_class_precision_recall, precision_recall
from gan_edu.models import (
    CBNGenerator,
    ConditionalBatchNorm2d,
    DCGANConfig,
    MinibatchStd,
    SNProjectionDiscriminator,
    build_gan,
)
from gan_edu.training import (
    ACGANTrainer,
    ACGANTrainerConfig,
    GANTrainer,
    GANTrainerConfig,
    ModeSeekingTrainer,
    ModeSeekingTrainerConfig,
    mode_seeking_term,
)
from gan_edu.training.pictures import snapshot_dirs
from gan_edu.training.runs import new_gan_run, resume_gan_run


def tiny_config(**kw) -> DCGANConfig:
    return DCGANConfig(**{"image_shape": (1, 28, 28), "g_channels": 4, "d_channels": 4, "embed_dim": 4, "num_classes": 3, **kw})


# -- conditional batch norm ------------------------------------------------------------------------
def test_conditional_batch_norm_starts_as_plain_batch_norm_and_learns_one_gain_and_bias_per_class():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(5, num_classes=3)
    x, y = torch.randn(6, 5, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    plain = F.batch_norm(x, None, None, training=True)
    assert torch.allclose(cbn(x, y), plain * cbn.gain(y)[:, :, None, None], atol=1e-6)  # bias starts at 0
    assert (cbn.gain.weight - 1).abs().max() < 0.1 and cbn.bias.weight.abs().max() == 0
    with torch.no_grad():
        cbn.gain.weight[1] = 2.0
        cbn.bias.weight[1] = -3.0
    out = cbn(x, y)
    ones = y == 1
    assert torch.allclose(out[ones], 2.0 * plain[ones] - 3.0, atol=1e-5)  # class 1's own gain and bias
    assert not torch.allclose(out[~ones], 2.0 * plain[~ones] - 3.0, atol=1e-2)  # the others keep theirs
    cbn.zero_grad()
    cbn(x[:2], torch.tensor([0, 0])).square().sum().backward()
    assert cbn.gain.weight.grad[1:].abs().sum() == 0 and cbn.gain.weight.grad[0].abs().sum() > 0  # only the used class learns


def test_cbn_generator_acts_through_every_norm_even_without_the_input_embedding():
    torch.manual_seed(0)
    g = CBNGenerator(tiny_config(class_input=False))
    assert not hasattr(g, "embed") and len(g.norms) == 2  # 28x28: two hidden layers, two conditional norms
    assert not any(isinstance(m, nn.BatchNorm2d) and m.affine for m in g.modules())  # no shared scale and shift left
    z = torch.randn(4, g.latent_dim)
    same_z = z[:1].repeat(3, 1)
    g.eval()
    with torch.no_grad():
        for norm in g.norms:  # give each class its own gain so the norms carry the class
            norm.gain.weight.copy_(torch.linspace(0.5, 1.5, 3)[:, None].expand_as(norm.gain.weight))
        images = g(same_z, torch.tensor([0, 1, 2]))
    assert images.shape == (3, 1, 28, 28) and images.abs().max() <= 1
    assert (images[0] - images[1]).abs().max() > 1e-3 and (images[1] - images[2]).abs().max() > 1e-3  # the class alone changes the image


def test_cbn_generator_refuses_an_unconditional_config():
    with pytest.raises(GanEduError, match="num_classes=None: expected a conditional model"):
        CBNGenerator(tiny_config(num_classes=None))


# -- the SN projection discriminator ------------------------------------------------------------------
def test_sn_projection_discriminator_is_built_as_sngan_builds_it():
    from torch.nn.utils import parametrize

    d = SNProjectionDiscriminator(tiny_config())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules())  # no batch norm
    weights = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    assert weights and all(parametrize.is_parametrized(m, "weight") for m in weights)  # SN on every weight layer
    slopes = {m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.1}
    convs = [m for m in d.features if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3), (4, 4), (3, 3), (4, 4), (3, 3)]  # 3x3 then 4x4/2 per stage, a last 3x3
    mirror = SNProjectionDiscriminator(tiny_config(d_convs_per_stage=0))
    assert [m.kernel_size for m in mirror.features if isinstance(m, nn.Conv2d)] == [(4, 4), (4, 4)]


def test_sn_projection_discriminator_layers_have_unit_spectral_norm_after_power_iterations():
    torch.manual_seed(0)
    d = SNProjectionDiscriminator(tiny_config())
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 3, (8,))
    for _ in range(30):  # each training forward runs one power iteration
        d(x, y)
    d.eval()
    for m in d.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
            assert abs(float(sigma) - 1.0) < 0.05, (m, float(sigma))


def test_projection_head_adds_the_inner_product_of_the_class_embedding_and_the_features():
    torch.manual_seed(0)
    d = SNProjectionDiscriminator(tiny_config(aux_head=True)).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        l0, classes = d(x, torch.tensor([0, 0]), with_classes=True)
        l2 = d(x, torch.tensor([2, 2]))
        phi = d.features(x).sum(dim=(2, 3))  # (N, F)
        expected = ((d.embed.weight[2] - d.embed.weight[0]) * phi).sum(1)
    assert classes.shape == (2, 3)
    assert torch.allclose(l2 - l0, expected, atol=1e-5)


@pytest.mark.parametrize("model", ["cdcgan", "cbn-snproj"])
def test_class_logits_need_the_aux_head(model):
    _, d = build_gan(model, image_shape=(1, 28, 28), num_classes=3, g_channels=4, d_channels=4)
    with pytest.raises(GanEduError, match="without aux_head: expected aux_head=True"):
        d(torch.randn(2, 1, 28, 28), torch.tensor([0, 1]), with_classes=True)
    with pytest.raises(GanEduError, match="aux_head=True with num_classes=None"):
        tiny_config(aux_head=True, num_classes=None)


# -- AC-GAN -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shapes():
    return load_dataset("shapes", "train", n=96, channels=1)


def test_acgan_objectives_add_the_weighted_class_cross_entropy(shapes):
    torch.manual_seed(0)
    cfg = ACGANTrainerConfig(epochs=1, batch_size=32, ac_weight=0.7, progress=False, ema=False)
    trainer = new_gan_run("cdcgan", shapes, config=cfg, trainer_class="ACGANTrainer", g_channels=4, d_channels=4)
    d = trainer.discriminator
    assert d.config.aux_head  # the trainer asked for the head
    real = torch.rand(32, 1, 32, 32) * 2 - 1
    labels = torch.randint(0, 10, (32,))
    fake = trainer.fake_batch(32, labels).detach()
    real_logits, fake_logits = trainer.discriminate((real, labels), (fake, labels))
    real_classes, fake_classes = trainer.class_logits
    got = trainer.discriminator_objective(real_logits, fake_logits, real=real, fake=fake, labels=labels)
    base = trainer.loss.discriminator_loss(real_logits, fake_logits)
    expected = base + 0.7 * (F.cross_entropy(real_classes, labels) + F.cross_entropy(fake_classes, labels))
    assert torch.allclose(got, expected) and float(got - base) > 0.1
    (fake_logits,) = trainer.discriminate((fake, labels))
    got_g = trainer.generator_objective(fake_logits, fake=fake, labels=labels)
    (fake_classes,) = trainer.class_logits
    assert torch.allclose(got_g, trainer.loss.generator_loss(fake_logits) + 0.7 * F.cross_entropy(fake_classes, labels))


def test_acgan_trains_the_class_head_and_logs_its_terms(shapes, tmp_path):
    torch.manual_seed(0)
    cfg = ACGANTrainerConfig(epochs=2, batch_size=32, progress=False)
    trainer = new_gan_run("cbn-snproj", shapes, loss="hinge", config=cfg, trainer_class="ACGANTrainer", out_dir=tmp_path / "run", g_channels=4, d_channels=4)
    head_before = trainer.discriminator.classes.parametrizations.weight.original.detach().clone()
    trainer.fit(shapes)
    steps = [r for r in trainer.history if r["kind"] == "step"] or trainer.history
    assert all("d_class" in r and "g_class" in r for r in steps)
    assert not torch.equal(head_before, trainer.discriminator.classes.parametrizations.weight.original)
    resumed, _ = resume_gan_run(tmp_path / "run", epochs=3)  # the run records its trainer; D is rebuilt with its head
    assert type(resumed) is ACGANTrainer and resumed.discriminator.config.aux_head
    resumed.fit(shapes)
    assert resumed.epoch == 3


def test_acgan_refuses_a_discriminator_without_a_class_head(shapes):
    g, d = build_gan("cdcgan", image_shape=(1, 32, 32), num_classes=10, g_channels=4, d_channels=4)
    with pytest.raises(GanEduError, match="no class head: ACGANTrainer expects a conditional discriminator built with aux_head=True"):
        ACGANTrainer(g, d)
    with pytest.raises(GanEduError, match="ac_weight=-1.0: expected a number >= 0"):
        ACGANTrainerConfig(ac_weight=-1.0)


@pytest.mark.parametrize("config", [ACGANTrainerConfig(batch_size=32, ac_weight=0.0, progress=False),
                                    ModeSeekingTrainerConfig(batch_size=32, mode_seeking_weight=0.0, progress=False)], ids=["acgan", "mode-seeking"])
def test_a_zero_weight_leaves_the_plain_objectives(shapes, config):
    trainer_class = {ACGANTrainerConfig: "ACGANTrainer", ModeSeekingTrainerConfig: "ModeSeekingTrainer"}[type(config)]
    torch.manual_seed(0)
    variant = new_gan_run("cdcgan", shapes, config=config, trainer_class=trainer_class, g_channels=4, d_channels=4)
    torch.manual_seed(0)  # the same weights; AC-GAN's D has its class head, unused by the plain objectives
    plain = new_gan_run("cdcgan", shapes, config=GANTrainerConfig(batch_size=32, progress=False), trainer_class=GANTrainer, g_channels=4, d_channels=4,
                        aux_head=variant.discriminator.config.aux_head)
    batch = (shapes.images[:32].float() / 127.5 - 1, shapes.labels[:32])
    a, p = variant.train_step(batch), plain.train_step(batch)  # the same noise (the mode-seeking trainer keeps what G used)
    assert abs(float(a["d_loss"]) - float(p["d_loss"])) < 1e-5 and abs(float(a["g_loss"]) - float(p["g_loss"])) < 1e-5


# -- the mode-seeking term (MSGAN) ------------------------------------------------------------------------
def test_mode_seeking_term_pairs_images_of_one_class_by_hand():
    z = torch.tensor([[0.0, 0.0], [2.0, 2.0], [1.0, 0.0], [0.0, 0.0], [5.0, 5.0]])  # (5, 2)
    x = torch.tensor([4.0, 1.0, 0.0, 3.0, 7.0]).view(5, 1, 1, 1)
    labels = torch.tensor([1, 1, 0, 1, 2])  # sorted: 2 (class 0); 0, 1, 3 (class 1); 4 (class 2)
    # pairs of neighbours of one class: (0, 1): |4-1| / 2 = 1.5, (1, 3): |1-3| / 2 = 1; class 0 and 2 have one image each
    assert float(mode_seeking_term(x, z, labels)) == pytest.approx(1 / (1.25 + 1e-5), rel=1e-6)
    # unconditional: image i with image i + 2 (the fifth has no partner): |4-0| / 0.5 = 8, |1-3| / 2 = 1
    assert float(mode_seeking_term(x, z, None)) == pytest.approx(1 / (4.5 + 1e-5), rel=1e-6)
    lonely = mode_seeking_term(x[:3], z[:3], torch.tensor([0, 1, 2]))  # no two of one class: a constant, no pairs
    assert float(lonely) == pytest.approx(1e5)
    # its gradient pushes two images of one class apart
    pair = torch.tensor([0.0, 0.1]).view(2, 1, 1, 1).requires_grad_(True)
    mode_seeking_term(pair, torch.tensor([[0.0], [1.0]]), torch.tensor([4, 4])).backward()
    assert float(pair.grad[0]) > 0 > float(pair.grad[1])  # descending moves image 0 down and image 1 up


def test_mode_seeking_trainer_adds_the_weighted_term_and_logs_it(shapes, tmp_path):
    torch.manual_seed(0)
    cfg = ModeSeekingTrainerConfig(epochs=1, batch_size=32, mode_seeking_weight=0.5, progress=False, ema=False)
    trainer = new_gan_run("cdcgan", shapes, config=cfg, trainer_class="ModeSeekingTrainer", out_dir=tmp_path / "run", g_channels=4, d_channels=4)
    labels = torch.randint(0, 10, (32,))
    fake = trainer.fake_batch(32, labels)
    assert trainer.latents.shape == (32, trainer.generator.latent_dim)
    (fake_logits,) = trainer.discriminate((fake, labels))
    terms = trainer.generator_objective(fake_logits, fake=fake, labels=labels)
    assert torch.allclose(terms["g_loss"], trainer.loss.generator_loss(fake_logits))
    assert torch.allclose(terms["g_mode_seeking"], 0.5 * mode_seeking_term(fake, trainer.latents, labels))
    trainer.fit(shapes)
    steps = [r for r in trainer.history if r["kind"] == "step"] or trainer.history
    assert all(r["g_mode_seeking"] > 0 for r in steps)
    resumed, _ = resume_gan_run(tmp_path / "run", epochs=2)  # the run records its trainer and weight
    assert type(resumed) is ModeSeekingTrainer and resumed.config.mode_seeking_weight == 0.5
    with pytest.raises(GanEduError, match="mode_seeking_weight=-1.0: expected a number >= 0"):
        ModeSeekingTrainerConfig(mode_seeking_weight=-1.0)


# -- snapshots of G ---------------------------------------------------------------------------------------
def test_snapshots_keep_the_sampling_generator_of_the_last_epochs(shapes, tmp_path):
    cfg = GANTrainerConfig(epochs=4, batch_size=32, snapshots=2, progress=False)
    trainer = new_gan_run("cdcgan", shapes, config=cfg, out_dir=tmp_path / "run", g_channels=4, d_channels=4)
    trainer.fit(shapes)
    assert [p.name for p in snapshot_dirs(tmp_path / "run")] == ["epoch_0002", "epoch_0003"]  # epoch 4's G is generator/


def test_snapshot_ensemble_pool_draws_equal_shares_from_every_member(tmp_path, shapes):
    from gan_edu.export import export_generator
    from gan_edu.export.runtime import OnnxGenerator
    from gan_edu.synthetic import sample_ensemble_pool, sample_pool

    members = []
    for seed in range(2):
        torch.manual_seed(seed)
        g, _ = build_gan("cdcgan", image_shape=(1, 32, 32), num_classes=10, g_channels=4, d_channels=4)
        members.append(OnnxGenerator(export_generator(g, tmp_path / f"g{seed}.onnx")))
    pool = sample_ensemble_pool(members, 41, seed=5)
    assert len(pool) == 41 and np.bincount(pool.labels.numpy(), minlength=10).max() <= 6
    own = [sample_pool(m, k, seed=5 + i) for i, (m, k) in enumerate(zip(members, (21, 20)))]
    rows = {bytes(x.numpy()) for x in pool.images}
    for i, part in enumerate(own):  # every image of each member's share is in the pool
        assert {bytes(x.numpy()) for x in part.images} <= rows, i
    assert len(rows) == 41 and torch.unique(torch.cat([own[0].images[:1], own[1].images[:1]]), dim=0).shape[0] == 2


def test_snapshot_ensemble_needs_a_pool():
    from gan_edu.pipeline import PipelineConfig

    with pytest.raises(GanEduError, match="snapshot ensemble feeds a fixed pool"):
        PipelineConfig.from_dict({"synthetic": "stream", "gan": {"snapshots": 2}})


# -- precision and recall -----------------------------------------------------------------------------------
def two_modes_per_class(rng, n_per_mode: int, classes: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features: every class two well-apart Gaussian modes; returns features, labels, mode index."""
    feats, labels, modes = [], [], []
    for c in range(classes):
        for m in range(2):
            centre = np.zeros(8)
            centre[c] = 20.0
            centre[3 + m] = 20.0
            noise = np.zeros((n_per_mode, 8))
            noise[:, 6:] = rng.normal(size=(n_per_mode, 2))  # each mode a 2-D blob: its k-NN balls cover it well
            feats.append(centre + noise)
            labels += [c] * n_per_mode
            modes += [m] * n_per_mode
    return np.concatenate(feats), np.array(labels), np.array(modes)


def test_a_generator_of_half_of_each_class_has_recall_one_half_and_precision_one():
    rng = np.random.default_rng(0)
    real, y, mode = two_modes_per_class(rng, 200)
    fresh, y2, mode2 = two_modes_per_class(rng, 400)  # new real draws; the "generator" returns one mode of each class
    fake, y_fake = fresh[mode2 == 0], y2[mode2 == 0]  # as many as the real set, as the metric wants
    pr = precision_recall(real, fake)
    assert pr["precision"] > 0.95 and 0.45 < pr["recall"] < 0.55
    for row in per_class_precision_recall(real, y, fake, y_fake, 3):
        assert row["precision"] > 0.93 and 0.4 < row["recall"] < 0.6
    full = precision_recall(real, fresh[::2])  # the whole distribution: both near 1
    assert full["precision"] > 0.93 and full["recall"] > 0.93
    off = precision_recall(real, fake + 50.0)  # far from every real image: neither
    assert off["precision"] == 0.0 and off["recall"] == 0.0


def test_per_class_precision_recall_says_none_for_a_class_too_small_to_measure():
    rng = np.random.default_rng(1)
    real, y, _ = two_modes_per_class(rng, 20)
    rows = per_class_precision_recall(real, y, real[:2], y[:2], 3)
    assert rows[0] == {"precision": None, "recall": None} and rows[1]["precision"] is None


# -- the pipeline: both recipes, precision / recall, the ensemble ----------------------------------------
@pytest.mark.slow
def test_pipeline_reports_both_recipes_precision_recall_and_samples_from_the_snapshot_ensemble(tmp_path):
    import json

    from gan_edu.pipeline import PipelineConfig, run_pipeline
    from gan_edu.pipeline_config import REFERENCE_RECIPE

    assert (REFERENCE_RECIPE.schedule, REFERENCE_RECIPE.label_smoothing, REFERENCE_RECIPE.crop_padding, REFERENCE_RECIPE.optimizer) == ("constant", 0.0, 0, "adam")
    cfg = PipelineConfig.from_dict({
        "dataset": "shapes", "num_images": 700, "channels": 1, "model": "cbn-snproj", "trainer": "ACGANTrainer", "loss": "hinge",
        "d_convs_per_stage": 0, "g_channels": 4, "d_channels": 4,
        "gan": {"epochs": 3, "batch_size": 50, "snapshots": 2, "beta1": 0.0, "beta2": 0.9},
        "synthetic_images": 300, "classifier_model": "vgg", "classifier_width": 4, "classifier": {"epochs": 1, "batch_size": 50},
        "reference_epochs": 1, "progress": False, "eval_split": "validation", "validation_images": 200,
    })
    report = run_pipeline(cfg, tmp_path / "exp", log=lambda line: None)
    saved = json.loads((tmp_path / "exp" / "report.json").read_text())
    assert saved["reference"]["classifier"] == "Ref000Classifier" and saved["ran"]["c_prime_reference"]["steps"] > 0
    assert saved["reference"]["recipe"]["schedule"] == "constant" and len(saved["reference"]["per_class"]) == 10
    assert 0 <= saved["precision"] <= 1 and 0 <= saved["recall"] <= 1 and "recall" in saved["per_class"][0]
    assert sorted(p.name for p in (tmp_path / "exp" / "snapshots").glob("epoch_*.onnx")) == ["epoch_0001.onnx", "epoch_0002.onnx"]
    md = (tmp_path / "exp" / "report.md").read_text()
    assert "c', reference recipe" in md and "| recall:" in md and "c' (reference recipe)" in md
    assert saved["styles_dropped"] == sum(row["styles_dropped"] or 0 for row in saved["per_class"]) and "dropped styles (their share of real)" in md
    assert report["reference"]["c_prime_accuracy"] == saved["reference"]["c_prime_accuracy"]


# -- the minibatch standard deviation channel --------------------------------------------------------------
def test_minibatch_std_appends_each_groups_spread_to_its_own_images():
    h = torch.zeros(4, 2, 3, 3)  # groups of 2: images 0 and 2 (group 0), 1 and 3 (group 1)
    h[2] = 2.0  # group 0: values 0 and 2 everywhere, population std 1
    h[1] = h[3] = 5.0  # group 1: the same image twice, no spread
    out = MinibatchStd(2)(h)
    assert out.shape == (4, 3, 3, 3) and torch.equal(out[:, :2], h)
    assert torch.allclose(out[[0, 2], 2], torch.ones(2, 3, 3), atol=1e-6)
    assert out[[1, 3], 2].abs().max() < 1e-3
    odd = MinibatchStd(4)(torch.arange(6.0).reshape(6, 1, 1, 1))  # 6 images do not split into 4s: one group
    assert torch.allclose(odd[:, 1], torch.full((6, 1, 1), torch.arange(6.0).std(correction=0).item()))


def test_dcgan_d_with_minibatch_std_learns_from_the_spread_and_other_ds_refuse_it():
    torch.manual_seed(0)
    d = build_gan("cdcgan", image_shape=(1, 28, 28), num_classes=3, g_channels=4, d_channels=4, minibatch_std=4)[1]
    assert d.head.in_channels == 8 + 1 and isinstance(d.minibatch_std, MinibatchStd)
    x, y = torch.randn(8, 1, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    d(x, y).sum().backward()
    assert d.head.weight.grad[:, -1].abs().sum() > 0  # the spread channel reaches the logit
    same = x[:1].expand(8, -1, -1, -1)
    with torch.no_grad():
        d.eval()
        d.head.weight[:, -1] = 10.0  # make the channel count: a varied batch and a repeated one now differ
        assert not torch.allclose(d(x, y)[0], d(torch.cat([x[:1], same[1:]]), y)[0])
    assert build_gan("cdcgan", image_shape=(1, 28, 28), num_classes=3, g_channels=4, d_channels=4)[1].minibatch_std is None
    with pytest.raises(GanEduError, match="minibatch_std=4 with SNProjectionDiscriminator: expected 0"):
        build_gan("cdcgan-snproj", image_shape=(1, 28, 28), num_classes=3, minibatch_std=4)
    for bad in (1, -2, 2.5, True):
        with pytest.raises(GanEduError, match=r"minibatch_std=.*: expected 0 \(off\) or a group size in \[2, 1024\]"):
            tiny_config(minibatch_std=bad)


# -- the benchmark of G's cost per step ------------------------------------------------------------------
@pytest.mark.slow  # the benchmark script, in a subprocess
def test_generator_step_benchmark_times_each_model_and_prints_its_ratio():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "generator_step.py"
    out = subprocess.run(
        [sys.executable, str(script), "--shape", "1,16,16", "--width", "4", "--batch-size", "4", "--steps", "2", "--repeats", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.startswith("  ")}
    assert sorted(rows) == ["cdcgan", "cdcgan-cbn"] and rows["cdcgan"][3] == "(1.00x"
    assert all(float(r[1]) > 0 and len(r[-2:]) == 2 for r in rows.values())  # ms, and both rounds listed
    assert "channels-last True" in out.stdout and "median of 2 x 2 steps" in out.stdout
