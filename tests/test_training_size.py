"""gan_edu/training/ stays readable: no module over 350 lines, no function over 60 unless a
comment on its first line says why (DESIGN.md: a module past ~350 lines is two modules)."""

from __future__ import annotations

import ast
from pathlib import Path

TRAINING = Path(__file__).resolve().parents[1] / "gan_edu" / "training"


def test_no_training_module_over_350_lines_and_no_function_over_60():
    long_files, long_functions = [], []
    for path in sorted(TRAINING.glob("*.py")):
        lines = path.read_text().splitlines()
        if len(lines) > 350:
            long_files.append(f"{path.name}: {len(lines)} lines")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                if "# long:" not in lines[node.lineno - 1]:
                    long_functions.append(f"{path.name}: {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long_files and not long_functions, long_files + long_functions
