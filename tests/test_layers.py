"""The layer rule of docs/design.md, checked on the source: every import of every gan_edu module goes down.

The imports are read with ``ast`` (nothing is imported), including the ones inside functions:
a lazy import up the layers is still an import up the layers. Imports under
``if TYPE_CHECKING:`` are for annotations only; they may close a loop but may not go up.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gan_edu"

#: The layers, from the ground up (docs/design.md): a module may import its own layer or one below.
LAYERS = (
    ("gan_edu", "errors", "domains", "io", "outputs", "registry"),  # gan_edu: the package itself (its __version__)
    ("data", "models", "losses", "augment", "plots"),
    ("training",),
    ("export",),
    ("synthetic", "metrics", "quality", "inception"),
    ("pipeline", "pipeline_config", "report"),
    ("cli", "__main__"),
)

#: The "never" arrows inside or across layers, beyond "only down".
NEVER = {
    "losses": {"models"},
    "data": {"models"},
    "export": {"training", "data", "metrics", "quality", "pipeline"},
}

LAYER_OF = {part: k for k, parts in enumerate(LAYERS) for part in parts}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def part_of(module: str) -> str:
    """The top-level part of gan_edu a module belongs to: ``gan_edu.export.variants`` -> ``export``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "gan_edu"


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(module: str) -> list[tuple[str, int, bool]]:
    """``(imported gan_edu module, line, under TYPE_CHECKING)`` for every import in ``module``'s file."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, typing_only)
            return
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno, typing_only) for a in node.names if a.name == "gan_edu" or a.name.startswith("gan_edu."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "gan_edu" or target.startswith("gan_edu."):
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.append((sub if sub in MODULES else target, node.lineno, typing_only))
        for child in ast.iter_child_nodes(node):
            visit(child, typing_only)

    visit(ast.parse(path.read_text()), False)
    return found


def test_every_part_of_gan_edu_has_a_layer():
    unknown = sorted({part_of(m) for m in MODULES} - set(LAYER_OF))
    assert not unknown, f"parts of gan_edu in no layer of LAYERS (add them where docs/design.md puts them): {unknown}"


def layer_problems() -> list[str]:
    problems = []
    for module in MODULES:
        here = part_of(module)
        for target, line, _ in dict.fromkeys(imports(module)):
            there = part_of(target)
            if here == there:
                continue
            where = f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {target}"
            if LAYER_OF[there] > LAYER_OF[here]:
                problems.append(f"{where}: up the layers ({here} is below {there})")
            elif there in NEVER.get(here, ()):
                problems.append(f"{where}: {here} never imports {there}")
    return problems


def test_imports_only_go_down_the_layers():
    problems = layer_problems()
    assert not problems, "\n".join(problems)


def import_loops() -> list[list[str]]:
    """The loops of the module import graph (its strongly connected components of more than one module), TYPE_CHECKING imports left out."""
    graph = {m: sorted({t for t, _, typing_only in imports(m) if not typing_only and t in MODULES and t != m}) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    loops: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    return loops


def test_no_import_loops():
    loops = import_loops()
    assert not loops, "import loops (TYPE_CHECKING imports aside): " + "; ".join(" <-> ".join(loop) for loop in loops)


def use_a_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file: str, added: str) -> None:
    """Point the checks at a copy of the package whose ``file`` has the import ``added`` inside a new function."""
    copy = tmp_path / "gan_edu"
    for path in MODULES.values():
        target = copy / path.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text() + (f"\n\ndef _added():\n    {added}\n" if path.relative_to(PACKAGE).as_posix() == file else ""))
    monkeypatch.setitem(globals(), "PACKAGE", copy)
    monkeypatch.setitem(globals(), "MODULES", {module_name(p): p for p in sorted(copy.rglob("*.py"))})


@pytest.mark.parametrize(("added", "message"), [
    ("from gan_edu.training.trainer import Trainer", "export never imports training"),
    ("from ..data.splits import split_off", "export never imports data"),
    ("from ..cli import main", "up the layers (export is below cli)"),
])
def test_the_layer_check_catches_a_forbidden_import(tmp_path, monkeypatch, added, message):
    use_a_copy(tmp_path, monkeypatch, "export/graph.py", added)
    problems = layer_problems()
    assert any(p.startswith("gan_edu/export/graph.py:") and message in p for p in problems), problems


def test_the_loop_check_catches_a_loop(tmp_path, monkeypatch):
    use_a_copy(tmp_path, monkeypatch, "data/images.py", "from .loader import make_loader")  # loader imports images
    assert ["gan_edu.data.images", "gan_edu.data.loader"] in import_loops()
