"""Byte-reproducible files: the same seed and settings on the CPU write the same bytes, so a user can
check a run with sha256. Only the wall-clock ``time`` of history.jsonl's lines differs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gan_edu.cli import main
from gan_edu.models import build_gan

TINY = ["--model", "cdcgan", "--num-images", "64", "--batch-size", "16", "--g-channels", "4", "--d-channels", "4",
        "--max-steps", "3", "--log-every", "1", "--seed", "7", "--ema", "--no-progress", "--device", "cpu"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) and its sha256; history.jsonl without its times."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = str(path.relative_to(folder))
        if path.name == "history.jsonl":
            lines = [{k: v for k, v in json.loads(line).items() if k != "time"} for line in path.read_text().splitlines()]
            out[rel] = hashlib.sha256(json.dumps(lines, sort_keys=True).encode()).hexdigest()
        else:
            out[rel] = sha256(path)
    return out


def test_saving_the_same_weights_gives_the_same_bytes(tmp_path):
    g, _ = build_gan("dcgan", g_channels=4, d_channels=4)
    digests = {sha256(g.save_pretrained(tmp_path / str(i)) / "model.safetensors") for i in range(12)}
    assert len(digests) == 1  # the header's metadata keys in a fixed order (random before: 2 orders, about half each)
    header = (tmp_path / "0" / "model.safetensors").read_bytes()
    n = int.from_bytes(header[:8], "little")
    keys = list(json.loads(header[8 : 8 + n]))
    assert keys == sorted(keys)


@pytest.mark.slow  # three tiny trainings and three exports: about 20 s on 2 busy cores
def test_two_runs_with_the_same_seed_write_the_same_bytes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        assert main(["train", "--out", name, *TINY]) == 0
        assert main(["export", name, "-o", f"{name}/g.onnx"]) == 0
        assert main(["export", name, "-o", f"{name}/g_fp16.onnx", "--precision", "fp16"]) == 0
    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    weights = [k for k in a if k.endswith((".safetensors", ".onnx", ".pt"))]
    assert len([k for k in weights if k.endswith(".safetensors")]) >= 3  # generator, EMA generator, discriminator
    assert any(k.endswith(".onnx") for k in weights) and "checkpoints/last.pt" in weights
    assert a == b, {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    other = tmp_path / "c"
    assert main(["train", "--out", str(other), *TINY, "--seed", "8"]) == 0  # the last --seed wins
    assert files(other)["generator/model.safetensors"] != a["generator/model.safetensors"]  # the seed does matter
