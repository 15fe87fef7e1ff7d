"""Every script in examples/ runs: each ``main(argv)`` is called with tiny settings (seconds each)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_edu.data import load_dataset
from gan_edu.training import GANTrainerConfig
from gan_edu.training.runs import new_gan_run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TINY_TRAIN = ["--images", "64", "--max-steps", "2", "--batch-size", "16", "--width", "4"]


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as for a script run by python: dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


def test_every_example_is_tested():
    tested = {"train_cifar10", "conditional", "per_class_bank", "custom_loss", "export_and_sample", "pipeline", "onnx_app", "mode_shares"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_train_cifar10_dry_run(tmp_path, capsys):
    assert load_example("train_cifar10").main(["--dry-run", "--out", str(tmp_path / "run")]) == 0
    assert "3 steps" in capsys.readouterr().out
    assert (tmp_path / "run" / "generator" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"] == "dcgan"


def test_train_cifar10_without_the_files_says_where_to_put_them(tmp_path, capsys):
    assert load_example("train_cifar10").main(["--data-root", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cifar-10-batches-py" in err and "download is off" in err
    assert not (tmp_path / "run").exists()


def test_conditional(tmp_path):
    out = tmp_path / "cond"
    assert load_example("conditional").main([*TINY_TRAIN, "--out", str(out)]) == 0
    w, h = png_size(out / "by_class.png")
    assert h > w  # ten class rows of eight images: taller than wide


@pytest.mark.slow  # ten members, each trained one step and exported with its parity check
def test_per_class_bank(tmp_path):
    out = tmp_path / "bank"
    args = ["--images", "160", "--max-steps", "1", "--batch-size", "16", "--width", "4", "--out", str(out)]
    assert load_example("per_class_bank").main(args) == 0
    manifest = json.loads((out / "bank.json").read_text())
    assert len(list(out.glob("bank.class*.onnx"))) == 10, manifest
    assert (out / "bank_samples.png").is_file()


def test_custom_loss(tmp_path, capsys):
    module = load_example("custom_loss")
    loss = module.PearsonLeastSquaresLoss()
    import torch

    # hand-computed: D at its targets (real 1, fake -1) has loss 0; G's loss is 0 at the logit 0
    assert float(loss.discriminator_loss(torch.ones(3), -torch.ones(3))) == 0.0
    assert float(loss.discriminator_loss(torch.zeros(2), torch.zeros(2))) == pytest.approx(1.0)
    assert float(loss.generator_loss(torch.tensor([2.0, 0.0]))) == pytest.approx(1.0)
    assert module.main([*TINY_TRAIN, "--out", str(tmp_path / "run")]) == 0
    assert "least-squares-pearson" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "config.json").read_text())["loss"]["name"] == "least-squares-pearson"


@pytest.mark.slow  # a training, an export and a second Python process
def test_export_and_sample(tmp_path):
    data = load_dataset("shapes", n=32)
    trainer = new_gan_run("cdcgan", data, config=GANTrainerConfig(max_steps=1, batch_size=16, progress=False), out_dir=tmp_path / "run", g_channels=4, d_channels=4, embed_dim=4)
    trainer.fit(data)
    onnx, grid = tmp_path / "g.onnx", tmp_path / "grid.png"
    assert load_example("export_and_sample").main([str(tmp_path / "run"), "-o", str(onnx), "--grid", str(grid), "-n", "20"]) == 0
    assert onnx.is_file()
    assert png_size(grid) == (2 + 10 * 34, 2 + 2 * 34)  # ten classes per row, two rows of 32x32 images
    # the app that needs no gan-edu and no torch reads the same file
    app_grid = tmp_path / "app.png"
    block_torch = "import sys, runpy; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    subprocess.run([sys.executable, "-c", block_torch, str(EXAMPLES / "onnx_app.py"), str(onnx), "-o", str(app_grid)], check=True, capture_output=True)
    assert np.asarray(Image.open(app_grid)).shape[2] == 3


def test_export_and_sample_of_a_missing_run(tmp_path, capsys):
    assert load_example("export_and_sample").main([str(tmp_path / "nothing"), "-o", str(tmp_path / "g.onnx")]) == 2
    assert "nothing" in capsys.readouterr().err


@pytest.mark.slow  # the whole c vs c' experiment
def test_pipeline(tmp_path, capsys):
    # 40 classifier steps: enough for c and c' to disagree on some class, which the mode_shares check below needs
    args = ["--images", "160", "--gan-max-steps", "1", "--width", "4", "--classifier-max-steps", "40", "--classifier-width", "4", "--out", str(tmp_path / "p")]
    assert load_example("pipeline").main(args) == 0
    report = json.loads((tmp_path / "p" / "report.json").read_text())
    cm = np.array(report["confusion"]["c_prime"])
    assert report["c_prime_accuracy"] == pytest.approx(np.trace(cm) / cm.sum()) and cm.sum() == report["sizes"]["evaluation"]
    assert "a gap of" in capsys.readouterr().out

    # mode_shares.py on the same experiment: its per-style recalls add up to the report's per-class c'
    modes = load_example("mode_shares")
    cm_c = np.array(report["confusion"]["c"])
    label = next(k for k in range(len(cm)) if cm[k, k] != cm_c[k, k])  # a class c and c' recall differently: a mix-up of the two shows
    assert modes.main([str(tmp_path / "p"), "--class", str(label), "--modes", "3", "--images", "30", "--out", str(tmp_path / "m")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["mode", "real", "generated"] and len(table) == 4
    rows = json.loads((tmp_path / "m" / "modes.json").read_text())["modes"]
    assert sum(r["real_share"] for r in rows) == pytest.approx(1.0, abs=1e-3) and sum(r["fake_share"] for r in rows) == pytest.approx(1.0, abs=1e-3)
    assert sum(r["eval_images"] for r in rows) == cm[label].sum()  # every evaluation image of the class in one style
    for name, confusion in (("c_prime", cm), ("c", cm_c)):
        right = sum(r[f"{name}_recall"] * r["eval_images"] for r in rows if r["eval_images"])
        assert right / confusion[label].sum() == pytest.approx(confusion[label, label] / confusion[label].sum(), abs=1e-3), name
    assert {p.name for p in (tmp_path / "m").glob("mode_*.png")} == {f"mode_{r['mode']:02d}.png" for r in rows}
    assert modes.main([str(tmp_path / "p"), "--class", "99"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--class 99" in err
