"""Model sizes: the sane bounds of a config, the checks of widths and image sides, and the memory check.

A config.json from a stranger (or a typo) must not make a constructor try to allocate
terabytes: :class:`~gan_edu.models.base.GANConfig` checks its sizes against the bounds below, and
:func:`check_fits_in_memory` builds the model on the ``meta`` device (shapes only) to compare its
weights with this machine's memory before anything is allocated. :func:`doublings`,
:func:`check_positive_ints` and :func:`check_square_side` are what a model file calls to check its
own options.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch.overrides import TorchFunctionMode

from ..errors import GanEduError, check
from ..io import memory_bytes

if TYPE_CHECKING:
    from .base import GANConfig, GANModule

#: Sane upper bounds of a model's sizes, checked before anything is built: a config.json from a
#: stranger (or a typo) must not make the constructor try to allocate terabytes. Far above any
#: DCGAN in the literature; a model that passes them is still checked against the machine's memory.
MAX_SIDE = 4096  # image height and width (CelebA-HQ and FFHQ stop at 1024)
MAX_LATENT_DIM = 65_536  # size of z (DCGAN: 100; StyleGAN: 512)
MAX_CLASSES = 100_000  # classes of a conditional model (ImageNet-21k has 21,841)
MAX_WIDTH = 16_384  # a width option (g_channels, d_channels, embed_dim...); DCGAN uses 64


def check_fits_in_memory(klass: type[GANModule], config: GANConfig) -> None:
    """Raise a one-line GanEduError when ``klass(config)``'s weights would not fit in this machine's memory.

    The model is built on the ``meta`` device (shapes only, no memory, no weights drawn) and its
    parameters and buffers are counted at their dtype's size. Training needs about four times that
    (weights, gradients, Adam's two moments), so this only stops what could never work.
    """
    total = memory_bytes()
    if total is None:
        return
    try:
        with torch.device("meta"), _SkipInPlaceOnMeta():
            model = klass(config)
    except GanEduError:
        raise
    except Exception:  # a constructor that cannot run on meta (reads a value, say): no estimate, no refusal
        return
    size = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    if size > total:
        options = ", ".join(f"{k}={v!r}" for k, v in config.to_dict().items() if k != "member_config")
        raise GanEduError(
            f"{klass.__name__} with {options}: {_bytes(size)} of weights, more than this machine's "
            f"{_bytes(total)} of memory; expected a smaller model (narrower widths, a smaller image size or latent_dim)"
        )


def _bytes(n: int) -> str:
    """``25.6 TB``: a size in the largest unit that keeps it at least 1."""
    for unit, scale in (("EB", 1e18), ("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


class _SkipInPlaceOnMeta(TorchFunctionMode):
    """Makes in-place ops on meta tensors (``normal_``, ``uniform_``, ``zero_``: weight
    initialisation) return at once: on meta they do nothing, but their first call loads torch's
    Python decompositions, which takes seconds."""

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if name.endswith("_") and not name.endswith("__") and first is not None and first.is_meta:
            return first
        return func(*args, **kwargs)


def doublings(size: int, bases: tuple[int, ...] = (4, 7)) -> tuple[int, int]:
    """Split an image side into ``base * 2**k`` for the stride-2 stacks of DCGAN-style models.

    Returns:
        ``(base, k)`` with ``k >= 1``.

    >>> doublings(64), doublings(32), doublings(28)
    ((4, 4), (4, 3), (7, 2))
    """
    for base in bases:
        k = math.log2(size / base) if size >= base else -1
        if k >= 1 and k == int(k):
            return base, int(k)
    examples = sorted({b * 2**k for b in bases for k in (1, 2, 3, 4)})
    raise GanEduError(
        f"image size {size}: this model cannot make it; expected a side of the form {' or '.join(f'{b}*2^k' for b in bases)} "
        f"with k >= 1 (e.g. {', '.join(map(str, examples))})"
    )


def check_positive_ints(config: Any, *names: str) -> None:
    """Raise unless each named field of ``config`` is a positive int of at most :data:`MAX_WIDTH` (for width options)."""
    for name in names:
        value = getattr(config, name)
        check(
            isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_WIDTH,
            f"{name}={value!r}: expected a positive int of at most {MAX_WIDTH}",
        )


def check_square_side(config: GANConfig, model: str, sides: tuple[int, ...] | None = None, *, multiple: int = 1, minimum: int = 1) -> int:
    """The side of ``config``'s square images, checked against what a model can make.

    Args:
        config: the model's config.
        model: the model's name, for the message.
        sides: the only sides the model makes (None: any side that is a multiple of ``multiple``).
        multiple: the side must be divisible by this (one stride-2 layer per factor of 2).
        minimum: the smallest side.
    """
    _, h, w = config.image_shape
    check(h == w, f"image_shape={config.image_shape}: {model} expects square images (H == W)")
    if sides is not None:
        check(h in sides, f"image size {h}: {model} makes sides {', '.join(map(str, sorted(sides)))}")
    else:
        examples = [s for s in (28, 32, 64) if s % multiple == 0 and s >= minimum]
        check(
            h % multiple == 0 and h >= minimum,
            f"image size {h}: {model} makes sides that are multiples of {multiple}, at least {minimum} (e.g. {', '.join(map(str, examples))})",
        )
    return h
