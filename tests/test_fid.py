"""Inception FID and IS through the real loading code, with a weights file the test makes: a
randomly initialised Inception-v3 of the FID architecture (no machine here can download the real
weights; docs/fid.md says how to get them). The numbers are not meaningful, their plumbing is.

Straight from its initialisation such a network's features shrink to ~1e-8 through its 90 batch
norms in eval mode (running variance 1), so every input gave the same features: FID ~1e-12 and
IS 1.0 whatever the images, and a `gan-edu fid` fed black images passed. The fixture sets each
batch norm's statistics from one batch of random images, so the features depend on the input and
the tests can tell images apart."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

pytest.importorskip("torch_fidelity")

from gan_edu.cli import main  # noqa: E402
from gan_edu.errors import GanEduError  # noqa: E402
from gan_edu.inception import fid_and_is, inception_features, load_inception, uint8_batches  # noqa: E402

ONNX = "exported/shapes_cdcgan.onnx"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A state dict of torch-fidelity's Inception-v3, randomly initialised (seed 0), saved like the real file."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Untrained(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, *args, **kwargs):  # keep the random initialisation
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    torch.manual_seed(0)
    net = Untrained("inception-v3-compat", ["2048"], feature_extractor_weights_path=empty)
    for m in net.modules():  # batch norm statistics of the activations themselves: features of unit scale
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # the plain average of what it sees
    with torch.no_grad():
        net.train()(images(99, n=8))  # one batch of noise images
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(net.state_dict(), path)
    return path


def images(seed, n=12, shape=(3, 32, 32)):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8))


@pytest.mark.slow  # Inception-v3 at 299x299 on the CPU: about 30 s
def test_the_weights_file_is_loaded_and_used(weights, tmp_path):
    model, info = load_inception(weights)
    assert info == {"weights": str(weights), "standard": False}  # our random file is not the standard one
    state = torch.load(weights, weights_only=True)
    assert torch.equal(model.state_dict()["fc.weight"], state["fc.weight"])
    a, b = images(1), images(2)
    fa, fb = inception_features(model, uint8_batches(a, 5)), inception_features(model, uint8_batches(b, 5))
    assert fa["2048"].shape == (12, 2048) and fa["logits_unbiased"].shape == (12, 1008)
    same, other = fid_and_is(fa, fa, splits=3), fid_and_is(fa, fb, splits=3)
    assert abs(same["fid"]) < 1e-3 * max(1.0, other["fid"]) and other["fid"] > 0
    assert other["inception_score"] >= 1.0 and np.isfinite(other["inception_score_std"])
    black = inception_features(model, [torch.zeros_like(a)])
    assert fa["2048"].std(0).mean() > 1e-3  # the features depend on the image (they were constant at ~1e-8)
    assert fid_and_is(fa, black, splits=3)["fid"] > 10 * other["fid"] > 0  # black is far from noise, noise close to noise
    assert other["inception_score"] > 1.0001  # the class probabilities differ between images (exactly 1.0 before)
    grey = inception_features(model, [a[:, :1]])  # grey images are repeated to RGB
    assert torch.allclose(grey["2048"], inception_features(model, [a[:, :1].repeat(1, 3, 1, 1)])["2048"])


@pytest.mark.slow  # Inception-v3 at 299x299 on the CPU: about 30 s
def test_gan_edu_fid_on_the_shipped_generator(weights, tmp_path, capsys):
    out = tmp_path / "fid.json"
    argv = ["fid", ONNX, "--dataset", "shapes", "-n", "20", "--inception-weights", str(weights), "--batch-size", "10", "--json", str(out), "--device", "cpu"]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["generated"] == 20 and result["real"] == 20 and result["standard_weights"] is False
    assert result["fid"] > 0 and result["inception_score"] >= 1.0
    assert "NOT the standard FID Inception weights" in capsys.readouterr().out
    # the generator's images differ from one another, so IS is above 1; twenty black images (one
    # image, twenty times) give exactly 1. (FID of 20 images in 2048 dimensions is too noisy a
    # number here, and the shapes' black backgrounds put them near black images for this network.)
    model, _ = load_inception(weights)
    black = fid_and_is(inception_features(model, [images(3, n=20)]), inception_features(model, [torch.zeros(20, 3, 32, 32, dtype=torch.uint8)]))
    assert black["inception_score"] == pytest.approx(1.0, abs=1e-6) and result["inception_score"] > 1.05, (black, result)


def test_missing_weights_offline_is_one_line_naming_the_option(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GAN_EDU_CACHE", str(tmp_path / "cache"))

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    capsys.readouterr()
    assert main(["fid", ONNX, "--dataset", "shapes", "-n", "20", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot download the FID Inception weights" in err[0] and "--inception-weights PATH" in err[0], err
    assert main(["fid", ONNX, "--dataset", "shapes", "--no-download", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "download is off; expected --inception-weights PATH" in err[0], err


def test_bad_weights_files_are_one_line(tmp_path):
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(3)}, wrong)
    with pytest.raises(GanEduError, match="not the FID Inception weights"):
        load_inception(wrong)
    with pytest.raises(GanEduError, match="no such file; expected --inception-weights PATH"):
        load_inception(tmp_path / "none.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00garbage" * 64)
    with pytest.raises(GanEduError, match="truncated or corrupt Inception weights file"):
        load_inception(garbage)



@pytest.mark.slow  # Inception-v3 at 299x299 on the CPU: about 30 s
def test_the_pipeline_reports_inception_fid_and_is(weights, tmp_path):
    from gan_edu.pipeline import PipelineConfig, run_pipeline

    config = PipelineConfig.from_dict({
        "num_images": 40, "g_channels": 4, "d_channels": 4, "gan": {"max_steps": 1, "batch_size": 20}, "synthetic_images": 20,
        "classifier_width": 4, "classifier": {"max_steps": 1, "batch_size": 16}, "device": "cpu", "progress": False,
        "inception": True, "inception_weights": str(weights),
    })
    report = run_pipeline(config, tmp_path / "exp", log=lambda line: None)
    inception = report["inception"]
    assert inception["images"] == 20 and inception["standard_weights"] is False
    assert inception["fid"] > 0 and inception["inception_score"] >= 1.0
    assert json.loads((tmp_path / "exp" / "report.json").read_text())["inception"] == inception


def test_the_pipeline_checks_the_weights_before_any_work(tmp_path):
    from gan_edu.pipeline import PipelineConfig, run_pipeline

    with pytest.raises(GanEduError, match="no such file; expected --inception-weights PATH"):
        run_pipeline(PipelineConfig(inception=True, inception_weights=str(tmp_path / "none.pth")), tmp_path / "exp")
    assert not (tmp_path / "exp").exists()
