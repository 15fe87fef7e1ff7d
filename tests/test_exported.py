"""The shipped generators (exported/) and their cards: every .onnx has a card and a picture, and
the card's contract is what the file itself says. Also ``gan-edu card``, which writes them."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image
from test_export import NAMES, run_without_torch, tiny_generator

from gan_edu.cli import main
from gan_edu.errors import GanEduError
from gan_edu.export import OnnxGenerator, export_generator
from gan_edu.export.card import (
    CARD_FORMAT,
    CONTRACT_KEYS,
    card_problems,
    graph_contract,
    make_card,
    quality_note,
    write_picture,
)
from gan_edu_runtime.card import card_schema
from gan_edu_runtime.cli import main as sample_main

ROOT = Path(__file__).resolve().parents[1]
EXPORTED = ROOT / "exported"
SHIPPED = sorted(EXPORTED.glob("*.onnx"))
MAX_BYTES = 15_000_000


def test_something_is_shipped():
    assert EXPORTED / "shapes_cdcgan.onnx" in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_generator_has_a_true_card_and_a_picture(path, tmp_path):
    card_path = path.with_suffix(".json")
    assert card_path.is_file(), f"{path.name} has no card {card_path.name}"
    card = json.loads(card_path.read_text())
    assert card["format"] == CARD_FORMAT and card["name"] == path.stem
    assert card_problems(card, path) == []  # names, shapes, dtypes, value range, classes, size, sha256, picture
    assert path.stat().st_size < MAX_BYTES

    g = OnnxGenerator(path)
    contract = card["contract"]
    assert contract["class_names"] == list(g.class_names) == card["training_data"]["class_names"]
    assert [i["name"] for i in contract["inputs"]] == ["z", "labels"][: 1 + (g.num_classes is not None)]
    assert contract["outputs"][0]["shape"] == ["N", *g.info.output_shape]
    # What the card says of the training is what the file says.
    assert card["training_data"]["name"] == g.info.training_data["name"] and card["training_data"]["size"] == g.info.training_data["size"]
    assert card["training"]["steps"] == g.info.training["steps"] > 0
    assert card["training_data"]["licence"] and card["training"]["command"] and card["training"]["hardware"]
    # A shipped model is a working one: c on real images near perfect, and c' (trained on this file's
    # images only) and GAN-test (c's reading of them) far above chance, overall and the mean of the classes.
    metrics, chance = card["metrics"], 1 / len(g.class_names)
    assert metrics["c_accuracy"] >= 0.95, metrics["c_accuracy"]
    for key, column in (("c_prime_accuracy", "c_prime"), ("gan_test_accuracy", "gan_test")):
        assert metrics[key] >= 3 * chance, (key, metrics[key])
        assert np.mean([r[column] for r in metrics["per_class"]]) >= 3 * chance, column
    assert metrics["frechet_distance"] > 0

    # The picture is this model's: drawn again, it is the same pixels.
    picture = np.asarray(Image.open(path.parent / card["picture"]).convert("RGB"))
    assert np.array_equal(picture, np.asarray(Image.open(write_picture(g, tmp_path / "again.png")).convert("RGB")))

    # The card's own sample command, run as printed (output moved to tmp_path), draws the picture.
    words = shlex.split(card["how_to_run"]["sample"])
    assert words[0] == "gan-edu-sample" and words[-2:] == ["-o", card["picture"]], words
    assert sample_main([str(ROOT / words[1]), *words[2:-1], str(tmp_path / "rerun.png")]) == 0
    assert np.array_equal(picture, np.asarray(Image.open(tmp_path / "rerun.png").convert("RGB")))
    assert card["how_to_run"]["gan-edu"] == card["how_to_run"]["sample"].replace("gan-edu-sample", "gan-edu sample", 1)

    # The words on quality are the card's own numbers, and the card fits its schema.
    assert card["quality_note"] == quality_note(card["metrics"]["per_class"], card["metrics"].get("gan_test_confusions") or [])
    for c in card["metrics"].get("gan_test_confusions") or []:  # every confusion the card lists is named in its note
        assert f"{c['asked']} as {c['judged']} ({c['share']:.1%})" in card["quality_note"]
    for row in card["metrics"]["per_class"]:
        assert f"{row['class']} {row['gan_test']:.3f}" in card["quality_note"]
    jsonschema.validate(card, card_schema())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_files_name_no_local_path(path):
    """Nothing shipped names a folder of the machine that made it: not the card, not the ONNX metadata."""
    meta = OnnxGenerator(path).sessions[0].session.get_modelmeta().custom_metadata_map
    texts = {"card": path.with_suffix(".json").read_text(), **{f"metadata {k}": v for k, v in meta.items()}}
    for where, text in texts.items():
        assert not re.search(r'"(/|~/|[A-Za-z]:\\\\)[^"]*"', text), (where, text)
        assert "data_root" not in text, where


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_outputs_stay_in_the_stated_range(path):
    card = json.loads(path.with_suffix(".json").read_text())
    lo, hi = card["contract"]["value_range"]
    tolerance = card["contract"]["value_tolerance"]
    images = OnnxGenerator(path).sample(512, seed=3)
    assert lo - tolerance <= images.min() and images.max() <= hi + tolerance, (images.min(), images.max())


def test_the_card_schema_refuses_a_card_that_lacks_the_contract():
    card = json.loads((EXPORTED / "shapes_cdcgan.json").read_text())
    for key in ("noise", "opset", "min_onnxruntime", "labels", "pixels", "value_tolerance"):
        bad = json.loads(json.dumps(card))
        del bad["contract"][key]
        with pytest.raises(jsonschema.ValidationError, match=key):
            jsonschema.validate(bad, card_schema())
    bad = json.loads(json.dumps(card))
    bad["contract"]["labels"] = None  # a conditional model must state its label rule
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, card_schema())


def test_the_card_format_is_documented():
    readme = (EXPORTED / "README.md").read_text()
    card = json.loads((EXPORTED / "shapes_cdcgan.json").read_text())
    keys = list(card) + [f"contract.{k}" for k in card["contract"]] + [f"training.{k}" for k in card["training"]]
    undocumented = [k for k in keys if f"`{k}`" not in readme and f"`{k.split('.')[-1]}`" not in readme]
    assert undocumented == []
    assert set(CONTRACT_KEYS) <= set(card["contract"])


# -- gan-edu card --------------------------------------------------------------------------------
REPORT = {
    "c_accuracy": 0.9, "c_prime_accuracy": 0.7, "gan_test_accuracy": 0.6, "frechet_distance": 1.5, "eval_split": "test",
    "sizes": {"train": 64, "evaluation": 32, "synthetic": 64}, "gan_steps": 4,
    "per_class": [{"class": n, "c": 0.9, "c_prime": 0.7, "gan_test": 0.6, "judged_as_fraction": 0.3} for n in NAMES],
    "settings": {"dataset": "shapes", "data_root": "/home/someone/data", "progress": False, "gan_epochs": 1},
    "hardware": {"device": "cpu", "cuda": None, "cpu": "x86_64", "torch_threads": 2}, "timings": {"gan_s": 12.5},
}


def pipeline_folder(tmp_path: Path, data_name: str = "shapes") -> Path:
    run = tmp_path / "run"
    run.mkdir(parents=True)
    data = {"name": data_name, "options": {"n": 64, "data_root": "/home/someone/data"}, "class_names": list(NAMES), "size": 64}
    export_generator(tiny_generator(), run / "generator.onnx", class_names=NAMES, training_data=data)
    (run / "report.json").write_text(json.dumps(REPORT))
    return run


def test_card_command_ships_a_model_with_a_true_card(tmp_path, capsys):
    run, to = pipeline_folder(tmp_path), tmp_path / "exported"
    code = main(["card", str(run), "--name", "tiny", "--to", str(to), "--command", "gan-edu pipeline --out run", "--machine", "a test"])
    assert code == 0, capsys.readouterr().err
    assert "c 0.9000, c' 0.7000, GAN-test 0.6000, Frechet 1.500" in capsys.readouterr().out
    card = json.loads((to / "tiny.json").read_text())
    assert card_problems(card, to / "tiny.onnx") == []
    assert (to / "tiny.onnx").read_bytes() == (run / "generator.onnx").read_bytes()
    assert card["training"]["wall_time_s"] == 12.5 and card["training"]["hardware"] == "a test"  # --machine, in place of the report's words
    assert "data_root" not in card["training"]["settings"] and "data_root" not in card["training_data"]["options"]  # no local paths
    assert card["training_data"]["licence"].startswith("none needed")
    assert [r["class"] for r in card["metrics"]["per_class"]] == list(NAMES)
    picture = Image.open(to / "tiny.png")
    assert picture.size == (2 * (2 + 8 * 34), 2 * (2 + 3 * 34))  # 3 rows of 8 images of 32 pixels, padding 2, enlarged twice

    # Running it again on the same model is fine; a different model under the name needs --overwrite.
    assert main(["card", str(run), "--name", "tiny", "--to", str(to), "--command", "again"]) == 0
    other = pipeline_folder(tmp_path / "other")
    export_generator(tiny_generator(seed=1), other / "generator.onnx", class_names=NAMES, training_data={"name": "shapes", "size": 64, "class_names": list(NAMES)})
    capsys.readouterr()
    assert main(["card", str(other), "--name", "tiny", "--to", str(to), "--command", "x"]) == 2
    assert "a different model is shipped under this name; use --overwrite" in capsys.readouterr().err


def test_card_refusals(tmp_path, capsys):
    run = pipeline_folder(tmp_path, data_name="cifar10")
    cases = [
        (["card", str(tmp_path), "--name", "x", "--command", "c"], "no report.json; expected a folder written by gan-edu pipeline"),
        (["card", str(run), "--name", "x", "--command", "c", "--to", str(tmp_path / "e")], "training data 'cifar10': its licence is not known to gan-edu; expected --licence TEXT"),
        (["card", str(run), "--name", "../x", "--command", "c"], "name='../x': expected letters, digits"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["card", str(run), "--name", "x", "--command", "c", "--to", str(tmp_path / "e"), "--licence", "the authors' terms"]) == 0
    assert json.loads((tmp_path / "e" / "x.json").read_text())["training_data"]["licence"] == "the authors' terms"


def test_card_problems_catch_a_card_that_disagrees(tmp_path):
    run, to = pipeline_folder(tmp_path), tmp_path / "exported"
    card = json.loads(make_card(run, "tiny", to=to, command="c").read_text())
    path = to / "tiny.onnx"
    tampered = [
        ("class_names", lambda c: c["contract"]["class_names"].reverse(), "contract.class_names"),
        ("image_shape", lambda c: c["contract"].update(image_shape=[1, 32, 32]), "contract.image_shape"),
        ("value_range", lambda c: c["contract"].update(value_range=[0, 255]), "contract.value_range"),
        ("dtype", lambda c: c["contract"]["inputs"][1].update(dtype="int32"), "contract.inputs"),
        ("input name", lambda c: c["contract"]["inputs"][0].update(name="noise"), "contract.inputs"),
        ("output shape", lambda c: c["contract"]["outputs"][0].update(shape=["N", 3, 64, 64]), "contract.outputs"),
        ("size", lambda c: c.update(size_bytes=1), "size_bytes"),
        ("sha256", lambda c: c.update(sha256="0" * 64), "sha256"),
        ("picture", lambda c: c.update(picture="missing.png"), "picture"),
    ]
    for what, change, where in tampered:
        bad = json.loads(json.dumps(card))
        change(bad)
        problems = card_problems(bad, path)
        assert len(problems) == 1 and problems[0].startswith(where), (what, problems)
    assert graph_contract(path)["num_classes"] == 3


def test_card_command_runs_without_torch(tmp_path):
    run = pipeline_folder(tmp_path)
    out = run_without_torch(["-m", "gan_edu", "card", str(run), "--name", "t", "--to", "shipped", "--command", "c"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert re.search(r"wrote shipped/t\.onnx \(\d\.\d\d MB\), shipped/t\.png and shipped/t\.json", out.stdout)


def test_make_card_is_a_gan_edu_error_for_a_bank_folder(tmp_path):
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(GanEduError, match="no generator.onnx"):
        make_card(tmp_path, "x", to=tmp_path / "e", command="c")
