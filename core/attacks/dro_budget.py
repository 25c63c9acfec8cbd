"""The budget form of W-DRO, shared by the attack (:class:`~core.attacks.WDRO`) and training.

Both solve ``sup_{W_c(Q, P_n) <= delta} E_Q[l]`` through its dual
``inf_{gamma >= 0} gamma * delta + mean_i sup_{x'} [l(x', y_i) - gamma * c(x_i, x')]``.
Two pieces turn a penalty-form ascent into a budget-form one, and this module holds the only
implementation of each:

* :func:`dual_step`, the online update of the multiplier: ``log gamma`` moves by
  ``lr * clip(log(cost / (aim * delta)), *clip)``, up when the cost spent is over the aim,
  down when under. It is the sign of the dual gradient ``delta - cost`` on a log scale, so
  the step is scale-free in the measure.
* :func:`fit_budget`, the final line search: the perturbation is pulled back along the
  segment towards the clean image until the budget holds (cost evaluations only).

Budget modes (one vocabulary for the attack, training, the CLI and the app):

* ``"distributional"``: the batch's **mean** cost is at most ``delta`` (the W-DRO ball:
  the worst case may spend more on images that are cheap to flip, nothing on hopeless ones).
  One multiplier for the batch, one shrink factor.
* ``"pointwise"``: every image's cost is at most ``delta`` (one multiplier, one shrink
  factor per image).

The attack and training differ only in the parameters, and each sets its own:

==========================  ================  ===================
parameter                   attack (``WDRO``)  training (fast W-DRO)
==========================  ================  ===================
updates of ``gamma``         every ascent step  once per batch, across batches
``aim``                      1.2 (lands above,  1.0
                             the line search
                             pulls it back)
``clip``                     (-1, 3)            (-1, 1)
line-search ``rounds``       30                 12
==========================  ================  ===================

The attack makes one pass over a fixed batch, so its multiplier must find the budget within
the pass (a wide, upward-fast clip) and should overshoot slightly so the exact line search
lands on the budget from above; training carries ``gamma`` across thousands of batches and
only needs to track the budget (a narrow clip keeps one odd batch from moving it far), and
12 rounds put the mean cost within ``2^-12`` of the shrink factor, far below the noise of a
training step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

BudgetMode = Literal["distributional", "pointwise"]
BUDGET_MODES: tuple[str, ...] = ("distributional", "pointwise")
BAD_MODE = "budget_mode: expected 'distributional' or 'pointwise', got {value!r}"
_FLOOR = 1e-3  # costs below FLOOR * target count as FLOOR * target: log(0) would be -inf

CostFn = Callable[[torch.Tensor], torch.Tensor]


def check_budget_mode(value: object) -> BudgetMode:
    """``value`` if it is a budget mode; else a ValueError naming both."""
    if value not in BUDGET_MODES:
        raise ValueError(BAD_MODE.format(value=value))
    return value  # type: ignore[return-value]


def dual_step(
    log_gamma: torch.Tensor,
    cost: torch.Tensor,
    budget: float,
    *,
    lr: float,
    aim: float = 1.0,
    clip: tuple[float, float] = (-1.0, 1.0),
) -> torch.Tensor:
    """One online dual step: ``log_gamma + lr * clip(log(cost / (aim * budget)))``.

    Args:
        log_gamma: Current ``log gamma``: a scalar (distributional) or (N,) (pointwise).
        cost: The cost spent: the mean over the batch (a scalar) or per image (N,).
            Non-finite or negative costs count as the floor (``1e-3 * aim * budget``).
        budget: The DRO budget ``delta``.
        lr: Step on ``log gamma``.
        aim: The update aims at ``aim * budget``.
        clip: Bounds on the log-ratio before it is scaled by ``lr``.

    Returns:
        The new ``log gamma``, same shape as ``log_gamma``.

    Example:
        >>> dual_step(torch.tensor(0.0), torch.tensor(0.04), 0.02, lr=0.1)  # twice over: price up
        tensor(0.0693)
    """
    target = aim * budget
    cost = torch.as_tensor(cost, dtype=log_gamma.dtype, device=log_gamma.device)
    cost = cost.nan_to_num(0.0, posinf=0.0, neginf=0.0).clamp_min(_FLOOR * target)
    return log_gamma + lr * torch.log(cost / target).clamp(*clip)


@torch.no_grad()
def fit_budget(
    x: torch.Tensor,
    x_adv: torch.Tensor,
    cost_of: CostFn,
    budget: float,
    *,
    mode: BudgetMode = "distributional",
    rounds: int,
) -> torch.Tensor:
    """Pull ``x_adv`` back along the segment to ``x`` until the budget holds (bisection, cost only).

    ``x + s * (x_adv - x)`` with the largest shrink factor ``s`` in [0, 1] found by ``rounds``
    bisection steps: one ``s`` for the batch (``"distributional"``: the mean cost fits) or one
    per image (``"pointwise"``: each cost fits). Within the budget already: returned as given.
    A non-finite cost counts as 0 in the batch's mean and as over the budget for one image.

    Args:
        x: (N, C, H, W) clean images.
        x_adv: (N, C, H, W) perturbed images.
        cost_of: ``x' -> (N,)`` transport cost from ``x`` (a prepared measure).
        budget: The DRO budget ``delta``.
        mode: ``"distributional"`` or ``"pointwise"``.
        rounds: Bisection steps (the factor is within ``2 ** -rounds`` of the largest that fits).
    """
    check_budget_mode(mode)
    delta = x_adv - x
    cost = cost_of(x_adv)
    if mode == "pointwise":
        shape = (-1,) + (1,) * (x.dim() - 1)
        over = cost.nan_to_num(float("inf")) > budget  # the others keep their full perturbation
        if not bool(over.any()):
            return x_adv
        lo = torch.where(over, 0.0, 1.0).to(x.dtype)
        hi = torch.ones_like(lo)
        for _ in range(rounds):
            mid = (lo + hi) / 2
            ok = cost_of(x + mid.view(shape) * delta).nan_to_num(float("inf")) <= budget
            lo = torch.where(over & ok, mid, lo)
            hi = torch.where(over & ~ok, mid, hi)
        return x + lo.view(shape) * delta
    if float(cost.nan_to_num(0.0).mean()) <= budget:
        return x_adv
    lo, hi = 0.0, 1.0
    for _ in range(rounds):
        mid = (lo + hi) / 2
        if float(cost_of(x + mid * delta).nan_to_num(0.0).mean()) <= budget:
            lo = mid
        else:
            hi = mid
    return x + lo * delta


__all__ = ["BUDGET_MODES", "BudgetMode", "check_budget_mode", "dual_step", "fit_budget"]
