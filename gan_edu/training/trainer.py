"""The :class:`Trainer` base class: the training loop, and everything around it that a run needs.

A Trainer owns the loop (:meth:`Trainer.fit`), the device, seeding, metrics history, progress
bar, checkpoints, resume, interruption and divergence handling. It knows nothing of the models:
a subclass says which modules and optimizers it has and what one step does.

To make a trainer, subclass and implement:

* :meth:`Trainer.modules` and :meth:`Trainer.optimizers`: what a checkpoint holds;
* :meth:`Trainer.train_step`: one batch in, a dict of detached scalar tensors out.

``fit`` keeps working when you override ``train_step``.

Host synchronisation: metrics stay tensors on the device and are summed there; they are turned
into Python floats only every ``log_every`` steps, so a GPU is never made to wait each step.

Several processes (``torchrun``): the Trainer joins the process group, each process trains on
its slice of every global batch, and only rank 0 writes files; see :mod:`.distributed`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..data.images import ImageSet
from ..data.loader import Batch, Loader, make_loader
from ..errors import GanEduError, check
from ..io import atomic_open, atomic_write_json, remove_stale_temporaries
from ..models.base import load_state_dict_checked
from . import distributed
from .callbacks import Callback
from .checkpoint import load_checkpoint, save_checkpoint

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CHECKPOINT_NAME = "checkpoints/last.pt"
HISTORY_NAME = "history.jsonl"
CONFIG_NAME = "config.json"


class TrainingInterrupted(GanEduError):
    """Ctrl-C or SIGTERM: the run stopped cleanly after writing a checkpoint."""


class TrainingDiverged(GanEduError):
    """A loss or a weight became NaN or infinite; the last good checkpoint is kept."""


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Options of the training loop, shared by every trainer."""

    epochs: int = 5  # passes over the training data
    max_steps: int | None = None  # stop after this many steps in all (quick tries, tests); None: no limit
    max_seconds: float | None = None  # stop after this much training time in one fit call (a budget); None: no limit
    batch_size: int = 128  # 128 as in Radford et al.; smaller batches make batch norm noisier
    device: str = "auto"  # "auto": CUDA when present, else CPU; or "cpu", "cuda", "cuda:1"
    seed: int = 0  # seeds the noise, the data order and (in the CLI) the weights: same seed, same run
    log_every: int = 25  # steps between metric logs; logs are the only host syncs of the loop
    checkpoint_every: int | None = None  # steps between extra checkpoints; one is always written per epoch
    progress: bool = True  # tqdm progress bar on stderr
    tensorboard: bool = False  # also log to RUN_DIR/tensorboard/ for TensorBoard (needs the tensorboard package)
    flip: bool = False  # random horizontal flips (not for digits or text-like data)
    balanced: bool = False  # draw every class equally often (with replacement): for unbalanced data
    # -- speed switches: safe defaults; see docs/performance.md for what each one buys ----------
    precision: str = "fp32"  # "fp32", "bf16" or "fp16": autocast of the forward passes; fp16 needs CUDA (GradScaler)
    channels_last: bool = False  # NHWC layout of weights and batches: faster convolutions on tensor-core GPUs
    cudnn_benchmark: bool = True  # CUDA only: cuDNN times and keeps the fastest algorithm per shape (shapes are fixed)
    fused_optimizer: bool = True  # CUDA only: fused Adam kernels (one launch for all parameters)
    compile: bool = False  # torch.compile the models' forward passes (not the loop): a slow start, then faster steps
    # -- several processes (torchrun) ------------------------------------------------------------
    sync_batchnorm: bool = False  # batch norm over the global batch, not each process's slice: the maths of one process, slower

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "log_every"):
            value = getattr(self, name)
            check(isinstance(value, int) and value > 0, f"{name}={value!r}: expected a positive int")
        check(self.max_seconds is None or (isinstance(self.max_seconds, (int, float)) and self.max_seconds > 0), f"max_seconds={self.max_seconds!r}: expected a positive number or None")
        for name in ("max_steps", "checkpoint_every"):
            value = getattr(self, name)
            check(value is None or (isinstance(value, int) and value > 0), f"{name}={value!r}: expected a positive int or None")
        check(isinstance(self.seed, int) and self.seed >= 0, f"seed={self.seed!r}: expected a non-negative int")
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
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        check(not unknown, f"trainer config keys {unknown}: not options of {cls.__name__}")
        return cls(**values)


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


class Trainer(ABC):
    """The training loop. Subclasses supply the modules, the optimizers and one step.

    Args:
        config: loop options.
        out_dir: the run folder (config, checkpoints, history, pictures); None keeps nothing.
        callbacks: extra :class:`Callback` objects, called after the trainer's own.

    Attributes:
        step: optimisation steps done so far (over all epochs, resumes included).
        epoch: complete epochs done so far.
        history: every logged record, as written to ``history.jsonl``.
    """

    def __init__(self, config: TrainerConfig, *, out_dir: str | Path | None = None, callbacks: Iterable[Callback] = ()) -> None:
        self.config = config
        self.world = distributed.World.from_env()  # one process unless started by torchrun
        self.device = distributed.rank_device(config.device, self.world)
        distributed.init_process_group(self.world, self.device)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks: list[Callback] = list(self.default_callbacks()) + list(callbacks)
        if config.tensorboard:
            from .tensorboard import TensorBoardLogger

            self.callbacks.append(TensorBoardLogger())
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0  # batches of the current epoch already done (for mid-epoch resume)
        self.history: list[dict[str, Any]] = []
        self._epoch_meter = Meter()
        self._stop_signal: int | None = None
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = config.cudnn_benchmark
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")

    # -- the speed switches, for subclasses to use ------------------------------------------
    def prepare_module(self, module: nn.Module) -> nn.Module:
        """Move ``module`` to the device (and to channels-last, synchronised batch norm when asked); returns it."""
        module = module.to(self.device)
        if self.config.channels_last:
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

    def autocast(self) -> Any:
        """Mixed-precision context for forward passes (a no-op at fp32)."""
        dtype = PRECISIONS[self.config.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def make_adam(self, params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        """Adam with fused kernels on CUDA (when ``fused_optimizer``), the default foreach ones elsewhere."""
        fused = self.device.type == "cuda" and self.config.fused_optimizer
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """zero_grad, backward (scaled at fp16), step."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def prepare_batch(self, images: torch.Tensor) -> torch.Tensor:
        """A batch in the memory layout the models use."""
        return images.contiguous(memory_format=torch.channels_last) if self.config.channels_last else images

    # -- what a subclass supplies -----------------------------------------------------------
    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """The modules a checkpoint holds, by name."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers a checkpoint holds, by name."""

    @abstractmethod
    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One optimisation step on ``batch``; returns detached scalar tensors (no ``.item()``)."""

    def default_callbacks(self) -> Iterable[Callback]:
        """Callbacks a trainer always has (pictures, for instance); none here."""
        return ()

    def run_config(self) -> dict[str, Any]:
        """What goes into the run's ``config.json``; subclasses add their models and loss."""
        return {
            "gan_edu_version": __version__,
            "trainer_class": type(self).__name__,
            "trainer": self.config.to_dict(),
            "world_size": self.world.size,  # processes that shared each batch (torchrun); 1: one process
        }

    def extra_state(self) -> dict[str, Any]:
        """More state for the checkpoint (random generators of the subclass, say)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

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

    # -- the loop -------------------------------------------------------------------------
    def fit(self, data: ImageSet | Loader) -> list[dict[str, Any]]:
        """Train until ``config.epochs`` epochs (or ``config.max_steps`` steps) are done.

        Continues from ``self.step`` / ``self.epoch``, so calling :meth:`resume` first (or fit
        again with more epochs) carries on where the last call stopped.

        Returns:
            The history records.

        Raises:
            TrainingInterrupted: after Ctrl-C / SIGTERM, once the checkpoint is written.
            TrainingDiverged: a loss or weight became NaN / inf; nothing newer is saved.
        """
        cfg = self.config
        self.data = data
        loader = self.make_loader(data)
        check(len(loader) > 0, f"training data of {len(loader.dataset)} images: no complete batch of {cfg.batch_size}")
        total = len(loader) * cfg.epochs
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        if self.writes_files:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out_dir / CONFIG_NAME, self.run_config())
        for cb in self.rank_callbacks:
            cb.on_fit_start(self)
        window = Meter()  # metrics since the last log; self._epoch_meter: since the epoch began
        start_time = self._fit_start = time.perf_counter()
        bar = self._progress_bar(total)
        with self._signals_caught():
            while self.epoch < cfg.epochs and not self._done():
                for batch in loader.iterate(self.epoch, start=self.batch_in_epoch):
                    metrics = self.train_step(batch)
                    window.add(metrics)  # summed on the device: no host sync
                    self._epoch_meter.add(metrics)
                    self.step += 1
                    self.batch_in_epoch += 1
                    if bar is not None:
                        bar.update(1)
                    if self.step % cfg.log_every == 0 or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0):
                        self._log(window, kind="step", bar=bar)
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                        self.save_checkpoint()
                    if self._stop_requested() or self._done():
                        break
                else:  # the epoch ran to its end
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    self._log(window, kind="step", bar=bar)
                    self._log(self._epoch_meter, kind="epoch", bar=bar)
                    for cb in self.rank_callbacks:
                        cb.on_epoch_end(self)
                    self.save_checkpoint()
                    continue
                break  # stopped inside an epoch: a signal or max_steps
            self._log(window, kind="step", bar=bar)
            if self.batch_in_epoch:  # stopped inside an epoch; epoch ends already saved theirs
                self.save_checkpoint()
        if bar is not None:
            bar.close()
        self.elapsed = time.perf_counter() - start_time
        self._stop_signal = distributed.agreed_stop(self._stop_signal, self.world, self.device)
        if self._stop_signal is not None:
            name = signal.Signals(self._stop_signal).name
            where = f" in {self.out_dir}" if self.out_dir is not None else ""
            raise TrainingInterrupted(f"{name} received: stopped after step {self.step}, checkpoint written{where}; {self.resume_hint()}")
        for cb in self.rank_callbacks:
            cb.on_fit_end(self)
        distributed.barrier(self.world)  # every rank returns once rank 0 has written its files
        return self.history

    def resume_hint(self) -> str:
        """What an interrupted run tells the user to do next (a trainer with no resume command says so)."""
        return f"resume with: gan-edu train --resume {self.out_dir or 'RUN_DIR'}"

    def _done(self) -> bool:
        cfg = self.config
        if cfg.max_seconds is not None and time.perf_counter() - self._fit_start >= cfg.max_seconds:
            return True
        return cfg.max_steps is not None and self.step >= cfg.max_steps

    @property
    def writes_files(self) -> bool:
        """This process writes the run folder: it has one, and it is rank 0 (or the only process)."""
        return self.out_dir is not None and self.world.is_main

    @property
    def rank_callbacks(self) -> list[Callback]:
        """The callbacks this process calls: all of them on rank 0, none on the other ranks."""
        return self.callbacks if self.world.is_main else []

    def _stop_requested(self) -> bool:
        """A stop signal arrived. Several processes agree at log steps, so all stop after the same step."""
        if self.world.active:
            if self.step % self.config.log_every:
                return False
            self._stop_signal = distributed.agreed_stop(self._stop_signal, self.world, self.device)
        return self._stop_signal is not None

    def _progress_bar(self, total: int) -> Any:
        if not self.config.progress or not self.world.is_main:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=min(self.step, total), desc=type(self).__name__, unit="step", dynamic_ncols=True, leave=True)

    def _log(self, meter: Meter, *, kind: str, bar: Any) -> None:
        """Average a meter's metrics (one host sync), check them, record and show them; reset it."""
        if not meter.sums:
            return
        values = meter.averages(self.world)
        meter.reset()
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            raise TrainingDiverged(
                f"{', '.join(f'{k}={v}' for k, v in bad.items())} at step {self.step} (epoch {self.epoch}): "
                "training diverged; the last good checkpoint is kept" + (f" in {self.out_dir}" if self.out_dir else "")
            )
        record: dict[str, Any] = {"kind": kind, "step": self.step, "epoch": self.epoch, **values, "time": round(time.time(), 3)}
        self.history.append(record)
        if self.writes_files:
            with open(self.out_dir / HISTORY_NAME, "a") as f:
                f.write(json.dumps(record) + "\n")
        if bar is not None:
            bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)
        for cb in self.rank_callbacks:
            cb.on_log(self, record)

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / CHECKPOINT_NAME if self.out_dir is not None else None

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds."""
        state: dict[str, Any] = {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "modules": {k: m.state_dict() for k, m in self.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
            "rng": {"torch": torch.get_rng_state()},
            "extra": self.extra_state(),
            "epoch_meter": self._epoch_meter.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "run_config": json.dumps(self.run_config()),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def check_finite_weights(self) -> None:
        """Raise :class:`TrainingDiverged` if any weight is NaN or infinite."""
        for name, module in self.modules().items():
            for pname, p in module.named_parameters():
                if not torch.isfinite(p).all():
                    raise TrainingDiverged(
                        f"{name}.{pname} is not finite at step {self.step} (epoch {self.epoch}): training diverged; "
                        "the last good checkpoint is kept" + (f" in {self.out_dir}" if self.out_dir else "")
                    )

    def save_checkpoint(self, path: str | Path | None = None) -> Path | None:
        """Write the checkpoint (atomically) after checking that every weight is finite.

        Several processes: every rank calls it (the epoch's metrics are averaged over ranks
        first); rank 0 writes. Returns the path, or None where nothing was written.
        """
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            return None
        self.check_finite_weights()
        self._epoch_meter.average_over_ranks(self.world)  # so every rank resumes with the same sums
        if not self.world.is_main:
            return None
        save_checkpoint(path, self.state_dict())
        return path

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore what :meth:`state_dict` returned."""
        modules, optimizers = self.modules(), self.optimizers()
        check(
            set(state.get("modules", {})) == set(modules),
            f"{source}: holds modules {sorted(state.get('modules', {}))}, expected {sorted(modules)}",
        )
        for k, m in modules.items():
            load_state_dict_checked(m, state["modules"][k], f"{source} [{k}]")
        for k, o in optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.step, self.epoch, self.batch_in_epoch = int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.load_extra_state(state.get("extra", {}))
        self._epoch_meter = Meter()
        self._epoch_meter.load_state_dict(state.get("epoch_meter", {}))
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def resume(self, path: str | Path | None = None) -> None:
        """Load the checkpoint (default: the run folder's last one) and the history up to it."""
        path = Path(path) if path is not None else self.checkpoint_path
        check(path is not None, "resume: no checkpoint path and no out_dir")
        assert path is not None
        state = load_checkpoint(path, map_location=self.device)
        self.load_state_dict(state, str(path))
        if self.out_dir is not None:
            # The run stopped somewhere after this checkpoint (a kill -9, a crash): what it logged since
            # is redone from here, so drop it; a record is past the checkpoint when its step is, or
            # when it closed an epoch the checkpoint had not (the last batch of an epoch is
            # checkpointed by --checkpoint-every before the epoch-end record).
            if (self.out_dir / HISTORY_NAME).exists():
                records = read_history(self.out_dir / HISTORY_NAME)
                self.history = [r for r in records if r["step"] <= self.step and r["epoch"] <= self.epoch]
                if self.writes_files:
                    with atomic_open(self.out_dir / HISTORY_NAME, "w") as f:
                        f.writelines(json.dumps(r) + "\n" for r in self.history)
            if self.writes_files:
                remove_stale_temporaries(self.out_dir, recursive=True)  # half-written files of the stopped process

    # -- interruption -----------------------------------------------------------------------
    def _signals_caught(self) -> Any:
        trainer = self

        class _Catch:
            def __enter__(self) -> None:
                trainer._stop_signal = None
                self.old: dict[int, Any] = {}
                if threading.current_thread() is not threading.main_thread():
                    return
                for sig in (signal.SIGINT, signal.SIGTERM):
                    self.old[sig] = signal.signal(sig, self.handler)

            def handler(self, signum: int, frame: Any) -> None:
                # A second Ctrl-C: stop now. (Under torchrun a Ctrl-C reaches a process twice, from
                # the terminal and from torchrun, and the stop waits for the next log step: no.)
                if trainer._stop_signal is not None and not trainer.world.active:
                    raise KeyboardInterrupt
                trainer._stop_signal = signum  # finish the current step, checkpoint, stop

            def __exit__(self, *exc: Any) -> None:
                for sig, old in self.old.items():
                    signal.signal(sig, old)

        return _Catch()


class Meter:
    """Sums of scalar metric tensors on the device, and how many steps reported each."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        for k, v in metrics.items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
            self.counts[k] = self.counts.get(k, 0) + 1

    def averages(self, world: distributed.World | None = None) -> dict[str, float]:
        """The means as floats (over all ranks of ``world``): the one host sync."""
        means = torch.stack([s / self.counts[k] for k, s in self.sums.items()])  # (K,)
        values = distributed.mean_over_ranks(means, world or distributed.World()).tolist()
        return dict(zip(self.sums, values))

    def average_over_ranks(self, world: distributed.World) -> None:
        """Replace each sum by its mean over the ranks (every rank counts the same steps)."""
        if world.active and self.sums:
            means = distributed.mean_over_ranks(torch.stack(list(self.sums.values())), world)  # (K,)
            self.sums = dict(zip(self.sums, means.unbind()))

    def reset(self) -> None:
        self.sums, self.counts = {}, {}

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums, self.counts = dict(state.get("sums", {})), dict(state.get("counts", {}))


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``history.jsonl`` file; a torn last line (a crash mid-write) is skipped."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records

