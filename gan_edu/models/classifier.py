"""Image classifiers for the c vs c' experiment: who can tell the classes apart?

Classifier c is trained on real images, classifier c' on images from a trained generator; both
are tested on the real test split (GAN-train). c is also the judge of generated images
(GAN-test) and the feature extractor of the Fréchet distance (see :mod:`gan_edu.metrics`).

Three architectures, each taking images in [-1, 1] of shape ``(N, C, H, W)`` and returning class
logits ``(N, K)``:

* :class:`Ref000Classifier`: reference project 000's classifier c, as its text describes it:
  "4 convolutional layers with kernel size 3x3, a 2x2 pooling layer after every two
  convolutional layers (conv-conv-pool), LeakyReLU after all the convolutional and dense
  layers". The text gives no widths, padding, dense sizes or dropout; we read it the way the
  classic Keras CIFAR-10 example builds that block: widths 32, 32, 64, 64, 'same' padding, one
  hidden dense layer of 512, no dropout, LeakyReLU(0.2).
* :class:`VGGClassifier`: the stronger default: three conv-conv-pool stages with batch norm
  (widths w, 2w, 4w), global average pooling and one linear layer. Batch norm lets it train at a
  high learning rate in few epochs, which is what a CPU budget needs.
* :class:`ResNet9Classifier`: the fast-CIFAR-10 residual net (94% on real CIFAR-10 with its
  recipe: one-cycle Nesterov SGD, label smoothing, flip + translate, flip at test time).

All expose :meth:`features`, the penultimate activations, for the Fréchet distance.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from ..data.loader import to_unit_range
from ..errors import check
from .base import GANConfig, GANModule


@dataclasses.dataclass(frozen=True)
class ClassifierConfig(GANConfig):
    """A classifier's input shape, classes and width (``latent_dim`` is unused)."""

    num_classes: int | None = 10  # classes to tell apart
    width: int = 32  # channels of the first convolution; later ones are multiples

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.num_classes is not None, "a classifier needs num_classes")
        check(isinstance(self.width, int) and self.width > 0, f"width={self.width!r}: expected a positive int")
        check(self.image_shape[1] % 4 == 0 and self.image_shape[2] % 4 == 0, f"image_shape={self.image_shape}: expected H and W divisible by 4")


class Classifier(GANModule):
    """Base of the classifiers: ``forward(images) -> (N, K)`` logits, ``features(images) -> (N, F)``.

    To make a variant, subclass, build ``self.body`` (images to features) and ``self.head``
    (features to logits) in ``__init__``.
    """

    config_class = ClassifierConfig
    config: ClassifierConfig
    body: nn.Module
    head: nn.Module

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` images to ``(N, F)`` penultimate features."""
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))  # (N, K)


class Ref000Classifier(Classifier):
    """Reference 000's classifier c: conv-conv-pool, conv-conv-pool, dense, LeakyReLU throughout."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config)
        c, h, w = config.image_shape
        w1, w2 = config.width, 2 * config.width
        act = nn.LeakyReLU(0.2)
        self.body = nn.Sequential(
            nn.Conv2d(c, w1, 3, padding=1), act,  # (N, w, H, W)
            nn.Conv2d(w1, w1, 3, padding=1), act,  # (N, w, H, W)
            nn.MaxPool2d(2),  # (N, w, H/2, W/2)
            nn.Conv2d(w1, w2, 3, padding=1), act,  # (N, 2w, H/2, W/2)
            nn.Conv2d(w2, w2, 3, padding=1), act,  # (N, 2w, H/2, W/2)
            nn.MaxPool2d(2),  # (N, 2w, H/4, W/4)
            nn.Flatten(),  # (N, 2w * H/4 * W/4)
            nn.Linear(w2 * (h // 4) * (w // 4), 512), act,  # (N, 512): the dense layer, LeakyReLU too
        )
        self.head = nn.Linear(512, config.num_classes)  # (N, K) logits


class VGGClassifier(Classifier):
    """Three conv-conv-pool stages with batch norm, global average pooling, a linear head."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config)
        c = config.image_shape[0]
        widths = [config.width, 2 * config.width, 4 * config.width]

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        layers: list[nn.Module] = []
        cin = c
        for i, wd in enumerate(widths):
            layers += block(cin, wd) + block(wd, wd)  # (N, wd, s, s)
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))  # (N, wd, s/2, s/2)
            cin = wd
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]  # (N, 4w)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], config.num_classes)  # (N, K)


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU: ``(N, cin, s, s) -> (N, cout, s, s)``."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """``x + f(x)`` for two conv-bn-relu layers of the same width."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.f = nn.Sequential(conv_bn(width, width), conv_bn(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)  # (N, width, s, s)


class ResNet9Classifier(Classifier):
    """The small residual net of the fast CIFAR-10 training literature ("ResNet-9").

    After D. Page, "How to train your ResNet" (2018), the network behind the DAWNBench CIFAR-10
    entries that reach 94% test accuracy in minutes: a prep layer, then three stages that each
    double the width and halve the side with a max pool, the first and last with a residual pair
    of convolutions; global max pooling and a linear head whose logits are scaled by 1/8 (a
    softer start for the cross entropy). Widths ``w, 2w, 4w, 8w`` (``w = 64`` in the paper's
    recipe). Train it with :class:`~gan_edu.training.classifier_trainer.ClassifierTrainer`'s
    one-cycle schedule, label smoothing and flip test-time augmentation.
    """

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config)
        c, w = config.image_shape[0], config.width
        self.body = nn.Sequential(
            conv_bn(c, w),  # (N, w, H, W): prep
            conv_bn(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w),  # (N, 2w, H/2, W/2)
            conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),  # (N, 4w, H/4, W/4)
            conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), Residual(8 * w),  # (N, 8w, H/8, W/8)
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),  # (N, 8w)
        )
        self.head = nn.Linear(8 * w, config.num_classes, bias=False)  # (N, K)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images)) * 0.125  # (N, K) logits, scaled as in the recipe


#: Classifiers by name (``--classifier``).
CLASSIFIERS: dict[str, type[Classifier]] = {"vgg": VGGClassifier, "ref000": Ref000Classifier, "resnet9": ResNet9Classifier}


def build_classifier(name: str, *, image_shape: tuple[int, int, int], num_classes: int, width: int = 32) -> Classifier:
    """A classifier from :data:`CLASSIFIERS`.

    >>> build_classifier("ref000", image_shape=(3, 32, 32), num_classes=10)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    check(name in CLASSIFIERS, f"classifier {name!r}: expected one of {', '.join(CLASSIFIERS)}")
    return CLASSIFIERS[name](ClassifierConfig(image_shape=image_shape, num_classes=num_classes, width=width))


@torch.no_grad()
def predict(
    classifier: Classifier, images: torch.Tensor | np.ndarray, *, batch_size: int = 512, device: torch.device | str | None = None,
    features: bool = False, tta_flip: bool = False,
) -> torch.Tensor:
    """Class predictions ``(N,)`` (or penultimate features ``(N, F)``) for uint8 ``(N, C, H, W)`` images.

    Runs in eval mode, in batches, and restores the classifier's mode. ``tta_flip``: predict from
    the sum of the logits of each image and its mirror image (test-time augmentation; not for
    features, and only for data where a mirror image keeps its class).
    """
    images = torch.as_tensor(images)
    check(images.dtype == torch.uint8 and images.ndim == 4, f"images of dtype {images.dtype}, shape {tuple(images.shape)}: expected uint8 (N, C, H, W)")
    device = torch.device(device) if device is not None else classifier.device
    was_training = classifier.training
    classifier.eval()
    out = []
    try:
        for start in range(0, len(images), batch_size):
            x = to_unit_range(images[start : start + batch_size].to(device))
            if features:
                out.append(classifier.features(x).cpu())
            else:
                logits = classifier(x) + classifier(x.flip(3)) if tta_flip else classifier(x)  # (B, K)
                out.append(logits.argmax(1).cpu())
    finally:
        classifier.train(was_training)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.int64)
