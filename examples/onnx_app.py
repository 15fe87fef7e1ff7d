"""An app that shows what an exported gan-edu generator makes: one row of images per class.

It needs only onnxruntime, numpy and Pillow (no torch, no gan-edu): this is how another program
uses a model the project ships. Everything it needs to know (size of the noise, number and names
of the classes, output kind) it reads from the model's metadata.

    python examples/onnx_app.py exported/shapes_cdcgan.onnx -o shapes_grid.png
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageDraw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="exported/shapes_cdcgan.onnx", help="an exported gan-edu .onnx")
    parser.add_argument("-o", "--output", default="onnx_app_grid.png", help="the PNG to write")
    parser.add_argument("--per-class", type=int, default=8, help="images per row (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")
    args = parser.parse_args()

    # 1. Load the graph and read its metadata: every value is JSON.
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    latent_dim, num_classes = meta["latent_dim"], meta["num_classes"]
    rows = num_classes or 1  # an unconditional model gets one row
    names = meta["class_names"] or [str(k) for k in range(rows)]

    # 2. Noise z ~ N(0, I) and labels 0,0,...,1,1,...: one row per class.
    rng = np.random.default_rng(args.seed)
    labels = np.repeat(np.arange(rows, dtype=np.int64), args.per_class)  # (N,)
    feed = {"z": rng.standard_normal((len(labels), latent_dim), dtype=np.float32)}  # (N, latent_dim)
    if num_classes is not None:
        feed["labels"] = labels
    images = session.run(["images"], feed)[0]

    # 3. To pixels: a float export gives (N, C, H, W) in [-1, 1]; a uint8 export is ready already.
    if meta["output"] == "float":
        images = np.clip(np.rint((images + 1) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)  # (N, H, W, C)
    if images.shape[3] == 1:
        images = np.repeat(images, 3, axis=3)  # grey to RGB

    # 4. Tile: a name column, then per_class images per row, each enlarged twice.
    n, h, w, _ = images.shape
    scale, pad, label_width = 2, 2, 80
    grid = Image.new("RGB", (label_width + args.per_class * (w * scale + pad), rows * (h * scale + pad)), "white")
    draw = ImageDraw.Draw(grid)
    for i in range(n):
        r, c = divmod(i, args.per_class)
        tile = Image.fromarray(images[i]).resize((w * scale, h * scale), Image.NEAREST)
        grid.paste(tile, (label_width + c * (w * scale + pad), r * (h * scale + pad)))
    for r in range(rows):
        draw.text((4, r * (h * scale + pad) + h * scale // 2 - 5), names[r], fill="black")
    grid.save(args.output)
    print(f"wrote {args.output}: {rows} rows ({', '.join(names)}), {args.per_class} images each")


if __name__ == "__main__":
    main()
