"""Options written once: flags made from the config fields, --config files, the resume allow-list."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest

from gan_edu.cli import build_parser, main
from gan_edu.cli.options import field_comments, flag_name
from gan_edu.cli.train import read_options
from gan_edu.domains import PositiveInt
from gan_edu.errors import GanEduError
from gan_edu.training import TRAINERS, GANTrainer, GANTrainerConfig, TrainerConfig
from gan_edu.training.bank import resume_bank
from gan_edu.training.runs import resume_gan_run

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
    if value is None:  # the optional ones: a step, a count, a budget
        return 3
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
