"""Metric functions against hand-computed values; the classifier trainer on tiny data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_edu.errors import GanEduError
from gan_edu.metrics import (
    accuracy,
    class_histogram,
    colour_statistics,
    confusion_matrix,
    dropped_styles,
    frechet_distance,
    kmeans,
    mode_shares,
    nearest_centre,
    per_class_accuracy,
)


def test_accuracy_and_confusion_by_hand():
    labels = [0, 0, 1, 1, 2, 2, 2]
    preds = [0, 1, 1, 1, 0, 2, 2]
    assert accuracy(preds, labels) == pytest.approx(5 / 7)
    cm = confusion_matrix(preds, labels, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert per_class_accuracy(cm).tolist() == pytest.approx([0.5, 1.0, 2 / 3])
    assert np.isnan(per_class_accuracy(confusion_matrix([0], [0], 2))[1])
    with pytest.raises(GanEduError):
        accuracy([0, 1], [0])
    with pytest.raises(GanEduError):
        confusion_matrix([3], [0], 3)


def test_frechet_distance_by_hand():
    # 1-D: two Gaussians N(m1, s1^2), N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2
    a = np.array([[0.0], [2.0]])  # mean 1, sample variance 2
    b = np.array([[4.0], [12.0]])  # mean 8, sample variance 32
    expected = (1 - 8) ** 2 + (np.sqrt(2) - np.sqrt(32)) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected)
    # diagonal covariances: sum over dimensions of the 1-D formula
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2)) * [1.0, 2.0]
    y = rng.normal(size=(4000, 2)) * [3.0, 0.5] + [1.0, -1.0]
    sx, sy = x.std(0, ddof=1), y.std(0, ddof=1)
    by_hand = ((x.mean(0) - y.mean(0)) ** 2).sum() + ((sx - sy) ** 2).sum()
    assert frechet_distance(x, y) == pytest.approx(by_hand, rel=0.02)  # cross-covariances ~ 0
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_histogram_and_colour_statistics_by_hand():
    assert class_histogram([1, 1, 1, 0], 3).tolist() == [0.25, 0.75, 0.0]
    images = np.zeros((4, 3, 2, 2), dtype=np.uint8)
    images[0] = 10
    images[1] = 30  # class 0: mean colours 10 and 30 -> mean 20, spread 10
    images[2, 2] = 200  # class 1: both blue, identical -> spread 0
    images[3, 2] = 200
    stats = colour_statistics(images, [0, 0, 1, 1], 3)
    assert stats[0] == {"count": 2, "mean": [20.0, 20.0, 20.0], "spread": 10.0}
    assert stats[1]["mean"] == [0.0, 0.0, 200.0] and stats[1]["spread"] == 0.0
    assert stats[2] == {"count": 0, "mean": None, "spread": None}


def three_styles(rng, n):
    """Features of one class with three styles (well-separated blobs) in shares 0.6, 0.3, 0.1."""
    sizes = [int(n * 0.6), int(n * 0.3), n - int(n * 0.6) - int(n * 0.3)]
    centres = np.array([[0.0, 0.0, 0.0], [30.0, 0.0, 0.0], [0.0, 30.0, 0.0]])
    return np.concatenate([rng.normal(c, 1.0, (k, 3)) for c, k in zip(centres, sizes)]), centres


def test_kmeans_finds_separated_styles_and_assigns_points_to_them():
    rng = np.random.default_rng(1)
    x, truth = three_styles(rng, 1000)
    found = kmeans(x, 3, seed=0)
    match = nearest_centre(truth, found)  # each true centre's nearest found centre
    assert sorted(match.tolist()) == [0, 1, 2]  # one found centre per style
    assert np.abs(found[match] - truth).max() < 0.3  # at the style's mean (1,000 points, unit spread)
    assert (nearest_centre(x[:600], found) == match[0]).all() and (nearest_centre(x[900:], found) == match[2]).all()
    assert np.array_equal(kmeans(x, 3, seed=0), found)  # deterministic for a seed
    with pytest.raises(GanEduError, match="k=0"):
        kmeans(x, 0)


def test_mode_shares_show_a_dropped_style_and_a_doubled_one():
    rng = np.random.default_rng(2)
    real, _ = three_styles(rng, 2000)
    # a "generator" that never draws the rare style and draws the second one twice as often as the data
    fake = np.concatenate([rng.normal((0.0, 0.0, 0.0), 1.0, (400, 3)), rng.normal((30.0, 0.0, 0.0), 1.0, (600, 3))])
    rows = mode_shares(real, fake, modes=3)
    assert [r["real_share"] for r in rows] == [0.6, 0.3, 0.1]  # largest real share first
    assert [r["fake_share"] for r in rows] == [0.4, 0.6, 0.0]
    assert sorted(r["mode"] for r in rows) == [0, 1, 2]
    same = mode_shares(real, real, modes=3)  # the data against itself: every share equal
    assert all(r["real_share"] == r["fake_share"] for r in same)
    given = mode_shares(real, fake, centres=kmeans(real, 3))  # clusters found beforehand: the same table
    assert given == rows
    with pytest.raises(GanEduError, match=r"\(0, 3\)"):
        mode_shares(real, fake[:0])


def test_dropped_styles_count_the_styles_a_class_lacks_and_the_real_share_in_them():
    rng = np.random.default_rng(3)
    real, _ = three_styles(rng, 2000)  # styles of 60%, 30% and 10%
    labels = np.zeros(len(real), dtype=int)
    fake = np.concatenate([rng.normal((0.0, 0.0, 0.0), 1.0, (400, 3)), rng.normal((30.0, 0.0, 0.0), 1.0, (600, 3))])  # the 10% style never drawn
    all_real = np.concatenate([real, real + 100.0, real[:5] - 100.0])  # class 1: drawn in all its styles; class 2: 5 images, none drawn
    all_fake = np.concatenate([fake, real[::2] + 100.0])
    rows = dropped_styles(all_real, np.r_[labels, labels + 1, [2] * 5], all_fake, np.r_[np.zeros(len(fake), int), np.ones(1000, int)], 4, modes=3)
    assert rows[0] == {"styles_dropped": 1, "dropped_real_share": 0.1}
    assert rows[1] == {"styles_dropped": 0, "dropped_real_share": 0.0}
    assert rows[2] == rows[3] == {"styles_dropped": None, "dropped_real_share": None}  # class 2: nothing drawn; class 3: no images
    rare = np.concatenate([fake, rng.normal((0.0, 30.0, 0.0), 1.0, (10, 3))])  # the style drawn in 1% of images: under-drawn, not dropped
    assert dropped_styles(real, labels, rare, np.zeros(len(rare), int), 1, modes=3)[0]["styles_dropped"] == 0


def test_random_crop_moves_content_within_the_padding():
    from gan_edu.training.classifier_trainer import random_crop

    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(2):  # every crop is the padded image shifted by at most 2 pixels
        padded = torch.nn.functional.pad(x[i : i + 1], (2, 2, 2, 2))[0, 0]
        assert any(torch.equal(out[i, 0], padded[dy : dy + 6, dx : dx + 6]) for dy in range(5) for dx in range(5))


@pytest.mark.parametrize("name", ["vgg", "ref000"])
def test_classifier_trainer_learns_tiny_shapes(name):
    from gan_edu.data import load_dataset
    from gan_edu.metrics import accuracy
    from gan_edu.models.classifier import build_classifier
    from gan_edu.training.classifier_trainer import (
        ClassifierTrainer,
        ClassifierTrainerConfig,
        predict,
    )

    torch.manual_seed(0)
    train = load_dataset("shapes", "train", n=400, channels=1, size=16)
    clf = build_classifier(name, image_shape=train.image_shape, num_classes=10, width=8)
    config = ClassifierTrainerConfig(epochs=8, batch_size=32, progress=False, warmup_steps=5, crop_padding=1, optimizer="adam", lr=3e-3)
    trainer = ClassifierTrainer(clf, config)
    trainer.fit(train)
    acc = accuracy(predict(clf, train.images), train.labels)
    assert acc > 0.3, acc  # far above chance (0.1) after a few seconds
    assert predict(clf, train.images[:5], features=True).ndim == 2
