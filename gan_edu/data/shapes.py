"""``shapes``: the built-in data set, made by gan-edu itself, so everything runs offline.

Ten classes of filled shapes, one shape per image, with random size, position (near the centre),
rotation (for shapes where rotation does not change the class), a light foreground colour and a
darker background colour with a gentle gradient, so there is always clear contrast. 32x32 RGB by default (or 1 channel). Fully
deterministic from ``seed``: the same seed gives the same bytes on every machine, since only
integer-seeded torch CPU random numbers and elementwise maths are used.

>>> images, labels = make_shapes(20, seed=0)
>>> images.shape, images.dtype, labels[:10].tolist()
(torch.Size([20, 3, 32, 32]), torch.uint8, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
"""

from __future__ import annotations

import math

import torch

from ..errors import check

SHAPE_CLASSES: tuple[str, ...] = (
    "circle", "square", "triangle", "diamond", "cross", "ring", "star", "hexagon", "crescent", "heart",
)

_SUPERSAMPLE = 2  # draw at 2x and average: smooth edges at 32x32


def _mask(cls: int, x: torch.Tensor, y: torch.Tensor, r: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Coverage in {0, 1} of shape ``cls`` on each image's grid.

    Args:
        cls: the class index; x, y: (N, S, S) coordinates relative to each shape's centre;
        r: (N, 1, 1) size; theta: (N, 1, 1) rotation (used where it keeps the class).
    """
    name = SHAPE_CLASSES[cls]
    d = torch.sqrt(x**2 + y**2)
    xr = x * torch.cos(theta) + y * torch.sin(theta)  # rotated coordinates
    yr = -x * torch.sin(theta) + y * torch.cos(theta)
    if name == "circle":
        m = d < r
    elif name == "square":  # axis-aligned: rotated, it would be a diamond
        m = torch.maximum(x.abs(), y.abs()) < 0.8 * r
    elif name == "triangle":  # pointing up
        m = (y < 0.5 * r) & (y > -r + 1.732 * x.abs())
    elif name == "diamond":
        m = x.abs() + y.abs() < r
    elif name == "cross":
        m = ((x.abs() < 0.3 * r) & (y.abs() < r)) | ((y.abs() < 0.3 * r) & (x.abs() < r))
    elif name == "ring":
        m = (d < r) & (d > 0.55 * r)
    elif name == "star":  # five points
        m = d < r * (0.6 + 0.4 * torch.cos(5 * torch.atan2(yr, xr)))
    elif name == "hexagon":
        m = torch.maximum(xr.abs() * 0.866 + yr.abs() * 0.5, yr.abs()) < 0.85 * r
    elif name == "crescent":
        m = (d < r) & (torch.sqrt((xr - 0.45 * r) ** 2 + yr**2) > 0.75 * r)
    else:  # heart, upright: (u^2 + v^2 - 1)^3 - u^2 v^3 < 0
        u, v = x / r * 1.2, -y / r * 1.2 + 0.2
        m = (u**2 + v**2 - 1) ** 3 - u**2 * v**3 < 0
    return m.float()


def make_shapes(
    n: int, *, seed: int = 0, size: int = 32, channels: int = 3, labels: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` shape images.

    Args:
        n: number of images.
        seed: the only source of randomness.
        size: side in pixels.
        channels: 3 (RGB) or 1 (grey, the luminance of the RGB image).
        labels: (n,) classes to draw; default cycles 0..9 so classes are balanced.

    Returns:
        ``images`` uint8 of shape (n, channels, size, size) and ``labels`` int64 of shape (n,).
    """
    check(isinstance(n, int) and n > 0, f"n={n!r}: expected a positive int")
    check(channels in (1, 3), f"channels={channels!r}: expected 1 or 3")
    check(isinstance(size, int) and size >= 8, f"size={size!r}: expected an int >= 8")
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(SHAPE_CLASSES) if labels is None else torch.as_tensor(labels, dtype=torch.int64)
    check(labels.shape == (n,), f"labels of shape {tuple(labels.shape)}: expected ({n},)")

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=g)

    # Like MNIST's digits, a shape sits near the centre, light on a darker background: what varies
    # (size, position, rotation, both colours) is what a generator must learn to vary, and the shape
    # stays the point. A DCGAN then learns the ten classes in about as many steps as MNIST's.
    r = u(0.26, 0.42)  # radius as a fraction of the side
    cx, cy = u(-1, 1) * (0.46 - r), u(-1, 1) * (0.46 - r)  # jitter that keeps the shape inside the image
    theta = u(0, 2 * math.pi)
    fg = 0.6 + 0.4 * u(0, 1, 3)  # a light colour
    bg_lo = 0.45 * u(0, 1, 3)  # a darker background colour...
    bg_hi = (bg_lo + u(-0.1, 0.1, 3)).clamp(0, 0.5)  # ...with a gentle gradient towards another
    lum = torch.tensor([0.299, 0.587, 0.114])
    gradient_dir = u(0, 2 * math.pi)

    s = size * _SUPERSAMPLE
    coords = (torch.arange(s, dtype=torch.float32) + 0.5) / s - 0.5  # pixel centres in [-0.5, 0.5]
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")  # (S, S) supersampled grid for the masks
    pixels = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5
    py, px = torch.meshgrid(pixels, pixels, indexing="ij")  # (size, size) grid for the background
    images = torch.empty(n, 3, size, size)
    for cls in range(len(SHAPE_CLASSES)):
        idx_all = (labels == cls).nonzero().flatten()
        for start in range(0, len(idx_all), 2048):  # chunks bound the memory at large n
            idx = idx_all[start : start + 2048]
            m = len(idx)
            x = xx.expand(m, s, s) - cx[idx, None, None]
            y = yy.expand(m, s, s) - cy[idx, None, None]
            mask = _mask(cls, x, y, r[idx, None, None], theta[idx, None, None])[:, None]  # (m, 1, S, S)
            cover = torch.nn.functional.avg_pool2d(mask, _SUPERSAMPLE)  # (m, 1, size, size) in [0, 1]
            direction = gradient_dir[idx, None, None]
            t = (px * torch.cos(direction) + py * torch.sin(direction) + 0.5)[:, None]  # (m, 1, size, size)
            bg = bg_lo[idx, :, None, None] * (1 - t) + bg_hi[idx, :, None, None] * t  # (m, 3, size, size)
            images[idx] = bg * (1 - cover) + fg[idx, :, None, None] * cover
    if channels == 1:
        images = (images * lum[None, :, None, None]).sum(dim=1, keepdim=True)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels
