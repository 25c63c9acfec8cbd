"""Pieces shared by the minimal-perturbation attacks (DDN, ALMA, PerC-AL).

A minimal attack looks for the adversarial image closest to ``x`` in its own
distance, rather than the most damaging image within a budget. Each one keeps,
per image, the best (smallest-distance) adversarial iterate it has seen, and
returns the clean image where it found none. An optional ``max_cost`` makes
it a budget attack for matched-damage comparisons: only adversarial iterates
within the budget count, so the budget holds by construction.

All tensors are (N, C, H, W) in [0, 1] pixel space unless stated otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BAD_LEVELS = "levels: expected None or an integer >= 2, got {value!r}"


class BestAdversarial:
    """Per image, the smallest-distance adversarial seen so far (the clean image until one is found).

    Args:
        x: Clean images, (N, C, H, W).
        max_cost: Only adversarial iterates at most this far count (``None``: any).
    """

    def __init__(self, x: torch.Tensor, *, max_cost: float | None = None) -> None:
        self.x_adv = x.detach().clone()
        self.cost = torch.full((x.shape[0],), float("inf"), device=x.device, dtype=x.dtype)  # (N,)
        self.max_cost = max_cost

    @property
    def found(self) -> torch.Tensor:
        """(N,) bool: an adversarial iterate was recorded for the image."""
        return torch.isfinite(self.cost)

    @torch.no_grad()
    def update(self, x_adv: torch.Tensor, cost: torch.Tensor, is_adv: torch.Tensor) -> None:
        """Record ``x_adv`` where it is adversarial and closer than the best so far (and within budget)."""
        better = is_adv & (cost < self.cost)
        if self.max_cost is not None:
            better &= cost <= self.max_cost
        self.cost = torch.where(better, cost.detach(), self.cost)
        self.x_adv = torch.where(better.view(-1, 1, 1, 1), x_adv.detach(), self.x_adv)


def is_adversarial(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """(N,) bool: the prediction left ``y`` (untargeted) or reached ``target`` (targeted)."""
    pred = logits.argmax(1)
    return pred == target if target is not None else pred != y


def unit_l2(grad: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image's gradient scaled to unit L2 norm; a random unit direction where it is (near) zero."""
    norm = grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)  # (N, 1, 1, 1)
    zero = norm < 1e-12
    if bool(zero.any()):
        noise = torch.randn(grad.shape, generator=generator, device=grad.device, dtype=grad.dtype)
        noise = noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        return torch.where(zero, noise, grad / norm.clamp_min(1e-12))
    return grad / norm


def quantize(x: torch.Tensor, levels: int | None) -> torch.Tensor:
    """Round to ``levels`` evenly spaced values in [0, 1] (256: 8-bit images); ``None`` leaves ``x``."""
    if levels is None:
        return x
    return (x * (levels - 1)).round() / (levels - 1)


def difference_of_logits_ratio(
    logits: torch.Tensor, label: torch.Tensor, *, targeted: bool, tolerance: float = 0.0
) -> torch.Tensor:
    """(N,) the constraint of ALMA: negative exactly when the image is adversarial.

    Untargeted: ``(z_y - max_{j != y} z_j + tolerance) / (z_pi1 - z_pi3)``, positive while
    ``y`` wins. Targeted: ``-(z_t - max_{j != t} z_j - tolerance) / (z_pi1 - (z_pi3 + z_pi4) / 2)``,
    positive until ``t`` wins by ``tolerance``. ``z_pik`` is the k-th largest logit (Croce & Hein's
    DLR, made positive for correctly classified images as in Rony et al.'s adv_lib; adv_lib adds
    the tolerance in the targeted case too, which loosens rather than tightens it). With fewer
    classes than the normaliser needs (3 untargeted, 4 targeted) the plain difference of logits
    is used.
    """
    k = logits.shape[1]
    true = logits.gather(1, label[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(label, k).bool(), float("-inf")).amax(1)
    diff = true - other + (-tolerance if targeted else tolerance)
    if targeted and k >= 4:
        top = logits.topk(4, dim=1).values
        diff = diff / (top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + 1e-8)
    elif not targeted and k >= 3:
        top = logits.topk(3, dim=1).values
        diff = diff / (top[:, 0] - top[:, 2] + 1e-8)
    return -diff if targeted else diff


def check_levels(value: object) -> int | None:
    """Check a quantisation level count: ``None`` or an integer >= 2."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ValueError(BAD_LEVELS.format(value=value))
    return value
