"""The options of the training loop, shared by every trainer, and the GAN trainer's own (each trainer adds its own in a subclass)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ..augment import parse_policy
from ..domains import NonNegativeInt, PositiveFloat, PositiveInt, check_domains, strict_from_dict
from ..errors import check
from .devices import PRECISIONS, resolve_device


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Options of the training loop, shared by every trainer.

    Each field is an option, written once: ``gan-edu train`` makes its flags from the fields (the
    comment is the flag's help, the type says which values it takes), ``gan-edu pipeline`` makes
    the flags of its stages from them, and a run's ``config.json`` records them.
    :attr:`resumable` names the ones a resume may change.
    """

    epochs: PositiveInt = 5  # passes over the training data
    max_steps: PositiveInt | None = None  # stop after this many steps in all (quick tries, tests); None: no limit
    max_seconds: PositiveFloat | None = None  # stop after this much training time in one fit call (a budget); None: no limit
    batch_size: PositiveInt = 128  # 128 as in Radford et al.; smaller batches make batch norm noisier
    device: str = "auto"  # "auto": CUDA when present, else CPU; or "cpu", "cuda", "cuda:1"
    seed: NonNegativeInt = 0  # seeds the noise, the data order and (in the CLI) the weights: same seed, same run
    log_every: PositiveInt = 25  # steps between metric logs; logs are the only host syncs of the loop
    checkpoint_every: PositiveInt | None = None  # steps between extra checkpoints; one is always written per epoch
    progress: bool = True  # tqdm progress bar on stderr
    tensorboard: bool = False  # also log to RUN_DIR/tensorboard/ for TensorBoard (needs the tensorboard package)
    flip: bool = False  # random horizontal flips (not for digits or text-like data)
    balanced: bool = False  # draw every class equally often (with replacement): for unbalanced data
    # -- speed switches: safe defaults; see docs/performance.md for what each one buys ----------
    precision: str = "fp32"  # "fp32", "bf16" or "fp16": autocast of the forward passes; fp16 needs CUDA (GradScaler)
    channels_last: bool | None = None  # NHWC layout of weights and batches; None: on for the CPU (oneDNN's faster convolutions there), off elsewhere (on GPUs it pays under bf16/fp16)
    cudnn_benchmark: bool = True  # CUDA only: cuDNN times and keeps the fastest algorithm per shape (shapes are fixed)
    fused_optimizer: bool = True  # CUDA and CPU: fused Adam kernels (one launch / one pass for all parameters)
    compile: bool = False  # torch.compile the models' forward passes (not the loop): a slow start, then faster steps
    cuda_graph: bool = False  # CUDA only: record the whole step (D and G updates) as a CUDA graph and replay it; falls back, saying why
    # -- several processes (torchrun) ------------------------------------------------------------
    sync_batchnorm: bool = False  # batch norm over the global batch, not each process's slice: the maths of one process, slower

    #: The options a resume may change (``gan-edu train --resume``, :func:`~.runs.resume_gan_run`,
    #: :func:`~.bank.resume_bank`): how long the run goes on, where, how fast and what it logs;
    #: never what it learns from or how. A variant adds its own: ``resumable = TrainerConfig.resumable | {...}``.
    resumable: ClassVar[frozenset[str]] = frozenset({
        "epochs", "max_steps", "max_seconds", "device", "progress", "log_every", "checkpoint_every", "tensorboard",
        "precision", "channels_last", "cudnn_benchmark", "fused_optimizer", "compile", "cuda_graph", "sync_batchnorm",
    })

    def __post_init__(self) -> None:
        check_domains(self)  # epochs, batch_size, seed...: the values their types declare
        if self.tensorboard:
            from .tensorboard import check_tensorboard

            check_tensorboard()  # a missing package is one line now, not a traceback after the first epoch
        check(self.precision in PRECISIONS, f"precision={self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        device = resolve_device(self.device)  # fails early on a nonsense device
        check(
            self.precision != "fp16" or device.type == "cuda",
            f"precision='fp16' on {device.type}: fp16 autocast needs CUDA; use 'bf16' or 'fp32'",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainerConfig:
        return strict_from_dict(cls, values, what="trainer config keys")

    @classmethod
    def check_resumable(cls, changes: dict[str, Any], where: str) -> None:
        """Refuse, in one line, a resume of ``where`` that would change an option outside :attr:`resumable`."""
        fixed = sorted(set(changes) - cls.resumable)
        check(not fixed, f"resume {where} with {', '.join(f'{k}={changes[k]!r}' for k in fixed)}: a resume keeps the run's own "
              f"{', '.join(fixed)}; expected changes of {', '.join(sorted(cls.resumable))} only")


@dataclasses.dataclass(frozen=True)
class GANTrainerConfig(TrainerConfig):
    """Options of GAN training, on top of the loop's."""

    lr_g: float = 2e-4  # Adam learning rate of G: 2e-4 as in Radford et al.
    lr_d: float = 2e-4  # Adam learning rate of D
    beta1: float = 0.5  # Adam beta1: 0.5, not 0.9, steadies GAN training (Radford et al.)
    beta2: float = 0.999  # Adam beta2
    d_steps: PositiveInt | None = None  # D updates per G update; None: the loss's own (5 for WGAN-GP, else 1)
    penalty_every: PositiveInt = 1  # the loss's penalty (R1, WGAN-GP's) on every N-th step only, weighted by N (lazy regularisation, Karras et al. 2020): about 1/N of its cost
    ema: bool = True  # keep an average of G's weights (Yazici et al. 2019); grids, saved G and export use it
    ema_decay: float = 0.999  # its decay (warmed up as min(decay, (1+n)/(10+n))): ~ the last 1,000 G updates
    diffaugment: str = ""  # D sees real and fake through these differentiable transforms: translation,cutout,color (Zhao et al. 2020)
    snapshots: NonNegativeInt = 0  # also keep the sampling G at the ends of the last N epochs before the final one (snapshots/), for a snapshot ensemble of synthetic data
    samples_per_class: PositiveInt = 8  # sample grid: columns per class row (conditional models)
    num_samples: PositiveInt = 64  # sample grid: images in all (unconditional models)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("lr_g", "lr_d"):
            value = getattr(self, name)
            check(isinstance(value, (int, float)) and 0 < value < 1, f"{name}={value!r}: expected a learning rate in (0, 1)")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            check(isinstance(value, (int, float)) and 0 <= value < 1, f"{name}={value!r}: expected a value in [0, 1)")
        check(isinstance(self.ema_decay, float) and 0 <= self.ema_decay < 1, f"ema_decay={self.ema_decay!r}: expected a float in [0, 1)")
        parse_policy(self.diffaugment)  # one line naming a bad transform
