"""The pure pieces of training: group means and weights, the dual update, the learning-rate schedule, the classifier."""

from __future__ import annotations

import math

import torch
from torch import nn

from core.attacks.dro_budget import dual_step
from core.models import Normalized, SmallCNN, SmallResNet
from core.training.config import TrainConfig


def group_mean(losses: torch.Tensor, g: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``losses`` within each group.

    Args:
        losses: (N,) per-example losses.
        g: (N,) int64 group labels in [0, n_groups).
        n_groups: Number of groups.

    Returns:
        ``(means, counts)``, both (n_groups,); the mean of an empty group is 0.
    """
    sums = torch.zeros(n_groups, dtype=losses.dtype, device=losses.device).index_add(0, g, losses)
    counts = torch.bincount(g, minlength=n_groups).to(losses.dtype)
    return sums / counts.clamp_min(1), counts


def update_group_weights(q: torch.Tensor, group_loss: torch.Tensor, step: float) -> torch.Tensor:
    """One exponentiated-gradient step of Group DRO: ``q_g <- q_g exp(step * L_g)``, renormalised.

    Equal losses keep ``q``; the weight moves towards the group with the larger loss.
    Returns a new tensor (``q`` is not modified).
    """
    logits = torch.log(q.clamp_min(1e-30)) + step * group_loss.detach()
    return torch.softmax(logits, dim=0)


def dual_update(log_gamma: float, mean_cost: float, budget: float, lr: float) -> float:
    """Training's online dual step, once per batch: the shared rule aimed at the budget, clipped to [-1, 1].

    ``log gamma += lr * clip(log(mean_cost / budget), -1, 1)``: see
    :func:`core.attacks.dro_budget.dual_step` (the attack uses the same rule with its own
    aim and clip). When the perturbations cost more than the budget, ``gamma`` (the price
    of cost) goes up, and down when they cost less.
    """
    step = dual_step(torch.tensor(log_gamma, dtype=torch.float64), torch.tensor(mean_cost, dtype=torch.float64),
                     budget, lr=lr, aim=1.0, clip=(-1.0, 1.0))
    return float(step)


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
        mean, std = (0.2860,), (0.3530,)
    else:
        mean, std = (0.5,) * channels, (0.5,) * channels
    return Normalized(net, mean, std)
