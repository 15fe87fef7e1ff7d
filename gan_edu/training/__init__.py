"""Training: the Trainer base class, the GAN trainer and its registry, callbacks and checkpoints."""

from __future__ import annotations

from .acgan import ACGANTrainer, ACGANTrainerConfig
from .callbacks import Callback
from .checkpoint import load_checkpoint, save_checkpoint
from .gan_trainer import GANTrainer, GANTrainerConfig, LossCurves, SampleGrid, SaveModels
from .mode_seeking import ModeSeekingTrainer, ModeSeekingTrainerConfig, mode_seeking_term
from .registry import TRAINERS, get_trainer_class, register_trainer
from .trainer import (
    Trainer,
    TrainerConfig,
    TrainingDiverged,
    TrainingInterrupted,
    read_history,
    resolve_device,
)

__all__ = [
    "ACGANTrainer",
    "ACGANTrainerConfig",
    "Callback",
    "GANTrainer",
    "GANTrainerConfig",
    "LossCurves",
    "ModeSeekingTrainer",
    "ModeSeekingTrainerConfig",
    "SampleGrid",
    "SaveModels",
    "TRAINERS",
    "Trainer",
    "TrainerConfig",
    "TrainingDiverged",
    "TrainingInterrupted",
    "get_trainer_class",
    "load_checkpoint",
    "mode_seeking_term",
    "read_history",
    "register_trainer",
    "resolve_device",
    "save_checkpoint",
]
