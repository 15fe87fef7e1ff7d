"""The browser demo in a real headless Chromium, its server, and the node example of docs/onnx.md.

How the browser is driven, offline and without a driver library: the test starts
:class:`~gan_edu.cli.serve_demo.DemoServer` on 127.0.0.1 (a free port) with a fixed noise file,
opens the page in ``chromium --headless`` with ``&report=/report``, and the page posts back its
canvas pixels after each step (first draw, then a class change made through its own picker). The
pixels are compared with Python's onnxruntime on the same noise.

Skipped, with the reason, only where Chromium or ``web/node_modules`` is missing (``.ci/run``
installs both: ``apt-get install chromium`` and ``npm ci`` in web/).
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gan_edu.cli.serve_demo import ORT_DIST, DemoServer, project_root
from gan_edu.errors import GanEduError
from gan_edu.export import OnnxGenerator

ROOT = Path(__file__).resolve().parents[1]
CARDS = sorted((ROOT / "exported").glob("*.json"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NODE = shutil.which("node")
HAS_ORT = (ROOT / ORT_DIST).is_dir()
#: .ci/run sets it after installing both: there these tests run (and fail if something is missing), never skip.
REQUIRED = os.environ.get("GAN_EDU_REQUIRE_BROWSER") == "1"
needs_browser = pytest.mark.skipif(
    not REQUIRED and (CHROMIUM is None or not HAS_ORT),
    reason="needs Debian's chromium (apt-get install chromium) and onnxruntime-web (npm ci in web/); .ci/run installs both",
)
needs_node = pytest.mark.skipif(
    not REQUIRED and (NODE is None or not HAS_ORT), reason="needs node and onnxruntime-web (npm ci in web/); .ci/run installs both"
)

COLUMNS, ROWS, PAD = 4, 4, 2  # the page's grid (web/demo.js)


@contextmanager
def demo_page(tmp_path: Path, query: str, z: np.ndarray | None = None) -> Iterator[queue.Queue]:
    """Serve the demo, open ``/web/?QUERY&report=/report`` in headless Chromium; yields the queue of what the page posts."""
    assert CHROMIUM is not None, "no chromium on PATH: apt-get install chromium"
    reports: queue.Queue = queue.Queue()
    files = {} if z is None else {"/noise.json": json.dumps({"z": z.tolist()}).encode()}
    server = DemoServer(ROOT, port=0, on_report=reports.put, files=files)
    server.start()
    url = f"http://127.0.0.1:{server.server_port}/web/?{query}&report=/report" + ("&noise=/noise.json" if z is not None else "")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    browser = subprocess.Popen([CHROMIUM, *flags, url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield reports
    finally:
        os.killpg(browser.pid, signal.SIGKILL)  # the browser and the processes it started, nothing else
        browser.wait(timeout=30)
        server.shutdown()
        server.server_close()


def next_report(reports: queue.Queue, timeout: float = 90) -> dict:
    try:
        return reports.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"the page posted nothing in {timeout} s") from None


def tiles(report: dict, h: int, w: int) -> np.ndarray:
    """The canvas the page posted, cut into its (N, H, W, 3) images; checks the white padding too."""
    grid = np.frombuffer(base64.b64decode(report["rgba"]), np.uint8).reshape(report["height"], report["width"], 4)
    assert grid.shape[:2] == (PAD + ROWS * (h + PAD), PAD + COLUMNS * (w + PAD)) and (grid[..., 3] == 255).all()
    images = [grid[PAD + r * (h + PAD):][:h, PAD + c * (w + PAD):][:, :w, :3] for r in range(ROWS) for c in range(COLUMNS)]
    assert (grid[:PAD] == 255).all() and (grid[:, :PAD] == 255).all()
    return np.stack(images)


def python_pixels(og: OnnxGenerator, z: np.ndarray, label: int) -> np.ndarray:
    """What Python's onnxruntime makes of the same noise, as (N, H, W, 3) uint8."""
    images = og.to_uint8(og.generate(z, [label] * len(z)))
    return np.repeat(images, 3, axis=3) if images.shape[3] == 1 else images


def assert_same_pixels(browser: np.ndarray, python: np.ndarray) -> None:
    diff = np.abs(browser.astype(int) - python.astype(int))
    # onnxruntime's WebAssembly and native kernels differ by ~1e-6, which moves a value across a
    # rounding edge now and then: at most one level, and almost never.
    assert diff.max() <= 1 and (diff == 0).mean() >= 0.999, (diff.max(), (diff == 0).mean())


@needs_browser
@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_canvas_pixels_equal_python_onnxruntime_and_the_class_changes_the_image(card_path, tmp_path):
    card = json.loads(card_path.read_text())
    og = OnnxGenerator(card_path.with_name(card["file"]))
    z = np.random.default_rng(0).standard_normal((COLUMNS * ROWS, og.latent_dim), dtype=np.float32)
    label = 2
    _, h, w = og.image_shape
    with demo_page(tmp_path, f"model={card['name']}&label={label}", z) as reports:
        first, changed = next_report(reports), next_report(reports)
    assert first["step"] == "first" and first["label"] == label, first.get("message")
    assert changed["step"] == "class changed" and changed["label"] == label + 1
    before, after = tiles(first, h, w), tiles(changed, h, w)
    assert_same_pixels(before, python_pixels(og, z, label))
    assert_same_pixels(after, python_pixels(og, z, label + 1))
    assert np.abs(before.astype(int) - after.astype(int)).mean() > 2  # another class: other images from the same noise


@needs_browser
@pytest.mark.parametrize("label", ["-1", "10", "2.5", "abc"])
def test_the_browser_demo_refuses_labels_out_of_range(label, tmp_path):
    with demo_page(tmp_path, f"model=shapes_cdcgan&label={label}") as reports:
        report = next_report(reports)
    assert report == {"step": "error", "message": f"label {label}: expected an integer label in [0, 9] (10 classes)"}


@needs_browser
def test_an_unknown_model_is_one_clear_line(tmp_path):
    with demo_page(tmp_path, "model=no_such_model") as reports:
        report = next_report(reports)
    assert report["step"] == "error" and report["message"].startswith("/exported/no_such_model.json: 404")
    assert report["what"] == "No model loaded." and report["disabled"]  # no "Loading the model card..." beside the error, no live controls


# -- the server, without a browser ----------------------------------------------------------------
@pytest.fixture
def fake_root(tmp_path):
    """A project folder with the demo's layout and a stand-in for onnxruntime-web."""
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "index.html").write_text("<p>demo</p>")
    (tmp_path / ORT_DIST).mkdir(parents=True)
    (tmp_path / ORT_DIST / "ort.wasm").write_bytes(b"\0asm")
    (tmp_path / "exported").mkdir()
    (tmp_path / "exported" / "m.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("not served")
    return tmp_path


def fetch(url: str, data: bytes | None = None, method: str | None = None) -> tuple[int, bytes, Any]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(urllib.request.Request(url, data=data, method=method), timeout=30) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, b"", e.headers


def test_server_serves_the_three_folders_and_nothing_else(fake_root):
    posted = []
    server = DemoServer(fake_root, port=0, on_report=posted.append)
    server.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert server.server_address[0] == "127.0.0.1"
        status, _, headers = fetch(base + "/?model=m")
        assert status == 302 and headers["Location"] == "/web/?model=m"
        assert fetch(base + "/web/")[1] == b"<p>demo</p>"
        status, body, headers = fetch(base + "/ort/ort.wasm")
        assert (status, body, headers["Content-Type"]) == (200, b"\0asm", "application/wasm")
        assert fetch(base + "/exported/m.json")[0] == 200
        for path in ("/secret.txt", "/web/../secret.txt", "/exported/%2e%2e/secret.txt", "/ort/../../../../secret.txt", "/pyproject.toml",
                     "/web/node_modules/onnxruntime-web/dist/ort.wasm", "/web/node_modules/"):  # node_modules only as /ort/
            assert fetch(base + path)[0] == 404, path
        status, _, headers = fetch(base + "/?model=m", method="HEAD")
        assert status == 302 and headers["Location"] == "/web/?model=m"
        assert fetch(base + "/report", data=b'{"step": "first"}')[0] == 204 and posted == [{"step": "first"}]
        assert fetch(base + "/elsewhere", data=b"{}")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_server_without_onnxruntime_web_or_a_clone_says_what_to_do(fake_root, tmp_path):
    shutil.rmtree(fake_root / ORT_DIST)
    with pytest.raises(GanEduError, match=r"onnxruntime-web installed there: run `npm ci` in"):
        DemoServer(fake_root, port=0)
    with pytest.raises(GanEduError, match="no web/index.html in"):
        project_root(tmp_path / "exported")
    assert project_root(None) == ROOT or (Path.cwd() / "web" / "index.html").is_file()


# -- node -------------------------------------------------------------------------------------------
def docs_node_example() -> str:
    text = (ROOT / "docs" / "onnx.md").read_text()
    blocks = re.findall(r"```js\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 1, "docs/onnx.md has no ```js block"
    node = [b for b in blocks if "node:fs" in b]
    assert len(node) == 1, "expected one node example (the block that reads the card with node:fs)"
    return node[0]


@needs_node
def test_the_node_example_of_docs_onnx_runs(tmp_path):
    assert NODE is not None and HAS_ORT, "needs node and web/node_modules (npm ci in web/)"
    script = tmp_path / "example.mjs"
    script.write_text(docs_node_example())
    (tmp_path / "node_modules").symlink_to(ROOT / "web" / "node_modules")  # where `npm ci` put onnxruntime-web
    out = subprocess.run([NODE, str(script)], cwd=ROOT / "web", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    name, dims, pixels = out.stdout.strip().split(" ", 2)
    assert name == "diamond" and dims == "[4,1,32,32]"
    values = json.loads(pixels)
    assert len(values) == 8 and all(0 <= v <= 255 and v == int(v) for v in values)


@needs_node
def test_the_demo_module_checks_labels_and_walks_between_noises(tmp_path):
    assert NODE is not None, "needs node"
    code = """
import { checkLabel, walk, toRGBA, gaussianNoise, randomSource } from "./gan.js";
const out = {};
for (const label of [-1, 10, 2.5, 0, 9]) {
  try { checkLabel(label, 10); out[label] = "ok"; } catch (e) { out[label] = e.message; }
}
const a = gaussianNoise(2, 4, randomSource(1)), b = gaussianNoise(2, 4, randomSource(2));
out.start = Array.from(walk(a, b, 0, 4)).every((v, i) => Math.abs(v - a[i]) < 1e-6);
out.end = Array.from(walk(a, b, 1, 4)).every((v, i) => Math.abs(v - b[i]) < 1e-6);
out.same = Array.from(gaussianNoise(3, 5, randomSource(7))).join() === Array.from(gaussianNoise(3, 5, randomSource(7))).join();
out.pixels = Array.from(toRGBA(Float32Array.from([-1, -0.5, 0.999, 1.5]), { image_shape: [1, 2, 2], output: "float" })[0]);
console.log(JSON.stringify(out));
"""
    out = subprocess.run([NODE, "--input-type=module", "-e", code], cwd=ROOT / "web", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["-1"] == "label -1: expected an integer label in [0, 9] (10 classes)"
    assert result["10"].startswith("label 10: expected") and result["2.5"].startswith("label 2.5: expected")
    assert result["0"] == result["9"] == "ok" and result["start"] and result["end"] and result["same"]
    # round((x + 1) * 127.5), clamped, grey to RGB, opaque: as Python's float_to_uint8
    assert result["pixels"] == [0, 0, 0, 255, 64, 64, 64, 255, 255, 255, 255, 255, 255, 255, 255, 255]


@needs_node
def test_gan_js_reads_the_card_contract_and_makes_numpys_pixels(tmp_path):
    """gan.js as a node app imports it: card format 2 accepted, format 1 and a non-normal noise refused;
    toPixel equals Python's float_to_uint8 bit for bit, ties and float32 rounding included."""
    from gan_edu_runtime.generator import float_to_uint8

    assert NODE is not None, "needs node"
    rng = np.random.default_rng(0)
    ties = ((np.arange(-2, 258, dtype=np.float32) + np.float32(0.5)) / np.float32(127.5) - np.float32(1)).astype(np.float32)
    values = np.concatenate([rng.uniform(-1.2, 1.2, 2000).astype(np.float32), ties, np.float32([-1.0000002, 1.0000001, 0, -1, 1])])
    card = json.loads((ROOT / "exported" / "shapes_cdcgan.json").read_text())
    old = {**card, "format": "gan-edu-card/1"}
    odd = json.loads(json.dumps(card))
    odd["contract"]["noise"]["distribution"] = "uniform"
    (tmp_path / "in.json").write_text(json.dumps({"values": [float(v) for v in values], "cards": [card, old, odd]}))
    code = f"""
import {{ checkCard, toPixel }} from "./gan.js";
import {{ readFileSync }} from "node:fs";
const input = JSON.parse(readFileSync({json.dumps(str(tmp_path / "in.json"))}, "utf8"));
const cards = input.cards.map((c) => {{ try {{ checkCard(c); return "ok"; }} catch (e) {{ return e.message; }} }});
console.log(JSON.stringify({{ pixels: input.values.map(toPixel), cards }}));
"""
    out = subprocess.run([NODE, "--input-type=module", "-e", code], cwd=ROOT / "web", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    expected = float_to_uint8(values.reshape(-1, 1, 1, 1)).ravel()
    assert result["pixels"] == expected.tolist()
    assert result["cards"][0] == "ok"
    assert result["cards"][1] == 'not a gan-edu card (format "gan-edu-card/1"); expected "gan-edu-card/2"'
    assert result["cards"][2].startswith("card contract noise") and "expected a standard normal" in result["cards"][2]


@needs_browser
def test_the_browser_demo_fetches_noise_only_from_its_own_origin(tmp_path):
    with demo_page(tmp_path, "model=shapes_cdcgan&noise=http://127.0.0.2:9/z.json") as reports:
        report = next_report(reports)
    assert report["step"] == "error" and report["message"].startswith("noise=http://127.0.0.2:9/z.json: expected a path on this page's own origin")
