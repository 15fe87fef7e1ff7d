"""Real images drawn by D's density ratio (Self-Diagnosing GAN): the weights, the loader, the trainer."""

from __future__ import annotations

import json

import pytest
import torch

from gan_edu.data import DeviceLoader, ImageDataset, load_dataset
from gan_edu.errors import GanEduError
from gan_edu.training.reweight import (
    DiagnosingTrainer,
    DiagnosingTrainerConfig,
    WeightedLoader,
    density_ratio_weights,
    diagnosis_scores,
)
from gan_edu.training.runs import new_gan_run, resume_gan_run


@pytest.fixture(scope="module")
def shapes():
    return load_dataset("shapes", "train", n=96, channels=1)


def two_styles(n_per_style: int = 16) -> ImageDataset:
    """Two classes, each half dark (0) and half bright (200) 28x28 images: the bright ones first in each class."""
    bright = torch.full((n_per_style, 1, 28, 28), 200, dtype=torch.uint8)
    dark = torch.zeros((n_per_style, 1, 28, 28), dtype=torch.uint8)
    images = torch.cat([bright, dark, bright, dark])
    labels = torch.tensor([0] * (2 * n_per_style) + [1] * (2 * n_per_style))
    return ImageDataset("styles", images, labels, ("a", "b"))


def test_weights_follow_the_ratio_within_each_class_up_to_the_cap_and_keep_class_shares():
    scores = torch.tensor([0.0, 0.0, 0.0, 0.6931, 9.0, -9.0, 2.0, 2.0, 2.0])
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1])
    w = density_ratio_weights(scores, labels, cap=4.0)
    for c in (0, 1):
        assert float(w[labels == c].sum()) == pytest.approx(float((labels == c).sum()))  # each class keeps its share
    base = float(w[0])
    assert float(w[3]) / base == pytest.approx(2.0, rel=1e-3)  # exp(log 2): drawn twice as often as the median image
    assert float(w[4]) / base == pytest.approx(4.0) and float(w[5]) / base == pytest.approx(0.25)  # capped both ways
    assert torch.allclose(w[6:], torch.ones(3, dtype=w.dtype))  # one score for the whole class: unchanged
    shifted = scores.clone()
    shifted[labels == 0] += 7.0  # a class's level does not matter, only the differences inside it
    assert torch.allclose(density_ratio_weights(shifted, labels, cap=4.0), w)
    assert torch.allclose(density_ratio_weights(scores, labels, cap=1.0), torch.ones(9, dtype=w.dtype))
    sharp = density_ratio_weights(scores, labels, cap=4.0, scale=2.0)  # log 2 apart reads as log 4
    assert float(sharp[3]) / float(sharp[0]) == pytest.approx(4.0, rel=1e-3)
    with pytest.raises(GanEduError, match="cap=0.5: expected at least 1"):
        density_ratio_weights(scores, labels, cap=0.5)


def test_scores_are_the_mean_plus_k_spreads_over_scorings():
    logits = torch.tensor([[0.0, 1.0], [2.0, 1.0]])  # image 0 swings 0 -> 2, image 1 stays at 1
    assert torch.allclose(diagnosis_scores(logits, 0.0), torch.tensor([1.0, 1.0]))
    assert torch.allclose(diagnosis_scores(logits, 2.0), torch.tensor([3.0, 1.0]))
    assert torch.allclose(diagnosis_scores(logits[:1], 5.0), logits[0])  # one scoring: no spread


def test_a_loader_draws_images_by_their_weights():
    data = two_styles(8)
    w = torch.zeros(32)
    w[:8] = 1.0  # only class 0's bright images
    loader = WeightedLoader(data, 8, sample_weights=w, seed=3)
    assert torch.equal(DeviceLoader(data, 8, seed=3).epoch_plan(1)[0], WeightedLoader(data, 8, seed=3).epoch_plan(1)[0])  # no weights: the plain plan
    order, _ = loader.epoch_plan(0)
    assert len(order) == 32 and bool((order < 8).all())
    w[:8], w[8:16] = 9.0, 1.0
    drawn = torch.cat([loader.epoch_plan(e)[0] for e in range(20)])
    assert 0.85 < float((drawn < 8).double().sum() / (drawn < 16).double().sum()) < 0.95  # 9 : 1
    assert torch.equal(loader.epoch_plan(4)[0], loader.epoch_plan(4)[0])  # an epoch is still reproducible
    loader.sample_weights = torch.ones(5)
    with pytest.raises(GanEduError, match=r"sample_weights of shape \(5,\): expected 32 finite, non-negative weights"):
        loader.epoch_plan(0)


def brightness_judge(images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """A stand-in D whose logit is 10 x an image's mean value: it calls bright images "real"."""
    return 10.0 * images.mean((1, 2, 3))


def test_the_trainer_favours_the_real_images_d_scores_highest(tmp_path):
    data = two_styles(16)
    cfg = DiagnosingTrainerConfig(epochs=3, batch_size=8, reweight_after=2, reweight_window=2, reweight_cap=5.0, progress=False)
    trainer = new_gan_run("cdcgan", data, config=cfg, trainer_class="DiagnosingTrainer", out_dir=tmp_path / "run", g_channels=4, d_channels=4)
    loader = trainer.make_loader(data)
    trainer.discriminator.forward = brightness_judge  # D's verdict, known in advance
    trainer.epoch = 1  # inside the window (epochs 1 and 2 score), before reweighting (from 2): logits, no weights
    trainer.rescore()
    assert trainer.real_logits is not None and trainer.real_logits.shape == (1, 64) and loader.sample_weights is None
    trainer.epoch = 2
    trainer.rescore()
    w = loader.sample_weights
    assert w is trainer.real_weights and w.shape == (64,)
    bright = torch.zeros(64, dtype=torch.bool)
    bright[:16], bright[32:48] = True, True
    assert torch.allclose(w[bright], torch.full((32,), 5 / 3, dtype=w.dtype)) and torch.allclose(w[~bright], torch.full((32,), 1 / 3, dtype=w.dtype))
    log = json.loads((tmp_path / "run" / "reweight.json").read_text())
    assert log["settings"]["reweight_after"] == 2 and log["epochs"][0]["epoch"] == 2 and log["epochs"][0]["scorings"] == 2
    assert log["epochs"][0]["share_over_2"] == 0.0 and log["epochs"][0]["effective_share"] == pytest.approx(0.6923, abs=1e-4)  # (sum w)^2 / sum w^2 / N = 64 / (32 (25 + 1) / 9)


def test_scoring_leaves_d_as_it_was_and_matches_d_in_training_mode(shapes):
    cfg = DiagnosingTrainerConfig(epochs=1, batch_size=32, progress=False)
    trainer = new_gan_run("cdcgan", shapes, config=cfg, trainer_class="DiagnosingTrainer", g_channels=4, d_channels=4)
    loader = trainer.make_loader(shapes)
    d = trainer.discriminator
    d.eval()
    before = {k: v.clone() for k, v in d.state_dict().items()}
    scores = trainer.score_real()
    assert scores.shape == (96,) and not d.training
    assert all(torch.equal(before[k], v) for k, v in d.state_dict().items())  # running statistics put back
    d.train()
    with torch.no_grad():
        images, labels = loader.gather(torch.arange(32, 64), torch.zeros(32, dtype=torch.bool))
        assert torch.allclose(scores[32:64], d(trainer.prepare_batch(images), labels).float(), atol=1e-5)


def test_weights_survive_resume_and_refuse_data_on_disk(shapes, tmp_path):
    torch.manual_seed(0)
    cfg = DiagnosingTrainerConfig(epochs=2, batch_size=32, reweight_after=1, progress=False)
    trainer = new_gan_run("cdcgan", shapes, config=cfg, trainer_class="DiagnosingTrainer", out_dir=tmp_path / "run", g_channels=4, d_channels=4)
    trainer.fit(shapes)
    assert trainer.real_weights is not None and trainer.real_logits.shape == (2, 96)
    resumed, _ = resume_gan_run(tmp_path / "run", epochs=3)
    assert type(resumed) is DiagnosingTrainer and resumed.config.reweight_after == 1
    assert torch.equal(resumed.real_weights, trainer.real_weights) and torch.equal(resumed.real_logits, trainer.real_logits)
    assert [r["epoch"] for r in resumed.reweight_log] == [1, 2]
    assert torch.equal(resumed.make_loader(shapes).sample_weights, trainer.real_weights)  # the next epoch draws by them
    with pytest.raises(GanEduError, match="reweight_cap=0.5: expected a number at least 1"):
        DiagnosingTrainerConfig(reweight_cap=0.5)

