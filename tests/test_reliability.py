"""Nothing lost on interruption, never a half-written checkpoint, no code run from files.

These tests use real subprocesses and real signals.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from gan_edu.cli import main
from gan_edu.errors import GanEduError
from gan_edu.training import load_checkpoint

TINY = ["--num-images", "64", "--batch-size", "16", "--g-channels", "4", "--d-channels", "4", "--no-progress", "--log-every", "1"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def wait_for(predicate, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_the_step_writes_a_checkpoint_and_says_how_to_resume(tmp_path, sig):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gan_edu", "train", "--out", str(run), "--epochs", "1000", *TINY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )
    try:
        assert wait_for(lambda: (run / "history.jsonl").exists() and len((run / "history.jsonl").read_text().splitlines()) >= 3)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "resume with: gan-edu train --resume" in err and "Traceback" not in err
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    history = (run / "history.jsonl").read_text().splitlines()
    assert state["step"] >= 3
    assert f'"step": {state["step"]}' in history[-1]  # the checkpoint holds the last logged step
    assert main(["train", "--resume", str(run), "--max-steps", str(state["step"] + 2), "--no-progress"]) == 0


SLOW_WRITE = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import gan_edu.io as gio
    marker = Path(sys.argv[1])
    real_fsync = os.fsync
    count = {"n": 0}
    def slow_fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if ".last.pt." in target and target.endswith(".tmp"):  # a checkpoint's temporary file
            count["n"] += 1
        if count["n"] == int(sys.argv[2]) and ".last.pt." in target:  # this write: announce it, then stall
            count["n"] += 1
            marker.write_text("writing")
            time.sleep(60)
        real_fsync(fd)
    gio.os.fsync = slow_fsync
    from gan_edu.cli import main
    sys.exit(main(sys.argv[3:]))
    """
)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to find which file is being written")
def test_kill_9_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    run = tmp_path / "run"
    marker = tmp_path / "writing"
    script = tmp_path / "slow.py"
    script.write_text(SLOW_WRITE)
    # Every step checkpoints; stall the third checkpoint write after its bytes are written, before the rename.
    args = [sys.executable, str(script), str(marker), "3", "train", "--out", str(run), "--epochs", "1000", "--checkpoint-every", "1", *TINY]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        assert wait_for(marker.exists), proc.stderr.read() if proc.poll() is not None else "no stall"
        before = load_checkpoint(run / "checkpoints" / "last.pt")  # readable while the new one is half written
        assert list((run / "checkpoints").glob(".last.pt.*.tmp"))  # the new one is there, not yet renamed
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    after = load_checkpoint(run / "checkpoints" / "last.pt")
    assert after["step"] == before["step"] >= 1
    for name, module in after["modules"].items():
        for k, v in module.items():
            assert torch.equal(v, before["modules"][name][k])
    # and the run resumes from it
    assert main(["train", "--resume", str(run), "--max-steps", str(after["step"] + 1), "--no-progress"]) == 0


def test_kill_9_at_random_moments_never_leaves_a_corrupt_checkpoint(tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "gan_edu", "train", "--out", str(run), "--epochs", "1000", "--checkpoint-every", "1", *TINY]
    steps = []
    for delay in (0.3, 0.7, 1.1):
        if not run.exists():
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        else:
            proc = subprocess.Popen([sys.executable, "-m", "gan_edu", "train", "--resume", str(run), "--no-progress"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        assert wait_for(lambda: (run / "checkpoints" / "last.pt").exists())
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        steps.append(load_checkpoint(run / "checkpoints" / "last.pt")["step"])  # never corrupt
    assert steps == sorted(steps)  # each restart went on from the last checkpoint, never back


class MakesAMarker:
    """Unpickling this object creates a file: what a malicious checkpoint would do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_malicious_pickle_checkpoint_is_refused_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "gan-edu-checkpoint", "payload": MakesAMarker(marker)}, evil)
    # sanity: a plain unpickle of this file WOULD create the marker
    check_file = tmp_path / "check.pkl"
    check_file.write_bytes(pickle.dumps(MakesAMarker(tmp_path / "proof")))
    pickle.loads(check_file.read_bytes())
    assert (tmp_path / "proof").exists()

    with pytest.raises(GanEduError, match="refused"):
        load_checkpoint(evil)
    assert not marker.exists()

    # through the command line: a run whose checkpoint was swapped for the malicious one
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--max-steps", "1", *TINY]) == 0
    (run / "checkpoints" / "last.pt").write_bytes(evil.read_bytes())
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused" in err[0]
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "truncated or corrupt"), (b"PK\x03\x04garbage", "truncated or corrupt"), (None, "truncated or corrupt")],
)
def test_truncated_and_corrupt_checkpoints_are_one_line_errors(tmp_path, content, message):
    good = tmp_path / "good.pt"
    torch.save({"format": "gan-edu-checkpoint", "w": torch.ones(1000)}, good)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content if content is not None else good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(GanEduError, match=message):
        load_checkpoint(bad)


def test_a_checkpoint_of_another_model_is_refused(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "--out", str(a), "--max-steps", "1", *TINY]) == 0
    assert main(["train", "--out", str(b), "--max-steps", "1", "--num-images", "64", "--batch-size", "16", "--g-channels", "8", "--d-channels", "8", "--no-progress"]) == 0
    (a / "checkpoints" / "last.pt").write_bytes((b / "checkpoints" / "last.pt").read_bytes())
    capsys.readouterr()
    assert main(["train", "--resume", str(a), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "weights of another model" in err and len(err.splitlines()) == 1
