"""``--tensorboard``: the event files hold the run's losses, D(x), D(G(z)), learning rates and a
sample grid per epoch (read back with TensorBoard's own reader); without the package, one line."""

from __future__ import annotations

import sys

import pytest

from gan_edu.cli import main
from gan_edu.training import read_history

TINY = ["--num-images", "32", "--batch-size", "16", "--g-channels", "4", "--d-channels", "4", "--no-progress", "--log-every", "1"]


def events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


@pytest.mark.slow  # a CLI run read back by TensorBoard
def test_the_event_file_holds_losses_d_outputs_learning_rates_and_a_grid_per_epoch(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--model", "cdcgan", "--out", str(run), "--epochs", "2", "--tensorboard", *TINY]) == 0
    acc = events(run / "tensorboard")
    tags = set(acc.Tags()["scalars"])
    for tag in ("train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "lr/generator", "lr/discriminator", "epoch/d_loss", "epoch/g_loss"):
        assert tag in tags, (tag, sorted(tags))
    history = [r for r in read_history(run / "history.jsonl") if r["kind"] == "step"]
    assert [r["step"] for r in history] == [1, 2, 3, 4]  # 2 batches per epoch, 2 epochs, a log per step
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        logged = [(e.step, e.value) for e in acc.Scalars(f"train/{key}")]
        assert logged == [(r["step"], pytest.approx(r[key], rel=1e-6)) for r in history], key
    assert [e.value for e in acc.Scalars("lr/generator")] == pytest.approx([2e-4] * 4)
    grids = acc.Images("samples")
    assert [g.step for g in grids] == [2, 4]  # one grid per epoch
    assert grids[0].height > 32 and grids[0].width > 32  # 10 classes x 8 samples of 32x32, tiled


@pytest.mark.slow  # two CLI runs read back by TensorBoard
def test_resume_purges_what_a_killed_run_logged_after_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--epochs", "1", "--tensorboard", *TINY]) == 0  # 2 steps, checkpoint at 2
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0  # keeps --tensorboard from the run's config
    steps = [e.step for e in events(run / "tensorboard").Scalars("train/d_loss")]
    assert steps == [1, 2, 3, 4]


def test_without_the_package_it_is_one_line_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now raises ImportError
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "run"), "--tensorboard", *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tensorboard=True: the tensorboard package is not installed" in err[0], err
    assert 'pip install "gan-edu[tensorboard]"' in err[0]
    assert not (tmp_path / "run").exists()
