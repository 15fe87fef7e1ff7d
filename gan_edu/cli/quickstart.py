"""``gan-edu quickstart``: the whole flow, offline, in a few minutes on a laptop CPU.

Runs the c vs c' pipeline (:mod:`gan_edu.pipeline`) on the built-in ``shapes`` data with small
budgets: a conditional DCGAN learns the ten shapes, is exported to ONNX, samples a synthetic
training set through onnxruntime, and a classifier trained on it (c') is compared on real test
images with one trained on the real images (c). Writes a per-class sample grid, the loss
curves, a progress GIF, the report and ``summary.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import check
from ..io import atomic_open
from ..pipeline import PipelineConfig, run_pipeline
from ..training.classifier_trainer import ClassifierTrainerConfig
from ..training.gan_trainer import GANTrainerConfig
from .args import non_negative_int, positive_int

#: Budgets chosen so the whole run ends in under 5 minutes on 2 CPU cores (measured: see README).
QUICKSTART = PipelineConfig(
    dataset="shapes",
    num_images=20_000,
    channels=1,  # grey shapes: the colours of RGB shapes take a DCGAN far longer than 2 minutes on a CPU
    # Chosen on the validation split (docs/results/ablation.md, "quickstart's recipe"): conditional
    # batch norm, Adam at 5e-4 (not DCGAN's 2e-4: at the 1,872 steps of 6 epochs, where it was chosen,
    # the faster rate won) and c''s pool drawn from the last three epochs' averaged G (a snapshot
    # ensemble): c' 0.753 -> 0.882 there.
    # Then R1 on D at gamma 1, computed every 4th step (lazy regularisation): c' 0.844 -> 0.904 on
    # average over four seeds of the validation split, higher at each (ablation.md, seventh pass).
    # 5 GAN epochs, not 6, so the penalty costs no wall time: c' 0.910 on average over the same four
    # seeds (ablation.md, eleventh pass).
    model="cdcgan-cbn",
    g_channels=32,
    d_channels=32,
    r1=1.0,
    gan=GANTrainerConfig(epochs=5, batch_size=64, lr_g=5e-4, lr_d=5e-4, snapshots=2, penalty_every=4),
    synthetic_images=10_000,
    classifier_model="vgg",
    classifier_width=16,
    classifier=ClassifierTrainerConfig(epochs=2, lr=0.05),
    reference_epochs=1,  # the second pair (reference project 000's classifier, plain recipe): one epoch keeps the run within minutes
)


def register(sub: Any) -> None:
    p = sub.add_parser("quickstart", help="the whole flow on the built-in shapes: GAN, ONNX, c vs c' (offline, minutes)")
    p.add_argument("--out", type=Path, help="run folder (default runs/quickstart, or runs/quickstart-N if taken)")
    p.add_argument("--gan-epochs", type=positive_int, default=QUICKSTART.gan.epochs, help=f"default {QUICKSTART.gan.epochs}")
    p.add_argument("--max-steps", type=positive_int, help="cap the GAN and each classifier at this many steps (a quick look)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of weights, noise and data order (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def reference_rows(report: dict[str, Any]) -> str:
    """The summary's rows for c and c' of the reference recipe (reference project 000's classifier, trained plainly)."""
    ref = report.get("reference")
    if not ref:
        return ""
    return (f"| c, reference recipe ({ref['classifier']}, plain) | real images | {ref['c_accuracy']:.3f} |\n"
            f"| c', reference recipe | synthetic images | {ref['c_prime_accuracy']:.3f} |\n")


def free_run_dir(base: Path) -> Path:
    """``base`` if free, else ``base-1``, ``base-2``...: quickstart never overwrites a run."""
    if not base.exists() or not any(base.iterdir()):
        return base
    i = 1
    while (candidate := base.with_name(f"{base.name}-{i}")).exists() and any(candidate.iterdir()):
        i += 1
    return candidate


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    out = args.out if args.out is not None else free_run_dir(Path("runs") / "quickstart")
    check(
        args.out is None or not args.out.exists() or not any(args.out.iterdir()),
        f"--out {args.out}: the folder exists and is not empty; quickstart never overwrites: expected a new folder (or no --out)",
    )
    config = QUICKSTART.merged({
        "gan": {"epochs": args.gan_epochs, "max_steps": args.max_steps}, "classifier": {"max_steps": args.max_steps},
        "synthetic_images": QUICKSTART.synthetic_images if args.max_steps is None else 500,
        "device": args.device, "seed": args.seed, "progress": not args.no_progress,
    })
    print(f"gan-edu quickstart: a conditional DCGAN learns 10 classes of shapes, then c vs c' -> {out}", file=sys.stderr)
    report = run_pipeline(config, out, log=lambda line: print(f"quickstart: {line}", file=sys.stderr))
    wall = time.perf_counter() - t0
    summary = f"""# gan-edu quickstart

A conditional DCGAN (`{config.model}`) trained on the built-in `shapes` data set
({report['sizes']['train']:,} grey 32x32 images of 10 classes) for {report['gan_steps']} steps, exported
to ONNX (`generator.onnx`), sampled through onnxruntime into {report['sizes']['synthetic']:,} labelled
synthetic images, and two classifiers compared on {report['sizes']['evaluation']:,} real test images:

| classifier | trained on | accuracy on real test images |
|---|---|---|
| c | real images | {report['c_accuracy']:.3f} |
| c' | synthetic images | {report['c_prime_accuracy']:.3f} |
{reference_rows(report)}
GAN-test (c on the synthetic images): {report['gan_test_accuracy']:.3f}. Precision {report['precision']:.3f} and recall
{report['recall']:.3f} of the synthetic images in c's features (is each realistic; is every kind of real image made?).
Wall time {wall:.0f} s on `{report['hardware']['device']}`.

| file | what |
|---|---|
| `gan/samples.png` | the GAN's fixed noise, one row per class: {', '.join(r['class'] for r in report['per_class'])} |
| `gan/samples.gif` | the same noise after every epoch |
| `gan/losses.png` | D and G losses per step |
| `samples_per_class.png` | images from `generator.onnx`, one row per class |
| `confusion.png` | confusion matrices of c and c' |
| `report.md`, `report.json` | every number, with the settings and timings |
| `gan/checkpoints/last.pt` | to train on: `gan-edu train --resume {out / 'gan'} --epochs N` |
"""
    with atomic_open(out / "summary.md", "w") as f:
        f.write(summary)
    print(summary)
    return 0
