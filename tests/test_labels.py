"""Labels outside [0, num_classes) are refused, in one line, by every entry point.

An exported graph would quietly read -1 as the last class (ONNX Gather counts from the end), a
PyTorch embedding fails with an IndexError (a device-side assert on CUDA) and a bank returns a
blank image, so each entry point checks first: the torch models, OnnxGenerator, ``gan-edu
sample`` (which also runs with torch blocked) and the browser demo (tests/test_web.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_export import NAMES, run_without_torch, tiny_bank, tiny_generator

from gan_edu.cli import main
from gan_edu.errors import GanEduError
from gan_edu.export import OnnxGenerator, export_generator
from gan_edu.models import MODELS, build_gan

CONDITIONAL = [name for name, spec in MODELS.items() if spec.conditional]
K = len(NAMES)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_generator(tiny_generator(), tmp_path_factory.mktemp("labels") / "g.onnx", class_names=NAMES)


@pytest.mark.parametrize("name", CONDITIONAL)
@pytest.mark.parametrize("bad", [-1, K])
def test_torch_models_refuse_labels_out_of_range(name, bad):
    shape = MODELS[name].sizes[0]
    g, d = build_gan(name, image_shape=shape, num_classes=K, g_channels=4, d_channels=4)
    z, images = torch.zeros(2, g.latent_dim), torch.zeros(2, *shape)
    labels = torch.tensor([0, bad])
    for call in (lambda: g(z, labels), lambda: g(z, labels=labels), lambda: d(images, labels), lambda: g.sample(2, labels)):
        for mode in (g.train, g.eval):
            mode()
            with pytest.raises(GanEduError) as exc:
                call()
            assert f"labels in [{min(0, bad)}, {max(0, bad)}]: expected labels in [0, {K - 1}]" in str(exc.value)
            assert "\n" not in str(exc.value)
    assert g(z, torch.tensor([0, K - 1])).shape == (2, *shape)  # the edges of the range are fine


def test_a_bank_refuses_labels_out_of_range():
    bank = tiny_bank()
    for bad in (-1, K):
        with pytest.raises(GanEduError, match=rf"labels in \[{min(0, bad)}, {max(0, bad)}\]: expected labels in \[0, {K - 1}\]"):
            bank(torch.zeros(2, bank.latent_dim), torch.tensor([0, bad]))


def test_the_check_stays_out_of_exported_graphs(tmp_path):
    # Tracing skips the check, so the graph holds no Python-side constant of the labels it was traced with.
    og = OnnxGenerator(export_generator(tiny_generator(), tmp_path / "g.onnx"))
    assert og.generate(np.zeros((3, og.latent_dim), np.float32), [0, 1, 2]).shape == (3, 3, 32, 32)


def test_onnx_generator_refuses_labels_out_of_range(exported):
    og = OnnxGenerator(exported)
    for bad in (-1, K, 1000):
        calls = (lambda b=bad: og.sample(2, [0, b]), lambda b=bad: og.generate(og.latent(2, seed=0), [b, 0]), lambda b=bad: next(og.iter_sample(2, [0, b])))
        for call in calls:
            with pytest.raises(GanEduError, match=rf"labels in \[{min(0, bad)}, {max(0, bad)}\]: expected labels in \[0, {K - 1}\] \({K} classes\)"):
                call()


@pytest.mark.parametrize("bad", ["-1", str(K), "0,-2"])
def test_cli_sample_refuses_labels_out_of_range(exported, tmp_path, capsys, bad):
    n = len(bad.split(","))
    code = main(["sample", str(exported), "-n", str(n), "--labels", bad, "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("gan-edu: error: labels in [") and f"expected labels in [0, {K - 1}]" in err
    assert err.count("\n") == 1 and not (tmp_path / "x.png").exists()


def test_cli_sample_runs_with_torch_blocked(exported, tmp_path):
    expected = OnnxGenerator(exported).sample(6, [2] * 6, seed=5)
    out = run_without_torch(["-m", "gan_edu", "sample", str(exported), "-n", "6", "--labels", "2", "--seed", "5", "-o", "g.png", "--npz", "g.npz"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert np.array_equal(np.load(tmp_path / "g.npz")["images"], expected) and (tmp_path / "g.png").is_file()
    refused = run_without_torch(["-m", "gan_edu", "sample", str(exported), "-n", "1", "--labels", "-1", "-o", "h.png"], tmp_path)
    assert refused.returncode == 2 and refused.stderr.startswith("gan-edu: error: labels in [-1, -1]") and refused.stderr.count("\n") == 1
    helped = run_without_torch(["-m", "gan_edu", "sample", "--help"], tmp_path)
    assert helped.returncode == 0 and "--labels" in helped.stdout
    # A command that trains does need torch: the blocker is really on.
    train = run_without_torch(["-m", "gan_edu", "train", "--help"], tmp_path)
    assert train.returncode != 0 and "torch is blocked" in train.stderr
