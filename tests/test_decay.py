"""Learning rates that fall linearly over a run's end: the schedule, the trainer, resume, bad input."""

from __future__ import annotations

import pytest
import torch

from gan_edu.data import load_dataset
from gan_edu.errors import GanEduError
from gan_edu.training.decay import DecayingTrainer, DecayingTrainerConfig, linear_decay
from gan_edu.training.runs import new_gan_run, resume_gan_run


@pytest.fixture(scope="module")
def shapes():
    return load_dataset("shapes", "train", n=64, channels=1)


def test_the_schedule_holds_then_falls_linearly_to_the_floor():
    factors = [linear_decay(s, 100, start=0.6) for s in range(100)]
    assert factors[:61] == [1.0] * 61  # the first 60% of the steps (and the step at 60) at the full rate
    steps = [a - b for a, b in zip(factors[61:], factors[62:])]
    assert all(d == pytest.approx(1 / 40) for d in steps)  # then the same fall at every step
    assert factors[-1] == pytest.approx(1 / 40)  # one step short of 0 at the last step, 0 at the run's end
    assert linear_decay(100, 100, start=0.6) == pytest.approx(0.0) and linear_decay(150, 100, start=0.6) == pytest.approx(0.0)
    assert linear_decay(100, 100, start=0.6, floor=0.25) == pytest.approx(0.25)
    assert linear_decay(50, 100, start=0.0) == pytest.approx(0.5)  # start 0: from the first step


def test_the_trainer_sets_both_learning_rates_step_by_step_and_resume_continues(shapes, tmp_path):
    torch.manual_seed(0)
    cfg = DecayingTrainerConfig(epochs=2, batch_size=16, lr_g=4e-4, lr_d=8e-4, decay_start=0.5, progress=False, log_every=1)
    trainer = new_gan_run("cdcgan", shapes, config=cfg, trainer_class="DecayingTrainer", out_dir=tmp_path / "run", g_channels=4, d_channels=4)
    seen = []
    step = trainer.train_step

    def recording_step(batch):
        metrics = step(batch)
        seen.append((trainer.opt_g.param_groups[0]["lr"], trainer.opt_d.param_groups[0]["lr"]))  # the rates this step used
        return metrics

    trainer.train_step = recording_step
    trainer.fit(shapes)
    assert trainer.planned_steps == 8 and len(seen) == 8  # 2 epochs of 4 batches
    expected = [linear_decay(s, 8, start=0.5) for s in range(8)]
    assert [g for g, _ in seen] == pytest.approx([4e-4 * f for f in expected])
    assert [d for _, d in seen] == pytest.approx([8e-4 * f for f in expected])
    assert expected[4] == 1.0 and expected[7] == pytest.approx(0.25)  # held, then falling
    factors = [r["lr_factor"] for r in trainer.history if r.get("kind") == "step" and "lr_factor" in r]
    assert factors and factors[0] == pytest.approx(1.0) and min(factors) < 1.0  # logged with the losses
    resumed, _ = resume_gan_run(tmp_path / "run", epochs=4)
    assert type(resumed) is DecayingTrainer
    resumed.make_loader(shapes)
    assert resumed.planned_steps == 16 and resumed.step == 8 and resumed.lr_factor() == pytest.approx(1.0)  # a longer plan: still held at step 8 of 16


def test_bad_settings_are_refused_in_one_line():
    with pytest.raises(GanEduError, match=r"decay_start=1\.5: expected a share in \[0, 1\)"):
        DecayingTrainerConfig(decay_start=1.5)
    with pytest.raises(GanEduError, match=r"decay_floor=-0\.1: expected a share in \[0, 1\)"):
        DecayingTrainerConfig(decay_floor=-0.1)
    with pytest.raises(GanEduError, match=r"max_seconds=60\.0 with a learning-rate decay: a time budget does not say when the run ends"):
        DecayingTrainerConfig(max_seconds=60.0)

