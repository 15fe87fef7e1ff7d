"""Training a classifier with the same loop, checkpoints and history as the GAN trainer.

One step: augment the batch on the device (random crop after zero padding; the loader makes the
random horizontal flips when ``flip`` is set), minimise the cross entropy, with SGD + Nesterov momentum (or AdamW) and a cosine learning-rate
schedule computed from the step number (so resuming restores it exactly).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..augment import random_crop
from ..data.loader import Batch
from ..errors import check
from ..models.classifier import Classifier, predict  # noqa: F401  (predict: its old home, kept for importers)
from .callbacks import Callback
from .trainer import Trainer, TrainerConfig


@dataclasses.dataclass(frozen=True)
class ClassifierTrainerConfig(TrainerConfig):
    """Options of classifier training, on top of the loop's."""

    epochs: int = 15  # enough for the small classifiers on CIFAR-10-sized data
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum: best with batch norm) or "adam" (robust without it)
    lr: float = 0.05  # peak learning rate (cosine decay to 0 over the run); ~1e-3 for adam
    momentum: float = 0.9  # SGD's Nesterov momentum
    weight_decay: float = 5e-4  # L2 on the weights: the usual CIFAR value
    crop_padding: int = 4  # random crop after padding by this many pixels; 0: no crop
    warmup_steps: int = 100  # linear warm-up of the learning rate
    label_smoothing: float = 0.0  # cross-entropy label smoothing (0.2 in the fast CIFAR-10 recipe)
    schedule: str = "cosine"  # "cosine": warm-up then cosine decay; "onecycle": linear up to lr over the first quarter, linear down to 0; "constant": lr throughout

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 < self.lr < 10, f"lr={self.lr!r}: expected a learning rate in (0, 10)")
        check(self.optimizer in ("sgd", "adam"), f"optimizer={self.optimizer!r}: expected 'sgd' or 'adam'")
        check(self.crop_padding >= 0, f"crop_padding={self.crop_padding!r}: expected >= 0")
        check(self.schedule in SCHEDULES, f"schedule={self.schedule!r}: expected one of {', '.join(SCHEDULES)}")
        check(0 <= self.label_smoothing < 1, f"label_smoothing={self.label_smoothing!r}: expected a value in [0, 1)")


SCHEDULES = ("cosine", "onecycle", "constant")


class ClassifierTrainer(Trainer):
    """Trains a :class:`~gan_edu.models.classifier.Classifier` on labelled images."""

    config: ClassifierTrainerConfig
    graph_safe: ClassVar[bool] = True  # the step below can be recorded as a CUDA graph (cuda_graph; see .capture)
    step_methods: ClassVar[tuple[str, ...]] = ("train_step", "learning_rate", "set_learning_rate")

    def __init__(
        self,
        classifier: Classifier,
        config: ClassifierTrainerConfig | None = None,
        *,
        out_dir: str | Path | None = None,
        callbacks: Iterable[Callback] = (),
    ) -> None:
        config = config if config is not None else ClassifierTrainerConfig()
        super().__init__(config, out_dir=out_dir, callbacks=callbacks)
        self.classifier = self.speed.prepare_module(classifier)
        self.forward = self.speed.compiled(self.speed.data_parallel(self.classifier))  # maybe DDP (torchrun), maybe compiled
        decay = [p for p in self.classifier.parameters() if p.ndim > 1]
        no_decay = [p for p in self.classifier.parameters() if p.ndim <= 1]  # no weight decay on BN / biases
        groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # A recorded step (cuda_graph) sets the learning rate on the device: a tensor the fused
        # optimizer reads, written from a step count that lives on the device too.
        recorded = self.records_steps
        self.lr_tensor = torch.tensor(config.lr, device=self.device) if recorded else None
        self.step_count = torch.zeros((), dtype=torch.float64, device=self.device)  # the recorded step's own count of steps
        lr: Any = self.lr_tensor if recorded else config.lr
        if config.optimizer == "sgd":
            self.opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=True, fused=recorded or None)
        else:
            self.opt = torch.optim.AdamW(groups, lr=lr, fused=recorded or None, capturable=recorded)
        self.augment_rng = torch.Generator(device=self.device).manual_seed(config.seed + 17)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"classifier": self.classifier}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"classifier": self.opt}

    def extra_state(self) -> dict[str, Any]:
        return {"augment": self.augment_rng.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "augment" in state:
            self.augment_rng.set_state(state["augment"].cpu())

    def run_config(self) -> dict[str, Any]:
        data = getattr(self, "data", None)
        dataset = getattr(data, "dataset", data)
        return {
            **super().run_config(),
            "classifier": {"class": type(self.classifier).__name__, "config": self.classifier.config.to_dict()},
            "data": {"name": getattr(dataset, "name", None), "options": getattr(dataset, "options", {}), "size": len(dataset) if dataset is not None else 0},
        }

    def resume_hint(self) -> str:
        # No command resumes a classifier run (``gan-edu train --resume`` is for GANs): say so plainly.
        return "a classifier run has no resume command; to finish the experiment, run the same gan-edu pipeline command again with --overwrite (it starts over)"

    def fit(self, data: Any) -> list[dict[str, Any]]:
        loader = self.make_loader(data)
        self.total_steps = len(loader) * self.config.epochs
        if self.config.max_steps is not None:
            self.total_steps = min(self.total_steps, self.config.max_steps)
        return super().fit(loader)

    def learning_rate(self, step: int | torch.Tensor) -> Any:
        """``cosine``: linear warm-up, then cosine decay to 0 at the last step. ``onecycle``: a
        triangle, linear from 0 to ``lr`` over the first quarter of the steps, then down to 0.
        ``constant``: ``lr`` at every step (the plain recipe of reference project 000).

        ``step`` an int: a float. ``step`` a float64 tensor (the recorded step's count, on the
        device): a tensor, computed there, so a CUDA graph replays the schedule.
        """
        cfg = self.config
        total = max(1, getattr(self, "total_steps", 1))
        t = step if isinstance(step, torch.Tensor) else torch.tensor(float(step), dtype=torch.float64)
        if cfg.schedule == "constant":
            lr = cfg.lr * torch.ones_like(t)
        elif cfg.schedule == "onecycle":
            peak = max(1, total // 4)
            lr = cfg.lr * torch.where(t < peak, (t + 1) / peak, torch.clamp((total - t) / max(1, total - peak), min=0.0))
        else:
            progress = torch.clamp((t - cfg.warmup_steps) / max(1, total - cfg.warmup_steps), max=1.0)
            lr = cfg.lr * torch.where(t < cfg.warmup_steps, (t + 1) / cfg.warmup_steps, 0.5 * (1 + torch.cos(math.pi * progress)))
        return lr if isinstance(step, torch.Tensor) else float(lr)

    def set_learning_rate(self) -> None:
        """The schedule's rate for this step, into the optimizer (the recorded step: on the device)."""
        if self.lr_tensor is not None and self.captured is not None:
            for group in self.opt.param_groups:
                group["lr"] = self.lr_tensor  # again: loading a checkpoint puts plain numbers there
            self.lr_tensor.copy_(self.learning_rate(self.step_count))
            self.step_count.add_(1)
        else:
            for group in self.opt.param_groups:
                group["lr"] = self.learning_rate(self.step)

    def capture_step(self, loader: Any = None) -> Any:
        captured = super().capture_step(loader)
        self.step_count.fill_(self.step)  # the device's count starts where the run is (a resume)
        return captured

    def graph_generators(self) -> list[torch.Generator]:
        return [self.augment_rng]

    def graph_constants(self) -> tuple[Any, ...]:
        return (self.total_steps,)  # the schedule's length, frozen into a recorded step

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        images, labels = batch
        if self.config.crop_padding:
            images = random_crop(images, self.config.crop_padding, self.augment_rng)
        images = self.prepare_batch(images)
        self.set_learning_rate()
        with self.autocast():
            logits = self.forward(images).float()  # (N, K)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing)
        self.optimize(loss, self.opt)
        return {"loss": loss.detach(), "accuracy": (logits.detach().argmax(1) == labels).float().mean()}
