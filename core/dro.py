"""The W-DRO solver: every piece of the dual problem, the ascent and the group reweighting, once.

The attack (:class:`~core.attacks.WDRO`, :class:`~core.attacks.CheapestFlips`) and training
(:mod:`core.training.methods`) both solve ``sup_{W_c(Q, P_n) <= delta} E_Q[l]`` through its dual
``inf_{gamma >= 0} gamma * delta + mean_i sup_{x'} [l(x', y_i) - gamma * c(x_i, x')]``, and the
group methods reweight the same per-group losses. This module holds the only implementation of:

* :func:`dual_step`, the online update of the multiplier: ``log gamma`` moves by
  ``lr * clip(log(cost / (aim * delta)), *clip)``, up when the cost spent is over the aim,
  down when under. It is the sign of the dual gradient ``delta - cost`` on a log scale, so
  the step is scale-free in the measure. :func:`training_dual_step` is training's parameters.
* :func:`fit_budget`, the final line search: the perturbation is pulled back along the
  segment towards the clean image until the budget holds (cost evaluations only).
* :func:`penalised_ascent`, the attack's ascent on ``l - gamma * c`` (Adam-normalised steps,
  a cosine step size, a small random start, non-finite images held), with a ``dual`` hook
  that moves ``log gamma`` after every step: the budget form's rule, or the cheapest-flips
  rule (one multiplier per image). :func:`ascend` and :func:`ascent_step` are training's
  ascent rule (one RMS-normalised step, warm-started across epochs).
* :func:`group_sums` and :func:`group_mean` (with a ``reduce`` hook: DDP passes its all-reduce
  sum, so every rank gets the whole batch's group means), and :func:`update_group_weights`,
  Group DRO's exponentiated-gradient step.

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

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

from core.progress import Counter

BudgetMode = Literal["distributional", "pointwise"]
BUDGET_MODES: tuple[str, ...] = ("distributional", "pointwise")
BAD_MODE = "budget_mode: expected 'distributional' or 'pointwise', got {value!r}"
_FLOOR = 1e-3  # costs below FLOOR * target count as FLOOR * target: log(0) would be -inf

CostFn = Callable[[torch.Tensor], torch.Tensor]


NONFINITE_WARNING = "{count} image(s) had NaN or infinite loss, cost or gradient at some step; their last finite iterate was kept"
_BETAS = (0.9, 0.999)  # Adam's moment decay rates for the attack's ascent direction


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


def training_dual_step(log_gamma: float, mean_cost: float, budget: float, lr: float) -> float:
    """Training's online dual step, once per batch: :func:`dual_step` aimed at the budget, clipped to [-1, 1].

    When the perturbations cost more than the budget, ``gamma`` (the price of cost) goes up,
    and down when they cost less.
    """
    step = dual_step(torch.tensor(log_gamma, dtype=torch.float64), torch.tensor(mean_cost, dtype=torch.float64),
                     budget, lr=lr, aim=1.0, clip=(-1.0, 1.0))
    return float(step)


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




# -- the attack's ascent ---------------------------------------------------------------------


@dataclass(frozen=True)
class AscentStep:
    """What a dual rule sees after ascent step ``t`` (0-based): the iterate the step started from,
    its loss and cost (N,), and which images had a finite loss, cost and gradient."""

    t: int
    x_adv: torch.Tensor
    loss: torch.Tensor
    cost: torch.Tensor
    finite: torch.Tensor


class Ascent(NamedTuple):
    """A pass of :func:`penalised_ascent`: the final iterate, ``gamma`` at each step (T, N), and
    per image the number of steps whose loss, cost or gradient was not finite."""

    x_adv: torch.Tensor
    gamma: torch.Tensor
    nonfinite_steps: torch.Tensor


DualRule = Callable[[torch.Tensor, AscentStep], torch.Tensor]  # (log gamma (N,), step) -> new log gamma


def budget_rule(budget: float, mode: BudgetMode, *, lr: float, aim: float) -> DualRule:
    """The attack's online rule of the budget form: :func:`dual_step` after every ascent step.

    Aimed at ``aim * budget`` and clipped to [-1, 3]: one pass over the batch must find the
    budget, so the price may rise fast. Images with a non-finite loss, cost or gradient keep
    their multiplier (pointwise) or are left out of the batch's mean (distributional).
    """
    rule = dict(lr=lr, aim=aim, clip=(-1.0, 3.0))

    def step(log_gamma: torch.Tensor, s: AscentStep) -> torch.Tensor:
        if mode == "pointwise":
            return torch.where(s.finite, dual_step(log_gamma, s.cost, budget, **rule), log_gamma)
        if not bool(s.finite.any()):
            return log_gamma
        return dual_step(log_gamma, s.cost[s.finite].mean(), budget, **rule)

    return step


def penalised_ascent(
    loss_of: CostFn,
    cost_of: CostFn,
    x: torch.Tensor,
    log_gamma: torch.Tensor,
    *,
    steps: int,
    step_size: float,
    init_noise: float,
    generator: torch.Generator | None,
    project: Callable[[torch.Tensor], torch.Tensor],
    dual: DualRule | None = None,
    dual_from: int = 0,
    on_step: Counter | None = None,
) -> Ascent:
    """One pass of Adam-normalised ascent on ``l(x') - gamma * c(x, x')``, per image.

    Starts from ``x`` plus uniform noise of half-width ``init_noise`` (SSIM's gradient is ~0 at
    ``x' = x``, GMSD's is NaN there); the step decays from ``step_size`` to 0 with a cosine.
    Signed steps would move every pixel by the full step, and SSIM charges heavily for that
    noise on flat backgrounds; Adam's per-pixel normalisation damps pixels whose gradient keeps
    changing sign. An image whose loss, cost or gradient is not finite keeps its last finite
    iterate (a warning counts them). From step ``dual_from`` on, ``dual`` moves ``log gamma``
    after every step (the budget form's online rule, or the cheapest-flips rule).

    Args:
        loss_of: ``x' -> (N,)`` the loss to ascend.
        cost_of: ``x' -> (N,)`` the transport cost from ``x`` (a prepared measure).
        x: (N, C, H, W) clean images.
        log_gamma: (N,) starting ``log gamma`` (equal entries for one batch multiplier).
        project: ``x' -> x'`` onto the feasible set (the [0, 1] box, an optional L-inf cap).
        on_step: Called with ``(t + 1, steps)`` after every step (progress, cancellation).
    """
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_adv = project(x + init_noise * (2 * noise - 1))
    last_finite = x_adv
    nonfinite = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
    gammas = []
    b1, b2 = _BETAS
    m = torch.zeros_like(x)  # Adam's moments of the ascent direction, per pixel
    v = torch.zeros_like(x)
    for t in range(steps):
        step = step_size * 0.5 * (1 + math.cos(math.pi * t / steps))
        x_adv = x_adv.detach().requires_grad_(True)
        loss = loss_of(x_adv)  # (N,)
        cost = cost_of(x_adv)  # (N,)
        gamma = log_gamma.exp()
        # Dividing by 1 + gamma leaves each maximiser unchanged and keeps the gradient's
        # scale bounded while gamma moves over orders of magnitude (Adam remembers scales).
        (grad,) = torch.autograd.grad(((loss - gamma * cost) / (1 + gamma)).sum(), x_adv)
        with torch.no_grad():
            x_adv = iterate = x_adv.detach()
            finite = torch.isfinite(loss) & torch.isfinite(cost) & torch.isfinite(grad).flatten(1).all(1)
            if not bool(finite.all()):  # rare: hold those images at their last finite iterate
                nonfinite += (~finite).long()
                keep = finite.view(-1, 1, 1, 1)
                last_finite = torch.where(keep, x_adv, last_finite)
                grad = torch.where(keep, grad, 0.0)
                m, v = torch.where(keep, m, m / b1), torch.where(keep, v, v / b2)  # undo the decay below
            else:
                last_finite = x_adv
            # Adam: m, v are the moment estimates; the bias corrections fold into the step.
            m.mul_(b1).add_(grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            corrected = step * math.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1))
            x_adv = project(x_adv.addcdiv(m, v.sqrt().add_(1e-12), value=corrected))
            if not bool(finite.all()):
                x_adv = torch.where(finite.view(-1, 1, 1, 1), x_adv, last_finite)
            gammas.append(gamma)
            if on_step is not None:
                on_step(t + 1, steps)
            if dual is not None and t >= dual_from:
                log_gamma = dual(log_gamma, AscentStep(t, iterate, loss.detach(), cost.detach(), finite))
    x_adv = _finite_or_fallback(x, x_adv, last_finite, cost_of)
    if int((nonfinite > 0).sum()):
        warnings.warn(NONFINITE_WARNING.format(count=int((nonfinite > 0).sum())), RuntimeWarning, stacklevel=4)
    return Ascent(x_adv=x_adv, gamma=torch.stack(gammas), nonfinite_steps=nonfinite)


@torch.no_grad()
def _finite_or_fallback(x, x_adv, last_finite, cost_of: CostFn) -> torch.Tensor:
    """The last update was never evaluated: if its cost is not finite, step back; else use ``x``."""
    for candidate in (last_finite, x):
        bad = ~torch.isfinite(cost_of(x_adv))
        if not bool(bad.any()):
            break
        x_adv = torch.where(bad.view(-1, 1, 1, 1), candidate, x_adv)
    return x_adv


# -- training's ascent -------------------------------------------------------------------------


def ascend(x: torch.Tensor, x_adv: torch.Tensor, grad: torch.Tensor, step: float) -> torch.Tensor:
    """Training's ascent step: ``x_adv + step * grad / rms(grad)`` (RMS over the whole batch), in [0, 1].

    Images whose objective is steeper move further, so the worst case spends more of the
    (distributional) budget on images that are cheap to flip. Non-finite rows do not move.
    """
    finite = torch.isfinite(grad).flatten(1).all(1).view(-1, 1, 1, 1)
    grad = torch.where(finite, grad, 0.0)
    rms = grad.pow(2).mean().sqrt().clamp_min(1e-12)
    return (x_adv + step * grad / rms).clamp(0.0, 1.0)


def ascent_step(step_size: float, fraction: float) -> float:
    """Training's ascent step at ``fraction`` of the run: cosine from ``step_size`` to a tenth of it.

    A batch-normalised step keeps moving by ``step`` even at the inner optimum, so the
    perturbations jitter by about ``step``; shrinking it as the weights settle lets the
    warm-started ascent settle too.
    """
    return step_size * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(max(fraction, 0.0), 1.0))))


# -- groups ------------------------------------------------------------------------------------


def group_sums(values: torch.Tensor, g: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of ``values`` (N,) within each group and the group sizes, both (n_groups,), in ``values``' dtype."""
    sums = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(0, g, values)
    counts = torch.bincount(g, minlength=n_groups).to(values.dtype)
    return sums, counts


def group_mean(
    losses: torch.Tensor,
    g: torch.Tensor,
    n_groups: int,
    *,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``losses`` within each group.

    Args:
        losses: (N,) per-example losses.
        g: (N,) int64 group labels in [0, n_groups).
        n_groups: Number of groups.
        reduce: Sums a tensor over processes (DDP: ``Dist.sum``): the means are then those of
            every rank's examples together. ``None``: this process's only.

    Returns:
        ``(means, counts)``, both (n_groups,); the mean of an empty group is 0.
    """
    sums, counts = group_sums(losses, g, n_groups)
    if reduce is not None:
        both = reduce(torch.cat([sums, counts]))
        sums, counts = both[:n_groups], both[n_groups:]
    return sums / counts.clamp_min(1), counts


def update_group_weights(q: torch.Tensor, group_loss: torch.Tensor, step: float) -> torch.Tensor:
    """One exponentiated-gradient step of Group DRO: ``q_g <- q_g exp(step * L_g)``, renormalised.

    Equal losses keep ``q``; the weight moves towards the group with the larger loss.
    Returns a new tensor (``q`` is not modified).
    """
    logits = torch.log(q.clamp_min(1e-30)) + step * group_loss.detach()
    return torch.softmax(logits, dim=0)


__all__ = [
    "BUDGET_MODES", "Ascent", "AscentStep", "BudgetMode", "DualRule", "ascend", "budget_rule", "ascent_step", "check_budget_mode",
    "dual_step", "fit_budget", "group_mean", "group_sums", "penalised_ascent", "training_dual_step",
    "update_group_weights",
]
