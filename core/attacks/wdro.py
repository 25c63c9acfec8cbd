"""The W-DRO perceptual attack: the worst case in a Wasserstein ball whose cost is a perceptual measure.

With transport cost ``c((x, y), (x', y')) = d(x, x')`` (labels never move) and
budget ``delta``, strong duality gives

    sup_{W_c(Q, P_n) <= delta} E_Q[l]
        = inf_{gamma >= 0} gamma * delta + mean_i sup_{x'} [ l(x', y_i) - gamma * d(x_i, x') ].

* Penalty form (``gamma`` given): each image ascends ``l - gamma * d`` on its own.
* Budget form (``budget`` given): ``gamma`` is the multiplier at which the cost spent
  equals the budget. ``dual="online"`` updates ``log gamma`` by the dual gradient
  ``mean cost - delta`` after every ascent step (one pass); ``dual="bisection"`` runs the
  whole penalty-form ascent for each ``gamma`` of a bisection on ``log gamma`` (the
  reference, several passes). The ascent, the online rule and the final line search onto
  the budget are :mod:`core.dro`'s, shared with W-DRO training (its parameters differ).
* ``budget_mode="distributional"`` holds the batch average of the cost to ``delta``: the
  worst case spends more on images that are cheap to flip, nothing on hopeless ones.
  ``"pointwise"`` holds every image to ``delta`` (one multiplier per image).

The ascent (:func:`core.dro.penalised_ascent`) uses Adam-normalised gradient steps with a
cosine-decaying step size from a small uniform random start, and holds any image whose loss,
cost or gradient is not finite at its last finite iterate. In the budget form the output is
finally pulled back along the segment towards ``x`` if it overshoots the budget, so the budget
holds. :class:`~core.attacks.CheapestFlips` is the same ascent with one multiplier per image
that keeps each image's cheapest flip (a minimal attack).

References:
    Hua, Xu, Blanchet, Nguyen, "Human Imperceptible Attacks and Applications to Improve
    Fairness", 2021. https://arxiv.org/abs/2111.15603
    Sinha, Namkoong, Duchi, "Certifying Some Distributional Robustness with Principled
    Adversarial Training", ICLR 2018. https://arxiv.org/abs/1710.10571
    Blanchet, Murthy, "Quantifying Distributional Model Risk via Optimal Transport",
    Math. Oper. Res. 44(2), 2019. https://arxiv.org/abs/1604.01446
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from core.attacks.base import LossName, MeasuredAttack, Perturbation, register_attack
from core.dro import BudgetMode, DualRule, budget_rule, check_budget_mode, fit_budget, penalised_ascent
from core.measures import DEFAULT_COST, Measure, PreparedCost
from core.validation import check_positive, check_positive_int

DualMethod = Literal["online", "bisection"]

ONE_FORM = "give exactly one of gamma (penalty form) or budget (budget form), got gamma={gamma!r}, budget={budget!r}"


@register_attack("wdro")
class WDRO(MeasuredAttack):
    """W-DRO attack with a perceptual transport cost.

    Args:
        model: Classifier on [0, 1] images.
        measure: Transport cost: a registered measure name (default
            :data:`~core.measures.DEFAULT_COST`, SSIM of padded images; ``"ssim"``,
            ``"haarpsi"``, ...) or a :class:`~core.measures.Measure`.
        gamma: Penalty form: the fixed multiplier (larger = cheaper-looking, milder attack).
        budget: Budget form: the DRO budget ``delta`` (mean cost for ``"distributional"``,
            per-image cost for ``"pointwise"``).
        budget_mode: ``"distributional"`` (default) or ``"pointwise"``.
        dual: ``"online"`` (default, one pass) or ``"bisection"`` (reference).
        steps: Ascent steps per pass.
        step_size: Initial step of the ascent (Adam-normalised, so about this much per pixel);
            decays with a cosine to 0.
        init_noise: Half-width of the uniform random start.
        linf_cap: Optional cap on ``||x' - x||_inf``.
        loss: ``"ce"`` (the DRO objective) or ``"margin"``.
        kappa: Cap of the margin loss.
        gamma_init: Starting multiplier of the budget form (default ``1 / budget``).
        dual_lr: Step of the online update of ``log gamma`` per ascent step.
        dual_aim: The online update aims at ``dual_aim * budget``; the final line search then
            pulls the batch back onto the budget, so the cost lands on it from above.
        dual_warmup: Fraction of the steps before the online update starts (the cost starts
            at 0, and ``gamma`` must not collapse before the ascent has moved).
        bisection_rounds: Passes of the bisection reference (each one full ascent).

    Shape:
        x: (N, C, H, W) in [0, 1]; y: (N,) int64.

    Example:
        >>> attack = WDRO(model, measure="ssim", budget=0.02)
        >>> result = attack(x, y)
        >>> result.cost.mean()          # ~0.02: mean (1 - SSIM) spent
        >>> result.gamma[-1, 0]          # the multiplier gamma*
    """

    label = "W-DRO (perceptual)"
    takes_loss = takes_step_size = takes_measure = True

    def __init__(
        self,
        model: nn.Module,
        *,
        measure: str | Measure = DEFAULT_COST,
        gamma: float | None = None,
        budget: float | None = None,
        budget_mode: BudgetMode = "distributional",
        dual: DualMethod = "online",
        steps: int = 100,
        step_size: float = 0.01,
        init_noise: float = 1e-3,
        linf_cap: float | None = None,
        loss: LossName = "ce",
        kappa: float = 0.0,
        gamma_init: float | None = None,
        dual_lr: float = 0.1,
        dual_aim: float = 1.2,
        dual_warmup: float = 0.1,
        bisection_rounds: int = 10,
    ) -> None:
        super().__init__(model, loss=loss, kappa=kappa)
        if (gamma is None) == (budget is None):
            raise ValueError(ONE_FORM.format(gamma=gamma, budget=budget))
        check_budget_mode(budget_mode)
        if dual not in ("online", "bisection"):
            raise ValueError(f"dual: expected 'online' or 'bisection', got {dual!r}")
        self._use_measure(measure)
        self.gamma = None if gamma is None else check_positive(gamma, name="gamma")
        self.budget = None if budget is None else check_positive(budget, name="budget")
        self.budget_mode: BudgetMode = budget_mode
        self.dual: DualMethod = dual
        self.steps = check_positive_int(steps, name="steps")
        self.step_size = check_positive(step_size, name="step_size")
        self.init_noise = check_positive(init_noise, name="init_noise")
        self.linf_cap = None if linf_cap is None else check_positive(linf_cap, name="linf_cap")
        self.gamma_init = None if gamma_init is None else check_positive(gamma_init, name="gamma_init")
        self.dual_lr = check_positive(dual_lr, name="dual_lr")
        self.dual_aim = check_positive(dual_aim, name="dual_aim")
        if not 0.0 <= dual_warmup < 1.0:
            raise ValueError(f"dual_warmup: expected a fraction in [0, 1), got {dual_warmup!r}")
        self.dual_warmup = float(dual_warmup)
        self.bisection_rounds = check_positive_int(bisection_rounds, name="bisection_rounds")

    # -- the three ways to solve it ----------------------------------------------------------

    def _perturb(self, x, y, target, generator) -> Perturbation:
        cost_of = self._measure.prepare(x)
        n = x.shape[0]
        if self.gamma is not None:  # penalty form
            log_gamma = torch.full((n,), math.log(self.gamma), device=x.device, dtype=x.dtype)
            return self._pass(x, y, target, generator, cost_of, log_gamma)
        assert self.budget is not None
        gamma0 = self.gamma_init if self.gamma_init is not None else 1.0 / self.budget
        log_gamma = torch.full((n,), math.log(gamma0), device=x.device, dtype=x.dtype)
        if self.dual == "online":
            rule = budget_rule(self.budget, self.budget_mode, lr=self.dual_lr, aim=self.dual_aim)
            out = self._pass(x, y, target, generator, cost_of, log_gamma, dual=rule)
        else:
            out = self._bisection(x, y, target, generator, cost_of, log_gamma)
        # The line search onto the budget, 30 rounds (training uses 12: see core.dro).
        x_adv = fit_budget(x, out.x_adv, cost_of, self.budget, mode=self.budget_mode, rounds=30)
        return Perturbation(x_adv=x_adv, steps=out.steps, gamma=out.gamma, nonfinite_steps=out.nonfinite_steps)

    def _pass(self, x, y, target, generator, cost_of: PreparedCost, log_gamma: torch.Tensor,
              dual: DualRule | None = None) -> Perturbation:
        """One pass of :func:`core.dro.penalised_ascent` with this attack's settings."""
        out = penalised_ascent(
            lambda x_adv: self.per_sample_loss(self.model(x_adv), y, target), cost_of, x, log_gamma,
            steps=self.steps, step_size=self.step_size, init_noise=self.init_noise, generator=generator,
            project=lambda x_adv: clip_to(x, x_adv, self.linf_cap), dual=dual,
            dual_from=math.ceil(self.dual_warmup * self.steps), on_step=self._step_done,
        )
        return Perturbation(x_adv=out.x_adv, steps=self.steps, gamma=out.gamma, nonfinite_steps=out.nonfinite_steps)

    def _bisection(self, x, y, target, generator, cost_of: PreparedCost, log_gamma: torch.Tensor) -> Perturbation:
        """Reference for the budget form: bisection on ``log gamma``, a full ascent per round.

        The bracket spans a factor 1000 on each side of the start; after each round the
        bound on the over-budget side moves up, the other down. The answer is the last
        run within the budget (per image for ``"pointwise"``).
        """
        lo, hi = log_gamma - math.log(1e3), log_gamma + math.log(1e3)
        best, best_gamma, trajectory = None, None, []
        nonfinite = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
        for _ in range(self.bisection_rounds):
            mid = (lo + hi) / 2
            run = self._pass(x, y, target, generator, cost_of, mid)
            trajectory.append(run.gamma)
            nonfinite += run.nonfinite_steps
            with torch.no_grad():
                cost = cost_of(run.x_adv)
            over = cost > self.budget if self.budget_mode == "pointwise" else (cost.mean() > self.budget).expand_as(cost)
            lo, hi = torch.where(over, mid, lo), torch.where(over, hi, mid)
            if best is None:
                best, best_gamma = run.x_adv, mid.exp()
            keep = ~over
            best = torch.where(keep.view(-1, 1, 1, 1), run.x_adv, best)
            best_gamma = torch.where(keep, mid.exp(), best_gamma)
        trajectory.append(best_gamma[None])  # the multiplier of the answer, last
        return Perturbation(
            x_adv=best, steps=self.steps * self.bisection_rounds, gamma=torch.cat(trajectory), nonfinite_steps=nonfinite
        )


def clip_to(x: torch.Tensor, x_adv: torch.Tensor, linf_cap: float | None) -> torch.Tensor:
    """``x_adv`` in the [0, 1] box and, with a cap, within ``linf_cap`` of ``x`` in L-inf."""
    if linf_cap is not None:
        x_adv = x + (x_adv - x).clamp(-linf_cap, linf_cap)
    return x_adv.clamp(0.0, 1.0)
