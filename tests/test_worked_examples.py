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


def bash_lines() -> list[str]:
    section = DOC.read_text().split("## Worked examples", 1)[1].split("\n## ", 1)[0]
    return [line.split("#")[0].strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S) for line in block.splitlines() if line.strip()]


@pytest.mark.slow  # torchrun with two processes, then a resume in a third
def test_the_torchrun_commands_of_example_2_run_the_class_as_documented(tmp_path):
    """The class of worked example 2, in the user's file the text describes, run by the text's own
    commands (shortened to one step each): two processes, then the resume the hint names."""
    import ast
    import os
    import subprocess
    import sys

    block = worked_example_blocks()[1]
    cls = next(n for n in ast.parse(block).body if isinstance(n, ast.ClassDef))
    source = (
        "from gan_edu.training import GANTrainer, register_trainer\n\n\n@register_trainer\n"
        + ast.get_source_segment(block, cls)
        + '\n\n\nif __name__ == "__main__":\n    import gan_edu.cli\n\n    raise SystemExit(gan_edu.cli.main())\n'
    )
    (tmp_path / "my_trainers.py").write_text(source)
    torchrun, resume, resume_through_gan_edu = bash_lines()
    assert torchrun.startswith("torchrun --nproc_per_node 2 my_trainers.py train --trainer TruncatedGANTrainer")
    assert resume == "python my_trainers.py train --resume runs/truncated2"
    assert resume_through_gan_edu == "python -m gan_edu --import my_trainers train --resume runs/truncated2"
    tiny = ["--num-images", "32", "--batch-size", "16", "--g-channels", "4", "--d-channels", "4", "--no-progress", "--log-every", "1"]
    env = {**os.environ, "PYTHONPATH": str(DOC.parents[1]), "OMP_NUM_THREADS": "1"}
    first = [sys.executable, "-m", "torch.distributed.run", *torchrun.split()[1:3], "--master_port", str(_free_port()), *torchrun.split()[3:]]
    done = subprocess.run([*first, "--max-steps", "1", *tiny], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for steps, command in ((2, resume), (3, resume_through_gan_edu)):
        again = subprocess.run([sys.executable, *command.split()[1:], "--max-steps", str(steps), "--no-progress"],
                               cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
    import json

    record = json.loads((tmp_path / "runs" / "truncated2" / "config.json").read_text())
    assert record["trainer_class"] == "TruncatedGANTrainer" and record["world_size"] == 1  # resumed in one process
    assert json.loads((tmp_path / "runs" / "truncated2" / "history.jsonl").read_text().splitlines()[-1])["step"] == 3


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
