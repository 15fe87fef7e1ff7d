"""The synthetic stage and the c vs c' pipeline, end to end on tiny shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gan_edu.cli import build_parser, main
from gan_edu.cli.pipeline import pipeline_config
from gan_edu.errors import GanEduError
from gan_edu.export import export_generator
from gan_edu.export.runtime import OnnxGenerator
from gan_edu.models import build_gan
from gan_edu.pipeline import PipelineConfig, split_off
from gan_edu.synthetic import (
    FreshSyntheticLoader,
    balanced_labels,
    load_pool,
    sample_pool,
    save_pool,
)


@pytest.fixture(scope="module")
def onnx_cdcgan(tmp_path_factory):
    torch.manual_seed(0)
    g, _ = build_gan("cdcgan", image_shape=(3, 32, 32), num_classes=10, g_channels=4, embed_dim=4)
    path = tmp_path_factory.mktemp("onnx") / "g.onnx"
    export_generator(g, path, class_names=[f"c{i}" for i in range(10)])
    return OnnxGenerator(path)


def test_balanced_labels():
    labels = balanced_labels(23, 10, seed=1)
    assert np.bincount(labels).tolist() == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert not np.array_equal(labels, np.arange(23) % 10)  # shuffled
    assert np.array_equal(labels, balanced_labels(23, 10, seed=1))


def test_pool_matches_the_generator_and_round_trips(onnx_cdcgan, tmp_path):
    pool = sample_pool(onnx_cdcgan, 30, seed=4)
    assert pool.images.dtype == torch.uint8 and pool.images.shape == (30, 3, 32, 32)
    assert pool.class_counts() == [3] * 10 and pool.class_names[0] == "c0"
    # the same images as sampling the runtime directly with the same labels and seed
    direct = onnx_cdcgan.to_uint8(onnx_cdcgan.sample(30, pool.labels.numpy(), seed=4)).transpose(0, 3, 1, 2)
    assert np.array_equal(pool.images.numpy(), direct)
    save_pool(pool, tmp_path / "pool.npz")
    again = load_pool(tmp_path / "pool.npz")
    assert torch.equal(again.images, pool.images) and torch.equal(again.labels, pool.labels)
    assert again.class_names == pool.class_names
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(GanEduError, match="not a synthetic pool"):
        load_pool(tmp_path / "bad.npz")


def test_fresh_loader_draws_new_images_each_epoch_reproducibly(onnx_cdcgan):
    loader = FreshSyntheticLoader(onnx_cdcgan, 40, 20, seed=3)
    e0 = list(loader.iterate(0))
    assert len(e0) == len(loader) == 2
    x, y = e0[0]
    assert x.shape == (20, 3, 32, 32) and x.min() >= -1 and x.max() <= 1 and y.shape == (20,)
    assert torch.equal(list(loader.iterate(0))[1][0], e0[1][0])  # reproducible
    assert torch.equal(next(loader.iterate(0, start=1))[0], e0[1][0])  # resumable mid-epoch
    assert not torch.equal(next(loader.iterate(1))[0], x)  # fresh next epoch


def test_unconditional_generators_cannot_make_labelled_sets(tmp_path):
    g, _ = build_gan("dcgan", image_shape=(1, 28, 28), g_channels=4)
    export_generator(g, tmp_path / "u.onnx")
    with pytest.raises(GanEduError, match="unconditional"):
        sample_pool(tmp_path / "u.onnx", 10)


def test_split_off_is_disjoint_and_seeded(tiny_shapes):
    rest, held = split_off(tiny_shapes, 10, seed=0)
    assert len(rest) == 54 and len(held) == 10
    both = torch.cat([rest.images, held.images]).flatten(1)
    assert torch.unique(both, dim=0).shape[0] == len(torch.unique(tiny_shapes.images.flatten(1), dim=0))
    assert torch.equal(split_off(tiny_shapes, 10, seed=0)[1].images, held.images)


def test_pipeline_config_is_checked():
    with pytest.raises(GanEduError, match="per_class"):
        PipelineConfig(model="dcgan")
    with pytest.raises(GanEduError, match="dataset 'celeba'"):
        PipelineConfig(dataset="celeba")
    with pytest.raises(GanEduError, match="r1=-1.0: expected a penalty weight >= 0"):
        PipelineConfig(r1=-1.0)
    assert PipelineConfig(loss="hinge", r1=2.0).gan_loss().r1 == 2.0 and PipelineConfig().gan_loss().r1 == 0.0


@pytest.mark.slow  # the whole c vs c' experiment; the stages' own tests stay in the core
def test_tiny_pipeline_end_to_end(tmp_path, capsys):
    out = tmp_path / "exp"
    argv = ["pipeline", "--out", str(out), "--num-images", "300", "--g-channels", "4", "--d-channels", "4", "--gan-epochs", "1",
            "--gan-batch-size", "32", "--synthetic-images", "200", "--classifier-epochs", "10", "--classifier-max-steps", "3",
            "--classifier-width", "4", "--no-progress", "--r1", "0.5", "--gan-penalty-every", "3"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    # R1, lazily: the GAN run records the loss with its option, logs the penalty, and the page says so
    assert json.loads((out / "gan" / "config.json").read_text())["loss"]["options"] == {"r1": 0.5}
    history = [json.loads(line) for line in (out / "gan" / "history.jsonl").read_text().splitlines()]
    assert any("d_penalty" in row for row in history)
    assert "non-saturating loss with R1 (gamma 0.5, every 3 steps)" in (out / "report.md").read_text()
    # the report says what ran: the step budget stopped both classifiers long before their 10 epochs
    assert report["ran"] == {"gan": {"steps": 9, "epochs": 1.0}, "c": {"steps": 3, "epochs": 1.5}, "c_prime": {"steps": 3, "epochs": 3.0},
                             "c_reference": {"steps": 3, "epochs": 1.5}, "c_prime_reference": {"steps": 3, "epochs": 3.0}}  # the plain recipe keeps the budget
    page = (out / "report.md").read_text()
    assert "10 epochs" not in page and "c (trained 3 steps, 1.5 epochs) and c' (trained 3 steps, 3 epochs)" in page, page[:600]
    for key in ("c_accuracy", "c_prime_accuracy", "gan_test_accuracy", "frechet_distance", "per_class", "settings", "timings"):
        assert key in report, key
    for key, matrix in (("c_accuracy", "c"), ("c_prime_accuracy", "c_prime"), ("gan_test_accuracy", "gan_test")):
        cm = np.array(report["confusion"][matrix])  # rows: the true (or asked-for) class; columns: the classifier's answer
        assert report[key] == pytest.approx(np.trace(cm) / cm.sum()), key  # the accuracy, by hand from the counts
    cm = np.array(report["confusion"]["c"])
    assert [r["c"] for r in report["per_class"]] == pytest.approx(list(np.diag(cm) / np.maximum(cm.sum(1), 1)))
    assert len(report["per_class"]) == 10 and report["sizes"]["synthetic"] == 200
    assert np.array(report["confusion"]["c"]).sum() == report["sizes"]["evaluation"]
    for name in ("report.md", "confusion.png", "per_class_accuracy.png", "samples_per_class.png", "generator.onnx", "gan/generator/config.json"):
        assert (out / name).is_file(), name
    assert "GAN-train" in capsys.readouterr().out
    assert main(argv) == 2  # never overwritten without --overwrite
    from gan_edu.outputs import EXPERIMENT_FILES, foreign_files
    assert (out / "c_prime_reference" / "classifier" / "model.safetensors").is_file() and list(out.glob(".generator.optimized-*.onnx"))
    assert foreign_files(out, EXPERIMENT_FILES) == []  # every file the run wrote is its own: --overwrite may replace it
    # the settings, nested by stage, round-trip through report.json, as data and as a --config file
    config = pipeline_config(build_parser("pipeline").parse_args(argv))
    assert report["settings"]["gan"]["batch_size"] == 32 and report["settings"]["classifier"]["max_steps"] == 3
    assert PipelineConfig.from_dict(report["settings"]) == config
    (tmp_path / "again.json").write_text(json.dumps(report["settings"]))
    assert pipeline_config(build_parser("pipeline").parse_args(["pipeline", "--out", "y", "--config", str(tmp_path / "again.json")])) == config


def test_experiment_folders_are_never_mixed_or_clobbered(tmp_path):
    from gan_edu.pipeline import prepare_experiment_dir

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(GanEduError, match="not a gan-edu experiment"):
        prepare_experiment_dir(mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep"
    old = tmp_path / "old"
    (old / "gan").mkdir(parents=True)
    (old / "c").mkdir()
    (old / "c" / "history.jsonl").write_text("{}\n")
    with pytest.raises(GanEduError, match="use --overwrite"):
        prepare_experiment_dir(old, overwrite=False)
    assert (old / "c" / "history.jsonl").exists()
    assert prepare_experiment_dir(old, overwrite=True) == old and not any(old.iterdir())


def test_sampling_into_torch_buffers_gives_the_host_path_images(onnx_cdcgan):
    """The GPU path binds onnxruntime to torch's memory; on the CPU provider the same code must give the same images."""
    from gan_edu.synthetic import sample_images, sample_into_torch

    labels = balanced_labels(37, 10, seed=2)
    host = sample_images(onnx_cdcgan, labels, seed=5, batch_size=16)
    bound = sample_into_torch(onnx_cdcgan, labels, seed=5, batch_size=16, device=torch.device("cpu"))
    assert bound.dtype == torch.uint8 and bound.shape == (37, 3, 32, 32)
    assert torch.equal(bound, host)
