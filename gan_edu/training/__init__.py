"""Training: the Trainer base class, the GAN trainer, callbacks and checkpoints."""

from __future__ import annotations

from .callbacks import Callback
from .checkpoint import load_checkpoint, save_checkpoint
from .gan_trainer import GANTrainer, GANTrainerConfig, LossCurves, SampleGrid, SaveModels
from .trainer import (
    Trainer,
    TrainerConfig,
    TrainingDiverged,
    TrainingInterrupted,
    read_history,
    resolve_device,
)

__all__ = [
    "Callback",
    "GANTrainer",
    "GANTrainerConfig",
    "LossCurves",
    "SampleGrid",
    "SaveModels",
    "Trainer",
    "TrainerConfig",
    "TrainingDiverged",
    "TrainingInterrupted",
    "load_checkpoint",
    "read_history",
    "resolve_device",
    "save_checkpoint",
]
