"""Variants of the GAN trainer: hooks that keep the plumbing, trainer classes by name, resume of a user's class."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_edu.cli import main
from gan_edu.errors import GanEduError
from gan_edu.losses import NonSaturatingLoss
from gan_edu.models.classifier import build_classifier
from gan_edu.pipeline import PipelineConfig
from gan_edu.training import (
    TRAINERS,
    GANTrainer,
    GANTrainerConfig,
    TrainingInterrupted,
    register_trainer,
)
from gan_edu.training.callbacks import Callback
from gan_edu.training.classifier_trainer import ClassifierTrainer, ClassifierTrainerConfig
from gan_edu.training.runs import new_gan_run, resume_gan_run

REPO = Path(__file__).resolve().parents[1]
TINY = {"g_channels": 4, "d_channels": 4}
CLI_TINY = ["--num-images", "64", "--batch-size", "16", "--g-channels", "4", "--d-channels", "4", "--no-progress", "--log-every", "1"]


def cfg(**kw):
    return GANTrainerConfig(**{"epochs": 1, "max_steps": 3, "batch_size": 16, "progress": False, "log_every": 1, "seed": 5, **kw})


def params(trainer) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": p.detach().clone() for n, m in trainer.modules().items() for k, p in m.named_parameters()}


@pytest.fixture
def registry():
    """The trainer registry, restored after the test (registering is global)."""
    saved = dict(TRAINERS)
    yield TRAINERS
    TRAINERS.clear()
    TRAINERS.update(saved)


# -- hooks: a variant overrides what it changes, the plumbing stays ------------------------------------
def test_an_objective_hook_keeps_the_penalty(tiny_shapes, registry):
    @register_trainer
    class SmoothedGANTrainer(GANTrainer):  # the objective of one-sided label smoothing, nothing else
        def discriminator_objective(self, real_logits, fake_logits, *, real, fake, labels):
            target = torch.full_like(real_logits, 0.9)  # (N,)
            return torch.nn.functional.binary_cross_entropy_with_logits(real_logits, target) + torch.nn.functional.softplus(fake_logits).mean()

    @register_trainer
    class SameGANTrainer(GANTrainer):  # hooks overridden by their defaults: the same run, bit for bit
        def discriminator_objective(self, real_logits, fake_logits, **inputs):
            return super().discriminator_objective(real_logits, fake_logits, **inputs)

        def generator_objective(self, fake_logits, **inputs):
            return super().generator_objective(fake_logits, **inputs)

    def run(trainer_class, r1):
        torch.manual_seed(0)
        t = new_gan_run("dcgan", tiny_shapes, loss=NonSaturatingLoss(r1=r1), config=cfg(), trainer_class=trainer_class, **TINY)
        t.fit(tiny_shapes)
        return t

    plain, same, smoothed, plain_no_r1 = run(GANTrainer, 1.0), run(SameGANTrainer, 1.0), run(SmoothedGANTrainer, 1.0), run(GANTrainer, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(params(plain).values(), params(same).values()))
    assert any(not torch.equal(a, b) for a, b in zip(params(plain).values(), params(plain_no_r1).values()))  # R1 matters here
    steps = [r for r in smoothed.history if r["kind"] == "step"]
    assert len(steps) == 3 and all(r["d_penalty"] > 0 for r in steps)  # the hook changed D's objective; R1 was still added
    assert any(not torch.equal(a, b) for a, b in zip(params(plain).values(), params(smoothed).values()))


@pytest.mark.slow  # torchrun, two processes per way
def test_each_way_of_the_example_trains_under_torchrun_and_the_ranks_agree(tmp_path):
    """2 CPU processes, 8 images each: D's and G's gradients are averaged, so both ranks end with the same weights."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           str(REPO / "tests" / "ddp_variants.py"), str(tmp_path)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {way: [torch.load(tmp_path / f"{way}-rank{r}.pt") for r in (0, 1)] for way in ("loss", "objective", "step", "plain-d")}
    assert [runs[w][0]["class"] for w in runs] == ["GANTrainer", "FadingSmoothingGANTrainer", "MatchingAwareGANTrainer", "PlainDGANTrainer"]
    for way in ("loss", "objective", "step"):
        rank0, rank1 = (r["params"] for r in runs[way])
        for k in rank0:
            assert torch.equal(rank0[k], rank1[k]), (way, k)
        assert runs[way][0]["history"][-1]["step"] == 3
    assert "d_wrong" in runs["step"][0]["history"][-1]  # the full step made its third call of D
    # The control: D called outside the DDP wrapper learns from each rank's own 8 images, so the ranks drift apart.
    rank0, rank1 = (r["params"] for r in runs["plain-d"])
    assert any(not torch.equal(rank0[k], rank1[k]) for k in rank0 if k.startswith("discriminator."))


# -- trainer classes by name -----------------------------------------------------------------------------
def test_register_trainer_refuses_other_names_and_classes(registry, tiny_shapes):
    class GANTrainerLookalike(GANTrainer):
        pass

    GANTrainerLookalike.__name__ = GANTrainerLookalike.__qualname__ = "GANTrainer"
    with pytest.raises(GanEduError, match="the name is taken by gan_edu.training.gan_trainer.GANTrainer"):
        register_trainer(GANTrainerLookalike)
    with pytest.raises(GanEduError, match="expected a subclass of GANTrainer"):
        register_trainer(ClassifierTrainer)

    class UnregisteredGANTrainer(GANTrainer):
        pass

    with pytest.raises(GanEduError, match=r"'UnregisteredGANTrainer' is not registered.*register_trainer\(UnregisteredGANTrainer\)"):
        new_gan_run("dcgan", tiny_shapes, config=cfg(), trainer_class=UnregisteredGANTrainer, **TINY)
    with pytest.raises(GanEduError, match="trainer class 'Nope' is not registered"):
        new_gan_run("dcgan", tiny_shapes, config=cfg(), trainer_class="Nope", **TINY)
    with pytest.raises(GanEduError, match="'Nope' is not registered"):
        PipelineConfig(trainer="Nope")
    assert main(["pipeline", "--out", "/nonexistent/x", "--trainer", "Nope"]) == 2


USER_FILE = '''
"""A user's own trainer, in a file of theirs."""
import torch
from gan_edu.training import GANTrainer, register_trainer


@register_trainer
class CountingGANTrainer(GANTrainer):
    """Counts the D objectives it computed (to see which class a run really used)."""

    calls = 0

    def discriminator_objective(self, real_logits, fake_logits, **inputs):
        type(self).calls += 1
        return super().discriminator_objective(real_logits, fake_logits, **inputs)


if __name__ == "__main__":
    from gan_edu.cli import main

    raise SystemExit(main())
'''


def test_a_registered_class_from_the_users_file_trains_and_resumes_through_the_command(tmp_path, registry, capsys):
    path = tmp_path / "my_trainers.py"
    path.write_text(USER_FILE)
    spec = importlib.util.spec_from_file_location("my_trainers", path)  # what `python my_trainers.py ...` runs first
    user = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user)
    run = tmp_path / "run"
    assert main(["train", "--trainer", "CountingGANTrainer", "--out", str(run), "--max-steps", "2", *CLI_TINY]) == 0
    assert user.CountingGANTrainer.calls == 2
    assert json.loads((run / "config.json").read_text())["trainer_class"] == "CountingGANTrainer"
    assert main(["train", "--resume", str(run), "--max-steps", "3", "--no-progress"]) == 0
    assert user.CountingGANTrainer.calls == 3  # resumed as the user's class, not as a plain GANTrainer
    trainer, _ = resume_gan_run(run)
    assert type(trainer) is user.CountingGANTrainer and trainer.step == 3
    # Without the registration (plain gan-edu), resume is refused with one line that says what to do.
    del registry["CountingGANTrainer"]
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--max-steps", "4", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{run}: trained by trainer class 'CountingGANTrainer', which is not registered here" in err
    assert "register_trainer(CountingGANTrainer)" in err and "gan_edu.trainers" in err
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 3  # nothing trained


@pytest.mark.slow  # three gan-edu processes
def test_an_installed_entry_point_makes_the_class_known_to_plain_gan_edu(tmp_path):
    """A package declaring ``[project.entry-points."gan_edu.trainers"]``: ``gan-edu train --trainer`` and ``--resume`` find it."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "my_trainers.py").write_text(USER_FILE)
    info = site / "my_trainers-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-trainers\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[gan_edu.trainers]\nCountingGANTrainer = my_trainers:CountingGANTrainer\n")
    run = tmp_path / "run"

    def gan_edu(*args, path=(site, REPO)):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, path)), "OMP_NUM_THREADS": "1"}
        return subprocess.run([sys.executable, "-m", "gan_edu", "train", *args], capture_output=True, text=True, env=env, timeout=300)

    first = gan_edu("--trainer", "CountingGANTrainer", "--out", str(run), "--max-steps", "2", *CLI_TINY)
    assert first.returncode == 0, first.stderr[-2000:]
    resumed = gan_edu("--resume", str(run), "--max-steps", "3", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((run / "config.json").read_text())["trainer_class"] == "CountingGANTrainer"  # rewritten by the resumed run
    refused = gan_edu("--resume", str(run), "--max-steps", "4", "--no-progress", path=(REPO,))  # the package is not installed
    assert refused.returncode == 2 and "CountingGANTrainer" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


# -- signals: a classifier run is not told to resume with a GAN command -----------------------------------
def test_a_stopped_classifier_run_names_no_gan_command(tiny_shapes, tmp_path):
    class StopAfterFirstLog(Callback):
        def on_log(self, trainer, record):
            trainer.signals.received = signal.SIGTERM  # as the handler records a SIGTERM

    clf = build_classifier("vgg", image_shape=tiny_shapes.image_shape, num_classes=tiny_shapes.num_classes, width=4)
    config = ClassifierTrainerConfig(epochs=1, batch_size=16, log_every=1, progress=False, device="cpu", warmup_steps=1)
    trainer = ClassifierTrainer(clf, config, out_dir=tmp_path / "c", callbacks=[StopAfterFirstLog()])
    with pytest.raises(TrainingInterrupted) as stopped:
        trainer.fit(tiny_shapes)
    message = str(stopped.value)
    assert message.startswith(f"SIGTERM received: stopped after step 1, checkpoint written in {tmp_path / 'c'}; ")
    assert "gan-edu train" not in message and "a classifier run has no resume command" in message
    gan = new_gan_run("dcgan", tiny_shapes, config=cfg(), out_dir=tmp_path / "g", **TINY)
    gan.callbacks.append(StopAfterFirstLog())
    with pytest.raises(TrainingInterrupted, match=f"resume with: gan-edu train --resume {tmp_path / 'g'}$"):
        gan.fit(tiny_shapes)


@pytest.mark.slow  # a bank's member runs, twice
def test_a_bank_records_its_trainer_class_and_resumes_its_members_with_it(tmp_path, registry):
    from gan_edu.data import load_dataset
    from gan_edu.training.bank import read_bank_manifest, resume_bank, train_bank

    @register_trainer
    class CountingBankTrainer(GANTrainer):
        calls = 0

        def generator_objective(self, fake_logits, **inputs):
            type(self).calls += 1
            return super().generator_objective(fake_logits, **inputs)

    data = load_dataset("shapes", n=20)  # 2 images per class: one batch of 2 per member
    config = GANTrainerConfig(epochs=1, batch_size=2, progress=False)
    train_bank("dcgan", data, config=config, out_dir=tmp_path / "bank", trainer_class="CountingBankTrainer", **TINY)
    manifest = read_bank_manifest(tmp_path / "bank")
    assert manifest["trainer_class"] == "CountingBankTrainer" and CountingBankTrainer.calls == 10
    assert json.loads((tmp_path / "bank" / manifest["classes"][0]["run"] / "config.json").read_text())["trainer_class"] == "CountingBankTrainer"
    resume_bank(tmp_path / "bank", epochs=2)  # every member trains one more epoch, as the recorded class
    assert CountingBankTrainer.calls == 20
    del registry["CountingBankTrainer"]
    with pytest.raises(GanEduError, match="trained by trainer class 'CountingBankTrainer', which is not registered here"):
        resume_bank(tmp_path / "bank", epochs=3)


# -- an objective's own terms are logged by name, apart from d_loss / g_loss ------------------------------
def test_an_objective_returning_named_terms_logs_each_and_minimises_their_sum(tiny_shapes, tmp_path):
    @register_trainer
    class ShrinkingGANTrainer(GANTrainer):
        def discriminator_objective(self, real_logits, fake_logits, **inputs):
            shrink = 0.1 * (real_logits.square().mean() + fake_logits.square().mean())  # keeps D's logits small
            return {"d_loss": super().discriminator_objective(real_logits, fake_logits, **inputs), "d_shrink": shrink}

        def generator_objective(self, fake_logits, **inputs):
            return {"g_loss": super().generator_objective(fake_logits, **inputs), "g_zero": 0.0 * fake_logits.mean()}

    try:
        torch.manual_seed(0)
        shrinking = new_gan_run("dcgan", tiny_shapes, config=cfg(), out_dir=tmp_path / "s", trainer_class=ShrinkingGANTrainer, **TINY)
        shrinking.fit(tiny_shapes)
        torch.manual_seed(0)
        plain = new_gan_run("dcgan", tiny_shapes, config=cfg(), out_dir=None, **TINY)
        plain.fit(tiny_shapes)
        first, plain_first = shrinking.history[0], plain.history[0]
        assert first["d_shrink"] > 0 and first["g_zero"] == 0.0
        assert first["d_loss"] == pytest.approx(plain_first["d_loss"], rel=1e-5)  # d_loss is the loss's term alone
        logged = [json.loads(line) for line in (tmp_path / "s" / "history.jsonl").read_text().splitlines()]
        assert all("d_shrink" in r for r in logged)  # kept in the run's history file too
        # The sum is what D minimised: its later steps differ from the plain run's.
        assert shrinking.history[-2]["d_loss"] != pytest.approx(plain.history[-2]["d_loss"], rel=1e-6)
    finally:
        del TRAINERS["ShrinkingGANTrainer"]

    class WrongGANTrainer(GANTrainer):
        def generator_objective(self, fake_logits, **inputs):
            return [fake_logits.mean()]

    from gan_edu.models import build_gan

    g, d = build_gan("dcgan", image_shape=tiny_shapes.image_shape, **TINY)
    with pytest.raises(GanEduError, match="objective list: expected a scalar tensor or a dict of named scalar tensors"):
        WrongGANTrainer(g, d, None, cfg()).fit(tiny_shapes)


# -- the resume hint names a command that knows the class ---------------------------------------------------
def test_the_resume_hint_of_a_users_module_works_through_python_m_gan_edu_import(tmp_path, registry, monkeypatch, capsys):
    module = "hinted_trainers_for_test"
    (tmp_path / f"{module}.py").write_text(USER_FILE.replace("CountingGANTrainer", "HintedGANTrainer"))
    monkeypatch.chdir(tmp_path)  # where `python -m gan_edu --import` finds the module, as a user runs it
    run = tmp_path / "run"
    assert main(["--import", module, "train", "--trainer", "HintedGANTrainer", "--out", str(run), "--max-steps", "2", *CLI_TINY]) == 0
    trainer, _ = resume_gan_run(run)
    hint = trainer.resume_hint()
    assert hint == f"resume with: python -m gan_edu --import {module} train --resume {run}"
    # A fresh process knows nothing of the class: the hint's command must import it itself.
    del registry["HintedGANTrainer"]
    monkeypatch.delitem(sys.modules, module)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--max-steps", "3", "--no-progress"]) == 2  # plain: refused
    command = hint.removeprefix("resume with: python -m gan_edu ").split() + ["--max-steps", "3", "--no-progress"]
    assert main(command) == 0, capsys.readouterr().err
    assert json.loads((run / "history.jsonl").read_text().splitlines()[-1])["step"] == 3
    assert main(["--import", "no_such_module_here", "models"]) == 2
    assert "--import no_such_module_here: cannot be imported (ModuleNotFoundError" in capsys.readouterr().err


def test_the_resume_hint_of_a_class_in_the_running_script_or_a_notebook(tmp_path, monkeypatch, tiny_shapes):
    from gan_edu.models import build_gan

    class ScriptGANTrainer(GANTrainer):
        pass

    ScriptGANTrainer.__module__ = "__main__"
    g, d = build_gan("dcgan", image_shape=tiny_shapes.image_shape, **TINY)
    trainer = ScriptGANTrainer(g, d, None, cfg(), out_dir=tmp_path / "r")
    script = tmp_path / "my_trainers.py"
    script.write_text("")
    monkeypatch.setattr(sys, "argv", [str(script), "train"])
    assert trainer.resume_hint() == f"resume with: python {script} train --resume {tmp_path / 'r'}"
    monkeypatch.setattr(sys, "argv", ["/usr/lib/python3/site-packages/ipykernel_launcher", "-f", "kernel.json"])
    assert trainer.resume_hint() == f"resume with: gan_edu.training.runs.resume_gan_run({str(tmp_path / 'r')!r}) in the session that defines ScriptGANTrainer"
