"""Per-class banks: trained from the CLI, one run folder per class, sampled by label, resumable."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from gan_edu.cli import main
from gan_edu.errors import GanEduError
from gan_edu.models import Generator, GeneratorBank
from gan_edu.training.bank import read_bank_manifest, resume_bank, train_bank

# 20 shapes: 2 per class, one batch of 2 per member and epoch
TINY_BANK = ["--num-images", "20", "--batch-size", "2", "--g-channels", "4", "--d-channels", "4", "--no-progress", "--epochs", "1"]


@pytest.mark.slow  # ten member runs, twice
def test_per_class_bank_from_the_cli_samples_by_label_and_resumes(tmp_path, capsys):
    bank_dir = tmp_path / "bank"
    assert main(["train", "--per-class", "--model", "ref002-perclass", "--loss", "hinge", "--out", str(bank_dir), *TINY_BANK]) == 0
    assert "a bank of 10 generators" in capsys.readouterr().out

    # the folder: a manifest, one run per class, the whole bank in generator/, a grid
    manifest = read_bank_manifest(bank_dir)
    assert manifest["model"] == "ref002-perclass" and manifest["loss"]["name"] == "hinge"
    assert [c["name"] for c in manifest["classes"]][:3] == ["circle", "square", "triangle"]
    assert all(c["complete"] and c["steps"] == 1 and c["images"] == 2 for c in manifest["classes"])
    for c in manifest["classes"]:
        run_config = json.loads((bank_dir / c["run"] / "config.json").read_text())
        assert run_config["data"]["options"]["classes"] == [c["label"]]  # trained on its class only
        assert run_config["trainer"]["seed"] == c["label"]  # member k: seed + k
    assert (bank_dir / "samples.png").is_file()

    # sampled by label exactly like a conditional generator: row i comes from member labels[i]
    bank = Generator.from_pretrained(bank_dir / "generator").eval()
    assert isinstance(bank, GeneratorBank) and bank.num_classes == 10 and bank.config.class_names[9] == "heart"
    labels = torch.tensor([3, 0, 9, 3])
    z = bank.sample_latent(4, generator=torch.Generator().manual_seed(0))
    images = bank(z, labels)
    for i, k in enumerate(labels.tolist()):
        member = Generator.from_pretrained(bank_dir / manifest["classes"][k]["run"] / "generator").eval()
        assert torch.allclose(images[i], member(z[i : i + 1])[0], atol=1e-6)
    assert bank.sample(4, labels, generator=torch.Generator().manual_seed(0)).shape == (4, 3, 32, 32)

    # resume: complete members are skipped; a lost member is retrained, identically (its own seed)
    lost = manifest["classes"][4]
    before = Generator.from_pretrained(bank_dir / lost["run"] / "generator").state_dict()
    shutil.rmtree(bank_dir / lost["run"])
    lost["complete"] = False
    (bank_dir / "bank.json").write_text(json.dumps(manifest))
    lines: list[str] = []
    resumed = resume_bank(bank_dir, log=lines.append)
    assert sum("skipped" in line for line in lines) == 9 and "class 5/10 (cross): training" in lines[4]
    after = Generator.from_pretrained(bank_dir / lost["run"] / "generator").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(v, bank.state_dict()[k]) for k, v in resumed.state_dict().items())
    assert read_bank_manifest(bank_dir)["classes"][4]["complete"]

    # an existing bank is never overwritten without --overwrite
    capsys.readouterr()
    assert main(["train", "--per-class", "--model", "ref002-perclass", "--out", str(bank_dir), *TINY_BANK]) == 2
    assert "a bank already exists" in capsys.readouterr().err


def test_bank_errors_are_one_line(tiny_shapes, tmp_path, capsys):
    assert main(["train", "--per-class", "--model", "cdcgan", "--out", str(tmp_path / "b"), *TINY_BANK]) == 2
    assert "conditional" in capsys.readouterr().err
    with pytest.raises(GanEduError, match=r"class 0 \(circle\) has 7 images: fewer than batch_size=16"):
        from gan_edu.training import GANTrainerConfig

        train_bank("dcgan", tiny_shapes, config=GANTrainerConfig(batch_size=16), out_dir=tmp_path / "b2")
    assert not (tmp_path / "b2").exists()  # nothing written before the checks
    with pytest.raises(GanEduError, match="not a gan-edu bank folder"):
        resume_bank(tmp_path / "nothing")


def test_an_exported_bank_keeps_every_member():
    """Exported (as ONNX export does), a bank routes labels its example input never had."""
    from gan_edu.models import build_gan

    torch.manual_seed(0)
    members = [build_gan("ref003-keras", image_shape=(1, 28, 28), g_channels=4)[0].eval() for _ in range(3)]
    bank = GeneratorBank.from_members(members).eval()
    z = torch.randn(2, 100)
    with torch.no_grad():
        exported = torch.export.export(bank, (z, torch.tensor([0, 0]))).module()
        labels = torch.tensor([1, 2])
        assert torch.allclose(exported(z, labels), bank(z, labels), atol=1e-6)
        assert torch.allclose(bank(z, labels)[1], members[2](z[1:])[0], atol=1e-6)
