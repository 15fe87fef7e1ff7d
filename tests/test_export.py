"""ONNX export and the onnxruntime sampler: parity with PyTorch, metadata, banks, safety, threads.

Tiny models (g_channels=4) keep every export under a few seconds. The torch-free tests run the
runtime in a subprocess whose ``sitecustomize`` makes ``import torch`` fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from gan_edu.cli import main
from gan_edu.errors import GanEduError
from gan_edu.export import KEYS, OnnxGenerator, export_generator
from gan_edu.export.exporter import ExportCheckFailed, to_uint8
from gan_edu.models import GeneratorBank, build_gan
from gan_edu.models.base import Generator
from gan_edu.models.dcgan import DCGANGenerator

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("circle", "square", "triangle")

# Makes `import torch` (and torch.*) fail in every Python process started with this on its path.
BLOCK_TORCH = '''
import sys

class _BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked in this process ({name})")
        return None

sys.meta_path.insert(0, _BlockTorch())
'''


def tiny_generator(conditional: bool = True, seed: int = 0, shape=(3, 32, 32)) -> Generator:
    torch.manual_seed(seed)
    if conditional:
        g, _ = build_gan("cdcgan", image_shape=shape, num_classes=len(NAMES), g_channels=4, d_channels=4, embed_dim=4)
    else:
        g, _ = build_gan("dcgan", image_shape=shape, g_channels=4, d_channels=4)
    # Running statistics away from (0, 1), so eval mode and train mode really differ.
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return g


def tiny_bank() -> GeneratorBank:
    members = [tiny_generator(conditional=False, seed=s, shape=(1, 28, 28)) for s in range(len(NAMES))]
    return GeneratorBank.from_members(members, NAMES)


def torch_images(g: Generator, z: np.ndarray, labels: np.ndarray | None) -> torch.Tensor:
    """What the PyTorch generator makes from the runtime's z, in eval mode."""
    g.eval()
    with torch.no_grad():
        return g(torch.from_numpy(z), None if labels is None else torch.from_numpy(labels))


@pytest.fixture(scope="module")
def cond(tmp_path_factory):
    """A tiny conditional generator and its float and uint8 exports."""
    g = tiny_generator()
    folder = tmp_path_factory.mktemp("cond")
    f = export_generator(g, folder / "g.onnx", class_names=NAMES)
    u = export_generator(g, folder / "g_uint8.onnx", output="uint8", class_names=NAMES)
    return g, f, u


@pytest.fixture(scope="module")
def uncond(tmp_path_factory):
    g = tiny_generator(conditional=False, shape=(1, 28, 28))
    return g, export_generator(g, tmp_path_factory.mktemp("uncond") / "g.onnx")


# -- parity -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["cond", "uncond"])
def test_float_output_matches_pytorch_for_the_same_noise(kind, cond, uncond):
    g, path = (cond[0], cond[1]) if kind == "cond" else uncond
    og = OnnxGenerator(path)
    images = og.sample(64, seed=7)
    z, labels = og.latent(64, seed=7), og.balanced_labels(64)
    expected = torch_images(g, z, labels).numpy()
    assert images.shape == (64, *g.image_shape) and images.dtype == np.float32
    assert np.abs(images - expected).max() <= 1e-4
    assert images.min() >= -1 and images.max() <= 1


def test_uint8_output_matches_pytorch_postprocessing(cond):
    g, _, path = cond
    og = OnnxGenerator(path)
    labels = np.array([0, 1, 2, 2] * 16)
    images = og.sample(64, labels, seed=3)
    expected = to_uint8(torch_images(g, og.latent(64, seed=3), labels)).numpy()  # round((x + 1) * 127.5) clamped
    assert images.shape == (64, 32, 32, 3) and images.dtype == np.uint8
    diff = np.abs(images.astype(int) - expected.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999
    # The runtime's own float-to-uint8 agrees with the uint8 graph.
    float_images = OnnxGenerator(cond[1]).sample(64, labels, seed=3)
    assert np.abs(og.to_uint8(images).astype(int) - OnnxGenerator(cond[1]).to_uint8(float_images).astype(int)).max() <= 1


def test_dynamic_batch_and_batch_size_do_not_change_the_images(cond):
    g, path, _ = cond
    og = OnnxGenerator(path)
    reference = og.sample(100, seed=1, batch_size=100)
    for batch_size in (1, 7, 64, 512):
        assert np.array_equal(og.sample(100, seed=1, batch_size=batch_size), reference)
    for n in (1, 3, 65):  # any N: the batch axis is dynamic
        z = og.latent(n, seed=2)
        out = og.generate(z, np.arange(n) % 3, batch_size=n)
        assert out.shape == (n, 3, 32, 32)
        assert np.abs(out - torch_images(g, z, np.arange(n) % 3).numpy()).max() <= 1e-4
    assert np.array_equal(np.concatenate(list(og.iter_sample(100, seed=1, batch_size=30))), reference)


def test_fixed_batch_export(tmp_path, cond):
    g = cond[0]
    og = OnnxGenerator(export_generator(g, tmp_path / "static.onnx", dynamic_batch=False))
    assert og.sessions[0].fixed_batch == 1
    assert np.abs(og.sample(5, seed=4) - torch_images(g, og.latent(5, seed=4), og.balanced_labels(5)).numpy()).max() <= 1e-4


def test_seeded_noise_is_numpy_generator_noise(cond):
    og = OnnxGenerator(cond[1], batch_size=16)
    z = og.latent(50, seed=11)
    assert np.array_equal(z, np.random.default_rng(11).standard_normal((50, og.latent_dim), dtype=np.float32))
    assert np.array_equal(og.sample(50, seed=11), og.sample(50, seed=11))
    assert not np.array_equal(og.sample(50, seed=11), og.sample(50, seed=12))


@pytest.mark.slow
def test_dynamo_exporter_passes_the_same_checks(tmp_path, cond):
    g = cond[0]
    og = OnnxGenerator(export_generator(g, tmp_path / "dynamo.onnx", dynamo=True))
    z = og.latent(64, seed=0)
    assert np.abs(og.generate(z) - torch_images(g, z, og.balanced_labels(64)).numpy()).max() <= 1e-4


# -- what the export does to the module and the file ---------------------------------------------
def test_export_leaves_the_module_as_it_was(tmp_path):
    g = tiny_generator()
    g.train()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    export_generator(g, tmp_path / "g.onnx")
    assert g.training and all(torch.equal(before[k], v) for k, v in g.state_dict().items())


class _DriftingGenerator(DCGANGenerator):
    """Differs from its own ONNX graph: eager adds nothing, the export adds 0.01."""

    def forward(self, z, labels=None):
        x = super().forward(z, labels)
        return x + 0.01 if torch.onnx.is_in_onnx_export() else x


def test_parity_check_catches_a_graph_that_differs_and_leaves_no_file(tmp_path):
    g = _DriftingGenerator(tiny_generator().config)
    with pytest.raises(ExportCheckFailed, match="differs from PyTorch at batch 1: max abs difference 0.01"):
        export_generator(g, tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


def test_bad_export_arguments(tmp_path, cond):
    g = cond[0]
    for kwargs, message in [
        ({"output": "png"}, "output='png': expected one of float, uint8"),
        ({"opset": 7}, "opset=7: expected None or an int in [13, 20]"),
        ({"class_names": ["a"]}, "1 class_names: expected 3"),
    ]:
        with pytest.raises(GanEduError, match=re.escape(message)):
            export_generator(g, tmp_path / "g.onnx", **kwargs)
    with pytest.raises(GanEduError, match="expected a path ending in .onnx"):
        export_generator(g, tmp_path / "g.txt")
    with pytest.raises(GanEduError, match="holds no generator"):
        export_generator(tmp_path, tmp_path / "g.onnx")
    assert not (tmp_path / "g.onnx").exists()


# -- metadata -----------------------------------------------------------------------------------
def test_metadata_round_trip(cond, uncond):
    g, path, upath = cond
    props = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    assert set(props) == set(KEYS)
    assert props["latent_dim"] == g.latent_dim and props["num_classes"] == 3
    assert props["class_names"] == list(NAMES) and props["image_shape"] == [3, 32, 32]
    assert props["value_range"] == [-1, 1] and props["layout"] == "NCHW" and props["output"] == "float"
    assert props["model_class"] == "DCGANGenerator" and props["model_config"] == json.loads(json.dumps(g.config.to_dict()))
    assert type(g).config_class.from_dict(props["model_config"]) == g.config  # enough to rebuild the module
    og = OnnxGenerator(path)
    assert (og.latent_dim, og.num_classes, og.class_names, og.image_shape) == (g.latent_dim, 3, NAMES, (3, 32, 32))
    u = OnnxGenerator(upath)
    assert (u.output, u.info.layout, u.info.value_range, u.info.output_shape) == ("uint8", "NHWC", (0, 255), (32, 32, 3))
    un = OnnxGenerator(uncond[1])
    assert un.num_classes is None and un.class_names == () and un.balanced_labels(4) is None


# -- the command line: export a run, sample it, same images as PyTorch ----------------------------


def test_cli_export_then_sample_gives_the_pytorch_images(tiny_run, tmp_path, capsys):
    model = tmp_path / "exported" / "tiny.onnx"
    assert main(["export", str(tiny_run), "-o", str(model)]) == 0
    assert "checked" in capsys.readouterr().out
    og = OnnxGenerator(model)
    assert og.class_names[:2] == ("circle", "square")
    assert og.info.training_data["name"] == "shapes" and og.info.training["steps"] == 2
    assert main(["sample", str(model), "-n", "12", "--labels", "0,1,2,3,4,5,6,7,8,9,0,1", "--seed", "5",
                 "-o", str(tmp_path / "grid.png"), "--npz", str(tmp_path / "s.npz")]) == 0
    saved = np.load(tmp_path / "s.npz")
    g = Generator.from_pretrained(tiny_run / "generator")
    assert np.array_equal(saved["z"], np.random.default_rng(5).standard_normal((12, g.latent_dim), dtype=np.float32))
    expected = torch_images(g, saved["z"], saved["labels"]).numpy()
    assert np.abs(saved["images"] - expected).max() <= 1e-4
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size == (2 + 8 * 34, 2 + 2 * 34)  # 12 images, 8 per row


def test_cli_uint8_export_and_refusals(tiny_run, tmp_path, capsys):
    model = tmp_path / "u.onnx"
    assert main(["export", str(tiny_run), "-o", str(model), "--uint8"]) == 0
    assert OnnxGenerator(model).output == "uint8"
    stamp = model.stat().st_mtime_ns
    cases = [
        (["export", str(tiny_run), "-o", str(model)], "file exists; use --overwrite"),
        (["sample", str(model), "-n", "0", "-o", "x.png"], "argument -n: 0 is not positive"),
        (["sample", str(model), "--labels", "a,b", "-o", "x.png"], "not a comma-separated list of ints"),
        (["sample", str(model), "-n", "4", "--labels", "10", "-o", str(tmp_path / "x.png")], "labels in [10, 10]: expected labels in [0, 9]"),
        (["sample", str(model), "-n", "4", "--labels", "1,2", "-o", str(tmp_path / "x.png")], "--labels has 2 values: expected 1 or -n (4)"),
        (["sample", str(tmp_path / "none.onnx"), "-o", str(tmp_path / "x.png")], "no such file"),
        (["sample", str(model)], "nothing to write"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            sys.exit(main(argv))  # argparse's own errors exit from inside main
        assert exc.value.code == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (argv, err)
    assert model.stat().st_mtime_ns == stamp and not (tmp_path / "x.png").exists()
    assert main(["export", str(tiny_run), "-o", str(model), "--overwrite"]) == 0


# -- bad files and bad inputs --------------------------------------------------------------------
def plain_onnx_model(path: Path, external: str | None = None) -> Path:
    """A valid ONNX graph (y = x + w) that is not a gan-edu generator; ``w`` optionally external."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones(4, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    if external is not None:
        tensor = model.graph.initializer[0]
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", external), ("offset", "0"), ("length", "16")):
            tensor.external_data.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def test_bad_files_give_one_clear_error(tmp_path, cond):
    (tmp_path / "text.onnx").write_text("hello, not a model")
    inner = tmp_path / "model"
    inner.mkdir()
    np.ones(4, np.float32).tofile(tmp_path / "secret.bin")
    (inner / "link.bin").symlink_to(tmp_path / "secret.bin")
    manifest = tmp_path / "bank.json"
    manifest.write_text(json.dumps({**OnnxGenerator(cond[1]).info.to_dict("gan-edu-bank/1"), "members": ["../x.onnx"] * 3}))
    cases = [
        (tmp_path / "missing.onnx", "no such file"),
        (tmp_path / "text.onnx", "not an ONNX model"),
        (plain_onnx_model(tmp_path / "plain.onnx"), "not a gan-edu generator (no 'format' in its ONNX metadata)"),
        (plain_onnx_model(inner / "up.onnx", "../secret.bin"), "external data at '../secret.bin', outside the model's folder"),
        (plain_onnx_model(inner / "abs.onnx", str(tmp_path / "secret.bin")), "outside the model's folder"),
        (plain_onnx_model(inner / "sym.onnx", "link.bin"), "external data at 'link.bin', outside the model's folder"),
        (manifest, "member 0 '../x.onnx' points outside the manifest's folder"),
        (tmp_path / "text.onnx", "expected an exported gan-edu generator"),
    ]
    for path, message in cases:
        with pytest.raises(GanEduError) as exc:
            OnnxGenerator(path)
        assert message in str(exc.value) and "\n" not in str(exc.value), (path, str(exc.value))


def test_external_data_inside_the_folder_is_allowed(tmp_path, cond):
    # The same gan-edu graph with its weights in a side file next to it loads and samples the same.
    model = onnx.load(str(cond[1]))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.onnx.data", size_threshold=0)
    assert (tmp_path / "ext.onnx.data").is_file()
    assert np.array_equal(OnnxGenerator(tmp_path / "ext.onnx").sample(4, seed=0), OnnxGenerator(cond[1]).sample(4, seed=0))


def test_bad_inputs_give_one_clear_error(cond, uncond):
    og, un = OnnxGenerator(cond[1]), OnnxGenerator(uncond[1])
    cases = [
        (lambda: og.sample(0), "n=0: expected a positive int"),
        (lambda: og.sample(-3), "n=-3: expected a positive int"),
        (lambda: og.sample(2.5), "n=2.5: expected a positive int"),
        (lambda: og.sample(4, [0, 1, 2, 3]), "labels in [0, 3]: expected labels in [0, 2] (3 classes)"),
        (lambda: og.sample(4, [0, -1, 2, 1]), "labels in [-1, 2]"),
        (lambda: og.sample(4, [0, 1]), "labels of shape (2,) and dtype int64: expected 4 integer labels"),
        (lambda: og.sample(2, [0.5, 1.0]), "dtype float64: expected 2 integer labels"),
        (lambda: un.sample(2, [0, 1]), "labels given to an unconditional generator"),
        (lambda: og.generate(np.zeros((2, 7), np.float32)), f"z of shape (2, 7) and dtype float32: expected float noise of shape (N, {og.latent_dim})"),
        (lambda: og.generate(np.zeros(og.latent_dim, np.float32)), "z of shape"),
        (lambda: og.generate(np.zeros((2, og.latent_dim), np.int64)), "dtype int64"),
        (lambda: og.sample(4, seed=-1), "seed=-1: expected None or an int >= 0"),
        (lambda: og.sample(4, batch_size=0), "batch_size=0: expected a positive int"),
        (lambda: OnnxGenerator(cond[1], providers=[]), "providers=[]"),
    ]
    for call, message in cases:
        with pytest.raises(GanEduError) as exc:
            call()
        assert message in str(exc.value), (message, str(exc.value))


# -- per-class banks ------------------------------------------------------------------------------
def test_bank_exports_one_graph_per_class_and_samples_by_label(tmp_path):
    bank = tiny_bank()
    manifest = export_generator(bank, tmp_path / "bank.json")
    members = json.loads(manifest.read_text())["members"]
    assert members == [f"bank.class{k}.onnx" for k in range(3)] and all((tmp_path / m).is_file() for m in members)
    og = OnnxGenerator(manifest)
    assert og.is_bank and og.num_classes == 3 and og.class_names == NAMES and og.image_shape == (1, 28, 28)
    labels = np.array([2, 0, 1, 1, 2, 0, 0])
    images = og.sample(7, labels, seed=9, batch_size=3)
    z = og.latent(7, seed=9)
    assert np.abs(images - torch_images(bank, z, labels).numpy()).max() <= 1e-4
    # Row i of class k is member k's image for z[i]: the bank routes, nothing else.
    member1 = OnnxGenerator(tmp_path / "bank.class1.onnx")
    assert member1.num_classes is None
    assert np.array_equal(images[labels == 1], member1.generate(z[labels == 1]))
    with pytest.raises(GanEduError, match="labels in \\[0, 3\\]"):
        og.sample(2, [0, 3])
    with pytest.raises(GanEduError, match="a GeneratorBank exports to a manifest; expected a path ending in .json"):
        export_generator(bank, tmp_path / "bank.onnx")
    uint8 = OnnxGenerator(export_generator(bank, tmp_path / "u" / "bank.json", output="uint8"))
    assert uint8.sample(6, seed=0).shape == (6, 28, 28, 1)


def test_bank_manifest_checks_its_members(tmp_path, cond):
    manifest = export_generator(tiny_bank(), tmp_path / "bank.json")
    (tmp_path / "bank.class2.onnx").write_bytes(cond[1].read_bytes())  # a conditional 32x32 graph in the bank
    with pytest.raises(GanEduError, match="member 2 .* does not match the manifest"):
        OnnxGenerator(manifest)


# -- concurrency ---------------------------------------------------------------------------------
def test_sample_from_8_threads_at_once_equals_serial_calls(cond):
    og = OnnxGenerator(cond[1], batch_size=4)  # 10 onnxruntime calls per sample: 10 chances to interleave
    seeds = list(range(8))
    serial = [og.sample(40, seed=s) for s in seeds]
    start = threading.Barrier(8)

    def work(seed: int) -> np.ndarray:
        start.wait()  # all eight enter sample() together
        return og.sample(40, seed=seed)

    # Switch threads as often as Python allows: with the default 5 ms, tiny calls run one after
    # another and a generator shared between calls went unnoticed (checked by breaking it).
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(3):
            with ThreadPoolExecutor(8) as pool:
                parallel = list(pool.map(work, seeds))
            assert all(np.array_equal(a, b) for a, b in zip(serial, parallel))
    finally:
        sys.setswitchinterval(old_interval)


# -- without torch -------------------------------------------------------------------------------
def run_without_torch(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(BLOCK_TORCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


def test_runtime_imports_and_samples_without_torch(tmp_path, cond):
    blocked = run_without_torch(["-c", "import torch"], tmp_path)
    assert blocked.returncode != 0 and "torch is blocked" in blocked.stderr  # the blocker works
    expected = OnnxGenerator(cond[1]).sample(6, [2, 1, 0, 0, 1, 2], seed=4)
    np.save(tmp_path / "expected.npy", expected)
    code = f"""
import sys
import numpy as np
import gan_edu
from gan_edu.export import OnnxGenerator
from gan_edu.errors import GanEduError
g = OnnxGenerator({str(cond[1])!r})
images = g.sample(6, [2, 1, 0, 0, 1, 2], seed=4)
assert np.array_equal(images, np.load("expected.npy")), "different images without torch"
try:
    g.sample(2, [0, 5])
except GanEduError as e:
    print("error:", e)
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
print("ok", g.class_names)
"""
    out = run_without_torch(["-c", code], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "ok ('circle', 'square', 'triangle')" in out.stdout and "labels in [0, 5]" in out.stdout


def test_onnx_app_example_runs_without_torch(tmp_path, cond):
    out = run_without_torch([str(ROOT / "examples" / "onnx_app.py"), str(cond[1]), "-o", "app.png", "--per-class", "4"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "3 rows (circle, square, triangle), 4 images each" in out.stdout
    from PIL import Image

    picture = Image.open(tmp_path / "app.png")
    assert picture.size == (80 + 4 * (64 + 2), 3 * (64 + 2))


def test_float_output_is_clipped_to_the_promised_range(tmp_path, cond):
    """float32 tanh can land one step past +-1 (the shipped MNIST model gives -1.0000002): the graph
    ends with a Clip to [-1, 1], so the card's value_range holds exactly for every new export."""
    from gan_edu.export.exporter import ExportModule

    class PastTheEdge(torch.nn.Module):
        def forward(self, z, labels=None):
            return torch.tensor([1.0000001, -1.0000002, 0.5], dtype=torch.float32).expand(len(z), 3).reshape(len(z), 1, 1, 3)

    images = ExportModule(PastTheEdge(), "float")(torch.zeros(2, 4))
    assert images.max().item() == 1.0 and images.min().item() == -1.0
    graph = onnx.load(str(cond[1])).graph
    assert graph.node[-1].op_type == "Clip" and graph.node[-1].output[0] == "images"
