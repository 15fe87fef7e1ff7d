"""Nothing lost on interruption, never a half-written checkpoint, no code run from files.

These tests use real subprocesses and real signals.
"""

from __future__ import annotations

import ast
import errno
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
from gan_edu.data import load_dataset
from gan_edu.errors import DiskFull, GanEduError
from gan_edu.io import atomic_open, remove_stale_temporaries
from gan_edu.training import GANTrainerConfig, TrainingDiverged, load_checkpoint, read_history
from gan_edu.training.callbacks import Callback
from gan_edu.training.checkpoint import save_checkpoint
from gan_edu.training.runs import new_gan_run, resume_gan_run

TINY = ["--num-images", "64", "--batch-size", "16", "--g-channels", "4", "--d-channels", "4", "--no-progress", "--log-every", "1"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def wait_for(predicate, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow  # a real training process, signalled
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


@pytest.mark.slow  # a real training process, killed
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
    # and the run resumes from it; the killed write's temporary file is cleaned up
    assert main(["train", "--resume", str(run), "--max-steps", str(after["step"] + 1), "--no-progress"]) == 0
    assert not list(run.rglob(".*.tmp"))


def logged_step(run: Path) -> int:
    """The step of the last record in a run's ``history.jsonl`` (0 before the first)."""
    path = run / "history.jsonl"
    records = read_history(path) if path.exists() else []
    return records[-1]["step"] if records else 0


@pytest.mark.slow  # real training processes, killed and resumed
def test_kill_9_when_the_run_reports_step_n_then_resume_is_bit_exact(tmp_path):
    """64 images, batch 16, 6 epochs: 24 steps, a log and a checkpoint after each. Three processes are
    each killed from outside (SIGKILL) as soon as their own history.jsonl shows step 3, 9 and 15:
    aimed by the run's progress, not by the clock. Each checkpoint read after a kill is complete and
    newer than the last; a fourth process resumes to the end, and every weight, every optimizer state
    and the history equal those of a run never killed."""
    args = ["--epochs", "6", "--num-images", "64", "--batch-size", "16", "--g-channels", "4", "--d-channels", "4",
            "--no-progress", "--log-every", "1", "--checkpoint-every", "1", "--seed", "3", "--device", "cpu"]
    gan_edu = [sys.executable, "-m", "gan_edu", "train"]
    straight, run = tmp_path / "straight", tmp_path / "run"
    subprocess.run([*gan_edu, *args, "--out", str(straight)], check=True, capture_output=True, env=ENV, timeout=600)
    killed_at = []
    for target in (3, 9, 15):
        command = [*gan_edu, "--resume", str(run), "--no-progress"] if run.exists() else [*gan_edu, *args, "--out", str(run)]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            assert wait_for(lambda target=target, proc=proc: logged_step(run) >= target or proc.poll() is not None, timeout=300)
            assert proc.poll() is None, (target, proc.returncode, proc.stderr.read()[-2000:])  # the kill lands mid-run
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            proc.kill()
            proc.stderr.close()
        killed_at.append(load_checkpoint(run / "checkpoints" / "last.pt")["step"])  # never corrupt
        assert killed_at[-1] >= target - 1, (target, killed_at)  # the step logged before target's was checkpointed
    assert killed_at == sorted(set(killed_at)) and killed_at[-1] < 24, killed_at  # each process went on from the last checkpoint
    subprocess.run([*gan_edu, "--resume", str(run), "--no-progress"], check=True, capture_output=True, env=ENV, timeout=600)
    want, got = load_checkpoint(straight / "checkpoints" / "last.pt"), load_checkpoint(run / "checkpoints" / "last.pt")
    assert (got["step"], got["epoch"]) == (want["step"], want["epoch"]) == (24, 6)
    for part in ("modules", "optimizers"):
        flat_want, flat_got = _tensors(want[part]), _tensors(got[part])
        assert flat_want.keys() == flat_got.keys()
        for key, value in flat_want.items():
            assert torch.equal(value, flat_got[key]), (killed_at, part, key)
    history = [(r["kind"], r["step"], r["epoch"]) for r in read_history(run / "history.jsonl")]
    assert history == [(r["kind"], r["step"], r["epoch"]) for r in read_history(straight / "history.jsonl")]
    assert not list(run.rglob(".*.tmp"))


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

    with pytest.raises(GanEduError, match=r"refused: the file asks to run code \(getattr\)"):  # Path.touch pickles as getattr(Path, "touch")
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


class CallsSystem:
    """Unpickling this runs a shell command through ``function`` (``os.system`` or ``posix.system``)."""

    def __init__(self, function, command: str) -> None:
        self.function, self.command = function, command

    def __reduce__(self):
        return (self.function, (self.command,))


@pytest.mark.parametrize("function", ["os.system", "posix.system"])
def test_a_payload_in_a_blocked_module_is_refused_naming_the_global(tmp_path, function):
    """torch blocks whole modules (os, posix...) with its own wording; the refusal must still be
    one line that names what the file asks to call, and the command never runs."""
    import importlib

    module, name = function.split(".")
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "gan-edu-checkpoint", "payload": CallsSystem(getattr(importlib.import_module(module), name), f"touch {marker}")}, evil)
    with pytest.raises(GanEduError) as excinfo:
        load_checkpoint(evil)
    message = str(excinfo.value)
    assert "\n" not in message and "refused: the file asks to run code (posix.system)" in message, message  # os.system pickles as posix.system
    assert "Weights only load failed" not in message and "truncated" not in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "named"),
    [  # the wordings of torch's restricted unpickler, from torch 2.0 to today
        ("Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` will likely succeed, but it can result in "
         "arbitrary code execution.Do it only if you get the file from a trusted source. WeightsUnpickler error: Unsupported class os.system", "os.system"),
        ("Weights only load failed. This file can still be loaded, to do so you have two options \n\t(1) Re-running ... \n\tWeightsUnpickler error: "
         "Unsupported global: GLOBAL posix.system was not an allowed global by default. Please use `torch.serialization.add_safe_globals([system])` "
         "to allowlist this global if you trust this class/function.", "posix.system"),
        ("Weights only load failed. In PyTorch 2.6, we changed the default value of the `weights_only` argument ...\n\n\n"
         "Trying to load unsupported GLOBAL posix.system whose module posix is blocked.\n\nCheck the documentation of torch.load", "posix.system"),
        ("Weights only load failed. ... WeightsUnpickler error: Trying to call reduce for unrecognized function <built-in function system>", "<built-in function system>"),
        ("Weights only load failed. ... WeightsUnpickler error: Unsupported operand 149", None),
        ("Weights only load failed. ... WeightsUnpickler error: Unpickler found unexpected EOF", None),
    ],
    ids=["torch-2.0-2.3", "torch-2.4-2.5", "torch-2.6-blocked-module", "reduce", "corrupt-operand", "truncated"],
)
def test_the_refused_global_is_read_from_every_wording_of_torch(text, named):
    from gan_edu.training.checkpoint import unpickler_global

    assert unpickler_global(text) == named


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


# -- what a kill -9 leaves behind ---------------------------------------------------------------
class Crash(Exception):
    """Stands for a kill -9: the process stops at once, nothing after it runs."""


class CrashAtFirstEpochEnd(Callback):
    def on_epoch_end(self, trainer):
        raise Crash


@pytest.mark.slow  # a real training process, killed
def test_a_kill_between_a_step_checkpoint_and_the_epoch_end_leaves_a_consistent_history(tmp_path):
    """With --checkpoint-every equal to the batches per epoch, the last batch of an epoch is
    checkpointed (step 2, epoch 0), then the epoch-end record is logged, then the epoch-end
    checkpoint (epoch 1) is written. Killed in between, the resumed run must not log that epoch
    twice, and must end as a run never killed."""
    data = load_dataset("shapes", n=32, seed=3)  # 2 batches per epoch
    config = GANTrainerConfig(epochs=2, batch_size=16, progress=False, log_every=1, seed=5, checkpoint_every=2, device="cpu")
    straight = new_gan_run("dcgan", data, config=config, out_dir=tmp_path / "a", g_channels=4, d_channels=4)
    straight.fit(data)

    killed = new_gan_run("dcgan", data, config=config, out_dir=tmp_path / "b", g_channels=4, d_channels=4)
    killed.callbacks.append(CrashAtFirstEpochEnd())
    with pytest.raises(Crash):
        killed.fit(data)
    state = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (2, 0, 2)
    assert [r["epoch"] for r in read_history(tmp_path / "b" / "history.jsonl") if r["kind"] == "epoch"] == [1]  # logged, not checkpointed

    resumed, resumed_data = resume_gan_run(tmp_path / "b")
    resumed.fit(resumed_data)
    history = read_history(tmp_path / "b" / "history.jsonl")
    assert [(r["kind"], r["step"], r["epoch"]) for r in history] == [(r["kind"], r["step"], r["epoch"]) for r in straight.history]
    for name, module in straight.modules().items():
        for k, v in module.state_dict().items():
            assert torch.equal(v, resumed.modules()[name].state_dict()[k]), (name, k)


class PoisonAWeightAtEpoch2(Callback):
    """A weight turns infinite while the logged losses of the epoch were still finite."""

    def on_epoch_end(self, trainer):
        if trainer.epoch == 2:
            with torch.no_grad():
                weight = trainer.generator.main[0].weight
                weight[(0,) * weight.dim()] = float("inf")  # an index, not view(-1): the CPU default is channels-last


@pytest.mark.slow  # three epochs; test_training's divergence test stays in the core
def test_a_weight_that_is_not_finite_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    data = load_dataset("shapes", n=32, seed=3)  # 2 batches per epoch
    config = GANTrainerConfig(epochs=3, batch_size=16, progress=False, log_every=1, seed=5, device="cpu")
    t = new_gan_run("dcgan", data, config=config, out_dir=tmp_path / "r", g_channels=4, d_channels=4)
    t.callbacks.append(PoisonAWeightAtEpoch2())
    with pytest.raises(TrainingDiverged, match=r"generator\.main\.0\.weight is not finite at step 4 \(epoch 2\)") as excinfo:
        t.fit(data)
    assert "\n" not in str(excinfo.value) and "the last good checkpoint is kept" in str(excinfo.value)
    state = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")
    assert (state["step"], state["epoch"]) == (2, 1)  # the end of epoch 1
    assert torch.isfinite(state["modules"]["generator"]["main.0.weight"]).all()


def test_a_torn_history_line_is_skipped_and_rewritten_on_resume(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--max-steps", "3", *TINY]) == 0
    with open(run / "history.jsonl", "a") as f:
        f.write('{"kind": "step", "step": 4, "epo')  # a kill in the middle of an append
    assert [r["step"] for r in read_history(run / "history.jsonl")] == [1, 2, 3]
    assert main(["train", "--resume", str(run), "--max-steps", "4", "--no-progress"]) == 0
    lines = (run / "history.jsonl").read_text().splitlines()
    assert [r["step"] for r in read_history(run / "history.jsonl")] == [1, 2, 3, 4] and len(lines) == 4


def test_temporaries_of_killed_writes_are_removed_by_the_next_checkpoint(tmp_path):
    folder = tmp_path / "checkpoints"
    path = folder / "last.pt"
    save_checkpoint(path, {"step": 1})
    stale = [folder / ".last.pt.k2j4_x9a.tmp", folder / ".last.pt.00000000.tmp"]  # what kills during writes leave
    keep = [folder / ".other.pt.k2j4_x9a.tmp", folder / ".last.pt.notes.tmp", folder / "last.pt.bak"]  # not ours to remove
    for f in stale + keep:
        f.write_bytes(b"half a checkpoint")
    save_checkpoint(path, {"step": 2})
    assert not any(f.exists() for f in stale)
    assert all(f.exists() for f in keep)
    assert load_checkpoint(path)["step"] == 2


@pytest.mark.slow  # a run and its resume; the disk-full rows of test_bad_input stay in the core
def test_a_disk_that_fills_during_training_names_the_file_and_the_safe_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    data = load_dataset("shapes", n=32)  # 2 batches per epoch
    config = GANTrainerConfig(epochs=2, batch_size=16, progress=False, checkpoint_every=1, seed=5, device="cpu")
    t = new_gan_run("dcgan", data, config=config, out_dir=run, g_channels=4, d_channels=4)
    real_fsync = os.fsync

    def fills_after_the_first_checkpoint(fd):
        if (run / "checkpoints" / "last.pt").exists():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fills_after_the_first_checkpoint)
    with pytest.raises(DiskFull) as excinfo:
        t.fit(data)
    message = str(excinfo.value)
    assert "\n" not in message and message.startswith(f"{run}/") and ": no space left on device" in message
    assert f"the last checkpoint {run}/checkpoints/last.pt (step 1) is safe: free some space, then gan-edu train --resume {run}" in message
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 1 and not list(run.rglob(".*.tmp"))
    assert main(["train", "--resume", str(run), "--max-steps", "2", "--no-progress"]) == 0  # space freed: the run goes on
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 2


def test_a_live_writers_temporary_is_kept_and_a_killed_writers_is_removed(tmp_path):
    target = tmp_path / "g.onnx"
    left = tmp_path / ".g.onnx.k2j4_x9a.tmp"  # what a writer killed by -9 leaves: no one holds it
    left.write_bytes(b"half a model")
    others = [tmp_path / ".h.onnx.k2j4_x9a.tmp", tmp_path / ".g.onnx.notes.tmp", tmp_path / "g.onnx.bak"]  # not this target's
    for f in others:
        f.write_bytes(b"someone else's")
    with atomic_open(target, "wb") as f:  # a writer at work: its temporary file is locked
        f.write(b"new bytes")
        [live] = [p for p in tmp_path.glob(".g.onnx.*.tmp") if p not in (left, *others)]
        assert remove_stale_temporaries(target) == [left]
        assert live.exists()
    assert target.read_bytes() == b"new bytes" and not live.exists()
    assert all(f.exists() for f in others)


def test_a_file_system_without_locks_still_writes_and_keeps_every_temporary(tmp_path, monkeypatch):
    files = pytest.importorskip("gan_edu_runtime.files")
    if files.fcntl is None:
        pytest.skip("no flock here")

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(files.fcntl, "flock", no_locks)
    left = tmp_path / ".g.onnx.k2j4_x9a.tmp"
    left.write_bytes(b"a writer's, or a leftover: cannot tell without locks")
    with atomic_open(tmp_path / "g.onnx", "wb") as f:
        f.write(b"new bytes")
    assert (tmp_path / "g.onnx").read_bytes() == b"new bytes"
    assert remove_stale_temporaries(tmp_path / "g.onnx") == [] and left.exists()


KILL_IN_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    suffix = sys.argv[1]
    replace = os.replace
    def killing_replace(src, dst):  # SIGKILL with the new file's bytes on disk, before its rename
        if str(dst).endswith(suffix):
            os.kill(os.getpid(), signal.SIGKILL)
        replace(src, dst)
    os.replace = killing_replace
    from gan_edu.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


@pytest.mark.slow  # gan-edu export and card processes, killed
def test_kill_9_during_export_or_card_leaves_temporaries_that_the_next_run_removes(tmp_path):
    from test_exported import pipeline_folder

    script = tmp_path / "kill_in_write.py"
    script.write_text(KILL_IN_WRITE)
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--max-steps", "1", *TINY]) == 0
    experiment, to = pipeline_folder(tmp_path / "p"), tmp_path / "shipped"
    foreign = tmp_path / ".notes.txt.abcdefgh.tmp"  # the same shape of name, another target: never touched
    foreign.write_text("not gan-edu's")
    for suffix, argv, again, leftover in (
        (".onnx", ["export", str(run), "-o", str(tmp_path / "g.onnx")], ["export", str(run), "-o", str(tmp_path / "g.onnx")], ".g.onnx.*.tmp"),
        (".png", ["card", str(experiment), "--name", "tiny", "--to", str(to), "--command", "c"],
         ["card", str(experiment), "--name", "tiny", "--to", str(to), "--command", "c"], "shipped/.tiny.png.*.tmp"),
    ):
        proc = subprocess.run([sys.executable, str(script), suffix, *argv], capture_output=True, text=True, env=ENV, timeout=300)
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
        assert len(list(tmp_path.glob(leftover))) == 1  # the killed write's file, hidden, left behind
        assert main(again) == 0
        assert not list(tmp_path.glob(leftover)), argv[0]
    assert foreign.read_text() == "not gan-edu's"
    assert sorted(p.name for p in tmp_path.rglob(".*.tmp")) == [foreign.name]


# -- no code from files ---------------------------------------------------------------------------
PACKAGE = Path(__file__).resolve().parents[1] / "gan_edu"


def _calls(nodes: list[ast.AST], dotted: str):
    """Every call of ``dotted`` (e.g. ``torch.load``) among ``nodes`` (a tree's, walked once), and every bare mention of it."""
    module, name = dotted.rsplit(".", 1)
    calls, mentions = [], []
    for node in nodes:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == module:
            calls.append(node)
        elif isinstance(node, ast.Attribute) and node.attr == name and isinstance(node.value, ast.Name) and node.value.id == module:
            mentions.append(node)
    return calls, mentions


def test_every_torch_load_is_weights_only_and_nothing_unpickles():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    loads = 0
    for path in files:
        source = path.read_text()
        nodes = list(ast.walk(ast.parse(source, str(path))))
        calls, mentions = _calls(nodes, "torch.load")
        assert len(mentions) == len(calls), f"{path}: torch.load used other than as a call (aliased?)"
        for call in calls:
            flags = {k.arg: k.value for k in call.keywords}
            assert isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True, \
                f"{path}:{call.lineno}: torch.load without weights_only=True"
        loads += len(calls)
        for dotted in ("pickle.load", "pickle.loads", "pickle.Unpickler", "marshal.loads", "dill.load", "dill.loads"):
            found, named = _calls(nodes, dotted)
            assert not found and not named, f"{path}: {dotted} runs code from bytes"
        assert "from pickle import" not in source and "from torch import load" not in source, path
        assert "allow_pickle=True" not in source, f"{path}: numpy's allow_pickle=True unpickles"
        assert "eval(" not in source.replace(".eval(", "") and "exec(" not in source, f"{path}: eval/exec"
    assert loads >= 1  # the checkpoint loader is found by this scan


# -- --overwrite removes only what gan-edu wrote ----------------------------------------------------
def test_overwrite_replaces_a_run_of_gan_edu_files_and_refuses_one_holding_a_users_file(tmp_path, capsys):
    """Every kind of file a run holds (pictures, checkpoints, a killed write's temporary) counts
    as gan-edu's, so --overwrite replaces the run; one file of the user's and nothing is removed."""
    from gan_edu.outputs import RUN_FILES, foreign_files

    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--max-steps", "2", "--checkpoint-every", "1", "--tensorboard", *TINY]) == 0
    assert list((run / "tensorboard").iterdir())
    (run / "checkpoints" / ".last.pt.k2j4_x9a.tmp").write_bytes(b"half a checkpoint")  # what a kill -9 leaves
    assert foreign_files(run, RUN_FILES) == []
    (run / "samples" / "favourite.png").write_bytes(b"a picture the user kept")
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--overwrite", "--max-steps", "1", *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite would delete samples/favourite.png, which gan-edu did not write" in err[0], err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # nothing removed
    (run / "samples" / "favourite.png").unlink()
    assert main(["train", "--out", str(run), "--overwrite", "--max-steps", "1", *TINY]) == 0
    assert [r["step"] for r in read_history(run / "history.jsonl")] == [1]  # a new run, not the old one continued
    assert not (run / "checkpoints" / ".last.pt.k2j4_x9a.tmp").exists()


# -- honest reports -------------------------------------------------------------------------------
@pytest.mark.slow  # a real training process, signalled
def test_a_sigterm_in_a_classifier_run_does_not_offer_a_gan_command(tmp_path):
    """The pipeline's classifiers stop cleanly on SIGTERM like any run, but no command resumes a
    classifier run: the message says so instead of offering ``gan-edu train --resume``."""
    from gan_edu.models.classifier import build_classifier
    from gan_edu.training import TrainingInterrupted
    from gan_edu.training.classifier_trainer import ClassifierTrainer, ClassifierTrainerConfig

    class TermAtFirstLog(Callback):
        def on_log(self, trainer, record):
            os.kill(os.getpid(), signal.SIGTERM)  # caught by the trainer: it finishes the step and stops

    data = load_dataset("shapes", n=32, seed=3)
    clf = build_classifier("ref000", image_shape=data.image_shape, num_classes=data.num_classes, width=4)
    config = ClassifierTrainerConfig(epochs=3, batch_size=16, log_every=1, progress=False, device="cpu")
    trainer = ClassifierTrainer(clf, config, out_dir=tmp_path / "c", callbacks=[TermAtFirstLog()])
    with pytest.raises(TrainingInterrupted) as excinfo:
        trainer.fit(data)
    message = str(excinfo.value)
    assert "SIGTERM received: stopped after step 1" in message and "gan-edu train --resume" not in message, message
    assert "a classifier run has no resume command" in message and "gan-edu pipeline command again" in message
    assert load_checkpoint(tmp_path / "c" / "checkpoints" / "last.pt")["step"] == 1


def test_the_loss_plot_of_a_run_shorter_than_log_every_shows_its_losses(tmp_path):
    """Two steps with log_every 25 make one log record; a line through one point draws nothing,
    so the plot was empty but for its legend. Each loss must now show as a marker."""
    import numpy as np
    from PIL import Image

    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--max-steps", "2", *[a for a in TINY if a not in ("--log-every", "1")]]) == 0
    assert len([r for r in read_history(run / "history.jsonl") if r["kind"] == "step"]) == 1
    pixels = np.asarray(Image.open(run / "losses.png").convert("RGB")).astype(int)
    for colour in ((31, 119, 180), (255, 127, 14)):  # matplotlib's first two colours: d_loss, g_loss
        drawn = int((np.abs(pixels - colour).sum(-1) < 60).sum())
        assert drawn > 80, drawn  # the legend's line sample alone is about 58 pixels


# -- kill -9 at chosen moments, then resume: bit for bit the run that never stopped ---------------
KILL_AT = textwrap.dedent(
    """
    import os, signal, sys
    import gan_edu.training.trainer as tr
    from gan_edu.training.callbacks import Callback
    mode, k = sys.argv[1], int(sys.argv[2])
    if mode == "log":  # SIGKILL right after the k-th step record is logged (before that step's checkpoint)
        class Kill(Callback):
            def on_log(self, trainer, record):
                if record["kind"] == "step" and record["step"] == k:
                    os.kill(os.getpid(), signal.SIGKILL)
        init = tr.Trainer.__init__
        def with_kill(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self.callbacks.append(Kill())
        tr.Trainer.__init__ = with_kill
    else:  # SIGKILL inside the k-th checkpoint write: its bytes are on disk, the rename has not happened
        replace, count = os.replace, {"n": 0}
        def killing_replace(src, dst):
            if str(dst).endswith("last.pt"):
                count["n"] += 1
                if count["n"] == k:
                    os.kill(os.getpid(), signal.SIGKILL)
            replace(src, dst)
        os.replace = killing_replace
    from gan_edu.cli import main
    sys.exit(main(sys.argv[3:]))
    """
)


@pytest.mark.slow  # real training processes, killed and resumed
def test_kill_9_after_the_kth_log_or_during_a_checkpoint_write_then_resume_is_bit_exact(tmp_path):
    """32 images, batch 16, 3 epochs: 6 steps, a log and a checkpoint after each. Killed right after
    the 2nd (an epoch's last batch, before the epoch-end record), 3rd (an epoch's first batch) and
    5th logged step, or inside the 3rd checkpoint write; resumed; every weight, every optimizer
    state and the history equal those of the run that was never killed. (A kill after the 1st log
    comes before any checkpoint: there is nothing to resume, the run starts over.)"""
    args = ["train", "--epochs", "3", "--num-images", "32", "--batch-size", "16", "--g-channels", "4", "--d-channels", "4",
            "--no-progress", "--log-every", "1", "--checkpoint-every", "1", "--seed", "7", "--device", "cpu"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the killed processes run (ENV): float sums depend on the thread count
    try:
        _kill_9_runs(tmp_path, args)
    finally:
        torch.set_num_threads(threads)


def _kill_9_runs(tmp_path, args):
    straight = tmp_path / "straight"
    assert main([*args, "--out", str(straight)]) == 0
    want = load_checkpoint(straight / "checkpoints" / "last.pt")
    want_history = [(r["kind"], r["step"], r["epoch"]) for r in read_history(straight / "history.jsonl")]
    script = tmp_path / "kill_at.py"
    script.write_text(KILL_AT)
    for mode, k in (("log", 2), ("log", 3), ("log", 5), ("write", 3)):
        run = tmp_path / f"{mode}-{k}"
        proc = subprocess.run([sys.executable, str(script), mode, str(k), *args, "--out", str(run)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV, timeout=600)
        assert proc.returncode == -signal.SIGKILL, (mode, k, proc.returncode, proc.stderr[-2000:])
        killed_at = load_checkpoint(run / "checkpoints" / "last.pt")["step"]
        assert killed_at == k - 1 if mode == "log" else killed_at == 2, (mode, k, killed_at)  # the work since the last checkpoint is lost
        assert main(["train", "--resume", str(run), "--no-progress"]) == 0
        got = load_checkpoint(run / "checkpoints" / "last.pt")
        assert (got["step"], got["epoch"]) == (want["step"], want["epoch"]) == (6, 3)
        for part in ("modules", "optimizers"):
            flat_want, flat_got = _tensors(want[part]), _tensors(got[part])
            assert flat_want.keys() == flat_got.keys()
            for key, value in flat_want.items():
                assert torch.equal(value, flat_got[key]), (mode, k, part, key)
        assert [(r["kind"], r["step"], r["epoch"]) for r in read_history(run / "history.jsonl")] == want_history, (mode, k)
        assert not list(run.rglob(".*.tmp"))


def _tensors(tree, prefix=""):
    """Every tensor of a nested dict/list, by its path."""
    out = {}
    if isinstance(tree, torch.Tensor):
        out[prefix] = tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            out.update(_tensors(v, f"{prefix}/{k}"))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out.update(_tensors(v, f"{prefix}/{i}"))
    return out
