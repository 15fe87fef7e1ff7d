"""Shared fixtures: tiny data and tiny models, so the whole suite runs in minutes on 2 cores."""

from __future__ import annotations

import pytest
import torch

from gan_edu.data import load_dataset

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tiny_shapes():
    """64 shape images, 32x32 RGB, 10 classes."""
    return load_dataset("shapes", "train", n=64, seed=3)


def params_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
