"""Decoupled Direction and Norm (DDN): a minimal-perturbation L2 attack.

References:
    Rony, Hafemann, Oliveira, Ben Ayed, Sabourin, Granger, "Decoupled Direction and Norm
    Attacks for Efficient Gradient-Based L2 Adversarial Attacks and Defenses", CVPR 2019.
    https://arxiv.org/abs/1811.09600
"""

from __future__ import annotations

import math

import torch
from torch import nn

from core.attacks.base import Attack, Perturbation, register_attack
from core.attacks.minimal import (
    BestAdversarial,
    check_levels,
    is_adversarial,
    quantize,
    unit_l2,
)
from core.validation import check_positive, check_positive_int

_LR_MIN = 0.01  # end of the cosine-annealed step length (the paper's SGD: lr 1 -> 0.01)


@register_attack("ddn")
class DDN(Attack):
    """Decoupled Direction and Norm attack (Rony et al., CVPR 2019): the smallest L2 flip.

    Each step moves along the unit-normalised gradient of the cross-entropy (the direction),
    then rescales the perturbation onto a sphere of radius ``eps`` (the norm), which shrinks by
    ``1 - gamma`` while the current iterate is adversarial and grows by ``1 + gamma`` while it
    is not. The best (smallest-norm) adversarial iterate per image is returned; images never
    flipped come back unchanged (``success`` False).

    Settings that follow the paper and its reference implementation (adv_lib, by the first
    author): ``steps`` 100, ``gamma`` 0.05, ``init_norm`` 1.0, step length annealed with a cosine
    from 1 to 0.01, ``eps`` capped at the largest norm the [0, 1] box allows, cross-entropy loss.
    Changes: quantisation to 8 bits after each step (``levels=256`` in the paper) is off by
    default so that DDN produces float images like the other attacks here (pass ``levels=256``
    to follow the paper); a zero gradient is replaced by a random *unit* direction drawn from
    the attack's seeded generator; the last iterate is checked too (one extra forward pass).

    Args:
        model: Classifier on [0, 1] images.
        steps: Iterations (one forward and backward pass each).
        gamma: Norm update factor: ``eps *= 1 - gamma`` if adversarial, ``1 + gamma`` if not.
        init_norm: Starting radius ``eps``.
        max_cost: Optional L2 budget: the sphere never exceeds it, and only adversarial iterates
            within it count, so ``||x_adv - x||_2 <= max_cost`` for every image.
        levels: Quantise each iterate to this many grey levels (``None``: no quantisation).

    Shape:
        x: (N, C, H, W) in [0, 1]; y: (N,) int64. ``cost`` is ``||x_adv - x||_2`` per image.

    Example:
        >>> result = DDN(model, steps=100)(x, y)
        >>> result.success_rate, result.cost[result.success].median()

    References:
        Rony, Hafemann, Oliveira, Ben Ayed, Sabourin, Granger, "Decoupled Direction and Norm
        Attacks for Efficient Gradient-Based L2 Adversarial Attacks and Defenses", CVPR 2019.
        https://arxiv.org/abs/1811.09600
    """

    label = "DDN (minimal L2)"
    minimal = True

    measure = "l2"

    def __init__(
        self,
        model: nn.Module,
        *,
        steps: int = 100,
        gamma: float = 0.05,
        init_norm: float = 1.0,
        max_cost: float | None = None,
        levels: int | None = None,
    ) -> None:
        super().__init__(model, loss="ce")
        self.steps = check_positive_int(steps, name="steps")
        self.gamma = check_positive(gamma, name="gamma")
        if self.gamma >= 1.0:
            raise ValueError(f"gamma: expected a factor in (0, 1), got {gamma!r}")
        self.init_norm = check_positive(init_norm, name="init_norm")
        self.max_cost = None if max_cost is None else check_positive(max_cost, name="max_cost")
        self.levels = check_levels(levels)

    def _perturb(self, x, y, target, generator) -> Perturbation:
        n = x.shape[0]
        worst = torch.maximum(x, 1 - x).flatten(1).norm(dim=1)  # (N,) farthest point of the box
        if self.max_cost is not None:
            worst = worst.clamp(max=self.max_cost)
        eps = torch.full((n,), self.init_norm, device=x.device, dtype=x.dtype).minimum(worst)
        best = BestAdversarial(x, max_cost=self.max_cost)
        x_adv = x.clone()  # the iterate, always in [0, 1] (and on the grid when quantised)
        for i in range(self.steps):
            lr = _LR_MIN + 0.5 * (1 - _LR_MIN) * (1 + math.cos(math.pi * i / self.steps))
            x_adv = x_adv.detach().requires_grad_(True)
            logits = self.model(x_adv)
            loss = self.per_sample_loss(logits, y, target)  # (N,) ascending it leaves y / reaches target
            (grad,) = torch.autograd.grad(loss.sum(), x_adv)
            with torch.no_grad():
                x_adv = x_adv.detach()
                delta = x_adv - x
                is_adv = is_adversarial(logits, y, target)
                best.update(x_adv, delta.flatten(1).norm(dim=1), is_adv)
                delta = delta + lr * unit_l2(grad, generator)
                eps = torch.where(is_adv, eps * (1 - self.gamma), eps * (1 + self.gamma)).minimum(worst)
                delta = delta * (eps / delta.flatten(1).norm(dim=1).clamp_min(1e-12)).view(-1, 1, 1, 1)
                x_adv = quantize((x + delta).clamp(0.0, 1.0), self.levels)
            self._step_done(i + 1, self.steps)
        with torch.no_grad():
            best.update(x_adv, (x_adv - x).flatten(1).norm(dim=1), is_adversarial(self.model(x_adv), y, target))
        return Perturbation(x_adv=best.x_adv, steps=self.steps)

    def _cost(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        return (x_adv - x).flatten(1).norm(dim=1)
