"""Where a trainer computes and in which precision: the device, autocast, layout, the optimizer step.

:class:`SpeedSwitches` holds the Trainer's switches (``TrainerConfig``'s device and speed
options) as the methods a training step uses: ``prepare_module``, ``data_parallel``,
``compiled``, ``autocast``, ``make_adam``, ``optimize``, ``prepare_batch`` and ``make_loader``. What each switch
buys is measured in docs/performance.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..data.images import ImageSet
from ..data.loader import Loader, make_loader
from ..errors import GanEduError, check
from . import distributed

#: Devices where ``fused_optimizer`` gives fused Adam kernels (torch has them for both).
FUSED_ADAM_DEVICES = ("cuda", "cpu")


def uses_channels_last(option: bool | None, device: torch.device) -> bool:
    """The ``channels_last`` option resolved for ``device``: None means on for the CPU, off elsewhere.

    On the CPU oneDNN's convolutions are faster in NHWC (in one idle run a DCGAN step 6% faster at
    batch 64 and 11% at 128, the classifiers' steps 1.2x to 1.5x: docs/performance.md); on GPUs
    NHWC pays only under bf16/fp16, so fp32 stays NCHW there.

    >>> uses_channels_last(None, torch.device("cpu")), uses_channels_last(None, torch.device("cuda")), uses_channels_last(False, torch.device("cpu"))
    (True, False, False)
    """
    return device.type == "cpu" if option is None else option

if TYPE_CHECKING:
    from .config import TrainerConfig

#: Autocast dtypes by the names ``TrainerConfig.precision`` takes; None: plain fp32, no autocast.
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` to CUDA when available, else CPU; anything else checked and returned.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise GanEduError(f"device {device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda":
        check(torch.cuda.is_available(), f"device {device!r}: CUDA is not available here; use --device cpu or auto")
        check(dev.index is None or dev.index < torch.cuda.device_count(), f"device {device!r}: only {torch.cuda.device_count()} CUDA devices")
    else:
        check(dev.type == "cpu", f"device {device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return dev


def configure_backends(device: torch.device, *, cudnn_benchmark: bool) -> None:
    """CUDA only: let cuDNN time and keep the fastest algorithm per shape (the shapes of a run are fixed)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """The loss scaler: on at fp16, whose gradients underflow without it; bf16 has fp32's range and needs none."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def autocast_context(device: torch.device, precision: str, *, cache: bool = True) -> Any:
    """Mixed-precision context for forward passes (a no-op at fp32).

    ``cache=False`` for a step recorded as a CUDA graph: autocast's cache of cast weights would
    hold tensors made outside the graph's memory.
    """
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache)


def rank_device(device: str, world: distributed.World) -> torch.device:
    """The device of this process: ``auto`` / ``cuda`` become ``cuda:LOCAL_RANK`` under torchrun.

    Raises:
        GanEduError: ``cuda:N`` under torchrun (every process would share one GPU), or fewer GPUs
            than processes on this machine.
    """
    dev = resolve_device(device)
    if not world.active or dev.type != "cuda":
        return dev
    check(
        dev.index is None,
        f"device {device!r} under torchrun with {world.size} processes: expected 'auto' or 'cuda' (each process takes the GPU of its LOCAL_RANK)",
    )
    count = torch.cuda.device_count()
    check(world.local_rank < count, f"LOCAL_RANK={world.local_rank}: this machine has {count} GPUs; start at most {count} processes per machine")
    return torch.device("cuda", world.local_rank)


def rng_state() -> dict[str, Any]:
    """torch's global random states: the CPU's, and every CUDA device's once CUDA is in use."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class SpeedSwitches:
    """The device, precision and layout of a trainer, and the methods its step uses them through.

    A :class:`~gan_edu.training.Trainer` owns one (``trainer.speed``) and hands its step these
    methods. What this object holds is all it reads: the config, the process's place among
    torchrun's (``world``), its ``device`` and the fp16 ``scaler``. Whether a step is recorded as a
    CUDA graph is not decided here: the trainer says so (``recorded=``) where it matters (the
    optimizer, autocast's cache), from its one decision (:meth:`.capture.StepRecorder.blocker`).
    """

    def __init__(self, config: TrainerConfig) -> None:
        """Join torchrun's processes (if started by it), take this process's device, set the backends and the scaler."""
        self.config = config
        self.world = distributed.World.from_env()  # one process unless started by torchrun
        self.device = rank_device(config.device, self.world)  # this process's device
        distributed.init_process_group(self.world, self.device)
        configure_backends(self.device, cudnn_benchmark=config.cudnn_benchmark)
        self.scaler = grad_scaler(self.device, config.precision)  # the fp16 loss scaler (disabled at fp32 and bf16)
        self.channels_last = uses_channels_last(config.channels_last, self.device)

    def prepare_module(self, module: nn.Module) -> nn.Module:
        """Move ``module`` to the device (and to channels-last, synchronised batch norm when asked); returns it."""
        module = module.to(self.device)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        if self.config.sync_batchnorm and self.world.active:
            module = distributed.sync_batchnorm(module, self.device)
        return module

    def data_parallel(self, module: nn.Module) -> nn.Module:
        """``module`` wrapped in DistributedDataParallel under torchrun (one forward per backward); else itself."""
        return distributed.data_parallel(module, self.world, self.device)

    def compiled(self, module: nn.Module) -> Any:
        """``module`` itself, or a ``torch.compile``d view of it sharing its weights."""
        return torch.compile(module) if self.config.compile else module

    def autocast(self, *, recorded: bool = False) -> Any:
        """Mixed-precision context for forward passes (a no-op at fp32); without its cache in a recorded step."""
        return autocast_context(self.device, self.config.precision, cache=not recorded)

    def make_adam(self, params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float], *, recorded: bool = False) -> torch.optim.Adam:
        """Adam with fused kernels on CUDA and the CPU (when ``fused_optimizer``), the default foreach ones elsewhere.

        On the CPU the fused update of a width-64 DCGAN pair (1.7M parameters) took 0.6 ms against
        2.4 to 5.3 ms for foreach (docs/performance.md); the arithmetic is Adam's, rounded differently.

        A step recorded as a CUDA graph (``recorded``) gets fused, capturable Adam: its step count
        lives on the device, so the bias correction reads nothing back to the host.
        """
        if recorded:
            return torch.optim.Adam(params, lr=lr, betas=betas, fused=True, capturable=True)
        fused = self.device.type in FUSED_ADAM_DEVICES and self.config.fused_optimizer
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """zero_grad, backward (scaled at fp16), step."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def prepare_batch(self, images: torch.Tensor) -> torch.Tensor:
        """A batch in the memory layout the models use."""
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def make_loader(self, data: ImageSet | Loader) -> Loader:
        """The batches of ``data`` on the training device: a :class:`~gan_edu.data.DeviceLoader` for
        sets in memory, a :class:`~gan_edu.data.FileLoader` (DataLoader workers) for sets on disk."""
        if isinstance(data, Loader):
            return data
        cfg = self.config
        return make_loader(
            data, cfg.batch_size, device=self.device, seed=cfg.seed, flip=cfg.flip, balanced=cfg.balanced,
            rank=self.world.rank, world_size=self.world.size,
        )


def eager_settings(optimizers: Iterable[torch.optim.Optimizer]) -> None:
    """Put optimizers made for a recorded step back to eager settings: not capturable (a step that
    falls back runs eagerly, and a capturable optimizer there only costs time)."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            if group.get("capturable"):
                group["capturable"] = False
