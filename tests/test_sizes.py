"""The library stays readable: no module over 350 lines, no function over 60 unless a comment on
its first line says why (``# long: ...``). DESIGN.md: a module past ~350 lines is two modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (ROOT / "gan_edu", ROOT / "runtime" / "gan_edu_runtime")


def size_problems(paths, root: Path = ROOT) -> list[str]:
    problems = []
    for path in paths:
        lines = path.read_text().splitlines()
        name = path.relative_to(root)
        if len(lines) > 350:
            problems.append(f"{name}: {len(lines)} lines")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                if "# long:" not in lines[node.lineno - 1]:
                    problems.append(f"{name}: {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    return problems


def test_no_library_module_over_350_lines_and_no_function_over_60():
    paths = sorted(p for package in PACKAGES for p in package.rglob("*.py"))
    assert len(paths) > 60  # both packages were found
    problems = size_problems(paths)
    assert not problems, problems


def test_the_size_check_catches_a_long_function_and_a_long_file(tmp_path):
    long_function = tmp_path / "f.py"
    long_function.write_text("def f():\n" + "    x = 1\n" * 60)
    marked = tmp_path / "g.py"
    marked.write_text("def g():  # long: one table\n" + "    x = 1\n" * 60)
    long_file = tmp_path / "h.py"
    long_file.write_text("x = 1\n" * 351)
    assert size_problems([long_function, marked, long_file], root=tmp_path) == ["f.py: f (61 lines)", "h.py: 351 lines"]
