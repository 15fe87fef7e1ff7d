"""Batch norm folded into the convolution before it, for export (eval mode only).

In eval mode a batch norm is a fixed per-channel affine map of its input::

    bn(y) = gamma * (y - mean) / sqrt(var + eps) + beta = scale * y + shift

so a convolution ``y = W * x + b`` followed by it is one convolution with weights ``W * scale``
(scaled along the output channels) and bias ``scale * b + shift``. The folded graph has one
node less per layer and nothing for a runtime to fuse; onnxruntime 1.31 does the same fusion
itself at load time (``ConvBnFusion`` handles ConvTranspose too), other runtimes may not.
"""

from __future__ import annotations

import torch
from torch import nn

#: The layers a following BatchNorm2d is folded into, and the axis of their weight that holds the output channels.
OUTPUT_AXIS: dict[type[nn.Module], int] = {nn.Conv2d: 0, nn.ConvTranspose2d: 1}


@torch.no_grad()
def fold_batchnorm(module: nn.Module) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d or ConvTranspose2d in an ``nn.Sequential``.

    The convolution gets the folded weights and a bias; the batch norm becomes ``nn.Identity``.
    Works in place, on a module in eval mode (a copy: the caller's module is not touched by the
    exporter). Grouped transposed convolutions and batch norms without running statistics are
    left as they are.

    Args:
        module: a model in eval mode.

    Returns:
        How many batch norms were folded.

    >>> net = nn.Sequential(nn.ConvTranspose2d(4, 3, 4, 2, 1, bias=False), nn.BatchNorm2d(3), nn.ReLU()).eval()
    >>> x = torch.randn(2, 4, 5, 5)
    >>> before = net(x)
    >>> fold_batchnorm(net), type(net[1]).__name__
    (1, 'Identity')
    >>> bool(torch.allclose(net(x), before, atol=1e-6))
    True
    """
    assert not module.training, "fold_batchnorm needs eval mode: in training mode batch norm uses the batch's statistics"
    folded = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            axis = OUTPUT_AXIS.get(type(conv))
            if axis is None or not isinstance(bn, nn.BatchNorm2d) or bn.running_mean is None or bn.running_var is None:
                continue
            if axis == 1 and conv.groups != 1:  # (in, out/groups, k, k): channels of several groups share axis 1
                continue
            scale = (bn.weight.double() if bn.weight is not None else 1.0) / torch.sqrt(bn.running_var.double() + bn.eps)  # (C_out,)
            shift = (bn.bias.double() if bn.bias is not None else 0.0) - bn.running_mean.double() * scale  # (C_out,)
            shape = [1] * conv.weight.dim()
            shape[axis] = -1
            conv.weight.copy_((conv.weight.double() * scale.view(shape)).to(conv.weight.dtype))
            bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
            conv.bias = nn.Parameter((bias * scale + shift).to(conv.weight.dtype), requires_grad=False)
            seq[i + 1] = nn.Identity()
            folded += 1
    return folded
