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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A conditional DCGAN run folder of 2 steps on 32 shapes (width 4): what gan-edu export takes."""
    from gan_edu.cli import main

    run = tmp_path_factory.mktemp("run") / "run"
    argv = ["train", "--model", "cdcgan", "--out", str(run), "--max-steps", "2", "--num-images", "32", "--batch-size", "16",
            "--g-channels", "4", "--d-channels", "4", "--no-progress"]
    assert main(argv) == 0
    return run


def params_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
