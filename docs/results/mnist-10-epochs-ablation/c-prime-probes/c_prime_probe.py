"""c' again from a finished validation run's generator, with the synthetic set drawn another way.

    python c_prime_probe.py RUN DATA_ROOT TAU OUT [pool|stream]

Draws c''s synthetic set from ``RUN/generator.onnx`` with the noise scaled by TAU (z ~ N(0, TAU^2 I);
1.0 is the pipeline's own draw), as a fixed pool (the preset's) or as a stream of fresh images every
epoch, trains c' with the run's own recipe and seed, and prints c' on the run's validation images.
At TAU 1.0 with ``pool`` it gives the run's own c' (the check that it is the pipeline's path).
A probe, not a feature: it swaps the runtime's private noise function for the scaled one.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import gan_edu_runtime.generator as runtime_generator
from gan_edu.export.runtime import OnnxGenerator
from gan_edu.metrics import accuracy
from gan_edu.models.classifier import predict
from gan_edu.pipeline import load_data, synthetic_training_data, train_classifier
from gan_edu.pipeline_config import PipelineConfig
from gan_edu.synthetic import sample_pool

run, data_root, tau, out = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), Path(sys.argv[4])
mode = sys.argv[5] if len(sys.argv) > 5 else "pool"
plain_noise = runtime_generator._latent_batches


def scaled_noise(n, latent_dim, batch_size, seed):
    for z in plain_noise(n, latent_dim, batch_size, seed):
        yield z * np.float32(tau)


runtime_generator._latent_batches = scaled_noise
report = json.loads((run / "report.json").read_text())
settings = {**report["settings"], "data_root": data_root, "download": False, "progress": False, "reuse_c": None, "synthetic": mode}
config = PipelineConfig.from_dict(settings)
assert config.eval_split == "validation", "a probe never looks at the test split"
torch.manual_seed(config.seed)
train, evaluation = load_data(config)
generator = OnnxGenerator(run / "generator.onnx")
t0 = time.perf_counter()
pool = sample_pool(generator, len(train), seed=config.seed + 1)
c_prime, _ = train_classifier(config, synthetic_training_data(config, generator, pool, len(train)), len(train), train, out / "c_prime")
predictions = predict(c_prime, evaluation.images)
per_class = [float((predictions[evaluation.labels == k] == k).float().mean()) for k in range(train.num_classes)]
result = {"run": run.name, "tau": tau, "mode": mode, "c_prime": accuracy(predictions, evaluation.labels), "per_class": per_class,
          "run_c_prime": report["c_prime_accuracy"], "seconds": round(time.perf_counter() - t0, 1)}
print(json.dumps(result))
out.mkdir(parents=True, exist_ok=True)
(out / "result.json").write_text(json.dumps(result, indent=1))
