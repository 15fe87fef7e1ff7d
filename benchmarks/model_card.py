"""Write the JSON model card of an exported generator: how it was trained, and how good it is.

    python benchmarks/model_card.py --run /tmp/shapes_cdcgan_run --onnx exported/shapes_cdcgan.onnx \\
        --out exported/shapes_cdcgan.json --command "gan-edu train ..." --wall-time 1234

The quality figure is GAN-test accuracy (Shmelkov et al., "How good is my GAN?", ECCV 2018): a
small CNN classifier is trained on the real training images, then asked to name the class of
generated images; the fraction it names as the label they were generated for says how often
the generator makes the class it was asked for (and how recognisable it is). The same classifier's
accuracy on the real test images is the ceiling to compare with. Training the classifier takes
about a minute on a CPU; everything is seeded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def train_classifier(epochs: int, seed: int, channels: int = 3):
    """A small CNN trained on the real shapes training images."""
    import torch
    from torch import nn

    from gan_edu.data import load_dataset

    torch.manual_seed(seed)
    data = load_dataset("shapes", "train", channels=channels)
    x = data.images.float() / 127.5 - 1  # (N, C, 32, 32) in [-1, 1], like generated images
    y = data.labels
    net = nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # (N, 32, 16, 16)
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 64, 8, 8)
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),  # (N, 64, 1, 1)
        nn.Flatten(), nn.Linear(64, data.num_classes),  # (N, K) logits
    )
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(128):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def predict(net, images: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return torch.cat([net(torch.from_numpy(b)).argmax(1) for b in np.array_split(images, max(1, len(images) // 500))]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="the run folder the model was exported from")
    parser.add_argument("--onnx", type=Path, required=True, help="the exported .onnx")
    parser.add_argument("--out", type=Path, required=True, help="the card to write (.json)")
    parser.add_argument("--command", default="", help="the training command, recorded in the card")
    parser.add_argument("--wall-time", type=float, help="training wall time in seconds, recorded in the card")
    parser.add_argument("--machine", default="", help="where it was trained, recorded in the card")
    parser.add_argument("--note", default="", help="what the samples look like, in words (recorded in the card)")
    parser.add_argument("--per-class", type=int, default=100, help="generated images per class for GAN-test")
    parser.add_argument("--classifier-epochs", type=int, default=3)
    args = parser.parse_args()

    import torch

    from gan_edu.data import load_dataset
    from gan_edu.export import OnnxGenerator
    from gan_edu.io import atomic_write_json
    from gan_edu.training.trainer import read_history

    torch.set_num_threads(max(1, torch.get_num_threads()))
    og = OnnxGenerator(args.onnx, providers=["CPUExecutionProvider"])
    config = json.loads((args.run / "config.json").read_text())
    history = read_history(args.run / "history.jsonl")
    last_epoch = [r for r in history if r.get("kind") == "epoch"][-1]

    t0 = time.perf_counter()
    channels = og.image_shape[0]
    net = train_classifier(args.classifier_epochs, seed=0, channels=channels)
    test = load_dataset("shapes", "test", channels=channels)
    real_acc = float((predict(net, (test.images.float() / 127.5 - 1).numpy()) == test.labels.numpy()).mean())
    k = og.num_classes
    labels = np.repeat(np.arange(k), args.per_class)
    fake = og.sample(len(labels), labels, seed=0)
    if og.output == "uint8":
        fake = fake.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
    pred = predict(net, fake)
    per_class = {name: float((pred[labels == i] == i).mean()) for i, name in enumerate(og.class_names)}
    print(f"classifier: {real_acc:.3f} on real test images; GAN-test {float((pred == labels).mean()):.3f} ({time.perf_counter() - t0:.0f} s)")

    card = {
        "name": args.onnx.stem,
        "file": args.onnx.name,
        "size_bytes": args.onnx.stat().st_size,
        "what": f"a conditional DCGAN generator: noise z ({og.latent_dim}) and a class label to a {og.image_shape[1]}x{og.image_shape[2]} {'RGB' if og.image_shape[0] == 3 else 'grey'} image of that shape class",
        "inputs": {"z": f"float32 (N, {og.latent_dim}), N(0, I) noise", "labels": f"int64 (N,), in [0, {k - 1}]"},
        "output": {"images": "float32 (N, C, H, W) in [-1, 1]" if og.output == "float" else "uint8 (N, H, W, C)"},
        "class_names": list(og.class_names),
        "model": {"model_class": og.info.model_class, "model_config": og.info.model_config, "registry_name": config.get("model")},
        "training_data": config.get("data"),
        "training": {
            "loss": config["loss"]["name"],
            "steps": last_epoch["step"],
            "epochs": last_epoch["epoch"],
            "batch_size": config["trainer"]["batch_size"],
            "optimizer": f"Adam lr_g={config['trainer']['lr_g']} lr_d={config['trainer']['lr_d']} betas=({config['trainer']['beta1']}, {config['trainer']['beta2']})",
            "seed": config["trainer"]["seed"],
            "wall_time_s": args.wall_time,
            "machine": args.machine,
            "command": args.command,
            "gan_edu_version": config.get("gan_edu_version"),
        },
        "metrics": {
            "last_epoch": {key: round(last_epoch[key], 4) for key in ("d_loss", "g_loss", "d_real", "d_fake") if key in last_epoch},
            "gan_test_accuracy": round(float((pred == labels).mean()), 4),
            "gan_test_accuracy_per_class": {name: round(v, 3) for name, v in per_class.items()},
            "classifier_real_test_accuracy": round(real_acc, 4),
            "how": (
                f"GAN-test: a small CNN trained {args.classifier_epochs} epochs on the 20,000 real training images names the class of "
                f"{len(labels)} generated images ({args.per_class} per class, seed 0); accuracy = share named as the class asked for. "
                "classifier_real_test_accuracy: the same CNN on the 2,000 real test images (the ceiling). Made by benchmarks/model_card.py."
            ),
        },
        "quality_note": args.note,
        "how_to_run": {
            "gan-edu": f"gan-edu sample exported/{args.onnx.name} -n 80 --seed 0 -o grid.png",
            "python": f"from gan_edu.export import OnnxGenerator; images = OnnxGenerator('exported/{args.onnx.name}').sample(16, labels=[3] * 16, seed=0)",
            "app (onnxruntime, numpy, Pillow only)": f"python examples/onnx_app.py exported/{args.onnx.name} -o grid.png",
        },
    }
    atomic_write_json(args.out, card)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
