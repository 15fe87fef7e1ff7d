"""Options written once: flags made from the config fields, --config files, the resume allow-list."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import pytest
from formats import write_installed_package

from gan_edu.cli import build_parser, main
from gan_edu.cli.options import field_comments, field_types, flag_name
from gan_edu.cli.pipeline import pipeline_config
from gan_edu.cli.train import read_options
from gan_edu.domains import PositiveInt
from gan_edu.errors import GanEduError
from gan_edu.pipeline import EXPERIMENT_WIDE, PipelineConfig, nested_settings, reusable_c
from gan_edu.training import TRAINERS, GANTrainer, GANTrainerConfig, TrainerConfig
from gan_edu.training.bank import resume_bank
from gan_edu.training.classifier_trainer import ClassifierTrainerConfig
from gan_edu.training.runs import resume_gan_run

ROOT = Path(__file__).resolve().parents[1]

TINY = ["--num-images", "32", "--batch-size", "16", "--g-channels", "4", "--d-channels", "4", "--no-progress"]
#: A valid value other than the default, for the str options (the others are made from their kind).
STR_VALUES = {"device": "cpu", "precision": "bf16", "diffaugment": "color"}


def other_value(config: object, name: str) -> object:
    """A valid value of option ``name`` that is not ``config``'s."""
    value = getattr(config, name)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2
    if value is None:  # the optional ones: a switch left to the device (channels_last), a step, a count, a budget
        return True if field_types(type(config))[name].kind is bool else 3
    return STR_VALUES.get(name, value)


def actions(command: str) -> dict[str, object]:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {a.dest: a for a in sub._actions}


# -- gan-edu train: one flag per field ------------------------------------------------------------
def test_every_trainer_config_field_is_a_flag_of_train_and_reaches_the_config():
    train = actions("train")
    comments = field_comments(GANTrainerConfig)
    base = GANTrainerConfig()
    argv = ["train"]
    for f in dataclasses.fields(GANTrainerConfig):
        action = train[f.name]  # KeyError: a field without a flag
        assert flag_name(f.name) in action.option_strings and action.help.startswith(comments[f.name]), f.name
        value = other_value(base, f.name)
        argv += [flag_name(f.name) if value is not False else "--no-" + flag_name(f.name)[2:]] if isinstance(value, bool) else [flag_name(f.name), str(value)]
    args = build_parser("train").parse_args(argv)
    config = GANTrainerConfig.from_dict(read_options(args))
    for f in dataclasses.fields(GANTrainerConfig):
        assert getattr(config, f.name) == other_value(base, f.name), f.name


@dataclasses.dataclass(frozen=True)
class TempoConfig(GANTrainerConfig):
    tempo: PositiveInt = 3  # G updates per tick of the tempo (a variant's own option)


class TempoGANTrainer(GANTrainer):
    config_class = TempoConfig


def test_a_registered_variants_own_options_are_flags_too(monkeypatch, capsys):
    monkeypatch.setitem(TRAINERS, "TempoGANTrainer", TempoGANTrainer)
    tempo = actions("train")["tempo"]
    assert tempo.option_strings == ["--tempo"] and tempo.help == "G updates per tick of the tempo (a variant's own option) (default 3)"
    args = build_parser("train").parse_args(["train", "--trainer", "TempoGANTrainer", "--tempo", "5", "--epochs", "2"])
    assert TempoConfig.from_dict(read_options(args)) == TempoConfig(tempo=5, epochs=2)
    with pytest.raises(SystemExit):
        build_parser("train").parse_args(["train", "--tempo", "0"])
    assert "argument --tempo: 0 is not positive; expected a positive int" in capsys.readouterr().err
    args = build_parser("train").parse_args(["train", "--tempo", "5"])  # GANTrainer's config has no tempo
    with pytest.raises(GanEduError, match=r"trainer config keys \['tempo'\]: not options of GANTrainerConfig"):
        GANTrainerConfig.from_dict(read_options(args))


def test_an_installed_trainers_own_options_are_flags_and_config_keys(tmp_path, monkeypatch, capsys):
    """A trainer declared by an installed package (entry point group gan_edu.trainers): its config's
    fields are flags of gan-edu train and keys of --config, as a trainer registered by a script's are."""
    site = write_installed_package(tmp_path / "site", "paced_trainers", (
        "import dataclasses\nfrom gan_edu.domains import PositiveInt\nfrom gan_edu.training import GANTrainer, GANTrainerConfig\n"
        "@dataclasses.dataclass(frozen=True)\nclass PacedConfig(GANTrainerConfig):\n"
        "    pace: PositiveInt = 2  # a packaged variant's own option\n"
        "class PacedGANTrainer(GANTrainer):\n    config_class = PacedConfig\n"
    ), {"gan_edu.trainers": {"PacedGANTrainer": "paced_trainers:PacedGANTrainer"}})
    monkeypatch.syspath_prepend(str(site))
    try:
        assert actions("train")["pace"].option_strings == ["--pace"]
        args = build_parser("train").parse_args(["train", "--trainer", "PacedGANTrainer", "--pace", "5"])
        assert read_options(args) == {"pace": 5}
        path = write(tmp_path, "run.json", json.dumps({"trainer": "PacedGANTrainer", "pace": 7, "max_steps": 1}))
        run = tmp_path / "run"
        argv = ["train", "--config", str(path), "--out", str(run), "--num-images", "16", "--batch-size", "8", "--g-channels", "4", "--d-channels", "4", "--no-progress"]
        assert main(argv) == 0, capsys.readouterr().err
        recorded = json.loads((run / "config.json").read_text())
        assert recorded["trainer_class"] == "PacedGANTrainer" and recorded["trainer"]["pace"] == 7
        assert "pace" in actions("pipeline") or "gan.pace" in actions("pipeline")
    finally:
        TRAINERS.pop("PacedGANTrainer", None)


def test_every_domain_type_is_documented_for_variant_authors_and_r1_help_says_its_limits():
    import typing

    from gan_edu import domains

    names = [n for n, v in vars(domains).items() if typing.get_origin(v) is typing.Annotated]
    assert "NonNegativeFloat" in names
    text = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    assert all(f"`{n}`" in text for n in names), [n for n in names if f"`{n}`" not in text]
    r1 = actions("train")["r1"].help
    assert "(any loss)" not in r1 and "refused under torchrun" in r1


# -- --config FILE ------------------------------------------------------------------------------
def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("suffix", ["json", "toml"])
def test_train_config_file_gives_options_and_flags_win(tmp_path, suffix):
    values = {"epochs": 3, "lr_g": 0.001, "ema": False, "diffaugment": "color", "model": "cdcgan", "g_channels": 8, "per_class": False}
    text = json.dumps(values) if suffix == "json" else "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items())
    path = write(tmp_path, f"run.{suffix}", text)
    args = build_parser("train").parse_args(["train", "--config", str(path), "--epochs", "4", "--g-channels", "16"])
    options = read_options(args)
    assert options == {"epochs": 4, "lr_g": 0.001, "ema": False, "diffaugment": "color"}  # the flag wins
    assert args.model == "cdcgan" and args.g_channels == 16 and args.loss == "non-saturating" and args.per_class is False


@pytest.mark.slow  # a CLI run; the config-file parsing tests stay in the core
def test_train_with_a_config_file_end_to_end(tmp_path):
    path = write(tmp_path, "run.json", json.dumps({"max_steps": 1, "lr_d": 0.0004, "no_such": 1}))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r"), *TINY]) == 2  # refused before any work
    assert not (tmp_path / "r").exists()
    path = write(tmp_path, "run.json", json.dumps({"max_steps": 1, "lr_d": 0.0004, "model": "cdcgan"}))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r"), *TINY]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["trainer"]["lr_d"] == 0.0004 and config["trainer"]["max_steps"] == 1 and config["model"] == "cdcgan"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"epochz": 3}', "'epochz' is not an option here; expected one of "),
        ('{"epochs": 0}', "epochs=0: 0 is not positive; expected a positive int"),
        ('{"epochs": "three"}', "epochs='three': expected an int"),
        ('{"epochs": 2.5}', "epochs=2.5: expected an int"),
        ('{"lr_g": "fast"}', "lr_g='fast': expected a number"),
        ('{"ema": "yes"}', "ema='yes': expected true or false"),
        ('{"model": "gpt"}', "model='gpt': expected one of dcgan, cdcgan"),
        ('{"out": "elsewhere"}', "'out' is not an option here"),
        ('[1, 2]', "a list; expected a table of option values"),
        ('{"epochs": 3,', "not valid JSON"),
    ],
)
def test_bad_config_files_are_refused_in_one_line(tmp_path, capsys, text, message):
    path = write(tmp_path, "bad.json", text)
    with pytest.raises(SystemExit) as exc:
        sys.exit(main(["train", "--config", str(path), "--out", str(tmp_path / "r"), *TINY]))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"--config {path}" in err and message in err, err
    assert not (tmp_path / "r").exists()


def test_config_files_of_other_kinds_are_refused(tmp_path, capsys):
    for name, message in (("c.yaml", "expected a file ending in .json or .toml"), ("none.json", "no such file")):
        if name != "none.json":
            write(tmp_path, name, "epochs: 3")
        assert main(["train", "--config", str(tmp_path / name)]) == 2
        assert message in capsys.readouterr().err


# -- the options a resume may change: one set ------------------------------------------------------
def test_the_resume_allow_list_is_one_set_used_by_the_cli_runs_and_banks(tmp_path, capsys):
    names = {f.name for f in dataclasses.fields(TrainerConfig)}
    assert TrainerConfig.resumable <= names and GANTrainerConfig.resumable == TrainerConfig.resumable
    assert "lr_g" not in TrainerConfig.resumable and "seed" not in TrainerConfig.resumable
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--max-steps", "1", *TINY]) == 0
    with pytest.raises(GanEduError, match=r"a resume keeps the run's own lr_g, seed; expected changes of channels_last, .*max_steps"):
        resume_gan_run(run, lr_g=1e-3, seed=4, max_steps=2)
    (tmp_path / "bank").mkdir()
    (tmp_path / "bank" / "bank.json").write_text(json.dumps({"format": "gan-edu-bank", "trainer_class": "GANTrainer"}))
    with pytest.raises(GanEduError, match="a resume keeps the run's own batch_size"):
        resume_bank(tmp_path / "bank", batch_size=8)
    capsys.readouterr()
    # the command line notes what a resume keeps, and goes on with what it may change
    assert main(["train", "--resume", str(run), "--max-steps", "2", "--lr-g", "0.001", "--log-every", "1", "--no-progress"]) == 0
    assert "note: --resume keeps the run's own lr_g" in capsys.readouterr().err
    trainer = json.loads((run / "config.json").read_text())["trainer"]
    assert trainer["lr_g"] == 0.0002 and trainer["max_steps"] == 2 and trainer["log_every"] == 1


# -- gan-edu pipeline: the stages' options, nested ---------------------------------------------------
def test_every_stage_option_is_a_pipeline_flag_and_a_new_trainer_field_needs_no_cli_change():
    """The flags follow the fields: a field added to TrainerConfig is a flag of train and of both pipeline stages."""
    train, pipeline = actions("train"), actions("pipeline")
    for f in dataclasses.fields(TrainerConfig):
        assert f.name in train, f.name
        if f.name not in EXPERIMENT_WIDE:
            assert flag_name(f"gan.{f.name}") in pipeline[f"gan.{f.name}"].option_strings, f.name
            assert flag_name(f"classifier.{f.name}") in pipeline[f"classifier.{f.name}"].option_strings, f.name
        else:
            assert f.name in pipeline and f"gan.{f.name}" not in pipeline and f"classifier.{f.name}" not in pipeline, f.name
    for f in dataclasses.fields(ClassifierTrainerConfig):
        assert f.name in EXPERIMENT_WIDE or f"classifier.{f.name}" in pipeline, f.name
    for f in dataclasses.fields(GANTrainerConfig):  # the GAN's own options: both spellings, as gan-edu train has them
        if f.name not in {t.name for t in dataclasses.fields(TrainerConfig)}:
            assert {flag_name(f"gan.{f.name}"), flag_name(f.name)} <= set(pipeline[f"gan.{f.name}"].option_strings), f.name
    assert EXPERIMENT_WIDE == ("flip", "device", "precision", "channels_last", "compile", "cuda_graph", "seed", "progress")


def pipeline_config_of(argv: list[str]) -> PipelineConfig:
    return pipeline_config(build_parser("pipeline").parse_args(["pipeline", "--out", "x", *argv]))


def test_pipeline_flags_reach_the_stages():
    config = pipeline_config_of(["--gan-epochs", "2", "--lr-d", "4e-4", "--gan-beta1", "0", "--no-ema", "--gan-max-seconds", "60",
                                 "--classifier-lr", "0.1", "--classifier-warmup-steps", "7", "--classifier-optimizer", "adam",
                                 "--device", "cpu", "--seed", "3", "--flip"])
    gan, clf = config.gan_trainer_config(), config.classifier_trainer_config(1000)
    assert (gan.epochs, gan.lr_d, gan.beta1, gan.ema, gan.max_seconds, gan.batch_size) == (2, 4e-4, 0.0, False, 60.0, 64)
    assert (clf.lr, clf.warmup_steps, clf.optimizer, clf.epochs) == (0.1, 7, "adam", 10)
    for stage in (gan, clf):  # the experiment-wide options reach every stage
        assert (stage.device, stage.seed, stage.flip) == ("cpu", 3, True)
    assert config.gan.device == "auto" and config.to_dict()["gan"].get("device") is None  # written once, at the top


@pytest.mark.parametrize("suffix", ["json", "toml"])
def test_pipeline_config_file_nested_with_flags_winning_over_it_and_it_over_a_preset(tmp_path, suffix):
    values = {"model": "cdcgan", "g_channels": 16, "gan": {"epochs": 4, "lr_g": 1e-4, "ema": True}, "classifier": {"lr": 0.3}, "device": "cpu"}
    text = json.dumps(values) if suffix == "json" else (
        'model = "cdcgan"\ng_channels = 16\ndevice = "cpu"\n[gan]\nepochs = 4\nlr_g = 1e-4\nema = true\n[classifier]\nlr = 0.3\n')
    path = write(tmp_path, f"exp.{suffix}", text)
    config = pipeline_config_of(["--preset", "mnist", "--config", str(path), "--gan-epochs", "5", "--classifier-epochs", "1"])
    assert config.dataset == "mnist" and config.classifier_model == "resnet9"  # the preset
    assert config.g_channels == 16 and config.gan.lr_g == 1e-4 and config.gan.ema and config.classifier.lr == 0.3  # the file beats the preset
    assert config.gan.epochs == 5 and config.classifier.epochs == 1 and config.device == "cpu"  # the flags beat both
    assert config.classifier.schedule == "onecycle" and config.gan.batch_size == 64  # the preset where neither says


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"gan": {"lr": 0.1}}, "'gan.lr' is not an option here; expected one of ac_fake_in_d, ac_weight, balanced, batch_size, beta1, "),
        ({"gan": {"device": "cpu"}}, "'gan.device' is not an option here; expected 'device' at the top (one value for every stage)"),
        ({"gna": {"epochs": 3}}, "'gna.epochs' is not an option here; expected one of "),
        ({"gan": {"epochs": -1}}, "gan.epochs=-1: -1 is not positive; expected a positive int"),
        ({"classifier": {"lr": 50}}, "classifier: lr=50.0: expected a learning rate in (0, 10)"),
        ({"gan": 3}, "'gan' is not an option here"),
        ({"classifier_tta": "yes"}, "classifier_tta='yes': expected true or false"),
    ],
)
def test_bad_pipeline_config_files_are_refused_in_one_line(tmp_path, capsys, values, message):
    path = write(tmp_path, "bad.json", json.dumps(values))
    assert main(["pipeline", "--config", str(path), "--out", str(tmp_path / "exp")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "exp").exists()


def test_pipeline_config_as_plain_data_round_trips_and_refuses_what_it_does_not_know():
    config = pipeline_config_of(["--gan-epochs", "2", "--lr-g", "1e-4", "--classifier-model", "resnet9", "--classifier-schedule", "onecycle"])
    assert PipelineConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.merged({"gan": {"max_steps": 3}}).gan == dataclasses.replace(config.gan, max_steps=3)
    with pytest.raises(GanEduError, match="'gan_epochs' is not a pipeline option"):
        PipelineConfig.from_dict({"gan_epochs": 3})
    with pytest.raises(GanEduError, match="gan.seed: seed is experiment-wide; expected it once, at the top"):
        PipelineConfig.from_dict({"gan": {"seed": 3}})
    with pytest.raises(GanEduError, match=r"gan.device='cpu': device is experiment-wide; expected it given once, as PipelineConfig.device"):
        PipelineConfig(gan=GANTrainerConfig(device="cpu"))


def test_a_variant_trainer_gets_its_own_config_in_the_pipeline(monkeypatch):
    monkeypatch.setitem(TRAINERS, "TempoGANTrainer", TempoGANTrainer)
    config = pipeline_config_of(["--trainer", "TempoGANTrainer", "--tempo", "5", "--gan-epochs", "2"])
    assert type(config.gan) is TempoConfig and config.gan.tempo == 5 and config.gan.batch_size == 64
    assert type(PipelineConfig(trainer="TempoGANTrainer").gan) is TempoConfig  # the pipeline's GANTrainerConfig, made the variant's
    assert PipelineConfig.from_dict(config.to_dict()) == config


# -- reports written before the nesting ------------------------------------------------------------
def test_an_old_flat_report_is_understood(tmp_path):
    old = json.loads((ROOT / "docs" / "results" / "mnist-6-epochs-resnet9" / "report.json").read_text())["settings"]
    assert "gan_epochs" in old and old["classifier"] == "resnet9"  # a report of the flat layout
    settings = nested_settings(old)
    config = PipelineConfig.from_dict(settings)
    assert (config.gan.epochs, config.gan.ema, config.classifier_model, config.classifier.lr, config.classifier.schedule) == (6, False, "resnet9", 0.2, "onecycle")
    assert nested_settings({"gan_minutes": 3.5, "classifier": "vgg"}) == {"gan": {"max_seconds": 210.0}, "classifier_model": "vgg"}
    # --reuse-c of such an experiment: its c is reused when the recipe agrees, refused in one line when not
    folder = tmp_path / "old"
    (folder / "c" / "classifier").mkdir(parents=True)
    (folder / "c" / "classifier" / "config.json").write_text("{}")
    (folder / "report.json").write_text(json.dumps({"settings": old}))
    assert reusable_c(config.merged({"reuse_c": str(folder), "gan": {"epochs": 2}})) == folder / "c" / "classifier"  # the GAN may differ
    with pytest.raises(GanEduError, match=r"its c was trained with other classifier.lr \(classifier.lr=0.2\)"):
        reusable_c(config.merged({"reuse_c": str(folder), "classifier": {"lr": 0.1}}))
    (folder / "report.json").write_text(json.dumps({"settings": ["not", "settings"]}))
    with pytest.raises(GanEduError, match="not a pipeline report; expected the report.json gan-edu pipeline wrote"):
        reusable_c(config.merged({"reuse_c": str(folder)}))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"fused_optimizer": 1}, "fused_optimizer=1: expected True or False"),
        ({"channels_last": "no"}, "channels_last='no': expected True, False or None"),
        ({"ema": "yes"}, "ema='yes': expected True or False"),
        ({"cudnn_benchmark": 0}, "cudnn_benchmark=0: expected True or False"),
    ],
)
def test_bool_options_given_in_code_take_only_true_or_false(values, message):
    with pytest.raises(GanEduError, match=re.escape(message)):
        GANTrainerConfig(**values)
    assert GANTrainerConfig(channels_last=None, fused_optimizer=False).channels_last is None  # None where the type allows it
