"""G's batch-norm statistics measured again after training, then c' and GAN-test from it.

    python bn_probe.py RUN C_RUN DATA_ROOT OUT [BATCHES]

Copies RUN/gan (the finished run's G), sets every batch norm of G to a cumulative average
(momentum None) after resetting it, runs BATCHES batches of 512 (fresh noise, balanced labels)
through G in training mode without gradients, saves G, exports it, draws c''s pool as the
pipeline does, trains c' with the run's own recipe and seed, and measures with C_RUN's c.
With BATCHES 0 it skips the recalibration (the check: the run's own c' and GAN-test).
"""
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from gan_edu.models.classifier import Classifier
from gan_edu.export.exporter import export_generator, load_generator
from gan_edu.export.runtime import OnnxGenerator
from gan_edu.pipeline import load_data, train_classifier, synthetic_training_data
from gan_edu.pipeline_config import PipelineConfig
from gan_edu.report import measure
from gan_edu.synthetic import sample_pool

run, c_run, data_root, out = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
batches = int(sys.argv[5]) if len(sys.argv) > 5 else 200
report = json.loads((run / "report.json").read_text())
settings = {**report["settings"], "data_root": data_root, "download": False, "progress": False, "reuse_c": None}
config = PipelineConfig.from_dict(settings)
assert config.eval_split == "validation", "a probe never looks at the test split"
t0 = time.perf_counter()
out.mkdir(parents=True, exist_ok=True)
gan = out / "gan"
if gan.exists():
    shutil.rmtree(gan)
shutil.copytree(run / "gan", gan, ignore=shutil.ignore_patterns("checkpoints", "samples", "*.png", "*.gif", "snapshots"))
g, _ = load_generator(gan)
if batches:
    bns = [m for m in g.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    g.train()
    gen = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        for _ in range(batches):
            z = torch.randn(512, g.latent_dim, generator=gen)
            labels = torch.arange(512) % g.num_classes
            g(z, labels)
    for m in bns:
        m.momentum = 0.1
    g.eval()
    g.save_pretrained(gan / "generator")
train, evaluation = load_data(config)
torch.manual_seed(config.seed)
generator = OnnxGenerator(export_generator(gan, out / "generator.onnx", class_names=train.class_names))
pool = sample_pool(generator, len(train), seed=config.seed + 1)
c_prime, _ = train_classifier(config, synthetic_training_data(config, generator, pool, len(train)), len(train), train, out / "c_prime")
c = Classifier.from_pretrained(c_run / "c" / "classifier")
m = measure(c, c_prime, train, evaluation, pool, tta=config.classifier_tta)
pc = sorted(m["per_class"], key=lambda p: p["c_prime"])
result = {"run": run.name, "batches": batches, "c_prime": m["c_prime_accuracy"], "gan_test": m["gan_test_accuracy"],
          "lowest": [(p["class"], round(p["c_prime"], 3)) for p in pc[:3]],
          "run_c_prime": report["c_prime_accuracy"], "run_gan_test": report["gan_test_accuracy"], "seconds": round(time.perf_counter() - t0, 1)}
for k in ("frechet_distance", "frechet_c", "precision", "recall"):
    if k in m:
        result[k] = m[k]
print(json.dumps(result))
(out / "result.json").write_text(json.dumps(result, indent=1))
