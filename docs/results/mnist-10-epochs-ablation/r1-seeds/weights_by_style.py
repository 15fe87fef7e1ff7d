"""Run as: python weights_by_style.py EXPERIMENT CLASS (the GAN checkpoint must still be in EXPERIMENT/gan). Mean sampling weight of each style (mode_shares' k-means) of a class, from a DiagnosingTrainer run."""
import json, sys
from pathlib import Path
import numpy as np, torch
from gan_edu.export import OnnxGenerator
from gan_edu.metrics import kmeans, mode_shares, nearest_centre
from gan_edu.models.base import GANModule
from gan_edu.models.classifier import predict
from gan_edu.pipeline import PipelineConfig, load_data
from gan_edu.synthetic import sample_images

exp, label = Path(sys.argv[1]), int(sys.argv[2])
config = PipelineConfig.from_dict(json.loads((exp / "report.json").read_text())["settings"])
c = GANModule.from_pretrained((Path(config.reuse_c) if config.reuse_c else exp) / "c" / "classifier")
state = torch.load(exp / "gan" / "checkpoints" / "last.pt", weights_only=True)
w = state["extra"]["real_weights"].numpy()
train, _ = load_data(config)
mask = (train.labels == label).numpy()
real = train.images[torch.from_numpy(mask)]
fake = sample_images(OnnxGenerator(exp / "generator.onnx"), np.full(5000, label, dtype=np.int64), seed=0)
real_f, fake_f = predict(c, real, features=True).numpy(), predict(c, fake, features=True).numpy()
centres = kmeans(real_f, 8, seed=0)
rows = mode_shares(real_f, fake_f, centres=centres)
mode = nearest_centre(real_f, centres)
wc = w[mask]
print(f"class {label}: weights mean {wc.mean():.3f} min {wc.min():.3f} max {wc.max():.3f}")
for r in rows:
    m = mode == r["mode"]
    print(f"mode {r['mode']}: real {r['real_share']:.3f} generated {r['fake_share']:.3f} mean weight {wc[m].mean():.3f}")
