"""Metrics of the c vs c' experiment, in numpy: accuracy, confusion, Fréchet distance, collapse.

* accuracy, per-class accuracy and the confusion matrix of predictions against labels;
* GAN-train: the accuracy on the REAL test split of a classifier c' trained on generated images;
  GAN-test: the accuracy of classifier c (trained on real images) on generated images, labelled by
  the class they were generated for (Shmelkov et al., "How good is my GAN?", ECCV 2018);
* the Fréchet distance between Gaussians fitted to real and generated features taken from
  classifier c. It is the formula of FID, but NOT comparable with Inception FID numbers: the
  features come from our small classifier, not from Inception-v3;
* improved precision and recall (Kynkäänniemi et al., "Improved Precision and Recall Metric for
  Assessing Generative Models", NeurIPS 2019) in the same features: precision is the share of
  generated images that fall inside the real images' k-nearest-neighbour manifold (are they
  realistic?), recall the share of real images inside the generated images' manifold (is every
  kind of real image made?). Fidelity and coverage apart, where the Fréchet distance mixes them;
* a class histogram of generated images as judged by c, and per-class colour statistics, which
  expose mode collapse (one class's images all alike: low colour spread, or judged as one class).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import check


def _ints(x: Any) -> np.ndarray:
    return np.asarray(x).astype(np.int64).ravel()


def accuracy(predictions: Any, labels: Any) -> float:
    """Fraction of predictions equal to the labels.

    >>> accuracy([0, 1, 2, 2], [0, 1, 1, 2])
    0.75
    """
    p, y = _ints(predictions), _ints(labels)
    check(p.shape == y.shape and p.size > 0, f"{p.size} predictions for {y.size} labels: expected as many, at least one")
    return float((p == y).mean())


def confusion_matrix(predictions: Any, labels: Any, num_classes: int) -> np.ndarray:
    """``(K, K)`` counts: row = true class, column = predicted class.

    >>> confusion_matrix([0, 1, 1], [0, 0, 1], 2).tolist()
    [[1, 1], [0, 1]]
    """
    p, y = _ints(predictions), _ints(labels)
    check(p.shape == y.shape, f"{p.size} predictions for {y.size} labels: expected as many")
    check(((p >= 0) & (p < num_classes)).all() and ((y >= 0) & (y < num_classes)).all(), f"classes outside [0, {num_classes - 1}]")
    return np.bincount(y * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix (NaN for a class with no example).

    >>> per_class_accuracy(np.array([[3, 1], [0, 2]])).tolist()
    [0.75, 1.0]
    """
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(confusion) / totals


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` between Gaussians fitted to two feature sets.

    ``Tr((S_a S_b)^(1/2))`` is computed as the sum of the square roots of the eigenvalues of the
    symmetric matrix ``S_a^(1/2) S_b S_a^(1/2)``, which has the same eigenvalues and avoids a
    non-symmetric matrix square root.

    Args:
        features_a, features_b: ``(N, F)`` and ``(M, F)`` features, N, M >= 2.
    """
    a, b = np.asarray(features_a, dtype=np.float64), np.asarray(features_b, dtype=np.float64)
    check(a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[1], f"features of shapes {a.shape} and {b.shape}: expected (N, F) and (M, F)")
    check(len(a) >= 2 and len(b) >= 2, "at least 2 feature vectors per set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    s_a, s_b = np.atleast_2d(s_a), np.atleast_2d(s_b)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # S_a^(1/2)
    middle = root_a @ s_b @ root_a
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * trace_sqrt)


def class_histogram(predictions: Any, num_classes: int) -> np.ndarray:
    """Fraction of images judged to be each class.

    >>> class_histogram([0, 0, 1, 3], 4).tolist()
    [0.5, 0.25, 0.0, 0.25]
    """
    p = _ints(predictions)
    return np.bincount(p, minlength=num_classes) / max(1, p.size)


def colour_statistics(images: np.ndarray, labels: Any, num_classes: int) -> list[dict[str, Any]]:
    """Per class: mean colour and spread of the mean colours of uint8 ``(N, C, H, W)`` images.

    A collapsed class shows a small ``spread`` (its images all have nearly the same colour) or a
    skewed ``mean`` (reference project 002's `dog` generator made blue images).

    Returns:
        One dict per class: ``count``, ``mean`` (per channel, 0-255), ``spread`` (standard
        deviation over images of each image's mean colour, averaged over channels).
    """
    x = np.asarray(images)
    y = _ints(labels)
    check(x.ndim == 4 and len(x) == len(y), f"images of shape {x.shape} and {len(y)} labels: expected (N, C, H, W) and N labels")
    per_image = x.reshape(len(x), x.shape[1], -1).mean(axis=2)  # (N, C) mean colour of each image
    out = []
    for k in range(num_classes):
        sel = per_image[y == k]
        out.append({
            "count": int(len(sel)),
            "mean": sel.mean(0).round(2).tolist() if len(sel) else None,
            "spread": float(sel.std(0).mean().round(3)) if len(sel) > 1 else None,
        })
    return out


def per_class_table(names: Sequence[str], **columns: np.ndarray) -> list[dict[str, Any]]:
    """Rows ``{"class": name, column: value, ...}`` for a report."""
    return [{"class": name, **{k: (None if np.isnan(v[i]) else round(float(v[i]), 4)) for k, v in columns.items()}} for i, name in enumerate(names)]


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` squared Euclidean distances between the rows of ``a (N, F)`` and ``b (M, F)``."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def knn_radii(features: np.ndarray, k: int = 3, *, chunk: int = 1024) -> np.ndarray:
    """Squared distance from each row of ``features (N, F)`` to its k-th nearest other row: ``(N,)``.

    The ball of that radius around every point is the set's estimated manifold (Kynkäänniemi et al.).
    """
    x = np.asarray(features, dtype=np.float64)
    check(x.ndim == 2 and len(x) > k, f"features of shape {x.shape}: expected (N, F) with N > k={k}")
    radii = np.empty(len(x))
    for start in range(0, len(x), chunk):
        d = _squared_distances(x[start:start + chunk], x)  # (chunk, N), each row's own 0 among them
        radii[start:start + chunk] = np.partition(d, k, axis=1)[:, k]  # k-th after the point itself
    return radii


def manifold_share(queries: np.ndarray, points: np.ndarray, radii: np.ndarray, *, chunk: int = 1024) -> float:
    """Share of ``queries (Q, F)`` inside at least one ball ``|q - points[i]|^2 <= radii[i]``."""
    q, p = np.asarray(queries, dtype=np.float64), np.asarray(points, dtype=np.float64)
    inside = 0
    for start in range(0, len(q), chunk):
        inside += int((_squared_distances(q[start:start + chunk], p) <= radii[None, :]).any(axis=1).sum())
    return inside / max(1, len(q))


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = 3) -> dict[str, float]:
    """Improved precision and recall of generated ``fake (M, F)`` features against ``real (N, F)`` ones.

    Precision: the share of fakes inside the real manifold; recall: the share of reals inside the
    fake manifold; each manifold the union of balls reaching every point's ``k``-th nearest
    neighbour (k=3 as in the paper). Both sets should be the same size, as in the paper, since a
    larger set's balls are smaller.

    >>> rng = np.random.default_rng(0)
    >>> real = rng.normal(size=(400, 2))
    >>> pr = precision_recall(real, real[:200] * 0.1)  # all fakes near the centre: realistic, not diverse
    >>> pr["precision"] > 0.95, pr["recall"] < 0.3
    (True, True)
    """
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    check(real.ndim == 2 and fake.ndim == 2 and real.shape[1] == fake.shape[1], f"features of shapes {real.shape} and {fake.shape}: expected (N, F) and (M, F)")
    return {
        "precision": manifold_share(fake, real, knn_radii(real, k)),
        "recall": manifold_share(real, fake, knn_radii(fake, k)),
    }


def per_class_precision_recall(real: np.ndarray, real_labels: Any, fake: np.ndarray, fake_labels: Any, num_classes: int, *, k: int = 3) -> list[dict[str, float | None]]:
    """:func:`precision_recall` within each class: real images of class y against images made for y.

    A class with at most ``k`` images on either side gets ``None`` for both.
    """
    y_real, y_fake = _ints(real_labels), _ints(fake_labels)
    out: list[dict[str, float | None]] = []
    for c in range(num_classes):
        r, f = np.asarray(real)[y_real == c], np.asarray(fake)[y_fake == c]
        out.append(precision_recall(r, f, k=k) if min(len(r), len(f)) > k else {"precision": None, "recall": None})
    return out


def kmeans(features: np.ndarray, k: int, *, seed: int = 0, rounds: int = 50, restarts: int = 4) -> np.ndarray:
    """``(k, F)`` centres of ``features (N, F)`` by Lloyd's algorithm from k-means++ starts.

    ``restarts`` runs from different starts, keeping the one with the smallest sum of squared
    distances (one k-means++ start can put two centres in one cluster). Deterministic for a
    ``seed``. A centre left without points stays where it was.

    >>> x = np.concatenate([np.zeros((50, 2)), np.full((50, 2), 10.0)])
    >>> np.round(sorted(kmeans(x, 2)[:, 0]), 3).tolist()
    [0.0, 10.0]
    """
    x = np.asarray(features, dtype=np.float64)
    check(x.ndim == 2 and isinstance(k, int) and 1 <= k <= len(x), f"k={k!r} for features of shape {x.shape}: expected (N, F) and 1 <= k <= N")
    check(isinstance(restarts, int) and restarts >= 1, f"restarts={restarts!r}: expected an int >= 1")
    rng = np.random.default_rng(seed)
    best, best_cost = x[:k], np.inf
    for _ in range(restarts):
        centres = x[rng.integers(len(x))][None]  # k-means++: each next centre drawn with probability ~ squared distance
        for _ in range(k - 1):
            d = _squared_distances(x, centres).min(1)
            centres = np.vstack([centres, x[rng.choice(len(x), p=d / d.sum()) if d.sum() > 0 else rng.integers(len(x))]])
        for _ in range(rounds):
            nearest = _squared_distances(x, centres).argmin(1)
            moved = np.stack([x[nearest == j].mean(0) if (nearest == j).any() else centres[j] for j in range(k)])
            if np.allclose(moved, centres):
                break
            centres = moved
        cost = _squared_distances(x, centres).min(1).sum()
        if cost < best_cost:
            best, best_cost = centres, cost
    return best


def nearest_centre(features: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``(N,)`` index of the nearest of ``centres (k, F)`` for each row of ``features (N, F)``."""
    return _squared_distances(np.asarray(features, dtype=np.float64), np.asarray(centres, dtype=np.float64)).argmin(1)


def mode_shares(real: np.ndarray, fake: np.ndarray, *, modes: int = 8, seed: int = 0, centres: np.ndarray | None = None) -> list[dict[str, float]]:
    """How often the generator draws each style (mode) of a class, against how often the data has it.

    The real features ``(N, F)`` of one class are split into ``modes`` clusters (:func:`kmeans`);
    each generated feature ``(M, F)`` goes to its nearest cluster. A row per cluster, largest real
    share first: ``{"mode", "real_share", "fake_share"}``. A mode with a real share well above zero
    and a fake share near zero is a style the generator dropped; precision and recall cannot say
    which styles are missing, this can (docs/quality.md). ``centres (k, F)``: clusters found
    already (:func:`kmeans` of ``real``), instead of finding them here.

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(0, 1, (90, 2)), rng.normal(20, 1, (10, 2))  # a common style and a rare one
    >>> [(r["real_share"], r["fake_share"]) for r in mode_shares(np.vstack([a, b]), a[:50], modes=2)]  # a generator of the common style only
    [(0.9, 1.0), (0.1, 0.0)]
    """
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    check(real.ndim == 2 and fake.ndim == 2 and real.shape[1] == fake.shape[1] and len(fake) > 0,
          f"features of shapes {real.shape} and {fake.shape}: expected (N, F) and (M, F) with M > 0")
    centres = kmeans(real, modes, seed=seed) if centres is None else np.asarray(centres, dtype=np.float64)
    modes = len(centres)
    real_share = np.bincount(nearest_centre(real, centres), minlength=modes) / len(real)
    fake_share = np.bincount(nearest_centre(fake, centres), minlength=modes) / len(fake)
    order = np.argsort(-real_share, kind="stable")
    return [{"mode": int(j), "real_share": round(float(real_share[j]), 4), "fake_share": round(float(fake_share[j]), 4)} for j in order]


#: A style counts as dropped when the real images of its class fall in it at least this often...
DROPPED_MIN_REAL_SHARE = 0.03
#: ...and the generator's images for the class fall in it less often than this.
DROPPED_MAX_FAKE_SHARE = 0.005


def dropped_styles(real: np.ndarray, real_labels: Any, fake: np.ndarray, fake_labels: Any, num_classes: int, *, modes: int = 8,
                   seed: int = 0) -> list[dict[str, float | int | None]]:
    """Per class, the styles the data has and the generator does not draw (from :func:`mode_shares`).

    Each class's real features are split into ``modes`` styles; a style holding at least
    :data:`DROPPED_MIN_REAL_SHARE` of the class's real images and under
    :data:`DROPPED_MAX_FAKE_SHARE` of its generated ones is dropped. A row per class:
    ``{"styles_dropped", "dropped_real_share"}``, the latter the share of the class's real images
    that lie in dropped styles (what c' trained on the generator's images has never seen). A
    class with fewer real images than ``modes``, or no generated image, gets ``None`` for both.

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(0, 1, (90, 2)), rng.normal(20, 1, (10, 2))  # a common style and a rare one
    >>> real, fake = np.vstack([a, b, a + 50]), np.vstack([a[:50], a[:50] + 50])  # class 0 lacks its rare style
    >>> dropped_styles(real, [0] * 100 + [1] * 90, fake, [0] * 50 + [1] * 50, 2, modes=2)
    [{'styles_dropped': 1, 'dropped_real_share': 0.1}, {'styles_dropped': 0, 'dropped_real_share': 0.0}]
    """
    real, fake, y_real, y_fake = np.asarray(real), np.asarray(fake), _ints(real_labels), _ints(fake_labels)
    out: list[dict[str, float | int | None]] = []
    for c in range(num_classes):
        r, f = real[y_real == c], fake[y_fake == c]
        if len(r) < modes or len(f) == 0:
            out.append({"styles_dropped": None, "dropped_real_share": None})
            continue
        gone = [m for m in mode_shares(r, f, modes=modes, seed=seed) if m["real_share"] >= DROPPED_MIN_REAL_SHARE and m["fake_share"] < DROPPED_MAX_FAKE_SHARE]
        out.append({"styles_dropped": len(gone), "dropped_real_share": round(float(sum(m["real_share"] for m in gone)), 4)})
    return out
