"""Several processes on CPU (gloo): sharded batches, DDP, synchronised batch norm, rank-0 files.

Two processes with a global batch of 16 (8 each) against one process with a batch of 16:

* with synchronised batch norm the maths is the same (same images, same noise, batch statistics
  of the whole batch, gradients averaged), so the weights agree to float rounding;
* without it each process normalises by its own 8 images: the ranks still agree with each other
  (DDP averages the gradients), but not with the one-process run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from formats import write_image_tree

from gan_edu.data import DeviceLoader, FileLoader, load_dataset
from gan_edu.errors import GanEduError
from gan_edu.training import GANTrainerConfig, distributed, load_checkpoint, read_history
from gan_edu.training.distributed import World
from gan_edu.training.runs import new_gan_run, resume_gan_run

TINY = {"g_channels": 4, "d_channels": 4, "embed_dim": 4}
REPO = Path(__file__).resolve().parents[1]


def cfg(**kw):
    base = {"epochs": 1, "max_steps": 3, "batch_size": 16, "progress": False, "log_every": 1, "seed": 5, "device": "cpu"}
    return GANTrainerConfig(**{**base, **kw})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weights(trainer) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.detach().clone() for n, m in trainer.modules().items() for k, v in m.state_dict().items()}


def is_param(key: str) -> bool:
    return not key.endswith(("running_mean", "running_var", "num_batches_tracked"))


def _worker(rank: int, world_size: int, port: int, tmp: Path) -> None:
    """One rank: train with and without synchronised batch norm, then resume; dump the weights."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    data = load_dataset("shapes", "train", n=64, seed=3)
    try:
        for sync in (True, False):
            out = tmp / "sync-True" if sync else None  # one run folder is enough (pictures take time)
            t = new_gan_run("cdcgan", data, config=cfg(sync_batchnorm=sync), out_dir=out, **TINY)
            t.fit(data)
            torch.save(weights(t), tmp / f"sync-{sync}-rank{rank}.pt")
        t, data = resume_gan_run(tmp / "sync-True", max_steps=4)  # every rank loads rank 0's checkpoint
        t.fit(data)
        torch.save(weights(t), tmp / f"resumed-rank{rank}.pt")
    finally:
        distributed.shutdown()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_worker, args=(2, free_port(), tmp), nprocs=2, join=True, start_method="spawn")
    return tmp


@pytest.fixture(scope="module")
def one_process():
    """The weights of one process after 3 steps and after 4, batch 16."""
    tiny = load_dataset("shapes", "train", n=64, seed=3)
    t = new_gan_run("cdcgan", tiny, config=cfg(sync_batchnorm=True), **TINY)  # one process: plain batch norm
    t.fit(tiny)
    after3 = weights(t)
    t.config = dataclasses.replace(t.config, max_steps=4)
    t.fit(tiny)  # carries on from step 3
    return after3, weights(t)


def assert_close(a, b, keys=None, atol=1e-5):
    keys = keys or a.keys()
    for k in keys:
        assert torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=1e-4), (k, (a[k].float() - b[k].float()).abs().max())


@pytest.mark.slow  # two torchrun ranks (module fixture)
def test_two_ranks_with_sync_batchnorm_equal_one_process(two_ranks, one_process):
    rank0, rank1 = (torch.load(two_ranks / f"sync-True-rank{r}.pt") for r in (0, 1))
    for k in rank0:
        assert torch.equal(rank0[k], rank1[k]), k  # the ranks hold the same weights and statistics
    assert_close(rank0, one_process[0])
    # resume (every rank loads the checkpoint) and one more step == 4 steps straight
    resumed0, resumed1 = (torch.load(two_ranks / f"resumed-rank{r}.pt") for r in (0, 1))
    assert all(torch.equal(resumed0[k], resumed1[k]) for k in resumed0)
    assert_close(resumed0, one_process[1])
    assert load_checkpoint(two_ranks / "sync-True/checkpoints/last.pt")["step"] == 4


@pytest.mark.slow  # two torchrun ranks
def test_two_ranks_without_sync_batchnorm_agree_but_differ_from_one_process(two_ranks, one_process):
    rank0, rank1 = (torch.load(two_ranks / f"sync-False-rank{r}.pt") for r in (0, 1))
    params = [k for k in rank0 if is_param(k)]
    for k in params:
        assert torch.equal(rank0[k], rank1[k]), k  # DDP: the same gradients on every rank
    diff = max((rank0[k] - one_process[0][k]).abs().max().item() for k in params)
    assert diff > 1e-4  # batch statistics of 8 images per rank, not of 16


@pytest.mark.slow  # two torchrun ranks
def test_only_rank_zero_writes_and_metrics_are_averaged_over_ranks(two_ranks):
    run = two_ranks / "sync-True"
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2 and config["trainer"]["sync_batchnorm"] is True
    history = read_history(run / "history.jsonl")
    assert [r["step"] for r in history if r["kind"] == "step"] == [1, 2, 3, 4]  # one writer, resumed at 3
    assert (run / "samples.png").is_file() and (run / "generator/model.safetensors").is_file()


@pytest.mark.slow  # torchrun, two processes
def test_torchrun_runs_the_same_command(tmp_path):
    """``torchrun --nproc_per_node 2 -m gan_edu train``: one run folder, one printed summary."""
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        "-m", "gan_edu", "train", "--device", "cpu", "--out", str(out), "--num-images", "32", "--batch-size", "16",
        "--g-channels", "4", "--d-channels", "4", "--max-steps", "2", "--log-every", "1", "--no-progress", "--sync-batchnorm",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("done: 2 steps") == 1  # rank 0 prints, rank 1 does not
    assert load_checkpoint(out / "checkpoints/last.pt")["step"] == 2
    assert json.loads((out / "config.json").read_text())["world_size"] == 2


# -- the pieces, in one process --------------------------------------------------------------------
def test_loader_slices_make_the_global_batch(tiny_shapes, tmp_path):
    whole = list(DeviceLoader(tiny_shapes, 16, seed=2, flip=True).iterate(1, start=1))
    halves = [list(DeviceLoader(tiny_shapes, 16, seed=2, flip=True, rank=r, world_size=2).iterate(1, start=1)) for r in (0, 1)]
    assert len(whole) == len(halves[0]) == len(halves[1]) == 3
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *halves):
        assert x0.shape[0] == 8 and torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    write_image_tree(tmp_path)
    files = load_dataset("folder", data_root=tmp_path, size=8, in_memory=False)  # 5 images
    whole = list(FileLoader(files, 4, num_workers=0, seed=1).iterate(0))
    halves = [list(FileLoader(files, 4, num_workers=0, seed=1, rank=r, world_size=2).iterate(0)) for r in (0, 1)]
    assert torch.equal(torch.cat([halves[0][0][0], halves[1][0][0]]), whole[0][0])


def test_world_from_env_and_its_errors(monkeypatch, tiny_shapes):
    assert World.from_env() == World(0, 1, 0) and not World().active
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert World.from_env() == World(1, 2, 1) and not World.from_env().is_main
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(GanEduError, match="RANK='two': expected an int"):
        World.from_env()
    with pytest.raises(GanEduError, match="batch_size=15 over 2 processes: expected a multiple of 2"):
        DeviceLoader(tiny_shapes, 15, rank=1, world_size=2)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(GanEduError, match="without a torchrun rendezvous"):
        distributed.init_process_group(World(1, 2, 1), torch.device("cpu"))


def test_sync_batchnorm_is_plain_batchnorm_in_one_process():
    torch.manual_seed(0)
    bn = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    x = torch.randn(4, 3, 5, 5)
    expected = bn(x)
    synced = distributed.sync_batchnorm(bn, torch.device("cpu"))
    assert isinstance(synced[0], distributed.AllReduceBatchNorm2d)
    assert torch.equal(synced(x), expected)
    assert set(synced.state_dict()) == {"0.weight", "0.bias", "0.running_mean", "0.running_var", "0.num_batches_tracked"}


@pytest.mark.slow  # torchrun, two processes
def test_the_r1_refusal_under_torchrun_is_printed_once_on_its_own_line(tmp_path):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        "-m", "gan_edu", "train", "--device", "cpu", "--out", str(tmp_path / "run"), "--num-images", "32", "--batch-size", "16",
        "--g-channels", "4", "--d-channels", "4", "--max-steps", "1", "--no-progress", "--r1", "1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode != 0
    said = [line for line in proc.stderr.splitlines() if "gradient penalties are computed outside DistributedDataParallel" in line]
    assert len(said) == 1 and said[0].startswith("gan-edu: error: loss NonSaturatingLoss(r1=1.0) under torchrun"), proc.stderr[-3000:]
    assert said[0].endswith("and no --r1")
