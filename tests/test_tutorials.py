"""Every tutorial notebook runs top to bottom in a fresh kernel, in fast mode (``GAN_EDU_FAST=1``).

Fast mode shrinks data, steps and widths in each notebook's first code cell; the code path is
the same as the real run's. The committed notebooks carry the outputs of a real run
(``python tutorials/execute.py all``); a second test checks that they do, and a third that
those outputs were made by today's code: ``execute.py`` records the SHA-256 of every gan_edu
source file the kernel had imported, and the test fails when one of them has changed since.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import nbformat
import pytest
from formats import write_mnist
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))
EXPECTED = [
    "01_what_a_gan_learns", "02_minimax_vs_non_saturating", "03_anatomy_of_a_dcgan", "04_training_on_mnist_and_cifar10",
    "05_your_own_variant", "06_export_to_onnx", "07_c_vs_c_prime", "08_from_shapes_to_real_data",
]


def test_the_tutorials_are_all_there():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory):
    """A kernelspec that starts ipykernel with this very interpreter (not whatever "python" is on PATH)."""
    root = tmp_path_factory.mktemp("kernels")
    (root / "gan-edu-test").mkdir()
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "gan-edu test", "language": "python"}
    (root / "gan-edu-test" / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(root)], ensure_native_kernel=False)


@pytest.mark.slow  # every notebook executed in a fresh kernel
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_notebook_runs_in_fast_mode(path, kernel_specs, tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_EDU_FAST", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this checkout's gan_edu
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # kernels run beside pytest on shared cores: no thread oversubscription
    # Notebook 04 reads GAN_EDU_DATA_ROOT: give it MNIST files in the real format (a few random
    # images) and no CIFAR-10, so both its paths run: real files, and the fallback to shapes.
    write_mnist(tmp_path / "data", n_train=64, n_test=10)
    monkeypatch.setenv("GAN_EDU_DATA_ROOT", str(tmp_path / "data"))
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name="gan-edu-test", kernel_spec_manager=kernel_specs)
    client = NotebookClient(nb, km=km, timeout=300, resources={"metadata": {"path": str(TUTORIALS)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    texts = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    if path.stem.startswith("04"):
        assert "mnist: 64 real images" in texts and "NOTE: training on the built-in shapes (3x32x32) in place of cifar10" in texts


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_committed_notebook_carries_a_real_run(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "GAN_EDU_FAST" in code[0].source  # fast mode is read first, before any work
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: not executed top to bottom in one kernel ({counts})"
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: no pictures"
    assert path.stat().st_size < 1_500_000, f"{path.name}: {path.stat().st_size} bytes; keep outputs small"
    assert "**CPU time:** about" in nb.cells[0].source or "**CPU time:** under" in nb.cells[0].source, f"{path.name}: the first cell does not say how long a full run takes"


def stale_sources(record: dict, root: Path = ROOT) -> list[str]:
    """The gan_edu files a notebook's run imported whose content has changed (or gone) since."""
    changed = []
    for rel, digest in sorted(record["sources"].items()):
        file = root / rel
        if not file.is_file() or hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            changed.append(rel)
    return changed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_committed_outputs_were_made_by_todays_code(path):
    """Stale outputs fail: the rule is that every gan_edu file the run imported is byte-identical today.

    A module the notebook would newly import can only come through a changed import in one of the
    recorded files, so the recorded set is enough.
    """
    again = f"re-execute it: python tutorials/execute.py {path.stem[:2]}"
    record = nbformat.read(path, as_version=4).metadata.get("gan_edu")
    assert record, f"{path.name}: no record of the run that made its outputs; {again}"
    assert record["settings"] == "full", f"{path.name}: outputs from a fast-mode run; {again}"
    assert any(rel.startswith("gan_edu/") for rel in record["sources"]), f"{path.name}: the record names no gan_edu file; {again}"
    changed = stale_sources(record)
    assert not changed, (
        f"{path.name}: its outputs were made (commit {str(record['commit'])[:10]}) by older code: {', '.join(changed)} "
        f"changed since; {again}")


def test_a_changed_module_makes_a_notebook_stale(tmp_path):
    """The rule itself, on files of its own: unchanged is fresh; edited or removed is stale."""
    (tmp_path / "gan_edu").mkdir()
    for name in ("a.py", "b.py", "c.py"):
        (tmp_path / "gan_edu" / name).write_text(f"# {name}\n")
    record = {"sources": {f"gan_edu/{n}": hashlib.sha256(f"# {n}\n".encode()).hexdigest() for n in ("a.py", "b.py", "c.py")}}
    assert stale_sources(record, tmp_path) == []
    (tmp_path / "gan_edu" / "b.py").write_text("# b.py, edited\n")
    (tmp_path / "gan_edu" / "c.py").unlink()
    assert stale_sources(record, tmp_path) == ["gan_edu/b.py", "gan_edu/c.py"]


def test_docs_index_names_every_tutorial_and_example_and_its_links_resolve():
    import re

    index = (ROOT / "docs" / "index.md").read_text()
    links = re.findall(r"\]\(([^)#]+)\)", index)
    missing = [link for link in links if not (ROOT / "docs" / link).resolve().exists()]
    assert not missing, f"docs/index.md: broken links {missing}"
    for path in [*NOTEBOOKS, *(ROOT / "examples").glob("*.py")]:
        assert f"../{path.parent.name}/{path.name}" in links, f"docs/index.md does not link {path.name}"
    assert "docs/index.md" in (ROOT / "README.md").read_text()
