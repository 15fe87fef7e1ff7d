"""Inception FID and IS, the numbers GAN papers report, computed the way the papers compute them.

Fréchet Inception Distance (Heusel et al. 2017) compares the mean and covariance of Inception-v3
pool features (2048 per image) of real and generated images; Inception Score (Salimans et al.
2016) is ``exp(E_x KL(p(y|x) || p(y)))`` over Inception's 1008 logits, averaged over 10 splits.
Both depend on the exact network: the papers use the TensorFlow graph of December 2015 with its
own resizing. gan-edu uses torch-fidelity's port of that graph (``FeatureExtractorInceptionV3``,
which matches the TensorFlow reference) and its statistics (``fid_features_to_statistics``,
``fid_statistics_to_metric``, ``isc_features_to_metric``), so the numbers are comparable with
published ones. torch-fidelity is an optional extra: ``pip install "gan-edu[fid]"``.

The weights (``weights-inception-2015-12-05-6726825d.pth``, 91 MB) are downloaded once into
``~/.cache/gan-edu/inception/`` when online, or read from ``inception_weights=PATH``
(``--inception-weights``). gan-edu reads them itself with ``torch.load(weights_only=True)``, so a
weights file cannot run code, and hands torch-fidelity a copy it serialised itself. A file whose
SHA-256 does not start with ``6726825d`` is used but reported as not the standard weights: its
numbers are not comparable with papers.

Images of any size are resized to 299x299 inside the network; grey images are repeated to RGB.
The fast Fréchet distance on classifier c's features (:func:`gan_edu.metrics.frechet_distance`)
is a different, cheaper number and stays as it is.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import GanEduError, check
from .training.checkpoint import safe_torch_load

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"
WEIGHTS_SHA256_PREFIX = "6726825d"
INSTALL = 'pip install "gan-edu[fid]"'
EXPECTED = f"--inception-weights PATH to {WEIGHTS_FILE} (docs/fid.md says where to get it)"


def cache_dir() -> Path:
    """Where downloaded weights are kept: ``$GAN_EDU_CACHE/inception`` (default ``~/.cache/gan-edu/inception``)."""
    return Path(os.environ.get("GAN_EDU_CACHE", "~/.cache/gan-edu")).expanduser() / "inception"


def find_weights(path: str | os.PathLike[str] | None = None, *, download: bool = True) -> Path:
    """The Inception weights file: ``path``, else the cached copy, else downloaded into the cache.

    Raises:
        GanEduError: ``path`` is missing; or no cached copy and the download is off or fails (offline).
    """
    if path is not None:
        path = Path(path)
        check(path.is_file(), f"--inception-weights {path}: no such file; expected {EXPECTED}")
        return path
    cached = cache_dir() / WEIGHTS_FILE
    if cached.is_file():
        return cached
    check(download, f"the FID Inception weights are not in {cached.parent} and download is off; expected {EXPECTED}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(WEIGHTS_URL, str(cached), hash_prefix=None, progress=False)
    except Exception as e:  # urllib's URLError, HTTPError, a timeout, a full disk...
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise GanEduError(f"cannot download the FID Inception weights from {WEIGHTS_URL} ({reason}); expected {EXPECTED}") from None
    return cached


def load_inception(weights: str | os.PathLike[str] | None = None, *, download: bool = True, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """torch-fidelity's Inception-v3 with the FID weights, in eval mode on ``device``.

    Returns:
        The network (uint8 ``(N, 3, H, W)`` in, features ``"2048"`` and ``"logits_unbiased"`` out)
        and facts about its weights: ``{"weights": path, "standard": True/False}``.
    """
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise GanEduError(f"Inception FID and IS need the torch-fidelity package; expected it installed ({INSTALL})") from None
    path = find_weights(weights, download=download)
    state = safe_torch_load(path, "Inception weights file", EXPECTED)
    check(
        isinstance(state, dict) and bool(state) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()),
        f"{path}: not a state dict of tensors; expected {EXPECTED}",
    )
    buffer = io.BytesIO()
    torch.save(state, buffer)  # bytes we wrote from tensors: safe for torch-fidelity's own torch.load
    buffer.seek(0)
    try:
        model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=buffer)
    except RuntimeError as e:  # load_state_dict: missing or unexpected keys, other shapes
        first = str(e).strip().splitlines()[0][:160]
        raise GanEduError(f"{path}: not the FID Inception weights ({first}); expected {EXPECTED}") from None
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest() if hasattr(hashlib, "file_digest") else hashlib.sha256(f.read()).hexdigest()
    return model.to(device).eval(), {"weights": str(path), "standard": digest.startswith(WEIGHTS_SHA256_PREFIX)}


@torch.no_grad()
def inception_features(model: torch.nn.Module, batches: Iterable[torch.Tensor | np.ndarray]) -> dict[str, torch.Tensor]:
    """Pool features ``(N, 2048)`` and unbiased logits ``(N, 1008)`` of uint8 ``(N, C, H, W)`` batches."""
    device = next(model.parameters()).device
    pools, logits = [], []
    for batch in batches:
        x = torch.as_tensor(batch)
        check(x.dtype == torch.uint8 and x.ndim == 4 and x.shape[1] in (1, 3), f"images of dtype {x.dtype}, shape {tuple(x.shape)}: expected uint8 (N, 1 or 3, H, W)")
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)  # grey to RGB, as every FID implementation does
        pool, logit = model(x.to(device))  # (n, 2048), (n, 1008)
        pools.append(pool.cpu())
        logits.append(logit.cpu())
    check(bool(pools), "no images: expected at least one batch")
    return {"2048": torch.cat(pools), "logits_unbiased": torch.cat(logits)}


def fid_and_is(real: dict[str, torch.Tensor], fake: dict[str, torch.Tensor], *, splits: int = 10, seed: int = 2020) -> dict[str, float]:
    """FID between two feature sets, and IS of ``fake``: torch-fidelity's formulas.

    Returns:
        ``{"fid", "inception_score", "inception_score_std"}``.
    """
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_features_to_metric

    n = len(fake["logits_unbiased"])
    check(n >= splits and len(real["2048"]) >= 2, f"{n} generated and {len(real['2048'])} real images: expected at least {splits} generated (one per IS split) and 2 real")
    fid = fid_statistics_to_metric(fid_features_to_statistics(real["2048"]), fid_features_to_statistics(fake["2048"]), verbose=False)
    isc = isc_features_to_metric(fake["logits_unbiased"], splits=splits, shuffle=True, rng_seed=seed)
    return {"fid": fid["frechet_inception_distance"], "inception_score": isc["inception_score_mean"], "inception_score_std": isc["inception_score_std"]}


def uint8_batches(images: torch.Tensor, batch_size: int) -> Iterable[torch.Tensor]:
    """``(N, C, H, W)`` uint8 images in batches of ``batch_size``."""
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]


def generator_batches(generator: Any, n: int, *, seed: int, batch_size: int) -> Iterable[np.ndarray]:
    """``n`` images of an :class:`~gan_edu.export.runtime.OnnxGenerator` (balanced labels), as uint8 ``(b, C, H, W)`` batches."""
    for batch in generator.iter_sample(n, seed=seed, batch_size=batch_size):
        yield np.ascontiguousarray(generator.to_uint8(batch).transpose(0, 3, 1, 2))  # (b, H, W, C) -> (b, C, H, W)
