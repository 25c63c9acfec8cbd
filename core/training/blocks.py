"""The pure pieces of training besides the W-DRO solver (:mod:`core.dro`): the learning-rate schedule, the classifier."""

from __future__ import annotations

import math

from torch import nn

from core.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from core.models import Normalized, SmallCNN, SmallResNet
from core.training.config import TrainConfig


def lr_at(step: int, total: int, peak: float, warmup: float = 0.15) -> float:
    """Learning rate at 0-based ``step`` of ``total``: linear warm-up to ``peak``, cosine to 0."""
    w = max(1, int(warmup * total))
    if step < w:
        return peak * (step + 1) / w
    return peak * 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, total - w)))


def build_classifier(cfg: TrainConfig, *, channels: int, n_classes: int, size: int) -> Normalized:
    """The architecture for a data set: SmallCNN for 28x28 images, SmallResNet otherwise, behind Normalized.

    Fashion-MNIST-shaped data (1 channel, 28 px) gets the bundled models' normalisation;
    anything else gets mean 0.5, std 0.5 per channel.
    """
    if size == 28:
        net: nn.Module = SmallCNN(in_channels=channels, n_classes=n_classes, width=cfg.width)
    else:
        net = SmallResNet(in_channels=channels, n_classes=n_classes, width=cfg.width)
    if channels == 1 and size == 28:
        mean, std = FASHION_MNIST_MEAN, FASHION_MNIST_STD
    else:
        mean, std = (0.5,) * channels, (0.5,) * channels
    return Normalized(net, mean, std)
