"""Checked loading of weights: a state dict that does not fit its module fails with one line."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import GanEduError


def load_state_dict_checked(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``module.load_state_dict(state)`` that fails with one line when the weights do not fit."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}")
        if mismatched:
            k = mismatched[0]
            parts.append(f"{k} has shape {tuple(state[k].shape)}, expected {tuple(own[k].shape)}")
        raise GanEduError(f"{source}: weights of another model for {type(module).__name__} ({'; '.join(parts)})")
    module.load_state_dict(state)
