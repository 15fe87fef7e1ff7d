"""What the loop measures and shows: sums of the steps' metrics kept on the device (the loop syncs
with the host only to log them), and the progress bar."""

from __future__ import annotations

from typing import Any

import torch

from . import distributed


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


def progress_bar(total: int, initial: int, name: str) -> Any:
    """A tqdm bar of ``total`` steps on stderr, starting at ``initial`` (a resumed run)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=min(initial, total), desc=name, unit="step", dynamic_ncols=True, leave=True)
