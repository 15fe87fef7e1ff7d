"""The optimized export and runtime: batch norm folding, the optimized-graph cache, session settings,
the fp16 and int8 variants with their quality cost, and the sampling benchmark's smoke run."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from gan_edu.cli import main
from gan_edu.errors import GanEduError
from gan_edu.export import OnnxGenerator, export_generator, variants
from gan_edu.export import session as session_module
from gan_edu.export.exporter import ExportCheckFailed
from gan_edu.export.fold import fold_batchnorm
from gan_edu.export.session import physical_cores, session_options
from gan_edu.models import build_gan
from gan_edu.models.base import GANModule
from gan_edu.models.classifier import build_classifier, predict
from gan_edu.quality import ClassifierJudge

ROOT = Path(__file__).resolve().parents[1]


def tiny_generator(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    g, _ = build_gan("cdcgan", image_shape=(3, 32, 32), num_classes=3, g_channels=4, d_channels=4, embed_dim=4)
    for m in g.modules():  # running statistics away from (0, 1): folding them must matter
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return g.eval()


def torch_images(g: torch.nn.Module, og: OnnxGenerator, n: int, seed: int) -> np.ndarray:
    z, labels = og.latent(n, seed=seed), og.balanced_labels(n)
    with torch.no_grad():
        return g(torch.from_numpy(z), torch.from_numpy(labels)).numpy()


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.optimized-*.onnx"))


# -- batch norm folding ------------------------------------------------------------------------------
def test_fold_batchnorm_keeps_the_outputs_of_generator_and_discriminator():
    torch.manual_seed(1)
    g = tiny_generator()
    _, d = build_gan("dcgan", image_shape=(3, 32, 32), g_channels=4, d_channels=4)
    for m in d.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    for m in (*g.modules(), *d.modules()):
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 0.1  # large enough that a fold which forgets eps is visible (at 1e-5 it hides under the tolerance)
    d.eval()
    z, labels, images = torch.randn(8, g.latent_dim), torch.arange(8) % 3, torch.rand(8, 3, 32, 32) * 2 - 1
    for module, args in ((g, (z, labels)), (d, (images,))):  # ConvTranspose2d (output axis 1) and Conv2d (axis 0)
        bns = sum(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())
        folded = copy.deepcopy(module)
        with torch.no_grad():
            before = module(*args)
            assert fold_batchnorm(folded) == bns > 0
            after = folded(*args)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        assert torch.allclose(before, after, atol=1e-5), (before - after).abs().max()


def test_exported_graph_has_no_batch_norm_and_matches_the_unfolded_module(tmp_path):
    g = tiny_generator()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    path = export_generator(g, tmp_path / "g.onnx")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "BatchNormalization" not in ops and "ConvTranspose" in ops
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())  # the caller's module is untouched
    og = OnnxGenerator(path)
    assert np.abs(og.sample(64, seed=0) - torch_images(g, og, 64, 0)).max() <= 1e-4


# -- the optimized-graph cache --------------------------------------------------------------------------
def test_optimized_graph_is_cached_reused_and_matches_pytorch(tmp_path):
    g = tiny_generator()
    path = export_generator(g, tmp_path / "g.onnx")
    [cached] = cache_files(tmp_path)  # written by the export
    og = OnnxGenerator(path)
    assert og.sessions[0].optimized_path == cached
    assert np.abs(og.sample(64, seed=2) - torch_images(g, og, 64, 2)).max() <= 1e-4  # parity on the optimized graph
    stamp = cached.stat().st_mtime_ns
    again = OnnxGenerator(path)
    assert again.sessions[0].optimized_path == cached and cached.stat().st_mtime_ns == stamp  # reused, not rewritten
    plain = OnnxGenerator(path, cache=False)
    assert plain.sessions[0].optimized_path is None
    assert np.abs(plain.sample(16, seed=3) - again.sample(16, seed=3)).max() <= 1e-5
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_cache_is_replaced_when_the_model_changes(tmp_path):
    path = export_generator(tiny_generator(seed=0), tmp_path / "g.onnx")
    [old] = cache_files(tmp_path)
    h = onnx.helper
    x, y = (h.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [4]) for name in "xy")
    plain = h.make_model(h.make_graph([h.make_node("Identity", ["x"], ["y"])], "g", [x], [y]), opset_imports=[h.make_opsetid("", 17)], ir_version=9)
    (tmp_path / "plain.onnx").write_bytes(plain.SerializeToString())
    with pytest.raises(Exception, match="not a gan-edu generator"):
        OnnxGenerator(tmp_path / "plain.onnx")
    assert cache_files(tmp_path) == [old]  # loading never writes a cache
    changed = onnx.load(str(path))
    changed.doc_string += " (edited)"
    onnx.save(changed, str(path))  # the file changed: its old cache no longer matches
    assert OnnxGenerator(path).sessions[0].optimized_path is None
    g2 = tiny_generator(seed=5)
    export_generator(g2, path)  # exported again, other weights: a new cache, the stale one deleted
    og = OnnxGenerator(path)
    [new] = cache_files(tmp_path)
    assert new != old and not old.exists()
    assert np.abs(og.sample(32, seed=1) - torch_images(g2, og, 32, 1)).max() <= 1e-4


def test_read_only_folder_and_broken_cache_fall_back_to_the_model(tmp_path, monkeypatch):
    g = tiny_generator()
    path = export_generator(g, tmp_path / "g.onnx")
    expected = torch_images(g, OnnxGenerator(path, cache=False), 16, 4)
    [cached] = cache_files(tmp_path)
    cached.unlink()
    os.chmod(tmp_path, 0o555)
    try:
        if os.access(tmp_path, os.W_OK):  # root ignores the mode: make the folder refuse new files another way
            def refuse(*args, **kwargs):
                raise PermissionError(13, "Permission denied (read-only folder)")

            import gan_edu_runtime.cache as cache_module

            monkeypatch.setattr(cache_module, "locked_temporary", refuse)  # the cache asks for its locked temporary there
        assert session_module.optimized_model(path, ["CPUExecutionProvider"]) is None
        og = OnnxGenerator(path)
    finally:
        os.chmod(tmp_path, 0o755)
    assert og.sessions[0].optimized_path is None and cache_files(tmp_path) == []
    assert np.abs(og.sample(16, seed=4) - expected).max() <= 1e-4
    monkeypatch.undo()
    assert session_module.optimized_model(path, ["CPUExecutionProvider"]) == cached
    cached.write_bytes(b"not a model")  # a damaged cache file: the model itself is loaded
    og = OnnxGenerator(path)
    assert og.sessions[0].optimized_path is None
    assert np.abs(og.sample(16, seed=4) - expected).max() <= 1e-4
    assert session_module.optimized_model(path, ["CPUExecutionProvider"]) == cached and onnx.load(str(cached)).graph.node  # made again


# -- session settings ---------------------------------------------------------------------------------
def test_session_settings_and_batch_size_tuning(tmp_path):
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)
    options = session_options()
    assert options.intra_op_num_threads == physical_cores() and options.enable_mem_pattern and options.enable_cpu_mem_arena
    assert session_options(intra_op_num_threads=1).intra_op_num_threads == 1
    og = OnnxGenerator(export_generator(tiny_generator(), tmp_path / "g.onnx"), intra_op_num_threads=1)
    reference = og.sample(20, seed=0)
    assert og.tune_batch_size((4, 16), seconds=0.02) in (4, 16) and og.batch_size in (4, 16)
    assert np.array_equal(og.sample(20, seed=0), reference)  # the batch size never changes the images



def test_cpu_batches_are_split_into_row_blocks_across_threads(tmp_path, monkeypatch):
    """The default CPU session runs one thread per call and shares a batch out in row blocks, one
    per worker thread at once: the same images as one unsplit call, and a worker's error is raised."""
    path = export_generator(tiny_generator(), tmp_path / "g.onnx")
    og = OnnxGenerator(path, providers=["CPUExecutionProvider"])
    session = og.sessions[0]
    assert session.workers == physical_cores()
    assert session.session.get_session_options().intra_op_num_threads == 1
    explicit = OnnxGenerator(path, providers=["CPUExecutionProvider"], intra_op_num_threads=2).sessions[0]
    assert explicit.workers == 1 and explicit.session.get_session_options().intra_op_num_threads == 2  # asked for: no split
    session.workers = 3  # as on a 3-core machine, whatever this one has
    assert session.row_blocks(64) == [(0, 21), (21, 42), (42, 64)] and session.row_blocks(20) == [(0, 10), (10, 20)]
    assert session.row_blocks(15) == [(0, 15)]  # fewer than MIN_ROWS_PER_WORKER rows for a second block
    reference = OnnxGenerator(path, providers=["CPUExecutionProvider"], intra_op_num_threads=1)
    run_block = type(session)._bound_run_block
    barrier = threading.Barrier(3, timeout=20)  # passes only when three blocks run at the same time

    def spy(self, z, labels, out):
        if len(z) < 37:  # a block of a split batch
            barrier.wait()
        run_block(self, z, labels, out)

    monkeypatch.setattr(type(session), "_bound_run_block", spy)
    for n in (64, 37):
        assert np.array_equal(og.sample(n, seed=n), reference.sample(n, seed=n))
    monkeypatch.setattr(type(session), "_bound_run_block", run_block)
    assert np.array_equal(og.sample(1, seed=1), reference.sample(1, seed=1))

    def broken(self, z, labels, out):
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("worker failed")
        run_block(self, z, labels, out)

    monkeypatch.setattr(type(session), "_bound_run_block", broken)
    with pytest.raises(RuntimeError, match="worker failed"):
        og.sample(64, seed=0)

# -- fp16 and int8 variants -------------------------------------------------------------------------------
@pytest.mark.parametrize("dynamic_batch", [True, False], ids=["dynamic", "static-batch"])
@pytest.mark.parametrize("variant", ["fp16", "int8"])
def test_variant_export_writes_the_file_and_its_quality_cost(tmp_path, variant, dynamic_batch):
    g = tiny_generator()
    fp32 = export_generator(g, tmp_path / "g.onnx", dynamic_batch=dynamic_batch)
    kwargs = {"precision": "fp16"} if variant == "fp16" else {"quantize": "int8"}
    path = export_generator(g, tmp_path / f"g_{variant}.onnx", dynamic_batch=dynamic_batch, **kwargs)  # a fixed batch of 1: fed one image at a time
    record = json.loads((tmp_path / f"g_{variant}.quality.json").read_text())
    assert record["variant"] == variant and record["within_bounds"] and record["exceeded"] == []
    cost = record["cost"]
    assert cost["images"] == 1000 and 0 <= cost["mean_level_diff"] <= variants.BOUNDS[variant].mean_level_diff
    assert 0 < cost["max_abs_diff"] < 1 and cost["max_level_diff"] >= 1  # the variant really differs, a little
    model = onnx.load(str(path))
    types = {t.data_type for t in model.graph.initializer}
    assert (onnx.TensorProto.FLOAT16 in types) if variant == "fp16" else (onnx.TensorProto.INT8 in types)
    assert path.stat().st_size < 0.7 * fp32.stat().st_size
    og, ref = OnnxGenerator(path), OnnxGenerator(fp32)
    assert og.info == ref.info  # the metadata travels
    a, b = og.sample(32, seed=0), ref.sample(32, seed=0)
    assert a.shape == b.shape and a.dtype == np.float32
    assert np.abs(a - b).mean() < 0.05


def test_variant_past_its_bounds_is_refused_or_written_with_a_warning(tmp_path, monkeypatch, capsys, tiny_run):
    monkeypatch.setitem(variants.BOUNDS, "int8", variants.QualityBounds(mean_level_diff=1e-6))
    g = tiny_generator()
    with pytest.raises(ExportCheckFailed, match=r"int8 variant costs too much quality against fp32: mean pixel difference .* levels > 1e-06"):
        export_generator(g, tmp_path / "g.onnx", quantize="int8")
    assert list(tmp_path.iterdir()) == []
    with pytest.warns(UserWarning, match="exceeds its quality bounds"):
        path = export_generator(g, tmp_path / "g.onnx", quantize="int8", allow_quality_loss=True)
    record = json.loads(path.with_suffix(".quality.json").read_text())
    assert not record["within_bounds"] and "mean pixel difference" in record["exceeded"][0]
    # the command line: one line and exit 2, or a warning line with --allow-quality-loss
    out = tmp_path / "cli.onnx"
    assert main(["export", str(tiny_run), "-o", str(out), "--quantize", "int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "costs too much quality" in err and len(err.splitlines()) == 1 and not out.exists()
    assert main(["export", str(tiny_run), "-o", str(out), "--quantize", "int8", "--allow-quality-loss"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("warning: the int8 variant exceeds") and "int8 vs fp32 on 1000 images" in captured.out
    for argv, message in [
        (["--precision", "fp16", "--quantize", "int8"], "expected one variant at a time"),
        (["--quality-run", str(tmp_path)], "quality_run is for a variant"),
    ]:
        assert main(["export", str(tiny_run), "-o", str(tmp_path / "x.onnx"), *argv]) == 2
        assert message in capsys.readouterr().err


def test_quality_run_measures_gan_test_and_frechet_with_the_experiments_classifier(tmp_path):
    experiment = tmp_path / "experiment"
    torch.manual_seed(0)
    build_classifier("ref000", image_shape=(3, 32, 32), num_classes=3, width=4).save_pretrained(experiment / "c" / "classifier")
    settings = {"dataset": "shapes", "num_images": 20, "channels": 3, "eval_split": "test", "seed": 0}
    (experiment / "report.json").write_text(json.dumps({"settings": settings}))
    path = export_generator(tiny_generator(), tmp_path / "g.onnx", precision="fp16", judge=ClassifierJudge(experiment))
    cost = json.loads(path.with_suffix(".quality.json").read_text())["cost"]
    assert cost["quality_run"] == str(experiment) and cost["real_images"] == 1000
    for key in ("gan_test", "frechet"):
        entry = cost[key]
        assert np.isfinite([entry["fp32"], entry["variant"]]).all() and entry["change"] == pytest.approx(entry["variant"] - entry["fp32"])
    # GAN-test of the fp32 graph, by hand: the experiment's c judges the fp32 export's images of the
    # quality noise (seed 0, 1000 vectors, balanced labels) against the classes asked for
    fp32 = OnnxGenerator(export_generator(tiny_generator(), tmp_path / "g32.onnx"))
    z = np.random.default_rng(0).standard_normal((1000, fp32.latent_dim), dtype=np.float32)
    labels = np.arange(1000) % 3
    images = fp32.to_uint8(fp32.generate(z, labels)).transpose(0, 3, 1, 2)  # (N, C, H, W) levels, as c reads them
    c = GANModule.from_pretrained(experiment / "c" / "classifier")
    judged = predict(c, images).numpy()
    assert cost["gan_test"]["fp32"] == pytest.approx(float((judged == labels).mean()), abs=1e-3)  # a level may differ
    assert cost["frechet"]["fp32"] > 0
    with pytest.raises(GanEduError, match="expected a gan-edu pipeline folder"):
        ClassifierJudge(tmp_path)  # refused before anything is exported
    with pytest.raises(GanEduError, match="judge is for a variant"):
        export_generator(tiny_generator(), tmp_path / "h.onnx", judge=ClassifierJudge(experiment))
    assert not (tmp_path / "h.onnx").exists()


def test_cli_quality_run_hands_the_experiments_classifier_to_the_export(tmp_path, tiny_run, capsys):
    # gan-edu export --quality-run: the CLI makes the evaluation layer's judge; the record and the line carry its numbers
    experiment = tmp_path / "experiment"
    torch.manual_seed(0)
    build_classifier("ref000", image_shape=(3, 32, 32), num_classes=10, width=4).save_pretrained(experiment / "c" / "classifier")
    (experiment / "report.json").write_text(json.dumps({"settings": {"dataset": "shapes", "num_images": 20, "channels": 3, "eval_split": "test", "seed": 0}}))
    out = tmp_path / "g.onnx"
    assert main(["export", str(tiny_run), "-o", str(out), "--precision", "fp16", "--quality-run", str(experiment), "--allow-quality-loss"]) == 0
    cost = json.loads(out.with_suffix(".quality.json").read_text())["cost"]
    assert cost["quality_run"] == str(experiment) and set(cost["gan_test"]) == {"fp32", "variant", "change"}
    assert f"GAN-test {cost['gan_test']['fp32']:.3f} -> {cost['gan_test']['variant']:.3f}" in capsys.readouterr().out
    bad = tmp_path / "bad.onnx"
    assert main(["export", str(tiny_run), "-o", str(bad), "--precision", "fp16", "--quality-run", str(tmp_path / "nothing")]) == 2
    assert "expected a gan-edu pipeline folder" in capsys.readouterr().err and not bad.exists()


# -- the benchmark ------------------------------------------------------------------------------------
@pytest.mark.slow  # the benchmark script
def test_sampling_benchmark_smoke_run(tiny_run):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sampling.py"), "--run", str(tiny_run), "--quick", "--no-compile", "--profile"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert text.startswith("load average at start: ") and "load average at end: " in text
    assert "torch eager" in text and "ort fp32" in text and "ort int8 (CPU)" in text
    rows = [line.split() for line in text.splitlines() if line.split() and line.split()[0] in ("1", "8")]
    assert [r[0] for r in rows] == ["1", "8"] and all(float(v.replace(",", "")) > 0 for r in rows for v in r[1:])
    assert "int8: mean" in text and "fp16: mean" in text and "profile of ort fp32 at batch 64" in text and "ConvTranspose" in text
