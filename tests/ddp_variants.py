"""Run under torchrun by tests/test_variants.py: each way of examples/custom_loss.py, a few steps on 2 CPU processes.

    python -m torch.distributed.run --nproc_per_node 2 tests/ddp_variants.py OUT_DIR

Each process saves the parameters it ends with as ``OUT_DIR/<way>-rank<r>.pt``. Besides the
example's three ways, ``plain-d`` is the mistake the hooks exist to prevent: a full D step that
calls the plain D instead of going through ``discriminate(..., update=True)``, so DDP never
averages D's gradients.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main(out: Path) -> None:
    from gan_edu.data import load_dataset
    from gan_edu.training import GANTrainer, distributed, register_trainer
    from gan_edu.training.runs import new_gan_run

    spec = importlib.util.spec_from_file_location("custom_loss", REPO / "examples" / "custom_loss.py")
    example = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = example  # as for a script run by python: dataclasses look their module up there
    spec.loader.exec_module(example)  # defines and registers the example's trainers

    @register_trainer
    class PlainDGANTrainer(GANTrainer):
        def discriminator_step(self, real, fake, labels):
            with self.autocast():
                real_logits, fake_logits = self.d_forward(real, labels).float(), self.d_forward(fake, labels).float()  # not through DDP
            loss_d = self.discriminator_objective(real_logits, fake_logits, real=real, fake=fake, labels=labels)
            return self.update_discriminator(loss_d, real, fake, labels, real_logits=real_logits, fake_logits=fake_logits)

    torch.set_num_threads(1)
    data = load_dataset("shapes", n=64, seed=3)
    ways = {**example.WAYS, "plain-d": (example.NonSaturatingLoss(), PlainDGANTrainer, "dcgan")}
    world = distributed.World.from_env()
    try:
        for way, (loss, trainer_class, model) in ways.items():
            torch.manual_seed(0)
            config = trainer_class.config_class(epochs=1, max_steps=3, batch_size=16, progress=False, log_every=1, seed=5, device="cpu")
            trainer = new_gan_run(model, data, loss=loss, config=config, trainer_class=trainer_class, g_channels=4, d_channels=4)
            trainer.fit(data)
            params = {f"{n}.{k}": p.detach().clone() for n, m in trainer.modules().items() for k, p in m.named_parameters()}
            torch.save({"params": params, "history": trainer.history, "class": type(trainer).__name__}, out / f"{way}-rank{world.rank}.pt")
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
