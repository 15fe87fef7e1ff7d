"""Three ways to make a GAN variant, from the lightest touch to the heaviest, trained the same way.

    python examples/custom_loss.py --epochs 3 --out runs/pearson                  # 1. a loss subclass
    python examples/custom_loss.py --way objective --epochs 3 --out runs/fading   # 2. an objective hook
    python examples/custom_loss.py --way step --epochs 3 --out runs/matching      # 3. a full step
    python examples/custom_loss.py --resume runs/matching --epochs 4              # a run of either trainer, resumed
    torchrun --nproc_per_node 2 examples/custom_loss.py --way step --device cpu --out runs/matching2

1. **A loss subclass**, when the change is a formula on D's logits alone. It then works with any
   trainer and model. Here: the least-squares GAN with targets a = -1 (fake), b = 1 (real) and
   c = 0 (what G aims for), the choice for which Mao et al. (2017, section 3.2) show that
   training minimises the Pearson chi-squared divergence (gan-edu's ``least-squares`` loss uses
   a = 0, b = c = 1).
2. **An objective hook**, when the objective needs what a loss does not see: the images, the
   labels or the trainer's state. Here: one-sided label smoothing (Salimans et al. 2016) that
   fades out as training goes on, so it needs the step. Override ``discriminator_objective`` (or
   ``generator_objective``); the penalty, the precision, DDP's averaging over processes and the
   optimizer step stay the trainer's, whatever the override does with the logits.
3. **A full step**, when the step itself changes shape. Here: a matching-aware discriminator
   (Reed et al. 2016, "GAN-CLS"), which also sees real images with wrong labels and learns to call
   those pairs fake: a third call of D. Override ``discriminator_step``, and keep the plumbing by
   calling D through ``self.discriminate(..., update=True)`` (all calls as one DDP forward) and
   finishing with ``self.update_discriminator`` (the penalty, the optimizer step, the metrics).

Trainer classes are registered (``register_trainer``), and so is the loss (``register_loss``),
so a run records its class and loss and resume rebuilds them. To use them from the ``gan-edu`` command, see docs/training.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch
import torch.nn.functional as F

from gan_edu.data import load_dataset
from gan_edu.errors import GanEduError, check
from gan_edu.losses import GANLoss, NonSaturatingLoss, register_loss
from gan_edu.training import GANTrainer, GANTrainerConfig, distributed, register_trainer
from gan_edu.training.runs import new_gan_run, resume_gan_run


# -- 1. a loss subclass: a formula on the logits ---------------------------------------------------
@register_loss  # a run records its name (and options); resume rebuilds it
class PearsonLeastSquaresLoss(GANLoss):
    """LSGAN with a = -1, b = 1, c = 0: D minimises ``(l_real - 1)^2 / 2 + (l_fake + 1)^2 / 2``, G minimises ``l_fake^2 / 2``."""

    name = "least-squares-pearson"

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real_logits - 1) ** 2).mean() + 0.5 * ((fake_logits + 1) ** 2).mean()

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake_logits**2).mean()


# -- 2. an objective hook: the objective needs the step ---------------------------------------------
@dataclasses.dataclass(frozen=True)
class FadingSmoothingConfig(GANTrainerConfig):
    """GAN options plus the smoothing's own (a trainer's options live in its config, saved with the run)."""

    smooth_start: float = 0.7  # D's target for real images at step 0 (1: no smoothing)
    fade_steps: int = 500  # the target reaches 1 (no smoothing) after this many steps


@register_trainer
class FadingSmoothingGANTrainer(GANTrainer):
    """Non-saturating GAN whose D aims at ``smooth_start`` for real images at first, and at 1 after ``fade_steps``."""

    config_class = FadingSmoothingConfig
    config: FadingSmoothingConfig

    def discriminator_objective(self, real_logits, fake_logits, *, real, fake, labels):
        cfg = self.config
        target = 1.0 - (1.0 - cfg.smooth_start) * max(0.0, 1.0 - self.step / cfg.fade_steps)  # 0.7 -> 1.0
        real_term = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, target))  # (N,) -> ()
        return real_term + F.softplus(fake_logits).mean()  # fakes keep their target 0: one-sided


# -- 3. a full step: D makes a third call ------------------------------------------------------------
@register_trainer
class MatchingAwareGANTrainer(GANTrainer):
    """A conditional GAN whose D also sees real images with wrong labels, as fakes (Reed et al. 2016)."""

    def discriminator_step(self, real, fake, labels):
        """(1) Update D: real images with their labels are real; fakes, and real images with a wrong label, are fake."""
        check(labels is not None, f"{type(self).__name__}: expected a conditional model (cdcgan), got one without labels")
        k = self.generator.num_classes
        # Another class for each image, drawn like the noise: the global batch's, sliced (same on every process).
        offsets = torch.randint(1, k, (labels.shape[0] * self.world.size,), generator=self.noise, device=self.device)
        wrong = (labels + self.world.slice(offsets)) % k  # (N,), never the right class
        real_logits, fake_logits, wrong_logits = self.discriminate((real, labels), (fake, labels), (real, wrong), update=True)
        loss_d = self.loss.discriminator_loss(real_logits, torch.cat([fake_logits, wrong_logits]))  # wrong pairs count as fakes
        metrics = self.update_discriminator(loss_d, real, fake, labels, real_logits=real_logits, fake_logits=fake_logits)
        metrics["d_wrong"] = torch.sigmoid(wrong_logits.detach()).mean()  # D's belief that mismatched pairs are real
        return metrics


WAYS = {  # --way: (loss, trainer class, model)
    "loss": (PearsonLeastSquaresLoss(), GANTrainer, "dcgan"),
    "objective": (NonSaturatingLoss(), FadingSmoothingGANTrainer, "dcgan"),
    "step": (NonSaturatingLoss(), MatchingAwareGANTrainer, "cdcgan"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--way", choices=WAYS, default="loss", help="1. loss subclass, 2. objective hook, 3. full step")
    parser.add_argument("--images", type=int, default=20_000, help="built-in shapes to train on")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--width", type=int, default=64, help="g_channels and d_channels")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/pearson")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run of this script (any way) to --epochs / --max-steps")
    args = parser.parse_args(argv)
    say = print if distributed.World.from_env().is_main else (lambda *a, **k: None)  # torchrun: rank 0 prints
    try:
        if args.resume:
            trainer, data = resume_gan_run(args.resume, epochs=args.epochs, max_steps=args.max_steps)  # rebuilds the recorded class
            out = args.resume
        else:
            loss, trainer_class, model = WAYS[args.way]
            data = load_dataset("shapes", n=args.images)
            config = trainer_class.config_class(
                epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, device=args.device, progress=False
            )
            trainer = new_gan_run(model, data, loss=loss, config=config, out_dir=args.out, overwrite=args.overwrite,
                                  trainer_class=trainer_class, g_channels=args.width, d_channels=args.width)
            out = args.out
        history = trainer.fit(data)
    except GanEduError as e:
        print(f"custom_loss: {e}", file=sys.stderr)
        return 2
    finally:
        distributed.shutdown()  # under torchrun: leave the process group
    last = history[-1]
    say(f"{trainer.step} steps of {type(trainer).__name__} with {trainer.loss.name}: d_loss {last['d_loss']:.3f}, "
        f"g_loss {last.get('g_loss', float('nan')):.3f}; curves in {out}/losses.png, samples in {out}/samples.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
