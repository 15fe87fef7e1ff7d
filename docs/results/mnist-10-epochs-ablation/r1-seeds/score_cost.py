"""Run as: python score_cost.py DATA_ROOT (MNIST's files there). Seconds of one scoring pass (DiagnosingTrainer.score_real) over MNIST's 55,000 training images, the preset's D, against one epoch's D+G steps."""
import sys, time, torch
from gan_edu.pipeline import PipelineConfig, load_data, PRESETS
from gan_edu.training.reweight import DiagnosingTrainerConfig
from gan_edu.training.runs import new_gan_run
cfg = PipelineConfig.from_dict({**PRESETS["mnist"], "data_root": sys.argv[1], "download": False, "eval_split": "validation", "trainer": "DiagnosingTrainer"})
train, _ = load_data(cfg)
g = cfg.gan
t = new_gan_run(cfg.model, train, config=DiagnosingTrainerConfig(**{**g.to_dict(), "progress": False}), trainer_class="DiagnosingTrainer", g_channels=32, d_channels=32)
loader = t.make_loader(train)
for i in range(3):
    t0 = time.perf_counter(); t.score_real(); print(f"scoring pass {i}: {time.perf_counter() - t0:.1f} s")
it = loader.iterate(0); t0 = time.perf_counter()
for k, b in zip(range(100), it): t.train_step(b)
print(f"100 training steps: {time.perf_counter() - t0:.1f} s; an epoch is {len(loader)} steps")
