"""The two contracts every GAN model in gan-edu fulfils: :class:`Generator` and :class:`Discriminator`.

A generator maps noise ``z`` of shape ``(N, latent_dim)`` (and, when conditional, class labels of
shape ``(N,)``) to images of shape ``(N, C, H, W)`` in ``[-1, 1]``. A discriminator maps images
(and labels) to raw logits of shape ``(N,)``: never a sigmoid, the losses work on logits.

The size bounds and the memory check are :mod:`gan_edu.models.sizes`, spectral normalisation
:mod:`gan_edu.models.spectral`, checked weight loading :mod:`gan_edu.models.loading`.

Both are built from a frozen config dataclass (:class:`GANConfig` or a subclass) and can be saved
and rebuilt with :meth:`save_pretrained` / :meth:`from_pretrained`: a folder holding
``config.json`` (the model's class name and its config) and ``model.safetensors`` (the weights).
Loading never runs code from a file: the class is looked up by name among the model classes
already imported, and safetensors holds tensors only.

To make a variant, subclass :class:`Generator` or :class:`Discriminator` (or an existing model such
as :class:`gan_edu.models.dcgan.DCGANGenerator`), set ``config_class`` if you need new options,
and override ``forward``. Everything else (sampling, saving, loading, training) keeps working.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from abc import ABC, abstractmethod
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from ..domains import strict_from_dict
from ..errors import GanEduError, check
from ..io import atomic_open, atomic_write_json, canonical_safetensors
from ..registry import Registry
from .loading import load_state_dict_checked
from .sizes import (  # noqa: F401  (their old home, kept for importers)
    MAX_CLASSES,
    MAX_LATENT_DIM,
    MAX_SIDE,
    MAX_WIDTH,
    check_fits_in_memory,
    check_positive_ints,
    check_square_side,
    doublings,
)
from .spectral import SPECTRAL_LAYERS, apply_spectral_norm  # noqa: F401  (their old home, kept for importers)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

def _import_installed_models() -> None:
    """Import the models installed packages declare (group gan_edu.models): defining a class registers it."""
    for ep in entry_points(group="gan_edu.models"):
        ep.load()


#: Every Generator / Discriminator class by name, registered as classes are defined.
#: from_pretrained only rebuilds classes listed here: a file names a class, it cannot bring one.
MODULE_CLASSES: Registry[type[nn.Module]] = Registry(
    "model class", "gan_edu.models", kind=nn.Module, subclass=True, replace=True, on_miss=_import_installed_models,
    how="import the module that defines it first (a Generator or Discriminator subclass registers itself), "
    "or declare its ModelSpec as an entry point of group gan_edu.models",
)


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """What every generator and discriminator needs to know.

    Subclass it (frozen too) to add a model's own options, each with a comment saying why.
    """

    image_shape: tuple[int, int, int] = (3, 32, 32)  # (C, H, W) of the images made / judged
    latent_dim: int = 100  # size of z; 100 as in Radford et al. and most DCGAN code
    num_classes: int | None = None  # None: unconditional; K: the model takes labels in [0, K)
    spectral_norm: bool = False  # discriminators only: every weight layer spectrally normalised (Miyato et al. 2018)

    def __post_init__(self) -> None:
        shape = tuple(self.image_shape)
        object.__setattr__(self, "image_shape", shape)  # JSON gives a list; keep one type
        check(
            len(shape) == 3 and all(isinstance(s, int) and s > 0 for s in shape),
            f"image_shape={shape!r}: expected three positive ints (C, H, W)",
        )
        check(shape[0] in (1, 3), f"image_shape channels={shape[0]}: expected 1 or 3")
        check(max(shape[1:]) <= MAX_SIDE, f"image_shape={shape!r}: expected sides of at most {MAX_SIDE}")
        check(
            isinstance(self.latent_dim, int) and 0 < self.latent_dim <= MAX_LATENT_DIM,
            f"latent_dim={self.latent_dim!r}: expected a positive int of at most {MAX_LATENT_DIM}",
        )
        check(isinstance(self.spectral_norm, bool), f"spectral_norm={self.spectral_norm!r}: expected True or False")
        check(
            self.num_classes is None or (isinstance(self.num_classes, int) and 2 <= self.num_classes <= MAX_CLASSES),
            f"num_classes={self.num_classes!r}: expected None (unconditional) or an int in [2, {MAX_CLASSES}]",
        )

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-able values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GANConfig:
        """Rebuild a config; unknown keys are an error, not silently dropped."""
        return strict_from_dict(cls, values, list_options=True)


def refuse_labels_out_of_range(module: GANModule, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Forward pre-hook of every model: labels outside ``[0, num_classes)`` raise a one-line error.

    Without it a label of -1 or K fails deep inside ``nn.Embedding`` (an IndexError on the CPU, a
    device-side assert on CUDA), a bank returns a blank image, and an exported graph quietly
    reads -1 as class K-1. Registered in :class:`GANModule`, so a variant that overrides
    ``forward`` keeps it. Skipped while tracing or compiling (the graph cannot hold a Python
    check) and for training batches on an accelerator (reading the labels back would stall the
    GPU every step; they come from a data set whose labels were checked when it was loaded), and
    while a training step is recorded as a CUDA graph or rehearsed on the CPU (no host reads).
    """
    if module.num_classes is None or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return
    labels = args[1] if len(args) > 1 else kwargs.get("labels")
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.numel() == 0:
        return  # nothing to check here; forward's own checks handle missing or malformed labels
    if module.training and (labels.device.type != "cpu" or is_in_torch_dispatch_mode()):
        return  # training on an accelerator, or a step being recorded (its CPU rehearsal: gan_edu.training.capture)
    lo, hi = (int(v) for v in torch.aminmax(labels))
    check(
        0 <= lo and hi < module.num_classes,
        f"labels in [{lo}, {hi}]: expected labels in [0, {module.num_classes - 1}] ({module.num_classes} classes of {type(module).__name__})",
    )


class GANModule(nn.Module):
    """What generators and discriminators share: a config, a device, saving and loading."""

    config_class: ClassVar[type[GANConfig]] = GANConfig

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        check(
            isinstance(config, self.config_class),
            f"config of type {type(config).__name__}: {type(self).__name__} expects a {self.config_class.__name__}",
        )
        self.config = config
        if torch.get_default_device().type != "meta":  # the estimate below builds this model on meta
            check_fits_in_memory(type(self), config)
        self.register_forward_pre_hook(refuse_labels_out_of_range, with_kwargs=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        MODULE_CLASSES.register(cls)

    # -- what the config says -------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.config.image_shape

    @property
    def num_classes(self) -> int | None:
        return self.config.num_classes

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def check_labels(self, labels: torch.Tensor | None, n: int) -> None:
        """Raise unless ``labels`` suit this model for a batch of ``n``."""
        if self.num_classes is None:
            check(labels is None, f"labels given to the unconditional {type(self).__name__}: expected labels=None")
            return
        check(labels is not None, f"labels=None: the conditional {type(self).__name__} expects labels of shape ({n},)")
        assert labels is not None
        check(
            labels.shape == (n,) and not labels.is_floating_point(),
            f"labels of shape {tuple(labels.shape)} and dtype {labels.dtype}: expected integer labels of shape ({n},)",
        )
        if labels.numel():
            lo, hi = int(labels.min()), int(labels.max())
            check(
                lo >= 0 and hi < self.num_classes,
                f"labels in [{lo}, {hi}]: expected labels in [0, {self.num_classes - 1}]",
            )

    # -- saving and loading ---------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically each).

        Returns:
            The folder written.
        """
        from safetensors.torch import save

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_open(directory / WEIGHTS_NAME, "wb") as f:
            f.write(canonical_safetensors(save(state, metadata={"format": "pt", "class": type(self).__name__})))  # same weights, same bytes
        atomic_write_json(directory / CONFIG_NAME, {"class": type(self).__name__, "config": self.config.to_dict()})
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, map_location: str | torch.device = "cpu") -> GANModule:
        """Rebuild a module saved by :meth:`save_pretrained`.

        Called on a base class (``Generator.from_pretrained``), it rebuilds whatever subclass the
        folder names, as long as that class is a subclass of ``cls`` and has been imported.

        Raises:
            GanEduError: the folder is missing, the files are corrupt, or they hold another model.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for path in (config_path, weights_path):
            check(path.is_file(), f"{path}: no such file; expected a folder written by save_pretrained")
        try:
            meta = json.loads(config_path.read_text())
            name, values = meta["class"], meta["config"]
        except (ValueError, KeyError, TypeError) as e:
            why = f"missing {e}" if isinstance(e, KeyError) else str(e)[:100]
            raise GanEduError(f"{config_path}: not a gan-edu model config ({why}); expected the config.json save_pretrained wrote") from None
        klass = MODULE_CLASSES.lookup(name, where=f"{config_path}: names")
        check(issubclass(klass, cls), f"{config_path}: holds a {name}, not a {cls.__name__}")
        try:
            model = klass(klass.config_class.from_dict(values))
        except GanEduError as e:  # sizes out of range, or beyond this machine's memory: nothing was built
            raise GanEduError(f"{config_path}: {e}") from None
        try:
            state = load_file(str(weights_path), device=str(map_location))
        except (SafetensorError, OSError, ValueError) as e:
            raise GanEduError(f"{weights_path}: corrupt or truncated weights file ({e})") from None
        load_state_dict_checked(model, state, str(weights_path))
        return model.to(map_location)


class Generator(GANModule, ABC):
    """Maps noise (and labels) to images.

    Contract: ``forward(z, labels=None)`` takes ``z`` of shape ``(N, latent_dim)`` and, when
    ``num_classes`` is set, integer ``labels`` of shape ``(N,)``; it returns images of shape
    ``(N, *image_shape)`` with values in ``[-1, 1]``.

    To make a variant: subclass, build your layers in ``__init__(self, config)`` and override
    ``forward``. :meth:`sample_latent` and :meth:`sample` then work unchanged; override
    :meth:`sample_latent` only if your noise is not a standard normal.
    """

    @abstractmethod
    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, latent_dim)`` noise (and ``(N,)`` labels) to ``(N, C, H, W)`` images in [-1, 1]."""

    def sample_latent(
        self, n: int, *, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Draw ``z ~ N(0, I)`` of shape ``(n, latent_dim)``.

        The noise is drawn on ``generator``'s device (the CPU when none is given) and then moved,
        so a seed gives the same ``z`` on every device.
        """
        check(isinstance(n, int) and n >= 0, f"n={n!r}: expected a non-negative int")
        source = generator.device if generator is not None else torch.device("cpu")
        z = torch.randn(n, self.latent_dim, generator=generator, device=source)
        return z.to(device if device is not None else self.device)

    def balanced_labels(self, n: int, device: torch.device | str | None = None) -> torch.Tensor | None:
        """Labels ``0, 1, ..., K-1, 0, 1, ...`` for ``n`` samples (None when unconditional)."""
        if self.num_classes is None:
            return None
        return torch.arange(n, device=device or self.device) % self.num_classes

    @torch.no_grad()
    def sample(
        self, n: int, labels: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Generate ``n`` images in eval mode (batch norm uses its running statistics).

        Args:
            n: how many images.
            labels: ``(n,)`` class labels for a conditional model; ``None`` gives balanced labels.
            generator: a seeded ``torch.Generator`` for reproducible noise.

        Returns:
            ``(n, C, H, W)`` images in [-1, 1] on the model's device.
        """
        check(isinstance(n, int) and n > 0, f"n={n!r}: expected a positive int")
        if labels is None:
            labels = self.balanced_labels(n)
        else:
            labels = torch.as_tensor(labels, device=self.device)
        self.check_labels(labels, n)
        was_training = self.training
        self.eval()
        try:
            return self(self.sample_latent(n, generator=generator), labels)
        finally:
            self.train(was_training)


class Discriminator(GANModule, ABC):
    """Maps images (and labels) to one raw logit per image: "how real is this?".

    Contract: ``forward(images, labels=None)`` takes ``(N, *image_shape)`` images in [-1, 1]
    and, when ``num_classes`` is set, ``(N,)`` labels; it returns logits of shape ``(N,)``.
    Never apply a sigmoid here: the losses take logits (numerically stable, autocast-safe).

    ``config.spectral_norm`` works for every discriminator: once the outermost ``__init__`` has
    built the layers, each convolution, linear layer and embedding is spectrally normalised
    (:func:`apply_spectral_norm`), so a subclass gets the switch without writing anything.

    To make a variant (a projection head, more layers...): subclass, build the layers in
    ``__init__(self, config)`` and override ``forward``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def built_then_normalised(self: Discriminator, *args: Any, **kw: Any) -> None:
            init(self, *args, **kw)
            if type(self).__init__ is built_then_normalised and self.config.spectral_norm:  # the outermost __init__ only
                apply_spectral_norm(self)

        cls.__init__ = built_then_normalised  # type: ignore[method-assign]

    @abstractmethod
    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C, H, W)`` images (and ``(N,)`` labels) to ``(N,)`` logits."""


