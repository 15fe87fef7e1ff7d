"""The recorded step (``cuda_graph``): its CPU rehearsal keeps the rules of a CUDA graph, the
recorded GAN and classifier steps give the eager steps' weights, and the cases it cannot hold run
eagerly, saying why once.

No GPU here: :class:`gan_edu.training.capture.Rehearsal` records every aten operation of a step
and re-runs them on replay with the same arguments into the same tensors, as a CUDA graph
replays its kernels. benchmarks/gpu_check.sh runs the same comparison on CUDA with real graphs.
"""

from __future__ import annotations

import logging

import pytest
import torch

from gan_edu.losses import get_loss
from gan_edu.models import build_gan
from gan_edu.models.classifier import build_classifier
from gan_edu.training import GANTrainer, GANTrainerConfig, capture
from gan_edu.training.classifier_trainer import ClassifierTrainer, ClassifierTrainerConfig
from gan_edu.training.runs import new_gan_run, resume_gan_run

TINY = {"g_channels": 4, "d_channels": 4, "embed_dim": 4}


@pytest.fixture
def rehearse():
    """Steps on the CPU are recorded by the rehearsal, as steps on CUDA are by CUDA graphs (the public tool)."""
    torch.set_num_threads(1)  # float sums depend on the thread count; both runs of a comparison use one
    with capture.rehearse():
        yield


def _gan_config(**options):
    base = dict(epochs=1, max_steps=8, batch_size=8, device="cpu", progress=False, log_every=2, diffaugment="translation,cutout,color")
    return GANTrainerConfig(**{**base, **options})


def _max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa)


# -- the rehearsal is as strict as a CUDA graph ---------------------------------------------------
def test_a_host_read_in_a_recorded_step_is_refused():
    x = torch.ones(3)
    step = capture.CapturedStep(lambda a, b: {"v": a * float(a.sum())}, backend="rehearsal", warmup=1)
    step(x, x)  # the warm-up step runs eagerly: no rule applies
    with pytest.raises(capture.CaptureError, match="reads a tensor's value on the host"):
        step(x, x)


@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        (lambda a: a * a.sum().item(), "reads a tensor's value on the host"),
        (lambda a: a * float(a.sum()), "reads a tensor's value on the host"),
        (lambda a: a * 2 if bool(a.sum() > 0) else a, "reads a tensor's value on the host"),
        (lambda a: (a * 2).cpu(), r"cpu\(\) in a captured step copies to the host"),
        (lambda a: torch.as_tensor((a * 2).numpy()), r"numpy\(\) in a captured step copies to the host"),
        (lambda a: a * len((a > 0).tolist()), r"tolist\(\) in a captured step copies to the host"),
        (lambda a: (torch.cuda.synchronize(), a * 2)[1], r"synchronize\(\) in a captured step"),
        (lambda a: a[a.nonzero()[:, 0]], "reads a tensor's value on the host"),
        (lambda a: a[a > 1].sum() * a, "size depends on the values"),
        (lambda a: torch.unique(a).sum() * a, "size depends on the values"),
        (lambda a: a.repeat_interleave(a.long()).sum() * a, "size depends on the values"),
    ],
    ids=["item", "float", "bool", "cpu", "numpy", "tolist", "cuda-synchronize", "nonzero", "mask-index", "unique", "repeat-interleave"],
)
def test_the_rehearsal_refuses_what_cuda_capture_refuses(body, refusal):
    """Each of these runs on a CPU tensor at no cost, but under CUDA capture it is a device-to-host
    copy, a synchronisation or an output sized by values: the rehearsal must refuse it as capture would."""
    x = torch.tensor([1.0, 2.0, 3.0])
    step = capture.CapturedStep(lambda a, b: {"v": body(a)}, backend="rehearsal", warmup=0)
    with pytest.raises(capture.CaptureError, match=refusal):
        step(x, x)
    assert x.cpu() is x and x.tolist() == [1.0, 2.0, 3.0]  # refused while recording only: the methods are back
    fine = capture.CapturedStep(lambda a, b: {"v": torch.where(a > 1, a, 0.0).sum() + a.masked_fill(a > 2, 0).sum()}, backend="rehearsal", warmup=0)
    assert float(fine(x, x)["v"]) == 5.0 + 3.0  # the fixed-shape ways to say the same are recorded


def test_python_numbers_are_frozen_and_generators_advance():
    calls = {"n": 0}
    gen = torch.Generator().manual_seed(0)
    total = torch.zeros(())

    def fn(a, b):
        calls["n"] += 1
        total.add_(a.sum() * calls["n"])  # a Python number that changes: frozen at the recording
        return {"total": total * 1, "noise": torch.rand((), generator=gen)}

    step = capture.CapturedStep(fn, backend="rehearsal", state=lambda: [total], generators=[gen], warmup=1)
    ones = torch.ones(2)
    noises = [float(step(ones, ones)["noise"]) for _ in range(4)]
    # eager call 1 adds 2*1; the recording (call 2) is undone, its replay adds 2*2; the replays add 2*2 again
    assert float(total) == 2 * 1 + 3 * (2 * 2)
    assert calls["n"] == 2  # Python ran for the warm-up and the recording only
    reference = torch.Generator().manual_seed(0)
    assert noises == pytest.approx([float(torch.rand((), generator=reference)) for _ in range(4)])  # a new draw each replay


def test_inputs_are_copied_into_static_buffers():
    step = capture.CapturedStep(lambda a, b: {"s": (a * b).sum()}, backend="rehearsal", warmup=0)
    assert [float(step(torch.full((2,), float(i)), torch.ones(2))["s"]) for i in range(3)] == [0.0, 2.0, 4.0]
    assert step.fits(torch.ones(2), torch.ones(2)) and not step.fits(torch.ones(3), torch.ones(2))


# -- the recorded steps give the eager steps' weights -------------------------------------------
@pytest.mark.parametrize("model", ["cdcgan", "dcgan"])
def test_recorded_gan_step_gives_the_eager_weights(rehearse, tiny_shapes, model):
    options = TINY if model == "cdcgan" else {"g_channels": 4, "d_channels": 4}
    recorded = new_gan_run(model, tiny_shapes, config=_gan_config(cuda_graph=True), out_dir=None, **options)
    recorded.fit(tiny_shapes)
    assert recorded.captured is not None and recorded.captured.replays == 5  # 3 warm-up steps, then 5 replays
    eager = new_gan_run(model, tiny_shapes, config=_gan_config(), out_dir=None, **options)
    eager.fit(tiny_shapes)
    for name in ("generator", "discriminator", "generator_ema"):
        assert _max_difference(recorded.modules()[name], eager.modules()[name]) < 1e-5, name  # fused vs foreach Adam: float rounding
    assert recorded.ema.updates == eager.ema.updates == 8
    for a, b in zip(recorded.history, eager.history):
        assert a["d_loss"] == pytest.approx(b["d_loss"], rel=1e-4) and a["g_loss"] == pytest.approx(b["g_loss"], rel=1e-4)


@pytest.mark.parametrize("options", [{}, {"schedule": "onecycle", "label_smoothing": 0.2}, {"optimizer": "adam", "lr": 1e-3}])
def test_recorded_classifier_step_gives_the_eager_weights(rehearse, tiny_shapes, options):
    def train(cuda_graph: bool) -> ClassifierTrainer:
        torch.manual_seed(0)
        classifier = build_classifier("vgg", image_shape=(3, 32, 32), num_classes=10, width=4)
        config = ClassifierTrainerConfig(epochs=2, batch_size=16, device="cpu", progress=False, log_every=2, warmup_steps=3, cuda_graph=cuda_graph, **options)
        trainer = ClassifierTrainer(classifier, config)
        trainer.fit(tiny_shapes)
        return trainer

    recorded, eager = train(True), train(False)
    assert recorded.captured is not None and recorded.captured.replays == 5  # 8 steps: 3 warm-up, then replays
    assert _max_difference(recorded.classifier, eager.classifier) < 1e-5
    assert float(recorded.opt.param_groups[0]["lr"]) == pytest.approx(eager.opt.param_groups[0]["lr"], rel=1e-5)  # the schedule ran on the device


def test_a_recorded_run_resumes_to_the_uninterrupted_run(rehearse, tiny_shapes, tmp_path):
    whole = new_gan_run("cdcgan", tiny_shapes, config=_gan_config(cuda_graph=True), out_dir=tmp_path / "whole", **TINY)
    whole.fit(tiny_shapes)
    half = new_gan_run("cdcgan", tiny_shapes, config=_gan_config(cuda_graph=True, max_steps=4), out_dir=tmp_path / "half", **TINY)
    half.fit(tiny_shapes)
    half.save_checkpoint()
    resumed, data = resume_gan_run(tmp_path / "half", max_steps=8)
    resumed.fit(data)
    assert resumed.step == whole.step == 8 and resumed.captured is not None
    for name in ("generator", "discriminator", "generator_ema"):
        assert _max_difference(resumed.modules()[name], whole.modules()[name]) < 1e-5, name


# -- what runs eagerly, and says why ---------------------------------------------------------------
def test_on_the_cpu_the_switch_runs_the_eager_step_and_says_so_once(tiny_shapes, caplog):
    trainer = new_gan_run("cdcgan", tiny_shapes, config=_gan_config(cuda_graph=True, diffaugment=""), out_dir=None, **TINY)
    with caplog.at_level(logging.WARNING, logger="gan_edu.training"):
        trainer.fit(tiny_shapes)
        trainer.fit(tiny_shapes)  # a second fit: not said again
    assert trainer.captured is None and trainer.step == 8
    said = [r.getMessage() for r in caplog.records if "cuda_graph" in r.getMessage()]
    assert said == ["cuda_graph: device cpu: CUDA graphs need CUDA; running the eager step"]


class _ObjectiveVariant(GANTrainer):
    def discriminator_objective(self, real_logits, fake_logits, *, real, fake, labels):
        return super().discriminator_objective(real_logits, fake_logits, real=real, fake=fake, labels=labels) * 1.0


class _DeclaredVariant(_ObjectiveVariant):
    graph_safe = True  # its author checked the override keeps the rules


@pytest.mark.parametrize(
    ("trainer_class", "config", "loss", "reason"),
    [
        (GANTrainer, {"d_steps": 2}, None, "d_steps=2"),
        (GANTrainer, {}, get_loss("non-saturating", r1=1.0), "gradient penalty"),
        (GANTrainer, {}, get_loss("wgan-gp"), "gradient penalty"),
        (_ObjectiveVariant, {}, None, "_ObjectiveVariant overrides discriminator_objective"),
        pytest.param(GANTrainer, {"compile": True}, None, "compile=True", marks=pytest.mark.slow),  # torch.compile's start
        (_DeclaredVariant, {}, None, None),
        (GANTrainer, {}, None, None),
    ],
)
def test_what_cannot_be_recorded_is_routed_to_the_eager_step(rehearse, tiny_shapes, trainer_class, config, loss, reason):
    g, d = build_gan("cdcgan", image_shape=(3, 32, 32), num_classes=10, **TINY)
    trainer = trainer_class(g, d, loss, _gan_config(cuda_graph=True, **config))
    blocker = trainer.graph_blocker()
    if reason is None:
        assert blocker is None
    else:
        assert blocker is not None and reason in blocker
        assert trainer.recorder.capture_step(trainer) is None  # and so fit runs train_step itself


def test_the_switch_is_checked():
    with pytest.raises(Exception, match="cuda_graph='yes': expected True or False"):
        GANTrainerConfig(cuda_graph="yes", device="cpu")


def test_a_second_fit_replays_the_same_recording_unless_the_state_changed(rehearse, tiny_shapes, tmp_path):
    trainer = new_gan_run("cdcgan", tiny_shapes, config=_gan_config(cuda_graph=True, max_steps=5), out_dir=tmp_path / "r", **TINY)
    trainer.fit(tiny_shapes)
    first = trainer.captured
    trainer.config = _gan_config(cuda_graph=True, max_steps=8)
    trainer.fit(tiny_shapes)
    assert trainer.captured is first and first.replays == 5  # steps 4-8 replayed, no new warm-up
    trainer.resume()  # new optimizer state tensors: a new recording
    trainer.fit(tiny_shapes)
    assert trainer.captured is not first


@pytest.mark.slow
def test_the_gpu_check_script_runs_as_it_is(tmp_path):
    """benchmarks/gpu_check.sh --dry-run: every step of the GPU script, tiny, on the CPU (the rehearsal for graphs)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "OUT": str(tmp_path)}
    done = subprocess.run(["bash", str(script), "--dry-run"], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    results = json.loads((tmp_path / "gpu_check" / "gpu_check.json").read_text())
    assert results["gan_fp32"]["recorded"] and results["classifier"]["recorded"]
    assert max(results["gan_fp32"]["max_weight_difference"].values()) < 1e-4
    assert results["sampling"]["uint8_max_difference"] == 0  # the bound path on the CPU provider: the same images
    for setting in ("default", "cuda-graph", "cuda-graph+bf16+channels-last"):  # one train_speed run, one baseline
        assert f"ratio gan-edu {setting} / baseline at batch 8" in done.stdout, setting
    assert done.stdout.count("batch 8 baseline") == 1 and "gpu_check: done" in done.stdout
    assert (tmp_path / "gpu_check" / "gpu_check.log").is_file() and (tmp_path / "gpu_check" / "profile_fp32.txt").is_file()
    wrong = subprocess.run(["bash", str(script), "--fast"], capture_output=True, text=True, env=env)
    assert wrong.returncode == 2 and "unknown argument --fast" in wrong.stderr


def test_a_step_that_cannot_be_recorded_falls_back_to_the_eager_step(rehearse, tiny_shapes, caplog):
    class ReadsBackGANTrainer(GANTrainer):
        graph_safe = True  # wrongly: its objective reads a value back to the host

        def generator_objective(self, fake_logits, *, fake, labels):
            scale = 1.0 if float(fake_logits.detach().mean()) < 1e9 else 0.0
            return super().generator_objective(fake_logits, fake=fake, labels=labels) * scale

    torch.manual_seed(0)
    g, d = build_gan("cdcgan", image_shape=(3, 32, 32), num_classes=10, **TINY)
    trainer = ReadsBackGANTrainer(g, d, None, _gan_config(cuda_graph=True))
    with caplog.at_level(logging.WARNING, logger="gan_edu.training"):
        trainer.fit(tiny_shapes)
    assert trainer.step == 8 and trainer.captured is None
    assert any("recording the step failed (CaptureError" in r.getMessage() for r in caplog.records)
    # the failed recording left nothing behind: the run equals a plain eager run of the same class
    torch.manual_seed(0)
    g2, d2 = build_gan("cdcgan", image_shape=(3, 32, 32), num_classes=10, **TINY)
    eager = ReadsBackGANTrainer(g2, d2, None, _gan_config())
    eager.fit(tiny_shapes)
    for name in ("generator", "discriminator", "generator_ema"):
        assert _max_difference(trainer.modules()[name], eager.modules()[name]) < 1e-5, name


# -- one decision: what cannot be recorded gets eager settings ------------------------------------
@pytest.mark.parametrize(
    ("trainer_class", "config", "loss", "recorded"),
    [
        (GANTrainer, {}, None, True),
        (GANTrainer, {}, get_loss("non-saturating", r1=1.0), False),  # R1: a double backward
        (GANTrainer, {"d_steps": 2}, None, False),
        (_ObjectiveVariant, {}, None, False),  # an override not declared graph-safe
        (GANTrainer, {"cuda_graph": False}, None, False),
    ],
    ids=["plain", "r1", "d_steps", "unflagged-variant", "switch-off"],
)
def test_the_optimizer_and_autocast_follow_the_one_decision(rehearse, trainer_class, config, loss, recorded):
    """A step that is not recorded gets eager settings (plain Adam, autocast with its cache); only a
    recorded one gets capturable Adam and cache-less autocast."""
    g, d = build_gan("cdcgan", image_shape=(3, 32, 32), num_classes=10, **TINY)
    trainer = trainer_class(g, d, loss, _gan_config(**{"cuda_graph": True, "precision": "bf16", **config}))
    assert trainer.records_steps is recorded
    assert (trainer.recorder.blocker(trainer) is None) is recorded
    for opt in (trainer.opt_g, trainer.opt_d):
        assert bool(opt.param_groups[0]["capturable"]) is recorded
    assert trainer.autocast()._cache_enabled is (not recorded)


def test_a_failed_recording_puts_the_eager_settings_back(rehearse, tiny_shapes):
    class ReadsBackGANTrainer(GANTrainer):
        graph_safe = True  # wrongly: its objective reads a value back to the host

        def generator_objective(self, fake_logits, *, fake, labels):
            return super().generator_objective(fake_logits, fake=fake, labels=labels) * (1.0 if float(fake_logits.detach().mean()) < 1e9 else 0.0)

    g, d = build_gan("cdcgan", image_shape=(3, 32, 32), num_classes=10, **TINY)
    trainer = ReadsBackGANTrainer(g, d, None, _gan_config(cuda_graph=True, precision="bf16"))
    assert trainer.opt_g.param_groups[0]["capturable"] and not trainer.autocast()._cache_enabled
    trainer.fit(tiny_shapes)
    assert trainer.captured is None and not trainer.records_steps
    assert not trainer.opt_g.param_groups[0]["capturable"] and trainer.autocast()._cache_enabled
    trainer.fit(tiny_shapes)  # a second fit does not try again
    assert trainer.captured is None


def test_switching_cuda_graph_off_between_fits_gives_the_eager_settings(rehearse, tiny_shapes):
    trainer = new_gan_run("cdcgan", tiny_shapes, config=_gan_config(cuda_graph=True, max_steps=4, precision="bf16"), out_dir=None, **TINY)
    trainer.fit(tiny_shapes)
    assert trainer.captured is not None and trainer.opt_d.param_groups[0]["capturable"]
    trainer.config = _gan_config(cuda_graph=False, max_steps=6, precision="bf16")
    trainer.fit(tiny_shapes)
    assert trainer.captured is None and not trainer.opt_d.param_groups[0]["capturable"] and trainer.autocast()._cache_enabled
