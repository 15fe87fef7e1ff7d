"""The quality switches: EMA of G, spectral norm, DiffAugment, the synthetic stream, the
classifier recipe, presets; each checked against its definition, and each reaching the config
and surviving resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from gan_edu.augment import DiffAugment, color, cutout, parse_policy, translation
from gan_edu.cli import main
from gan_edu.errors import GanEduError
from gan_edu.export import export_generator
from gan_edu.export.runtime import OnnxGenerator
from gan_edu.models import MODELS, build_gan
from gan_edu.models.base import Discriminator, Generator
from gan_edu.models.classifier import build_classifier
from gan_edu.synthetic import FreshSyntheticLoader
from gan_edu.training import GANTrainerConfig
from gan_edu.training.classifier_trainer import ClassifierTrainer, ClassifierTrainerConfig, predict
from gan_edu.training.ema import EMA, ema_decay
from gan_edu.training.runs import new_gan_run, resume_gan_run

TINY = {"g_channels": 4, "d_channels": 4, "embed_dim": 4}


# -- EMA ---------------------------------------------------------------------------------------
def test_ema_update_is_the_formula():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = EMA(model, decay=0.9)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for n in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(8, 3))  # moves batch norm's running statistics (float buffers) and its batch count
        d = min(0.9, (1 + n) / (10 + n))
        for k, v in model.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v if v.is_floating_point() else v.clone()
        ema.update(model)
    for k, v in ema.module.state_dict().items():
        assert torch.allclose(v, expected[k], atol=1e-6), k
    assert ema.updates == 5
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 10**6) == 0.999
    with pytest.raises(GanEduError, match="ema_decay=1.0"):
        EMA(model, decay=1.0)


# -- spectral norm ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [  # one model in the core; the others are slow (a run each)
    pytest.param(n, marks=() if n == "cdcgan" else pytest.mark.slow) for n in [n for n in MODELS if n != "ref002-perclass"] + ["ref002-perclass"]
])
def test_spectral_norm_is_a_switch_of_every_discriminator(name, tmp_path):
    spec = MODELS[name]
    shape = spec.sizes[0]
    torch.manual_seed(0)
    _, d = build_gan(name, image_shape=shape, num_classes=10 if spec.conditional else None, spectral_norm=True, **spec.tiny)
    layers = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    assert layers and all(hasattr(m, "parametrizations") for m in layers), name
    labels = torch.arange(8) % 10 if spec.conditional else None
    for _ in range(30):  # power iterations converge while training forwards run
        d(torch.randn(8, *shape), labels)
    for m in layers:
        w = m.weight.detach()  # W / sigma(W)
        w = w.transpose(0, 1) if isinstance(m, nn.ConvTranspose2d) else w
        top = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2)
        assert top.item() == pytest.approx(1.0, abs=0.05), (name, type(m).__name__, top.item())
    again = Discriminator.from_pretrained(d.save_pretrained(tmp_path / "d"))  # rebuilt with the same parametrisation
    assert again.config.spectral_norm and set(again.state_dict()) == set(d.state_dict())


def test_spectral_norm_reaches_subclasses_without_code():
    from gan_edu.models.dcgan import DCGANConfig, DCGANDiscriminator

    class Wider(DCGANDiscriminator):
        def __init__(self, config: DCGANConfig) -> None:
            super().__init__(config)
            self.extra = nn.Linear(4, 4)  # built after the parent's __init__: normalised too

    d = Wider(DCGANConfig(image_shape=(1, 28, 28), d_channels=4, spectral_norm=True))
    assert hasattr(d.extra, "parametrizations") and hasattr(d.head, "parametrizations")
    plain = Wider(DCGANConfig(image_shape=(1, 28, 28), d_channels=4))
    assert not hasattr(plain.extra, "parametrizations")


# -- DiffAugment --------------------------------------------------------------------------------
def test_diffaugment_keeps_shapes_and_is_differentiable():
    x = torch.rand(6, 3, 32, 32, requires_grad=True) * 2 - 1
    x.retain_grad()
    aug = DiffAugment("translation,cutout,color", torch.Generator().manual_seed(0))
    y = aug(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not torch.equal(aug(x.detach()), aug(x.detach()))  # fresh draws per call
    assert parse_policy("") == () and not DiffAugment("", torch.Generator())
    with pytest.raises(GanEduError, match="'blur'"):
        parse_policy("translation,blur")


def test_diffaugment_does_the_same_kind_of_transform_to_real_and_fake():
    torch.manual_seed(0)
    real, fake = torch.rand(5, 3, 16, 16) + 0.5, torch.rand(5, 3, 16, 16) + 0.5  # no zero pixels of their own
    g = torch.Generator().manual_seed(1)
    for batch in (real, fake):
        shifted = translation(batch, g)  # a shift by at most 2 pixels with zero fill: the content is a window of the input
        for img, out in zip(batch, shifted):
            found = any(
                torch.equal(torch.nn.functional.pad(img, (2, 2, 2, 2))[:, 2 + dy : 18 + dy, 2 + dx : 18 + dx], out)
                for dy in range(-2, 3) for dx in range(-2, 3)
            )
            assert found
        cut = cutout(batch, g)  # a zeroed square of half the side (clipped at the border), the rest unchanged
        for img, out in zip(batch, cut):
            zero = (out == 0).all(0)
            assert 16 <= zero.sum() <= 64 and torch.equal(out[:, ~zero], img[:, ~zero])
        coloured = color(batch, g)  # brightness, saturation, contrast: per-image affine maps of the pixels
        assert coloured.shape == batch.shape and not torch.equal(coloured, batch)


def test_every_image_d_sees_in_both_steps_went_through_diffaugment(tiny_shapes):
    """D's step (real and fake) and G's step (fake): each call of D gets an output of DiffAugment,
    never the raw batch (a G step that skipped the augmentation trained G against a D it never met)."""
    t = new_gan_run("cdcgan", tiny_shapes, config=_cfg(epochs=1, max_steps=2, ema=False), **TINY)
    augmented, seen = [], []

    class Spy:  # the trainer's DiffAugment, recording what it returns
        def __init__(self, inner):
            self.inner, self.generator = inner, inner.generator

        def __bool__(self):
            return bool(self.inner)

        def __call__(self, images):
            out = self.inner(images)
            augmented.append(out.detach().clone())
            return out

    t.augment = Spy(t.augment)
    hook = t.discriminator.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    try:
        t.fit(tiny_shapes)
    finally:
        hook.remove()
    assert len(seen) == 3 * 2  # per step: real and fake in D's step, fake in G's step
    for images in seen:
        assert any(a.shape == images.shape and torch.equal(a.to(images.dtype), images) for a in augmented), "D saw a batch DiffAugment never made"


def test_the_average_follows_g_after_every_g_update_by_the_formula(tiny_shapes):
    """EMA in the trainer: after each step the average is the warmed-up lerp towards G's new weights."""
    from gan_edu.training.callbacks import Callback

    weights = []

    class Record(Callback):
        def on_fit_start(self, trainer):
            weights.append({k: v.detach().clone() for k, v in trainer.generator.state_dict().items()})

        def on_log(self, trainer, record):
            if record.get("kind") == "step":
                weights.append({k: v.detach().clone() for k, v in trainer.generator.state_dict().items()})

    t = new_gan_run("cdcgan", tiny_shapes, config=_cfg(epochs=1, max_steps=4, log_every=1, diffaugment="", ema_decay=0.5), **TINY)
    t.callbacks.append(Record())
    t.fit(tiny_shapes)
    assert len(weights) == 5 and t.ema.updates == 4
    expected = dict(weights[0])
    for n, g in enumerate(weights[1:]):
        d = ema_decay(0.5, n)
        expected = {k: d * expected[k] + (1 - d) * g[k] if g[k].is_floating_point() else g[k] for k in g}
    got = t.ema.module.state_dict()
    for k, v in expected.items():
        assert torch.allclose(got[k], v, rtol=1e-5, atol=1e-6), k
    assert not torch.allclose(got["main.0.weight"], weights[-1]["main.0.weight"])  # an average, not G itself


# -- the trainer with every switch: config, resume ----------------------------------------------
def _cfg(**kw):
    return GANTrainerConfig(**{"batch_size": 16, "log_every": 2, "progress": False, "diffaugment": "translation,cutout,color", **kw})


@pytest.mark.slow  # three runs; test_the_average_follows_g_after_every_g_update_by_the_formula stays in the core
def test_ema_and_diffaugment_resume_bit_exact(tiny_shapes, tmp_path):
    straight = new_gan_run("cdcgan", tiny_shapes, config=_cfg(epochs=2), out_dir=tmp_path / "a", spectral_norm=True, **TINY)
    straight.fit(tiny_shapes)
    half = new_gan_run("cdcgan", tiny_shapes, config=_cfg(epochs=1), out_dir=tmp_path / "b", spectral_norm=True, **TINY)
    half.fit(tiny_shapes)
    resumed, data = resume_gan_run(tmp_path / "b", epochs=2)
    assert resumed.ema is not None and resumed.ema.updates == half.ema.updates
    assert resumed.config.diffaugment == "translation,cutout,color" and resumed.discriminator.config.spectral_norm
    resumed.fit(data)
    for name, module in straight.modules().items():
        other = resumed.modules()[name].state_dict()
        for k, v in module.state_dict().items():
            assert torch.equal(v, other[k]), (name, k)
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["trainer"]["ema"] is True and config["trainer"]["diffaugment"] == "translation,cutout,color"
    assert config["discriminator"]["config"]["spectral_norm"] is True
    g = Generator.from_pretrained(tmp_path / "b" / "generator")  # the average, what export uses
    assert torch.equal(g.state_dict()["main.0.weight"], resumed.ema.module.state_dict()["main.0.weight"])


def test_runs_without_ema_resume_without_it(tiny_shapes, tmp_path):
    t = new_gan_run("cdcgan", tiny_shapes, config=_cfg(epochs=1, ema=False, diffaugment=""), out_dir=tmp_path / "r", **TINY)
    t.fit(tiny_shapes)
    assert "generator_ema" not in t.modules() and not (tmp_path / "r" / "generator_online").exists()
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    del config["trainer"]["ema"]  # a run written before ema existed
    (tmp_path / "r" / "config.json").write_text(json.dumps(config))
    resumed, _ = resume_gan_run(tmp_path / "r", epochs=2)
    assert resumed.ema is None


def test_train_cli_flags_reach_the_config_and_survive_resume(tmp_path):
    run = tmp_path / "run"
    base = ["train", "--dataset", "shapes", "--num-images", "64", "--model", "cdcgan", "--g-channels", "4", "--d-channels", "4",
            "--batch-size", "16", "--no-progress", "--out", str(run)]
    assert main([*base, "--epochs", "1", "--no-ema", "--diffaugment", "color,translation", "--spectral-norm", "--beta2", "0.99", "--minibatch-std", "4"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["trainer"]["ema"] is False and config["trainer"]["diffaugment"] == "color,translation"
    assert config["trainer"]["beta2"] == 0.99 and config["discriminator"]["config"]["spectral_norm"] is True
    assert config["discriminator"]["config"]["minibatch_std"] == 4
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["trainer"]["epochs"] == 2 and config["trainer"]["diffaugment"] == "color,translation"
    assert config["discriminator"]["config"]["spectral_norm"] is True and config["discriminator"]["config"]["minibatch_std"] == 4
    assert main([*base, "--overwrite", "--diffaugment", "zoom"]) == 2


# -- the stream ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def onnx_g(tmp_path_factory):
    torch.manual_seed(0)
    g, _ = build_gan("cdcgan", image_shape=(1, 28, 28), num_classes=10, g_channels=4, embed_dim=4)
    path = tmp_path_factory.mktemp("onnx") / "g.onnx"
    export_generator(g, path, class_names=[str(i) for i in range(10)])
    return OnnxGenerator(path)


class CountingGenerator:
    """An OnnxGenerator that records the largest request (memory is bounded by it)."""

    def __init__(self, inner: OnnxGenerator) -> None:
        self.inner, self.largest = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def iter_sample(self, n, labels=None, **kw):
        self.largest = max(self.largest, n)
        return self.inner.iter_sample(n, labels, **kw)


def test_stream_never_repeats_and_stays_bounded(onnx_g):
    counting = CountingGenerator(onnx_g)
    loader = FreshSyntheticLoader(onnx_g, 200, 10, seed=2, chunk_images=50)
    loader.generator = counting  # type: ignore[assignment]
    epochs = [torch.cat([x for x, _ in loader.iterate(e)]) for e in range(3)]
    assert counting.largest == 50  # never more than one chunk of images at a time
    flat = torch.cat(epochs).flatten(1)
    assert torch.unique(flat, dim=0).shape[0] == 600  # no image twice, within or across epochs
    labels = torch.cat([y for _, y in loader.iterate(0)])
    assert torch.bincount(labels, minlength=10).tolist() == [20] * 10  # balanced every epoch
    middle = list(loader.iterate(1, start=7))  # resume in the middle of a chunk
    assert torch.equal(torch.cat([x for x, _ in middle]), epochs[1][70:])
    assert torch.equal(loader.epoch_data(0).images.float() / 127.5 - 1, epochs[0])


# -- the classifier recipe -----------------------------------------------------------------------
def test_onecycle_schedule_and_flip_tta():
    clf = build_classifier("resnet9", image_shape=(1, 28, 28), num_classes=10, width=4)
    trainer = ClassifierTrainer(clf, ClassifierTrainerConfig(lr=0.4, schedule="onecycle", progress=False))
    trainer.total_steps = 100
    lrs = [trainer.learning_rate(s) for s in range(100)]
    assert max(lrs) == pytest.approx(0.4) and int(np.argmax(lrs)) == 24 and lrs[-1] == pytest.approx(0.4 / 75)
    assert all(a <= b for a, b in zip(lrs[:25], lrs[1:25])) and all(a >= b for a, b in zip(lrs[24:], lrs[25:]))
    images = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    mirrored = images.flip(3)
    assert torch.equal(predict(clf, images, tta_flip=True), predict(clf, mirrored, tta_flip=True))  # symmetric by design
    with pytest.raises(GanEduError, match="schedule='step'"):
        ClassifierTrainerConfig(schedule="step")


# -- the pipeline: every switch, presets ----------------------------------------------------------
@pytest.mark.slow  # a pipeline with every switch
def test_pipeline_with_every_switch_and_a_preset(tmp_path):
    out = tmp_path / "exp"
    argv = ["pipeline", "--out", str(out), "--num-images", "300", "--g-channels", "4", "--d-channels", "4", "--gan-epochs", "1",
            "--gan-batch-size", "32", "--spectral-norm", "--diffaugment", "translation,color", "--ema-decay", "0.99", "--loss", "hinge",
            "--lr-d", "0.0004", "--beta1", "0.0", "--synthetic", "stream", "--synthetic-images", "100", "--classifier-model", "resnet9",
            "--classifier-width", "4", "--classifier-epochs", "2", "--classifier-batch-size", "20", "--classifier-lr", "0.2",
            "--classifier-schedule", "onecycle", "--classifier-label-smoothing", "0.2", "--classifier-tta", "--no-progress"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    s = report["settings"]
    assert s["spectral_norm"] and s["gan"]["diffaugment"] == "translation,color" and s["synthetic"] == "stream" and s["classifier_tta"]
    assert report["synthetic"] == {"mode": "stream", "images": 100, "c_prime_saw": 200, "note": "fresh images every epoch of c'"}
    gan = json.loads((out / "gan" / "config.json").read_text())
    assert gan["trainer"]["ema_decay"] == 0.99 and gan["trainer"]["lr_d"] == 0.0004 and gan["discriminator"]["config"]["spectral_norm"]
    c_prime = json.loads((out / "c_prime" / "config.json").read_text())
    assert c_prime["trainer"]["schedule"] == "onecycle" and c_prime["trainer"]["label_smoothing"] == 0.2
    assert "stream of 100 fresh synthetic images per epoch" in (out / "report.md").read_text()


def test_presets_are_valid_and_flags_win(monkeypatch):
    from gan_edu.cli import build_parser
    from gan_edu.cli.pipeline import pipeline_config
    from gan_edu.pipeline import PRESETS, PipelineConfig

    for name, values in PRESETS.items():
        PipelineConfig.from_dict(values)  # every preset passes the config's own checks
        args = build_parser().parse_args(["pipeline", "--out", "x", "--preset", name, "--gan-epochs", "3"])
        config = pipeline_config(args)
        assert config.gan.epochs == 3 and config.dataset == values["dataset"] and config.classifier_model == values["classifier_model"]
    args = build_parser().parse_args(["pipeline", "--out", "x", "--preset", "cifar10", "--dataset", "mnist"])
    with pytest.raises(GanEduError, match="the preset is for cifar10"):
        pipeline_config(args)


@pytest.mark.slow
def test_gpu_cifar10_script_dry_run(tmp_path):
    """benchmarks/gpu_cifar10.sh runs as it is, with a few-step budget, on home-made CIFAR-10 files."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from formats import write_cifar10

    write_cifar10(tmp_path / "data", per_batch=20, n_test=20)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_cifar10.sh"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(script), "--dry-run", str(tmp_path / "data"), str(tmp_path / "out"), "--", "--no-verify-checksums", "--cuda-graph"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    assert "c' " in done.stdout and "GAN-test" in done.stdout and "wall:" in done.stdout
    report = json.loads((tmp_path / "out" / "experiment" / "report.json").read_text())
    assert report["settings"]["classifier_model"] == "resnet9" and report["settings"]["dataset"] == "cifar10"
    assert report["settings"]["cuda_graph"] is True  # on the CPU its stages run the eager step, saying why
    assert (tmp_path / "out" / "log.txt").is_file()
    missing = subprocess.run(["bash", str(script), "--dry-run", str(tmp_path / "nowhere"), str(tmp_path / "o2")], capture_output=True, text=True, env=env)
    assert missing.returncode == 2 and "cifar-10-batches-py" in missing.stderr


@pytest.mark.slow  # two pipelines
def test_reuse_c_loads_the_same_classifier_and_refuses_a_different_recipe(tmp_path):
    base = ["pipeline", "--num-images", "200", "--g-channels", "4", "--d-channels", "4", "--gan-epochs", "1", "--gan-batch-size", "32",
            "--synthetic-images", "100", "--classifier-epochs", "1", "--classifier-width", "4", "--classifier-batch-size", "20", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--reuse-c", str(tmp_path / "a"), "--no-ema"]) == 0
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    b = json.loads((tmp_path / "b" / "report.json").read_text())
    assert b["c_accuracy"] == a["c_accuracy"] and b["confusion"]["c"] == a["confusion"]["c"]  # the same c
    assert not (tmp_path / "b" / "c").exists() and b["settings"]["reuse_c"] == str(tmp_path / "a")
    assert main([*base, "--out", str(tmp_path / "c"), "--reuse-c", str(tmp_path / "a"), "--classifier-width", "8"]) == 2
    assert not (tmp_path / "c").exists()  # refused before any work
    assert main([*base, "--out", str(tmp_path / "d"), "--reuse-c", str(tmp_path / "nowhere")]) == 2


def test_pipeline_speed_switches_reach_every_trainer():
    from gan_edu.pipeline import PipelineConfig

    config = PipelineConfig(precision="bf16", channels_last=True, device="cpu")
    for trainer_config in (config.gan_trainer_config(), config.classifier_trainer_config(1000)):
        assert trainer_config.precision == "bf16" and trainer_config.channels_last and not trainer_config.compile
    with pytest.raises(GanEduError, match="precision='fp16' on cpu"):
        PipelineConfig(precision="fp16", device="cpu")
