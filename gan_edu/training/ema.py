"""Generator averaging: an exponential moving average (EMA) of G's weights.

Yazıcı et al., "The Unusual Effectiveness of Averaging in GAN Training", ICLR 2019: the weights G
holds at any one step oscillate around a good solution (D and G chase each other); their running
average sits closer to it, and its samples are cleaner, at no training cost. BigGAN and StyleGAN
sample from such an average. Only the copy is averaged: training still uses G's own weights.

After every G update, with ``n`` the number of updates so far::

    decay_n = min(decay, (1 + n) / (10 + n))       # warm-up: early on follow G closely
    ema     = decay_n * ema + (1 - decay_n) * G    # every parameter and float buffer

Buffers (batch norm's running statistics) are averaged the same way, so the copy's statistics
match its weights; integer buffers (batch counts) are copied.

>>> g = torch.nn.Linear(2, 1)
>>> ema = EMA(g, decay=0.999)
>>> ema.update(g); ema.updates
1
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import check


def ema_decay(decay: float, updates: int) -> float:
    """The decay used at the ``updates``-th update (counting from 0), warm-up included.

    >>> ema_decay(0.999, 0), round(ema_decay(0.999, 90), 3), ema_decay(0.999, 100_000)
    (0.1, 0.91, 0.999)
    """
    return min(decay, (1 + updates) / (10 + updates))


class EMA:
    """An averaged copy of ``module`` (same class, same config, its own tensors, never trained).

    The count of updates lives on the module's device and the decay is computed there, so an
    update reads nothing back to the host and can be recorded in a CUDA graph
    (:mod:`.capture`); :attr:`updates` reads it when asked (checkpoints).

    Args:
        module: the model to follow (G).
        decay: the average's decay, in [0, 1); 0.999 averages over roughly the last 1,000 updates.

    Attributes:
        module: the averaged copy, in eval mode, with gradients off.
        count: how many updates it has seen, a float64 0-d tensor on the module's device.
    """

    def __init__(self, module: nn.Module, decay: float = 0.999) -> None:
        check(isinstance(decay, float) and 0.0 <= decay < 1.0, f"ema_decay={decay!r}: expected a float in [0, 1)")
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        device = next((t.device for t in self.module.state_dict().values()), torch.device("cpu"))
        self.count = torch.zeros((), dtype=torch.float64, device=device)

    @property
    def updates(self) -> int:
        """How many updates the average has seen (reads the device's count: a host sync)."""
        return int(self.count)

    @updates.setter
    def updates(self, value: int) -> None:
        self.count.fill_(value)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Move the average towards ``module``'s current weights and buffers."""
        n = self.count
        weight = 1.0 - torch.clamp((1.0 + n) / (10.0 + n), max=self.decay)  # 1 - ema_decay(decay, n), on the device
        own = self.module.state_dict()
        averaged, copied = [], []
        for name, value in module.state_dict().items():
            (averaged if value.is_floating_point() else copied).append((own[name], value))
        if averaged:
            mine, theirs = (list(x) for x in zip(*averaged))
            by_dtype = {t.dtype: weight.to(t.dtype) for t in mine}
            # ema += (1 - d) * (g - ema), one pass; a list of 0-d weight tensors, which the kernel
            # reads on the device (a single tensor weight would be read back to the host)
            torch._foreach_lerp_(mine, theirs, [by_dtype[t.dtype] for t in mine])
        for mine_t, theirs_t in copied:
            mine_t.copy_(theirs_t)
        n.add_(1)
