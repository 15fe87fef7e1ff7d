"""c' again from a finished validation run, with its synthetic pool drawn from a chosen set of generators.

    python ensemble_probe.py RUN DATA_ROOT OUT MEMBER.onnx [MEMBER.onnx ...] [--reference | --reference-only]

Draws the run's pool size (one image per training image) in equal shares from the MEMBER generators
(the pipeline's snapshot ensemble, ``sample_ensemble_pool``; one member: ``sample_pool``, the
pipeline's own draw), trains c' with the run's recipe and seed (with ``--reference``, also the plain
reference recipe's c'; with ``--reference-only``, that one alone), and prints c' on the run's
validation images, per class, and GAN-test (the run's c on the pool). With the members the run itself used, it gives the run's own c'.
"""
import json
import sys
import time
from pathlib import Path

from gan_edu.export.runtime import OnnxGenerator
from gan_edu.metrics import accuracy
from gan_edu.models.classifier import Classifier, predict
from gan_edu.pipeline import load_data, train_classifier
from gan_edu.pipeline_config import PipelineConfig
from gan_edu.synthetic import sample_ensemble_pool, sample_pool

args = [a for a in sys.argv[1:] if not a.startswith("--reference")]
with_reference, reference_only = "--reference" in sys.argv, "--reference-only" in sys.argv
run, data_root, out, members = Path(args[0]), args[1], Path(args[2]), [Path(p) for p in args[3:]]
report = json.loads((run / "report.json").read_text())
settings = {**report["settings"], "data_root": data_root, "download": False, "progress": False, "reuse_c": None}
config = PipelineConfig.from_dict(settings)
assert config.eval_split == "validation", "a probe never looks at the test split"
assert config.synthetic == "pool"
train, evaluation = load_data(config)
generators = [OnnxGenerator(p) for p in members]
t0 = time.perf_counter()
n = len(train)
pool = sample_pool(generators[0], n, seed=config.seed + 1) if len(generators) == 1 else sample_ensemble_pool(generators, n, seed=config.seed + 1)


def scores(classifier):
    predictions = predict(classifier, evaluation.images)
    per_class = [round(float((predictions[evaluation.labels == k] == k).float().mean()), 4) for k in range(train.num_classes)]
    return accuracy(predictions, evaluation.labels), per_class


c = Classifier.from_pretrained(run / "c" / "classifier")
gan_test = accuracy(predict(c, pool.images), pool.labels)
if reference_only:
    acc, per_class = None, None
else:
    c_prime, _ = train_classifier(config, pool, n, train, out / "c_prime")
    acc, per_class = scores(c_prime)
result = {"run": run.name, "members": [str(p) for p in members], "c_prime": acc, "per_class": per_class, "gan_test": gan_test,
          "run_c_prime": report["c_prime_accuracy"]}
if with_reference or reference_only:
    ref, _ = train_classifier(config, pool, n, train, out / "c_prime_reference", reference=True)
    result["reference_c_prime"], result["reference_per_class"] = scores(ref)
result["seconds"] = round(time.perf_counter() - t0, 1)
print(json.dumps(result))
out.mkdir(parents=True, exist_ok=True)
(out / "result.json").write_text(json.dumps(result, indent=1))
