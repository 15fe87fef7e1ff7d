"""Training on several GPUs or machines: the plumbing between ``torchrun`` and the Trainer.

``torchrun`` starts one process per GPU and tells each who it is through environment variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). The same
``gan-edu train`` command then runs in every process; the Trainer reads its :class:`World` here
and, when there is more than one process:

* joins the process group (NCCL between GPUs, gloo on CPU) and takes the GPU of its local rank;
* wraps the models that are trained in :class:`~torch.nn.parallel.DistributedDataParallel`,
  which averages the gradients over the processes in ``backward`` (:func:`data_parallel`);
* takes its own slice of every global batch: every process computes the same shuffled order
  from ``(seed, epoch)`` and rank ``r`` of ``W`` keeps positions ``[r B/W, (r+1) B/W)`` of each
  batch of ``B`` (:meth:`World.slice`); ``--batch-size`` is the *global* batch;
* optionally replaces batch norm by a synchronised one (:func:`sync_batchnorm`), whose
  statistics are those of the global batch;
* writes files (checkpoints, pictures, history, config, progress bar) on rank 0 only.

Why the global batch: with the global noise batch sliced the same way (every process draws the
same ``B`` noise vectors and keeps its slice) and synchronised batch norm, ``W`` processes
compute exactly the gradients one process computes on the whole batch, so the run is the same
run, whatever ``W``: the learning rate keeps its meaning, and a run can be resumed on another
number of GPUs. Without synchronised batch norm, each process normalises by the statistics of
its own ``B/W`` images: still a valid (and the usual, faster) way to train, but not the same
numbers as one process with batch ``B``.

No home-made distribution: the launcher is ``torchrun``, the gradient averaging is DDP's. The one
piece written here, :class:`AllReduceBatchNorm2d`, exists because torch's ``SyncBatchNorm`` has
GPU kernels only; it makes synchronised batch norm available on CPU (gloo), where the tests run.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import GanEduError, check


@dataclasses.dataclass(frozen=True)
class World:
    """Where this process stands among the processes of a run (one process: rank 0 of 1)."""

    rank: int = 0  # this process among all of them; rank 0 writes the files
    size: int = 1  # processes in all (WORLD_SIZE): the global batch is split in this many slices
    local_rank: int = 0  # this process among those of its machine: picks its GPU

    @classmethod
    def from_env(cls) -> World:
        """The world ``torchrun`` describes in ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``; one process without them."""
        values = {}
        for name, field in (("RANK", "rank"), ("WORLD_SIZE", "size"), ("LOCAL_RANK", "local_rank")):
            text = os.environ.get(name)
            if text is None:
                continue
            try:
                values[field] = int(text)
            except ValueError:
                raise GanEduError(f"environment variable {name}={text!r}: expected an int (as torchrun sets it)") from None
        world = cls(**values)
        check(world.size >= 1 and 0 <= world.rank < world.size, f"RANK={world.rank}, WORLD_SIZE={world.size}: expected 0 <= RANK < WORLD_SIZE")
        return world

    @property
    def active(self) -> bool:
        """More than one process: DDP, sliced batches, rank-0 files."""
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0

    def slice(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch: rows ``[r N/W, (r+1) N/W)`` of ``(N, ...)``.

        >>> World(rank=1, size=2).slice(torch.arange(6)).tolist()
        [3, 4, 5]
        """
        if not self.active:
            return batch
        n = batch.shape[0] // self.size
        return batch[self.rank * n : (self.rank + 1) * n]  # (N/W, ...)


def init_process_group(world: World, device: torch.device) -> None:
    """Join the run's process group (NCCL on CUDA, gloo on CPU), once per process; no-op for one process."""
    if not world.active or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, rank=world.rank, world_size=world.size, device_id=device if device.type == "cuda" else None)
    except ValueError as e:  # no MASTER_ADDR / MASTER_PORT: started by hand, not by torchrun
        first = str(e).strip().splitlines()[0]
        raise GanEduError(f"WORLD_SIZE={world.size} without a torchrun rendezvous ({first}); start with: torchrun --nproc_per_node N -m gan_edu train ...") from None


def barrier(world: World) -> None:
    """Wait until every rank got here; no-op for one process."""
    if world.active:
        dist.barrier()


def shutdown(*, wait: bool = False) -> None:
    """Leave the process group (at the end of a run); no-op when none was joined.

    ``wait``: first wait until every rank is here (a run that ended normally): a rank that closes
    its connections while a peer is still finishing can make gloo abort that peer ("connection
    closed by peer"). Not after an error, when a peer may never arrive.
    """
    if dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def data_parallel(module: nn.Module, world: World, device: torch.device) -> nn.Module:
    """``module`` wrapped in DistributedDataParallel (gradients averaged over ranks in backward); itself for one process.

    DDP expects one forward per backward; a module called twice before one ``backward`` (the
    discriminator on real and on fake images) is wrapped as one module that makes both calls.
    """
    if not world.active:
        return module
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def mean_over_ranks(values: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of ``values`` over all ranks (every rank gets it); ``values`` itself for one process."""
    if not world.active:
        return values
    values = values.clone()
    dist.all_reduce(values)  # sum over ranks, in place
    return values / world.size


def agreed_stop(signal_number: int | None, world: World, device: torch.device) -> int | None:
    """A stop signal any rank received, agreed by all (so all stop after the same step)."""
    if not world.active:
        return signal_number
    flag = torch.tensor([signal_number or 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item()) or None


# -- synchronised batch norm --------------------------------------------------------------------
def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Batch norm over the global batch: torch's SyncBatchNorm on GPUs, :class:`AllReduceBatchNorm2d` on CPU.

    The converted layers share the parameters and buffers of the old ones, so state dicts,
    checkpoints and ``save_pretrained`` stay as they were (a model saved from a distributed run
    loads into a plain one).
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, AllReduceBatchNorm2d):
            setattr(module, name, AllReduceBatchNorm2d.like(child))
        else:
            sync_batchnorm(child, device)
    return module


class AllReduceBatchNorm2d(nn.BatchNorm2d):
    """Batch norm with the mean and variance of the global batch, for CPU (gloo) runs.

    In training, each rank sums ``x`` and ``x**2`` per channel over its slice; one all-reduce
    (:class:`SumOverRanks`, which also carries the gradients back to every rank) gives the
    global sums, hence the global mean and (biased) variance that normalise; the running
    statistics take the unbiased variance, as :class:`torch.nn.BatchNorm2d` does. In evaluation,
    or without a process group, it is plain batch norm.
    """

    @classmethod
    def like(cls, bn: nn.BatchNorm2d) -> AllReduceBatchNorm2d:
        """A synchronised twin of ``bn`` sharing its parameters and buffers."""
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        for name, p in bn.named_parameters(recurse=False):
            setattr(new, name, p)
        for name, b in bn.named_buffers(recurse=False):
            setattr(new, name, b)
        return new.train(bn.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        count = torch.full((1,), x.numel() // c, dtype=x.dtype, device=x.device)
        sums = SumOverRanks.apply(torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), count]))  # (2C + 1,) over all ranks
        n = sums[-1]
        mean = sums[:c] / n  # (C,)
        var = (sums[c : 2 * c] / n - mean * mean).clamp_min(0)  # (C,) biased, as batch norm normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1), momentum)
        y = (x - mean[:, None, None]) * torch.rsqrt(var + self.eps)[:, None, None]  # (N, C, H, W)
        if self.affine:
            y = y * self.weight[:, None, None] + self.bias[:, None, None]
        return y



class SumOverRanks(torch.autograd.Function):
    """``y = x_0 + x_1 + ... + x_{W-1}`` on every rank, differentiable.

    Every rank's loss depends on every rank's ``x`` through ``y``, so the gradient of ``x_r`` is
    the sum of the upstream gradients of all ranks: the backward pass is an all-reduce too.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)  # sum over ranks, in place
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad



class RefusedOnEveryRank(GanEduError):
    """A refusal every process of a torchrun run makes alike (it comes from the options, not from the
    machine): the command prints it once, from rank 0, instead of once per process."""


class JointForward(nn.Module):
    """Several calls of D as one module call (DDP wants one forward per backward).

    Args:
        discriminator: the D (or its compiled view); the wrapper holds no weights of its own.
    """

    def __init__(self, discriminator: nn.Module, *, with_classes: bool = False) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.with_classes = with_classes  # also D's class logits (an aux_head D, for AC-GAN)

    def forward(self, batches: tuple[tuple[torch.Tensor, torch.Tensor | None], ...]) -> tuple[Any, ...]:
        """``(images (N, C, H, W), labels (N,) or None)`` pairs to their ``(N,)`` logits, one D call each
        (with ``with_classes``: ``(logits (N,), class logits (N, K))`` pairs)."""
        if self.with_classes:
            return tuple(self.discriminator(images, labels, with_classes=True) for images, labels in batches)
        return tuple(self.discriminator(images, labels) for images, labels in batches)
