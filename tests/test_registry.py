"""The registry from the outside: `gan-edu models`, the docs tables, and every model x loss from the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gan_edu.cli import main
from gan_edu.cli.models import markdown_table
from gan_edu.losses import LOSSES
from gan_edu.models import MODELS, parameter_counts
from gan_edu.training.runs import resume_gan_run

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.slow  # builds every registered model
def test_models_command_lists_every_model_with_sizes_and_parameters(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name, spec in MODELS.items():
        assert re.search(rf"^{re.escape(name)}\b", out, re.M), name
        for shape in spec.sizes:
            g, d = parameter_counts(name, shape)
            assert re.search(rf"{'x'.join(map(str, shape))}\s+{g:,}\s+{d:,}", out), (name, shape)
    assert {"ref000-dcgan", "ref001-conv", "ref001-lin", "ref002-perclass", "ref003-keras", "ref004-celeba", "cdcgan"} <= set(MODELS)
    conditional = {"cdcgan", "cdcgan-cbn", "cdcgan-snproj", "cbn-snproj"}  # the conditional recipe's parts pair with DCGAN's
    assert {n for n, s in MODELS.items() if s.conditional} == conditional


def docs_models_rows() -> dict[str, dict[str, str]]:
    """The rows of the table in docs/models.md, by model name, read cell by cell."""
    lines = (DOCS / "models.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| name | source |"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break  # the end of the table
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = re.match(r"`([^`]+)`", cells[0]).group(1)
        rows[name] = dict(zip(("name", "source", "sizes", "parameters", "layers"), cells))
    return rows


@pytest.mark.slow  # builds every registered model
def test_docs_models_table_matches_the_registry():
    rows = docs_models_rows()
    assert list(rows) == list(MODELS), "docs/models.md: regenerate the table with `gan-edu models --markdown`"
    for name, spec in MODELS.items():
        row = rows[name]
        assert row["source"] == spec.source and row["layers"] == spec.layers, name
        assert row["sizes"] == ", ".join("x".join(map(str, s)) for s in spec.sizes), name
        documented = {
            size: (int(g.replace(",", "")), int(d.replace(",", "")))
            for size, g, d in re.findall(r"(\d+x\d+x\d+): ([\d,]+) / ([\d,]+)", row["parameters"])
        }
        for shape in spec.sizes:
            assert documented["x".join(map(str, shape))] == parameter_counts(name, shape, num_classes=10), (name, shape)
    assert markdown_table() in (DOCS / "models.md").read_text()


def test_docs_losses_cover_every_loss():
    text = (DOCS / "losses.md").read_text()
    for name in LOSSES:
        assert re.search(rf"^\| `{re.escape(name)}`", text, re.M), name
    assert "--r1" in text


def cli_size_flags(name: str) -> list[str]:
    """Shapes at the model's first documented size."""
    c, h, _ = MODELS[name].sizes[0]
    return ["--channels", str(c), "--image-size", str(h)]


# 20 images in batches of 4: 5 steps, so even wgan-gp (5 D steps per G step) updates G once
TINY = ["--num-images", "20", "--batch-size", "4", "--epochs", "1", "--no-progress", "--log-every", "1"]


@pytest.mark.slow
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_trains_an_epoch_with_every_loss_from_the_cli(name, loss, tmp_path, capsys):
    run = tmp_path / "run"
    tiny = [f"--{k.replace('_', '-')}={v}" for k, v in MODELS[name].tiny.items() if k in ("g_channels", "d_channels")]
    argv = ["train", "--model", name, "--loss", loss, "--out", str(run), *cli_size_flags(name), *TINY, *tiny]
    assert main(argv) == 0, capsys.readouterr().err
    assert "done: 5 steps, 1 epochs" in capsys.readouterr().out
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert any("g_loss" in r for r in history) and all("d_loss" in r for r in history if r["kind"] == "step")
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == name and config["loss"]["name"] == loss
    assert config["generator"]["config"]["image_shape"] == list(MODELS[name].sizes[0])


def test_r1_is_recorded_and_rebuilt_on_resume(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--model", "ref001-lin", "--loss", "least-squares", "--r1", "2", "--out", str(run),
            "--g-channels", "4", "--d-channels", "4", *TINY]
    assert main(argv) == 0
    assert "least-squares loss and R1 (gamma 2)" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["loss"] == {"name": "least-squares", "options": {"r1": 2.0}, "d_steps": 1}
    assert any("d_penalty" in json.loads(line) for line in (run / "history.jsonl").read_text().splitlines())
    trainer, _ = resume_gan_run(run)
    assert trainer.loss.name == "least-squares" and trainer.loss.r1 == 2.0


def test_a_size_the_model_cannot_make_is_one_line(tmp_path, capsys):
    argv = ["train", "--model", "ref001-conv", "--image-size", "40", "--out", str(tmp_path / "r"), *TINY]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "image size 40: ref001-conv makes sides 28, 32, 64" in err and len(err.splitlines()) == 1
