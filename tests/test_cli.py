"""The gan-edu command: smoke tests of train, resume and quickstart, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gan_edu import __version__
from gan_edu.cli import main

TINY = ["--num-images", "64", "--batch-size", "16", "--g-channels", "4", "--d-channels", "4", "--no-progress", "--log-every", "2"]


def test_train_help_names_the_registered_trainers(capsys, monkeypatch):
    from gan_edu.training import TRAINERS, GANTrainer

    class HelpListedGANTrainer(GANTrainer):  # a script's own class, registered before the parser is built
        pass

    monkeypatch.setitem(TRAINERS, "HelpListedGANTrainer", HelpListedGANTrainer)  # registered for this test only

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in ("GANTrainer", "ACGANTrainer", "ModeSeekingTrainer", "HelpListedGANTrainer"):
        assert f"{name}," in text, name


@pytest.mark.slow  # a gan-edu process
def test_version():
    out = subprocess.run([sys.executable, "-m", "gan_edu", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"gan-edu {__version__}"


def test_train_then_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--epochs", "1", *TINY]) == 0
    assert "done: 4 steps, 1 epochs" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "resuming" in captured.err and "done: 8 steps, 2 epochs" in captured.out
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history if r["kind"] == "epoch"] == [1, 2]


@pytest.mark.slow  # the whole quickstart
def test_quickstart_smoke(tmp_path, capsys):
    assert main(["quickstart", "--out", str(tmp_path / "q"), "--max-steps", "2", "--no-progress"]) == 0
    for name in ("gan/samples.png", "gan/losses.png", "summary.md", "report.json", "generator.onnx", "samples_per_class.png"):
        assert (tmp_path / "q" / name).is_file(), name
    summary = (tmp_path / "q" / "summary.md").read_text()
    assert "circle" in summary and "c'" in summary and "reference recipe" in summary and "recall" in summary


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--epochs", "0"], "--epochs: 0 is not positive"),
        (["train", "--epochs", "two"], "--epochs: 'two' is not an int"),
        (["train", "--model", "gpt"], "invalid choice: 'gpt'"),
        (["train", "--loss", "nope"], "invalid choice: 'nope'"),
        (["train", "--dataset", "imagenet"], "invalid choice: 'imagenet'"),
        (["train", "--device", "tpu", "--max-steps", "1"], "device 'tpu'"),
        (["train", "--lr", "-1"], "--lr: -1 is not positive"),
        (["train", "--resume", "/nonexistent/run"], "not a gan-edu run folder"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        sys.exit(main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_an_existing_run_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--max-steps", "1", *TINY]) == 0
    before = (run / "checkpoints" / "last.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--max-steps", "1", *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a run already exists" in err[0] and "--overwrite" in err[0]
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    assert main(["train", "--out", str(run), "--max-steps", "1", "--overwrite", *TINY]) == 0


@pytest.mark.slow  # gan-edu processes
def test_console_script_errors_have_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "gan_edu", "train", "--resume", str(tmp_path / "missing")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
