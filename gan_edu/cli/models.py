"""``gan-edu models``: the model registry, with image sizes and parameter counts.

``gan-edu models --markdown`` prints the table of ``docs/models.md`` (a test keeps the two equal).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..models import MODELS, parameter_counts

TABLE_CLASSES = 10  # conditional models are counted with 10 classes (CIFAR-10, MNIST, shapes)


def size_name(shape: tuple[int, int, int]) -> str:
    """``(3, 32, 32)`` -> ``"3x32x32"`` (C x H x W)."""
    return "x".join(map(str, shape))


def registry_rows() -> list[dict[str, Any]]:
    """One row per registry model and documented size, with parameter counts at default widths."""
    rows = []
    for name, spec in MODELS.items():
        for shape in spec.sizes:
            g, d = parameter_counts(name, shape, num_classes=TABLE_CLASSES)
            rows.append({"name": name, "source": spec.source, "size": size_name(shape), "g": g, "d": d,
                         "layers": spec.layers, "conditional": spec.conditional})
    return rows


def markdown_table(rows: list[dict[str, Any]] | None = None) -> str:
    """The registry as the markdown table of ``docs/models.md``: one row per model."""
    rows = registry_rows() if rows is None else rows
    lines = ["| name | source | sizes (C x H x W) | parameters, G / D | layers |", "|---|---|---|---|---|"]
    for name, spec in MODELS.items():
        mine = [r for r in rows if r["name"] == name]
        label = f"`{name}`" + (" (conditional)" if spec.conditional else "")
        sizes = ", ".join(r["size"] for r in mine)
        params = "<br>".join(f"{r['size']}: {r['g']:,} / {r['d']:,}" for r in mine)
        lines.append(f"| {label} | {spec.source} | {sizes} | {params} | {spec.layers} |")
    return "\n".join(lines)


def register(sub: Any) -> None:
    p = sub.add_parser("models", help="list the registry's models, image sizes and parameter counts",
                       description="The models `gan-edu train --model` takes, at their default widths.")
    p.add_argument("--markdown", action="store_true", help="print the table of docs/models.md")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = registry_rows()
    if args.markdown:
        print(markdown_table(rows))
        return 0
    print(f"{'name':<24}{'size':<10}{'G params':>12}{'D params':>12}  source; layers")
    for name, spec in MODELS.items():
        for i, r in enumerate(row for row in rows if row["name"] == name):
            label = (name + (" (conditional)" if spec.conditional else "")) if i == 0 else ""
            detail = spec.source if i == 0 else (spec.layers if i == 1 else "")
            print(f"{label:<24}{r['size']:<10}{r['g']:>12,}{r['d']:>12,}  {detail}")
        if len(spec.sizes) == 1:
            print(f"{'':<58}  {spec.layers}")
    print(f"\nParameters at the default widths; conditional models with {TABLE_CLASSES} classes. "
          "Train one: gan-edu train --model NAME; one per class: add --per-class.")
    return 0
