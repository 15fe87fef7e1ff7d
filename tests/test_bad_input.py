"""Bad input, one table: every row is answered with one line that names the bad value and what was
expected, exit code 2 on the command line (a GanEduError from Python), no traceback, and no file
touched: each row runs against a folder of real files (a trained tiny run, its ONNX export, data
sets in their real formats, broken copies of all of them) whose bytes, times and names are
compared before and after.

The rows run in process (``gan_edu.cli.main``); two of them run again as real ``python -m
gan_edu`` processes to show what a user sees.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from formats import write_cifar10, write_mnist
from PIL import Image

from gan_edu.cli import main
from gan_edu.data import load_dataset
from gan_edu.errors import GanEduError
from gan_edu.export import OnnxGenerator, export_generator
from gan_edu.models import Generator, build_gan
from gan_edu.pipeline import PipelineConfig
from gan_edu.training import GANTrainerConfig, load_checkpoint
from gan_edu.training.classifier_trainer import ClassifierTrainerConfig
from gan_edu.training.registry import get_trainer_class
from gan_edu.training.runs import new_gan_run, resume_gan_run

ROOT = Path(__file__).resolve().parents[1]
PIPE = ["--num-images", "300", "--g-channels", "4", "--d-channels", "4", "--gan-max-steps", "1", "--classifier-width", "4",
        "--classifier-max-steps", "1", "--no-progress"]  # a pipeline that would run in seconds, were its options right
TINY = ["--num-images", "64", "--batch-size", "16", "--g-channels", "4", "--d-channels", "4", "--max-steps", "1", "--no-progress"]


class MakesAMarker:
    """Unpickling this creates a file: what a malicious checkpoint would do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


class CallsSystem:
    """Unpickling this runs ``os.system(command)``: a payload in a module torch blocks outright."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """The workspace every row runs against (a run, an export, data sets, broken copies)."""
    import torch

    ws = tmp_path_factory.mktemp("ws")
    run = ws / "run"
    assert main(["train", "--model", "cdcgan", "--out", str(run), *TINY]) == 0  # the one trained run
    assert main(["export", str(run), "-o", str(ws / "g.onnx")]) == 0
    (ws / "file").write_text("a regular file, where a folder would be needed")
    (ws / "empty").mkdir()

    write_cifar10(ws / "cifar-broken")  # the release's layout, then one batch that is not a pickle
    (ws / "cifar-broken" / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"\x80\x02 not a pickle")
    write_mnist(ws / "mnist-truncated")
    images = ws / "mnist-truncated" / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:100])  # header says 20 images, 84 bytes follow
    write_mnist(ws / "mnist-badheader")
    (ws / "mnist-badheader" / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(bytes(100))  # not an idx header

    (ws / "noimages").mkdir()
    (ws / "noimages" / "readme.txt").write_text("no pictures here")
    (ws / "brokenimage").mkdir()
    for i in range(16):
        Image.new("RGB", (40, 40), (i * 10, 0, 0)).save(ws / "brokenimage" / f"{i:02d}.png")
    (ws / "brokenimage" / "zz.png").write_bytes(b"\x89PNG\r\n\x1a\n and then nothing")

    def broken_run(name: str, mutate: Callable[[Path], None]) -> Path:
        copy = ws / name
        shutil.copytree(run, copy)
        mutate(copy)
        return copy

    ckpt = "checkpoints/last.pt"
    broken_run("run-truncated", lambda d: (d / ckpt).write_bytes((d / ckpt).read_bytes()[:4096]))
    broken_run("run-corrupt", lambda d: (d / ckpt).write_bytes(b"\x00garbage" * 512))
    evil = {"format": "gan-edu-checkpoint", "payload": MakesAMarker(ws / "pwned")}
    broken_run("run-malicious", lambda d: torch.save(evil, d / ckpt))
    broken_run("run-system", lambda d: torch.save({"format": "gan-edu-checkpoint", "payload": CallsSystem(f"touch {ws}/pwned-system")}, d / ckpt))
    broken_run("run-text-checkpoint", lambda d: (d / ckpt).write_text("hello, this is a text file\n"))  # torch's unpickler: KeyError
    broken_run("run-badconfig", lambda d: (d / "config.json").write_text("{ not json"))
    broken_run("run-badweights", lambda d: (d / "generator" / "model.safetensors").write_bytes(b"\x08\x00\x00"))
    def edit_json(path: Path, **changes) -> None:
        cfg = json.loads(path.read_text())
        target = cfg["config"] if "config" in cfg else cfg["generator"]["config"]  # a model's config.json, or a run's
        target.update(changes)
        path.write_text(json.dumps(cfg))

    huge = {"g_channels": 1_000_000_000}
    beyond_memory = {"image_shape": [3, 4096, 4096], "g_channels": 16384}  # each size in range; 3 PB of weights in all
    broken_run("run-huge-width", lambda d: edit_json(d / "generator" / "config.json", **huge))
    broken_run("run-huge-width-config", lambda d: edit_json(d / "config.json", **huge))
    broken_run("run-beyond-memory", lambda d: edit_json(d / "generator" / "config.json", **beyond_memory))
    broken_run("run-beyond-memory-config", lambda d: edit_json(d / "config.json", **beyond_memory))
    broken_run("run-with-notes", lambda d: (d / "notes.txt").write_text("the user's own notes"))
    (ws / "bank-with-notes" / "class_00_circle").mkdir(parents=True)
    (ws / "bank-with-notes" / "bank.json").write_text("{}")
    (ws / "bank-with-notes" / "class_00_circle" / "history.jsonl").write_text("")
    (ws / "bank-with-notes" / "class_00_circle" / "notes.txt").write_text("the user's own notes")
    (ws / "experiment-with-notes" / "gan").mkdir(parents=True)
    (ws / "experiment-with-notes" / "report.json").write_text("{}")
    (ws / "experiment-with-notes" / "plots").mkdir()
    (ws / "experiment-with-notes" / "plots" / "mine.png").write_bytes(b"a picture of the user's")
    wider = new_gan_run("cdcgan", load_dataset("shapes", n=16), config=GANTrainerConfig(batch_size=16, device="cpu", progress=False),
                        g_channels=8, d_channels=8)
    broken_run("run-other", lambda d: wider.save_checkpoint(d / ckpt))  # a checkpoint of a wider model

    from onnx import TensorProto, helper, numpy_helper, save

    w = numpy_helper.from_array(np.ones(4, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [w],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(ws / "plain.onnx"))  # valid ONNX, not ours
    (ws / "text.onnx").write_text("hello, not a model")
    (ws / "deep.json").write_text("[" * 5000 + "]" * 5000)  # beyond the parser's recursion
    (ws / "deep.toml").write_text("a = " + "[" * 3000 + "]" * 3000 + "\n")
    (ws / "deep-tables.toml").write_text("gan." * 3000 + "epochs = 1\n")  # parsed, but 3,000 tables deep
    broken_run("run-tensorboard-file", lambda d: (d / "tensorboard").write_text("a file where TensorBoard's folder goes"))
    (ws / "exp").mkdir()  # a pipeline folder, as gan-edu card reads it: its generator and report
    shutil.copyfile(ws / "g.onnx", ws / "exp" / "generator.onnx")
    (ws / "exp" / "report.json").write_text(json.dumps({"c_accuracy": 0.9, "c_prime_accuracy": 0.7, "gan_test_accuracy": 0.6, "frechet_distance": 1.5}))
    site = ws / "site"  # an installed package whose entry point names a module it does not ship
    (site / "broken_trainers-1.0.dist-info").mkdir(parents=True)
    (site / "broken_trainers-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-trainers\nVersion: 1.0\n")
    (site / "broken_trainers-1.0.dist-info" / "entry_points.txt").write_text("[gan_edu.trainers]\nBrokenGANTrainer = no_such_module:BrokenGANTrainer\n")
    return ws


def with_site(ws: Path, call: Callable[[], object]) -> object:
    """``call()`` with ``ws/site`` (an installed package) on ``sys.path``."""
    sys.path.insert(0, str(ws / "site"))
    try:
        return call()
    finally:
        sys.path.remove(str(ws / "site"))


@dataclass(frozen=True)
class Row:
    """One bad input: a command line (``{ws}`` is the workspace) or a Python call, and two parts of
    the one-line answer: the bad value it names and what it says was expected."""

    id: str
    call: list[str] | Callable[[Path], object]
    names: str
    wants: str
    disk_full: bool = False  # every fsync fails with ENOSPC, as on a full disk (a training run may announce itself first)


ROWS = [
    # -- data sets: missing, corrupt, empty, unusable --------------------------------------------
    Row("cifar10-missing", ["train", "--dataset", "cifar10", "--data-root", "{ws}/empty", "--no-download", *TINY],
        "empty/cifar-10-batches-py/data_batch_1 not found and download is off", "put data_batch_1..5, test_batch and batches.meta"),
    Row("mnist-missing", ["data", "info", "--dataset", "mnist", "--data-root", "{ws}/empty", "--no-download"],
        "empty/MNIST/raw/train-images-idx3-ubyte not found", "put train-images-idx3-ubyte"),
    Row("cifar10-corrupt", ["train", "--dataset", "cifar10", "--data-root", "{ws}/cifar-broken", "--no-download", *TINY],
        "cifar-broken/cifar-10-batches-py fail torchvision's check", "replace them: put data_batch_1..5"),
    Row("mnist-truncated", ["train", "--dataset", "mnist", "--data-root", "{ws}/mnist-truncated", "--no-download", *TINY],
        "mnist-truncated/MNIST/raw fail torchvision's check", "replace them: put train-images-idx3-ubyte"),
    Row("mnist-bad-header", ["train", "--dataset", "mnist", "--data-root", "{ws}/mnist-badheader", "--no-download", *TINY],
        "mnist-badheader/MNIST/raw fail torchvision's check (AssertionError)", "replace them"),
    Row("folder-no-images", ["train", "--dataset", "folder", "--data-root", "{ws}/noimages", *TINY],
        "no images in", "expected files ending in .jpg, .png"),
    Row("folder-is-a-file", ["train", "--dataset", "folder", "--data-root", "{ws}/file", *TINY],
        "/file is not a folder", "expected --data-root DIR"),
    Row("folder-broken-image", ["train", "--dataset", "folder", "--data-root", "{ws}/brokenimage", "--image-size", "32", *TINY],
        "zz.png: not a readable image", "expected an image file PIL can open"),
    Row("image-size-impossible", ["train", "--image-size", "20", "--out", "{ws}/new", *TINY],
        "image size 20: this model cannot make it", "expected a side of the form 4*2^k or 7*2^k"),
    Row("batch-larger-than-data", ["train", "--out", "{ws}/new", *TINY, "--batch-size", "128"],
        "batch_size=128: the training data has only 64 images", "expected a batch size of at most 64"),
    # -- checkpoints and run folders --------------------------------------------------------------
    Row("checkpoint-truncated", ["train", "--resume", "{ws}/run-truncated"],
        "run-truncated/checkpoints/last.pt: truncated or corrupt checkpoint", "expected a complete checkpoint"),
    Row("checkpoint-corrupt", ["train", "--resume", "{ws}/run-corrupt"],
        "run-corrupt/checkpoints/last.pt: truncated or corrupt checkpoint", "expected a complete checkpoint"),
    Row("checkpoint-malicious", ["train", "--resume", "{ws}/run-malicious"],
        "run-malicious/checkpoints/last.pt: refused: the file asks to run code (getattr)", "expected a complete checkpoint"),
    Row("checkpoint-os-system", ["train", "--resume", "{ws}/run-system"],
        "run-system/checkpoints/last.pt: refused: the file asks to run code (posix.system)", "expected a complete checkpoint"),
    Row("checkpoint-of-another-model", ["train", "--resume", "{ws}/run-other"],
        "weights of another model for DCGANGenerator", "expected ("),
    Row("checkpoint-text-file", ["train", "--resume", "{ws}/run-text-checkpoint"],
        "run-text-checkpoint/checkpoints/last.pt: truncated or corrupt checkpoint (not a torch file", "expected a complete checkpoint"),
    Row("run-config-corrupt", ["train", "--resume", "{ws}/run-badconfig"],
        "run-badconfig/config.json: corrupt run config", "expected the config.json gan-edu train wrote"),
    Row("resume-not-a-run", ["train", "--resume", "{ws}/empty"], "empty: not a gan-edu run folder", "(no config.json)"),
    Row("run-exists", ["train", "--out", "{ws}/run", *TINY],
        "--out {ws}/run: a run already exists there", "use --resume {ws}/run to continue it or --overwrite"),
    Row("overwrite-but-cannot-start", ["train", "--out", "{ws}/run", "--overwrite", "--image-size", "20", *TINY],
        "image size 20", "expected a side of the form"),  # the old run must survive a new one that cannot start
    Row("overwrite-run-with-a-foreign-file", ["train", "--out", "{ws}/run-with-notes", "--overwrite", *TINY],
        "--out {ws}/run-with-notes: --overwrite would delete notes.txt, which gan-edu did not write", "expected a run folder holding only gan-edu's files"),
    Row("overwrite-bank-with-a-foreign-file", ["train", "--per-class", "--out", "{ws}/bank-with-notes", "--overwrite", *TINY, "--batch-size", "4"],
        "--out {ws}/bank-with-notes: --overwrite would delete class_00_circle/notes.txt", "expected a bank folder holding only gan-edu's files"),
    Row("overwrite-experiment-with-a-foreign-file", ["pipeline", "--out", "{ws}/experiment-with-notes", "--overwrite", "--num-images", "64", "--no-progress"],
        "--out {ws}/experiment-with-notes: --overwrite would delete plots/mine.png", "expected an experiment folder holding only gan-edu's files"),
    Row("quickstart-run-exists", ["quickstart", "--out", "{ws}/run", "--max-steps", "1", "--no-progress"],
        "--out {ws}/run: the folder exists and is not empty", "expected a new folder"),
    Row("out-is-a-file", ["train", "--out", "{ws}/file", *TINY], "--out {ws}/file: exists and is not a folder", "expected a new or empty folder"),
    Row("out-under-a-file", ["train", "--out", "{ws}/file/run", *TINY],
        "--out {ws}/file/run: cannot write there, {ws}/file is a file", "expected a path inside a folder"),
    Row("export-config-huge-width", ["export", "{ws}/run-huge-width", "-o", "{ws}/new.onnx"],
        "run-huge-width/generator/config.json: g_channels=1000000000", "expected a positive int of at most 16384"),
    Row("resume-config-huge-width", ["train", "--resume", "{ws}/run-huge-width-config"],
        "run-huge-width-config/config.json: g_channels=1000000000", "expected a positive int of at most 16384"),
    Row("export-config-beyond-memory", ["export", "{ws}/run-beyond-memory", "-o", "{ws}/new.onnx"],
        "run-beyond-memory/generator/config.json: DCGANGenerator with image_shape=(3, 4096, 4096)", "of weights, more than this machine's"),
    Row("resume-config-beyond-memory", ["train", "--resume", "{ws}/run-beyond-memory-config"],
        "run-beyond-memory-config/config.json: DCGANGenerator with image_shape=(3, 4096, 4096)", "expected a smaller model"),
    Row("train-width-too-large", ["train", "--out", "{ws}/new", *TINY, "--g-channels", "100000"], "g_channels=100000", "expected a positive int of at most 16384"),
    Row("train-latent-too-large", ["train", "--out", "{ws}/new", *TINY, "--latent-dim", "100000000"], "latent_dim=100000000", "expected a positive int of at most 65536"),
    Row("generator-weights-corrupt", ["export", "{ws}/run-badweights", "-o", "{ws}/new.onnx"],
        "run-badweights/generator/model.safetensors: corrupt or truncated weights file", "("),
    # -- the pipeline: every option checked before any data is loaded or folder made ----------------
    Row("pipeline-loss-unknown", ["pipeline", "--out", "{ws}/new-exp", "--loss", "foo", *PIPE], "loss 'foo'", "expected one of"),
    Row("pipeline-synthetic-fewer-than-a-batch", ["pipeline", "--out", "{ws}/new-exp", *PIPE, "--synthetic-images", "100"],
        "synthetic_images=100: fewer than classifier.batch_size=128", "expected at least one batch of synthetic images"),
    Row("pipeline-classifier-lr", ["pipeline", "--out", "{ws}/new-exp", *PIPE, "--classifier-lr", "50"], "lr=50.0", "expected a learning rate in (0, 10)"),
    Row("pipeline-width-too-large", ["pipeline", "--out", "{ws}/new-exp", *PIPE, "--g-channels", "100000"], "g_channels=100000", "expected a positive int of at most"),
    Row("pipeline-device-unknown", ["pipeline", "--out", "{ws}/new-exp", *PIPE, "--device", "tpu"], "device 'tpu'", "expected 'auto', 'cpu'"),
    Row("pipeline-gan-batch-larger-than-data", ["pipeline", "--out", "{ws}/new-exp", *PIPE, "--gan-batch-size", "512"],
        "gan.batch_size=512: the training data has only 300 images", "expected a batch size of at most 300"),
    Row("pipeline-out-is-a-file", ["pipeline", "--out", "{ws}/file", *PIPE], "--out {ws}/file: exists and is not a folder", "expected a new or empty folder"),
    # -- export ---------------------------------------------------------------------------------
    Row("export-existing-file", ["export", "{ws}/run", "-o", "{ws}/g.onnx"], "-o {ws}/g.onnx: file exists", "use --overwrite to replace it"),
    Row("export-not-onnx-name", ["export", "{ws}/run", "-o", "{ws}/g.txt"], "g.txt", "expected a path ending in .onnx"),
    Row("export-unwritable", ["export", "{ws}/run", "-o", "{ws}/file/g.onnx"], "{ws}/file is a file, not a folder", "expected a path inside a folder"),
    Row("export-opset-too-new", ["export", "{ws}/run", "-o", "{ws}/new.onnx", "--opset", "99"], "opset=99", "expected None or an int in [13, 20]"),
    Row("export-no-generator", ["export", "{ws}/empty", "-o", "{ws}/new.onnx"], "empty: holds no generator", "expected a run folder"),
    # -- sample ---------------------------------------------------------------------------------
    Row("onnx-not-gan-edu", ["sample", "{ws}/plain.onnx", "-o", "{ws}/grid.png"],
        "plain.onnx: not a gan-edu generator", "expected a file written by gan-edu export"),
    Row("onnx-not-onnx", ["sample", "{ws}/text.onnx", "-o", "{ws}/grid.png"], "text.onnx: not an ONNX model", "expected an exported gan-edu generator"),
    Row("onnx-is-a-folder", ["sample", "{ws}/run", "-o", "{ws}/grid.png"], "run: a folder", "expected an exported gan-edu generator"),
    Row("onnx-missing", ["sample", "{ws}/none.onnx", "-o", "{ws}/grid.png"], "none.onnx: no such file", "expected an exported gan-edu generator"),
    Row("labels-out-of-range", ["sample", "{ws}/g.onnx", "-n", "2", "--labels", "0,99", "-o", "{ws}/grid.png"],
        "labels in [0, 99]", "expected labels in [0, 9] (10 classes)"),
    Row("labels-not-ints", ["sample", "{ws}/g.onnx", "--labels", "cat,dog", "-o", "{ws}/grid.png"],
        "'cat,dog' is not a comma-separated list of ints", "expected e.g. 0,1,2"),
    Row("n-zero", ["sample", "{ws}/g.onnx", "-n", "0", "-o", "{ws}/grid.png"], "-n: 0 is not positive", "expected a positive int"),
    Row("n-negative", ["sample", "{ws}/g.onnx", "-n", "-5", "-o", "{ws}/grid.png"], "-n: -5 is not positive", "expected a positive int"),
    Row("n-beyond-memory", ["sample", "{ws}/g.onnx", "-n", "100000000000", "-o", "{ws}/grid.png"],
        "n=100000000000", "expected a smaller n"),
    Row("sample-unwritable", ["sample", "{ws}/g.onnx", "-n", "2", "-o", "{ws}/file/grid.png"],
        "-o {ws}/file/grid.png: cannot write there", "expected a path inside a folder"),
    Row("sample-npz-exists", ["sample", "{ws}/g.onnx", "-n", "2", "--npz", "{ws}/file"], "--npz {ws}/file: file exists", "use --overwrite"),
    Row("sample-output-is-a-folder", ["sample", "{ws}/g.onnx", "-n", "2", "-o", "{ws}/empty", "--overwrite"],
        "-o {ws}/empty: is a folder", "expected a file name"),
    Row("provider-unknown", ["sample", "{ws}/g.onnx", "-n", "2", "--provider", "FastestExecutionProvider", "-o", "{ws}/grid.png"],
        "provider 'FastestExecutionProvider'", "expected one of"),
    # -- fid --------------------------------------------------------------------------------------
    Row("inception-weights-text-file", ["fid", "{ws}/g.onnx", "--dataset", "shapes", "-n", "4", "--inception-weights", "{ws}/file", "--device", "cpu"],
        "{ws}/file: truncated or corrupt Inception weights file (not a torch file", "expected --inception-weights PATH to"),
    # -- --config files ---------------------------------------------------------------------------
    Row("config-json-nested-5000-deep", ["train", "--config", "{ws}/deep.json", "--out", "{ws}/new"],
        "--config {ws}/deep.json: nested too deeply to read", "expected at most 4 levels of tables"),
    Row("config-toml-nested-3000-deep", ["pipeline", "--config", "{ws}/deep.toml", "--out", "{ws}/new-exp"],
        "--config {ws}/deep.toml: nested too deeply to read", "expected at most 4 levels of tables"),
    Row("config-toml-3000-tables", ["pipeline", "--config", "{ws}/deep-tables.toml", "--out", "{ws}/new-exp"],
        "--config {ws}/deep-tables.toml: nested more than 4 levels deep", "expected at most 4 levels of tables"),
    # -- serve-demo -------------------------------------------------------------------------------
    Row("serve-demo-port-out-of-range", ["serve-demo", "--port", "99999"], "--port: 99999 is not a port", "expected a port in [0, 65535]"),
    # -- a file where a folder goes ------------------------------------------------------------
    Row("card-to-a-file", ["card", "{ws}/exp", "--name", "tiny", "--command", "c", "--to", "{ws}/file"], "--to {ws}/file: is a file", "expected a folder"),
    Row("tensorboard-file-in-the-run", ["train", "--resume", "{ws}/run-tensorboard-file", "--tensorboard"],
        "{ws}/run-tensorboard-file/tensorboard exists and is not a folder", "expected a folder for TensorBoard's event files"),
    # -- a full disk: the file named, the last checkpoint safe, a new run's files removed ----------
    Row("train-disk-full", ["train", "--out", "{ws}/new/deeper", *TINY], "{ws}/new/deeper/config.json: no space left on device",
        "the new run's files in {ws}/new/deeper were removed", disk_full=True),  # and the two folders it made
    Row("train-disk-full-in-an-empty-folder", ["train", "--out", "{ws}/empty", *TINY], "{ws}/empty/config.json: no space left on device",
        "expected free space in {ws}/empty", disk_full=True),  # the folder was there before: it stays
    Row("resume-disk-full", ["train", "--resume", "{ws}/run"], "{ws}/run/history.jsonl: no space left on device",
        "the last checkpoint {ws}/run/checkpoints/last.pt (step 1) is safe: free some space, then gan-edu train --resume {ws}/run", disk_full=True),
    Row("export-disk-full", ["export", "{ws}/run", "-o", "{ws}/new.onnx"], "{ws}/new.onnx: no space left on device", "expected free space in {ws}", disk_full=True),
    Row("card-disk-full", ["card", "{ws}/exp", "--name", "tiny", "--command", "c", "--to", "{ws}/empty"],
        "{ws}/empty/tiny.onnx: no space left on device", "expected free space in {ws}/empty", disk_full=True),
    # -- nonsense flag values ---------------------------------------------------------------------
    Row("epochs-not-an-int", ["train", "--epochs", "two"], "--epochs: 'two' is not an int", "expected a positive int"),
    Row("seed-negative", ["quickstart", "--seed", "-1"], "--seed: -1 is negative", "expected an int >= 0"),
    Row("lr-infinite", ["train", "--lr", "inf", "--out", "{ws}/new", *TINY], "lr_g=inf", "expected a learning rate in (0, 1)"),
    Row("beta1-out-of-range", ["train", "--beta1", "1.5", "--out", "{ws}/new", *TINY], "beta1=1.5", "expected a value in [0, 1)"),
    Row("device-unknown", ["train", "--device", "tpu", "--out", "{ws}/new", *TINY], "device 'tpu'", "expected 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    Row("model-unknown", ["train", "--model", "gpt"], "invalid choice: 'gpt'", "choose from"),
    Row("data-option-foreign", ["train", "--data-root", "{ws}/empty", "--out", "{ws}/new", *TINY],
        "option 'data_root' of dataset 'shapes'", "expected one of n, seed, channels, size"),
    Row("data-without-command", ["data"], "gan-edu data", "expected a command: info"),
    # -- the same mistakes made from Python --------------------------------------------------------
    Row("api-mnist-missing", lambda ws: load_dataset("mnist", data_root=ws / "empty", download=False),
        "train-images-idx3-ubyte not found", "put train-images-idx3-ubyte"),
    Row("api-cifar10-corrupt-pickle", lambda ws: load_dataset("cifar10", data_root=ws / "cifar-broken", download=False, verify_checksums=False),
        "cifar-10-batches-py fail torchvision's check", "replace them"),
    Row("api-folder-no-images", lambda ws: load_dataset("folder", data_root=ws / "noimages"), "no images in", "expected files ending in"),
    Row("api-checkpoint-truncated", lambda ws: load_checkpoint(ws / "run-truncated" / "checkpoints" / "last.pt"),
        "truncated or corrupt checkpoint", "expected a complete checkpoint"),
    Row("api-checkpoint-malicious", lambda ws: load_checkpoint(ws / "run-malicious" / "checkpoints" / "last.pt"),
        "refused: the file asks to run code (", "expected a complete checkpoint"),
    Row("api-checkpoint-os-system", lambda ws: load_checkpoint(ws / "run-system" / "checkpoints" / "last.pt"),
        "refused: the file asks to run code (posix.system)", "expected a complete checkpoint"),
    Row("api-resume-another-model", lambda ws: resume_gan_run(ws / "run-other"), "weights of another model", "expected ("),
    Row("api-run-exists", lambda ws: new_gan_run("dcgan", load_dataset("shapes", n=16), config=GANTrainerConfig(batch_size=16, device="cpu"), out_dir=ws / "run"),
        "a run already exists there", "--overwrite"),
    Row("api-overwrite-run-with-a-foreign-file",
        lambda ws: new_gan_run("cdcgan", load_dataset("shapes", n=16), config=GANTrainerConfig(batch_size=16, device="cpu"), out_dir=ws / "run-with-notes", overwrite=True),
        "--overwrite would delete notes.txt", "expected a run folder holding only gan-edu's files"),
    Row("api-image-size", lambda ws: build_gan("dcgan", image_shape=(3, 20, 20)), "image size 20", "expected a side of the form"),
    Row("api-image-side-too-large", lambda ws: build_gan("dcgan", image_shape=(3, 65536, 65536)), "image_shape=(3, 65536, 65536)", "expected sides of at most 4096"),
    Row("api-classes-too-many", lambda ws: build_gan("cdcgan", num_classes=10**9), "num_classes=1000000000", "expected None (unconditional) or an int in [2, 100000]"),
    Row("api-beyond-memory", lambda ws: build_gan("dcgan", image_shape=(3, 4096, 4096), g_channels=16384), "g_channels=16384", "expected a smaller model"),
    Row("api-from-pretrained-huge-width", lambda ws: Generator.from_pretrained(ws / "run-huge-width" / "generator"),
        "generator/config.json: g_channels=1000000000", "expected a positive int of at most 16384"),
    Row("api-weights-corrupt", lambda ws: Generator.from_pretrained(ws / "run-badweights" / "generator"),
        "model.safetensors: corrupt or truncated weights file", "("),
    Row("api-onnx-not-gan-edu", lambda ws: OnnxGenerator(ws / "plain.onnx"), "not a gan-edu generator", "expected a file written by gan-edu export"),
    Row("api-sample-n-zero", lambda ws: OnnxGenerator(ws / "g.onnx").sample(0), "n=0", "expected a positive int"),
    Row("api-sample-labels-out-of-range", lambda ws: OnnxGenerator(ws / "g.onnx").sample(2, [0, 99]), "labels in [0, 99]", "expected labels in [0, 9]"),
    Row("api-generate-nan-noise", lambda ws: OnnxGenerator(ws / "g.onnx").generate(np.full((2, 100), np.nan, np.float32)),
        "z: 2 of 2 rows hold NaN or inf (first: row 0)", "expected finite noise"),
    Row("api-generate-inf-noise", lambda ws: OnnxGenerator(ws / "g.onnx").generate(np.concatenate([np.zeros((3, 100)), np.full((1, 100), np.inf)])),
        "z: 1 of 4 rows hold NaN or inf (first: row 3)", "expected finite noise"),
    Row("api-export-opset", lambda ws: export_generator(ws / "run", ws / "new.onnx", opset=99), "opset=99", "expected None or an int in [13, 20]"),
    Row("api-pipeline-loss-unknown", lambda ws: PipelineConfig(loss="foo"), "loss 'foo'", "expected one of"),
    Row("api-pipeline-synthetic-fewer-than-a-batch", lambda ws: PipelineConfig(synthetic_images=10, classifier=ClassifierTrainerConfig(batch_size=32)),
        "synthetic_images=10: fewer than classifier.batch_size=32", "expected at least one batch"),
    Row("api-tensorboard-file-in-the-run", lambda ws: resume_gan_run(ws / "run-tensorboard-file", tensorboard=True),
        "run-tensorboard-file/tensorboard exists and is not a folder", "expected a folder for TensorBoard's event files"),
    Row("api-train-disk-full",
        lambda ws: new_gan_run("dcgan", load_dataset("shapes", n=16), config=GANTrainerConfig(batch_size=16, device="cpu", max_steps=1, progress=False),
                               out_dir=ws / "new").fit(load_dataset("shapes", n=16)),
        "new/config.json: no space left on device", "the new run's files in {ws}/new were removed", disk_full=True),
    Row("api-trainer-batch-zero", lambda ws: GANTrainerConfig(batch_size=0), "batch_size=0", "expected a positive int"),
    Row("api-trainer-entry-point-module-missing", lambda ws: with_site(ws, lambda: get_trainer_class("BrokenGANTrainer")),
        "entry point BrokenGANTrainer = no_such_module:BrokenGANTrainer (group gan_edu.trainers): cannot be loaded (ModuleNotFoundError",
        "expected an importable GANTrainer subclass"),
]


def disk_is_full(fd: int) -> None:
    """``os.fsync`` on a full disk (the bytes of a write are checked for room at the latest there)."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def snapshot(folder: Path) -> dict[str, tuple[int, int, str] | None]:
    """Every file and folder under ``folder``: (size, mtime_ns, sha1) for files, None for folders."""
    state: dict[str, tuple[int, int, str] | None] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_dir():
            state[rel] = None
        else:
            st = path.stat()
            state[rel] = (st.st_size, st.st_mtime_ns, hashlib.sha1(path.read_bytes()).hexdigest())
    return state


def test_the_table_is_large_and_covers_the_command_line_and_the_api():
    cli = [r for r in ROWS if isinstance(r.call, list)]
    assert len(ROWS) >= 25 and len(cli) >= 25 and len(ROWS) - len(cli) >= 10
    assert len({r.id for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(row, ws, capsys, monkeypatch):
    monkeypatch.chdir(ws)  # a default output folder (runs/...) would land here, and be seen
    before = snapshot(ws)
    capsys.readouterr()
    if row.disk_full:
        monkeypatch.setattr(os, "fsync", disk_is_full)
    if isinstance(row.call, list):
        argv = [a.replace("{ws}", str(ws)) for a in row.call]
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own errors exit from inside main
            code = e.code
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert code == 2, (argv, code, err)
        if row.disk_full:  # a run that started says so first (as for a broken image found mid-run)
            assert all(line.startswith(("training ", "config: ")) for line in lines[:-1]), err
            lines = lines[-1:]
        assert len(lines) == 1 and lines[0].startswith("gan-edu") and "error: " in lines[0], err
        assert out == "", out
        message = lines[0]
    else:
        with pytest.raises(GanEduError) as excinfo:
            row.call(ws)
        message = str(excinfo.value)
        assert "\n" not in message, message
    assert "Traceback" not in message
    assert row.names.replace("{ws}", str(ws)) in message, message
    assert row.wants.replace("{ws}", str(ws)) in message, message
    assert snapshot(ws) == before, "a bad input changed, removed or created files"


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["train", "--dataset", "mnist", "--data-root", "{ws}/mnist-badheader", "--no-download", *TINY], "fail torchvision's check"),
        (["sample", "{ws}/g.onnx", "-n", "2", "--labels", "0,99", "-o", "{ws}/grid.png"], "labels in [0, 99]"),
    ],
    ids=["mnist-bad-header", "labels-out-of-range"],
)
@pytest.mark.slow  # two gan-edu processes
def test_a_real_process_prints_one_line_and_no_traceback(argv, names, ws):
    before = snapshot(ws)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "gan_edu", *(a.replace("{ws}", str(ws)) for a in argv)],
                          capture_output=True, text=True, env=env, cwd=ws, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("gan-edu: error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert names in proc.stderr and proc.stdout == ""
    assert snapshot(ws) == before


# -- a tampered optimized-graph cache: never trusted, never an error ------------------------------
def _cache_of(model: Path) -> Path:
    [cached] = model.parent.glob(f".{model.stem}.optimized-*.onnx")
    return cached


TAMPERED = {  # how the hidden cache next to g.onnx is replaced: (folder) -> None
    "another-models-cache": lambda d: shutil.copyfile(_cache_of(d / "other.onnx"), _cache_of(d / "g.onnx")),
    "symlink-to-another-model": lambda d: (_cache_of(d / "g.onnx").unlink(), os.symlink(d / "other.onnx", _cache_of_name(d))),
    "fp16-variant": lambda d: shutil.copyfile(d / "g-fp16.onnx", _cache_of(d / "g.onnx")),
    "truncated": lambda d: _cache_of(d / "g.onnx").write_bytes(_cache_of(d / "g.onnx").read_bytes()[:1000]),
    "empty": lambda d: _cache_of(d / "g.onnx").write_bytes(b""),
    "random-bytes": lambda d: _cache_of(d / "g.onnx").write_bytes(np.random.default_rng(0).bytes(5000)),
}


def _cache_of_name(folder: Path) -> Path:
    return folder / (folder / "cache-name.txt").read_text()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """g.onnx and other.onnx (two tiny generators, each with the cache its export wrote), g's fp16 variant."""
    import torch

    folder = tmp_path_factory.mktemp("cache")
    for name, seed in (("g", 0), ("other", 1)):
        torch.manual_seed(seed)
        g, _ = build_gan("cdcgan", image_shape=(1, 32, 32), num_classes=3, g_channels=4, d_channels=4, embed_dim=4)
        export_generator(g.eval(), folder / f"{name}.onnx")
        if name == "g":
            export_generator(g.eval(), folder / "g-fp16.onnx", precision="fp16")
    (folder / "cache-name.txt").write_text(_cache_of(folder / "g.onnx").name)
    return folder


@pytest.mark.parametrize("how", list(TAMPERED))
def test_a_tampered_cache_is_not_used_and_sampling_writes_nothing(how, models, tmp_path, capsys):
    folder = tmp_path / "m"
    shutil.copytree(models, folder, symlinks=True)
    expected = OnnxGenerator(folder / "g.onnx", cache=False).sample(6, seed=1)
    assert OnnxGenerator(folder / "g.onnx").sessions[0].optimized_path == _cache_of(folder / "g.onnx")  # the real cache is used
    TAMPERED[how](folder)
    before = snapshot(folder)
    g = OnnxGenerator(folder / "g.onnx")
    assert g.sessions[0].optimized_path is None  # rebuilt in memory
    assert np.array_equal(g.sample(6, seed=1), expected)
    assert main(["sample", str(folder / "g.onnx"), "-n", "6", "--seed", "1", "--npz", str(tmp_path / "s.npz")]) == 0
    assert np.array_equal(np.load(tmp_path / "s.npz")["images"], expected)
    assert snapshot(folder) == before, "sampling wrote next to the model"
