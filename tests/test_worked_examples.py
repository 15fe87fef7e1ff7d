"""The worked examples of docs/training.md (a custom objective; a fake batch with R1; a new
Generator, exported and sampled) run as written, block after block, in one session."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from gan_edu.models import MODELS
from gan_edu.training import TRAINERS

DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"


def worked_example_blocks() -> list[str]:
    text = DOC.read_text()
    section = text.split("## Worked examples", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_section_has_the_three_tasks():
    blocks = worked_example_blocks()
    assert len(blocks) == 3
    assert "def discriminator_objective" in blocks[0] and "rehearse()" in blocks[0]
    assert "def fake_batch" in blocks[1] and "r1=" in blocks[1]
    assert "class MLPGenerator(Generator)" in blocks[2] and "export_generator" in blocks[2] and ".sample(" in blocks[2]


@pytest.mark.slow  # three tiny trainings, a rehearsal and an ONNX export: about 20 s on one busy core
def test_the_worked_examples_run_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the examples write runs/... where they are run
    torch.set_num_threads(1)
    namespace: dict[str, object] = {"__name__": "worked_examples"}
    before_trainers, before_models = dict(TRAINERS), dict(MODELS)
    try:
        for i, block in enumerate(worked_example_blocks(), 1):
            exec(compile(block, f"{DOC}: worked example {i}", "exec"), namespace)  # noqa: S102 - the project's own docs
    finally:
        TRAINERS.clear()
        TRAINERS.update(before_trainers)
        MODELS.clear()
        MODELS.update(before_models)
    assert "d_loss" in capsys.readouterr().out and (tmp_path / "runs" / "mlp" / "generator.onnx").is_file()
    history = (tmp_path / "runs" / "logit-penalty" / "history.jsonl").read_text()
    assert '"d_logits"' in history
