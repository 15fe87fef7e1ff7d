"""The registry from the outside: `gan-edu models`, the docs tables, and every model x loss from the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from formats import write_installed_package

from gan_edu.cli import build_parser, main
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
    ours = [name for name, loss in LOSSES.items() if loss.__module__.split(".")[0] == "gan_edu"]  # other tests and examples register their own
    assert len(ours) >= 5
    for name in ours:
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


# -- one way to register: models, model classes, losses and trainers ----------------------------------
def test_every_registry_has_the_same_shape_and_the_same_one_line_refusal(tmp_path):
    """register_X(thing) returns the thing (a decorator where the thing names itself); an unknown
    name is one line listing only concrete registered names, never an abstract base."""
    import dataclasses

    from gan_edu.errors import GanEduError
    from gan_edu.losses import NonSaturatingLoss, get_loss, register_loss
    from gan_edu.models import Discriminator, Generator, ModelSpec, build_gan, register_model
    from gan_edu.models.base import MODULE_CLASSES
    from gan_edu.training import TRAINERS, get_trainer_class

    @register_loss
    class SoftLoss(NonSaturatingLoss):
        name = "soft-for-test"

    spec = register_model(dataclasses.replace(MODELS["dcgan"], source="a test's copy"), name="dcgan-for-test")
    try:
        assert get_loss("soft-for-test").__class__ is SoftLoss and build_gan("dcgan-for-test", image_shape=(1, 28, 28), **TINY_WIDTHS)
        assert MODELS.lookup("dcgan-for-test") is spec and isinstance(spec, ModelSpec)
        refusals = [lambda: get_loss("nope"), lambda: build_gan("nope"), lambda: get_trainer_class("nope"), lambda: MODULE_CLASSES.lookup("nope")]
        for registry, refuse in zip((LOSSES, MODELS, TRAINERS, MODULE_CLASSES), refusals):
            with pytest.raises(GanEduError) as refused:
                refuse()
            message = str(refused.value)
            assert "\n" not in message and f"{registry.what} 'nope' is not registered; expected one of " in message, message
            listed = message.split("expected one of ")[1].split(";")[0].split(", ")
            assert listed == registry.names() and "Generator" not in listed and "Discriminator" not in listed
            assert registry.group in message or registry is MODULE_CLASSES  # where installed packages declare theirs
        assert {"Generator", "Discriminator"} <= set(MODULE_CLASSES) and Generator and Discriminator  # registered, never offered
        with pytest.raises(GanEduError, match="the name is taken"):
            register_loss(type("Other", (NonSaturatingLoss,), {"name": "soft-for-test"}))
        with pytest.raises(GanEduError, match="register loss .*expected a name"):
            register_loss(type("Nameless", (NonSaturatingLoss,), {}))  # an inherited name would resume as the parent
    finally:
        del LOSSES["soft-for-test"], MODELS["dcgan-for-test"]


TINY_WIDTHS = {"g_channels": 4, "d_channels": 4}


def test_an_unknown_model_class_is_named_as_such_by_from_pretrained_and_resume(tmp_path, tiny_shapes):
    from gan_edu.errors import GanEduError
    from gan_edu.models import DCGANGenerator, Generator
    from gan_edu.training import GANTrainerConfig
    from gan_edu.training.runs import new_gan_run

    g, _ = __import__("gan_edu.models", fromlist=["build_gan"]).build_gan("dcgan", image_shape=(3, 32, 32), **TINY_WIDTHS)
    g.save_pretrained(tmp_path / "g")
    config = json.loads((tmp_path / "g" / "config.json").read_text())
    (tmp_path / "g" / "config.json").write_text(json.dumps({**config, "class": "MissingGenerator"}))
    with pytest.raises(GanEduError) as refused:
        Generator.from_pretrained(tmp_path / "g")
    message = str(refused.value)
    assert "names model class 'MissingGenerator', which is not registered here; expected one of " in message
    listed = message.split("expected one of ")[1].split(";")[0].split(", ")
    assert "DCGANGenerator" in listed and "Generator" not in listed and "Discriminator" not in listed  # no abstract base offered
    assert isinstance(DCGANGenerator.from_pretrained.__self__, type)
    run = tmp_path / "run"
    trainer = new_gan_run("dcgan", tiny_shapes, config=GANTrainerConfig(max_steps=1, batch_size=8, progress=False, device="cpu"), out_dir=run, **TINY_WIDTHS)
    trainer.fit(tiny_shapes)
    record = json.loads((run / "config.json").read_text())
    record["generator"]["class"] = "MissingGenerator"
    (run / "config.json").write_text(json.dumps(record))
    with pytest.raises(GanEduError) as refused:
        resume_gan_run(run)
    message = str(refused.value)
    assert "model class 'MissingGenerator' is not registered" in message and "not a GAN run config" not in message


def test_losses_and_models_of_an_installed_package_are_found_by_name(tmp_path, monkeypatch):
    """Entry points of the groups gan_edu.losses and gan_edu.models, as gan_edu.trainers has."""
    from gan_edu.losses import get_loss
    from gan_edu.models import build_gan

    site = write_installed_package(tmp_path / "site", "my_gan_parts", (
        "import dataclasses\nfrom gan_edu.losses import NonSaturatingLoss\nfrom gan_edu.models import MODELS\n"
        "class PackagedLoss(NonSaturatingLoss):\n    name = 'packaged'\n"
        "SPEC = dataclasses.replace(MODELS['dcgan'], source='a package')\n"
    ), {"gan_edu.losses": {"packaged": "my_gan_parts:PackagedLoss"}, "gan_edu.models": {"packaged-dcgan": "my_gan_parts:SPEC"}})
    monkeypatch.syspath_prepend(str(site))
    try:
        assert type(get_loss("packaged")).__name__ == "PackagedLoss"
        g, _ = build_gan("packaged-dcgan", image_shape=(1, 28, 28), **TINY_WIDTHS)
        assert g.image_shape == (1, 28, 28) and MODELS["packaged-dcgan"].source == "a package"
        LOSSES.pop("packaged")
        MODELS.pop("packaged-dcgan")
        args = build_parser("train").parse_args(["train", "--model", "packaged-dcgan", "--loss", "packaged"])  # choices of the command too
        assert (args.model, args.loss) == ("packaged-dcgan", "packaged")
    finally:
        LOSSES.pop("packaged", None)
        MODELS.pop("packaged-dcgan", None)


def test_a_custom_loss_run_records_its_options_and_resumes(tmp_path, tiny_shapes):
    """The lightest variant, a GANLoss subclass: registered, its run records its constructor's
    options (not {}) and resume rebuilds the same loss; unregistered, resume says how to fix it."""
    import torch

    from gan_edu.errors import GanEduError
    from gan_edu.losses import GANLoss, register_loss
    from gan_edu.training import GANTrainerConfig
    from gan_edu.training.runs import new_gan_run

    @register_loss
    class MarginHingeLoss(GANLoss):
        name = "margin-hinge-for-test"

        def __init__(self, margin: float = 1.0, *, r1: float = 0.0) -> None:
            super().__init__(r1=r1)
            self.margin = margin

        def discriminator_loss(self, real_logits, fake_logits):
            return torch.relu(self.margin - real_logits).mean() + torch.relu(self.margin + fake_logits).mean()

        def generator_loss(self, fake_logits):
            return -fake_logits.mean()

    config = GANTrainerConfig(max_steps=2, batch_size=8, progress=False, device="cpu")
    run = tmp_path / "run"
    try:
        trainer = new_gan_run("dcgan", tiny_shapes, loss=MarginHingeLoss(0.5), config=config, out_dir=run, **TINY_WIDTHS)
        trainer.fit(tiny_shapes)
        assert json.loads((run / "config.json").read_text())["loss"] == {"name": "margin-hinge-for-test", "options": {"margin": 0.5}, "d_steps": 1}
        resumed, _ = resume_gan_run(run, max_steps=3)
        assert type(resumed.loss) is MarginHingeLoss and resumed.loss.margin == 0.5 and resumed.step == 2
    finally:
        del LOSSES["margin-hinge-for-test"]
    with pytest.raises(GanEduError, match=r"loss 'margin-hinge-for-test' is not registered; .*\(name = 'margin-hinge-for-test'\) with @gan_edu.losses.register_loss"):
        resume_gan_run(run, max_steps=3)

    class ForgetfulLoss(MarginHingeLoss):
        name = "forgetful"

        def __init__(self, scale: float = 1.0) -> None:
            super().__init__()  # scale is not kept: a run could not record it

    with pytest.raises(GanEduError, match="constructor argument 'scale' is not kept as self.scale"):
        ForgetfulLoss(2.0).options()


@pytest.mark.parametrize(("trainer", "option", "value", "module"), [
    ("DiagnosingTrainer", "reweight_scale", 4.0, "gan_edu.training.reweight"),
    ("DecayingTrainer", "decay_start", 0.25, "gan_edu.training.decay"),
])
def test_the_projects_own_entry_point_trainers_are_found_by_name_without_importing_them(trainer, option, value, module):
    code = ("from gan_edu.pipeline_config import PipelineConfig; import sys; "
            f"c = PipelineConfig.from_dict({{'trainer': {trainer!r}, 'gan': {{{option!r}: {value!r}}}}}); "
            f"print(type(c.gan).__name__, getattr(c.gan, {option!r}), {module!r} in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [f"{trainer}Config", str(value), "True"]  # loaded through the entry point, on demand
    flag = "--" + option.replace("_", "-")
    pipeline_help = subprocess.run([sys.executable, "-m", "gan_edu", "pipeline", "--help"], capture_output=True, text=True, check=True).stdout
    train_help = " ".join(subprocess.run([sys.executable, "-m", "gan_edu", "train", "--help"], capture_output=True, text=True, check=True).stdout.split())
    assert "--gan-" + flag[2:] in pipeline_help and flag in train_help and f"{trainer}," in train_help  # its options are flags, its name a --trainer choice
