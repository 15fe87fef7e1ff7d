"""Differentiable augmentation of the images a discriminator sees (DiffAugment).

Zhao, Liu, Lin, Zhu and Han, "Differentiable Augmentation for Data-Efficient GAN Training",
NeurIPS 2020 (arXiv:2006.10738): a discriminator trained on few images memorises them and stops
giving the generator useful gradients. Augmenting only the real images would teach G to make
augmented-looking images, so the *same kind* of random transform is applied to every image D
sees, real and fake, in D's update and in G's update; the transforms are differentiable, so G is
trained through them.

Three transforms, each a few tensor operations on the whole batch on its device, no per-image
Python, each drawing its own random numbers per image from a ``torch.Generator``:

* ``color``: brightness ``x + (r - 0.5)``, saturation ``(x - mean_c) * 2r + mean_c``, contrast
  ``(x - mean_chw) * (r + 0.5) + mean_chw`` (``r ~ U(0, 1)`` per image and per effect);
* ``translation``: shift by up to 1/8 of the side in each direction, zero-filled;
* ``cutout``: zero a square of half the side at a random position.

>>> aug = DiffAugment("translation,cutout,color", torch.Generator().manual_seed(0))
>>> aug(torch.zeros(4, 3, 32, 32)).shape
torch.Size([4, 3, 32, 32])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .errors import check


def _uniform(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``(n, 1, 1, 1)`` draws of U(0, 1), made on the generator's device, moved to ``device``."""
    return torch.rand(n, 1, 1, 1, generator=generator, device=generator.device).to(device)


def color(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, saturation and contrast per image of ``(N, C, H, W)``."""
    n = images.shape[0]
    x = images + (_uniform(n, generator, images.device) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)  # (N, 1, H, W): grey level
    x = (x - mean) * (_uniform(n, generator, images.device) * 2) + mean  # saturation (no-op for grey images)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
    return (x - mean) * (_uniform(n, generator, images.device) + 0.5) + mean  # contrast


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad ``(N, C, H, W)`` by ``padding`` and cut a random ``H x W`` window per image.

    The same as a random translation by up to ``padding`` pixels with zero fill; an indexing
    operation, so gradients flow back to the kept pixels.
    """
    n, c, h, w = images.shape
    padded = F.pad(images, (padding,) * 4)  # (N, C, H+2p, W+2p)
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=generator.device).to(images.device)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=generator.device).to(images.device)
    rows = (oy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]  # (N, 1, H, 1)
    cols = (ox[:, None] + torch.arange(w, device=images.device))[:, None, None, :]  # (N, 1, 1, W)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chans = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]  # (N, C, H, W)


def translation(images: torch.Tensor, generator: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image of ``(N, C, H, W)`` by up to ``ratio`` of its side, zero-filled."""
    return random_crop(images, max(1, int(images.shape[-1] * ratio + 0.5)), generator)


def cutout(images: torch.Tensor, generator: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ``ratio`` times the side at a random centre in each image of ``(N, C, H, W)``."""
    n, _, h, w = images.shape
    size = max(1, int(h * ratio + 0.5))
    cy = torch.randint(0, h, (n,), generator=generator, device=generator.device).to(images.device)
    cx = torch.randint(0, w, (n,), generator=generator, device=generator.device).to(images.device)
    ys = torch.arange(h, device=images.device)[None, :] - cy[:, None] + size // 2  # (N, H): position in the square
    xs = torch.arange(w, device=images.device)[None, :] - cx[:, None] + size // 2  # (N, W)
    inside = ((ys >= 0) & (ys < size))[:, :, None] & ((xs >= 0) & (xs < size))[:, None, :]  # (N, H, W)
    return images * (~inside).unsqueeze(1).to(images.dtype)  # (N, C, H, W)


#: The transforms by name, in the order they are applied (the paper's order).
TRANSFORMS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"translation,cutout,color"`` to the transform names in application order; ``""`` to ``()``.

    >>> parse_policy("cutout, color")
    ('color', 'cutout')
    """
    check(isinstance(policy, str), f"diffaugment={policy!r}: expected a comma-separated string")
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in names if p not in TRANSFORMS]
    check(not unknown, f"diffaugment transform {unknown[0] if unknown else ''!r}: expected some of {', '.join(TRANSFORMS)}, comma-separated")
    check(len(set(names)) == len(names), f"diffaugment={policy!r}: a transform is named twice")
    return tuple(t for t in TRANSFORMS if t in names)


class DiffAugment:
    """The same policy of differentiable transforms, for every batch D sees.

    Args:
        policy: transform names, comma-separated (``"translation,cutout,color"``); ``""``: none.
        generator: the random numbers' source (seeded; its state goes into checkpoints).
    """

    def __init__(self, policy: str, generator: torch.Generator) -> None:
        self.transforms = parse_policy(policy)
        self.generator = generator

    def __bool__(self) -> bool:
        return bool(self.transforms)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` images to augmented ``(N, C, H, W)`` images, each with its own draws."""
        for name in self.transforms:
            images = TRANSFORMS[name](images, self.generator)
        return images
