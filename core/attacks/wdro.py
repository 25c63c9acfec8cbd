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
  reference, several passes). The online rule and the final line search onto the budget
  are :mod:`core.attacks.dro_budget`'s, shared with W-DRO training (its parameters differ).
* ``budget_mode="distributional"`` holds the batch average of the cost to ``delta``: the
  worst case spends more on images that are cheap to flip, nothing on hopeless ones.
  ``"pointwise"`` holds every image to ``delta`` (one multiplier per image).

The ascent uses Adam-normalised gradient steps with a cosine-decaying step size (signed
steps move every pixel by the full step, and SSIM charges heavily for that noise on flat
backgrounds; Adam's per-pixel normalisation damps pixels whose gradient keeps changing
sign), starts from a small uniform perturbation (SSIM's gradient is ~0 at ``x' = x``, GMSD's is NaN there),
and skips the update of any image whose loss, cost or gradient is not finite, keeping its
last finite iterate. In the budget form the output is finally pulled back along the
segment towards ``x`` if it overshoots the budget, so the budget holds.

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
import warnings
from typing import Literal

import torch
from torch import nn

from core.attacks.base import Attack, LossName, Perturbation, register_attack
from core.attacks.dro_budget import BudgetMode, check_budget_mode, dual_step, fit_budget
from core.measures import DEFAULT_COST, Measure, PreparedCost, get_measure
from core.validation import check_positive, check_positive_int

_BETAS = (0.9, 0.999)  # Adam's moment decay rates for the ascent direction
DualMethod = Literal["online", "bisection"]

ONE_FORM = "give exactly one of gamma (penalty form) or budget (budget form), got gamma={gamma!r}, budget={budget!r}"
NONFINITE_WARNING = "{count} image(s) had NaN or infinite loss, cost or gradient at some step; their last finite iterate was kept"


@register_attack("wdro")
class WDRO(Attack):
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
        self._measure = get_measure(measure) if isinstance(measure, str) else measure
        self.measure = self._measure.name
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
            return self._ascend(x, y, target, generator, cost_of, log_gamma, online=False)
        assert self.budget is not None
        gamma0 = self.gamma_init if self.gamma_init is not None else 1.0 / self.budget
        log_gamma = torch.full((n,), math.log(gamma0), device=x.device, dtype=x.dtype)
        if self.dual == "online":
            out = self._ascend(x, y, target, generator, cost_of, log_gamma, online=True)
        else:
            out = self._bisection(x, y, target, generator, cost_of, log_gamma)
        x_adv = self._fit_budget(x, out.x_adv, cost_of)
        return Perturbation(x_adv=x_adv, steps=out.steps, gamma=out.gamma, nonfinite_steps=out.nonfinite_steps)

    def _check(self, x: torch.Tensor) -> None:
        self._measure.check(x.shape)

    def _cost(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._measure.cost(x, x_adv)

    def _ascend(self, x, y, target, generator, cost_of: PreparedCost, log_gamma: torch.Tensor, *, online: bool):
        """One pass of Adam-normalised ascent on ``l - gamma * d``; ``online`` also updates ``log gamma``."""
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = self._clip(x, x + self.init_noise * (2 * noise - 1))
        last_finite = x_adv
        nonfinite = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
        gammas = []
        b1, b2 = _BETAS
        m = torch.zeros_like(x)  # Adam's moments of the ascent direction, per pixel
        v = torch.zeros_like(x)
        for t in range(self.steps):
            step = self.step_size * 0.5 * (1 + math.cos(math.pi * t / self.steps))
            x_adv = x_adv.detach().requires_grad_(True)
            loss = self.per_sample_loss(self.model(x_adv), y, target)  # (N,)
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
                x_adv = self._clip(x, x_adv.addcdiv(m, v.sqrt().add_(1e-12), value=corrected))
                if not bool(finite.all()):
                    x_adv = torch.where(finite.view(-1, 1, 1, 1), x_adv, last_finite)
                gammas.append(gamma)
                self._step_done(t + 1, self.steps)
                if online and t >= self.dual_warmup * self.steps:
                    log_gamma = self._dual_step(log_gamma, cost, finite, loss=loss.detach(), x_adv=iterate)
        x_adv = self._finite_or_fallback(x, x_adv, last_finite, cost_of)
        if int((nonfinite > 0).sum()):
            warnings.warn(NONFINITE_WARNING.format(count=int((nonfinite > 0).sum())), RuntimeWarning, stacklevel=4)
        return Perturbation(x_adv=x_adv, steps=self.steps, gamma=torch.stack(gammas), nonfinite_steps=nonfinite)

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
            run = self._ascend(x, y, target, generator, cost_of, mid, online=False)
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

    # -- pieces ------------------------------------------------------------------------------

    def _dual_step(
        self, log_gamma: torch.Tensor, cost: torch.Tensor, finite: torch.Tensor, *, loss: torch.Tensor, x_adv: torch.Tensor
    ) -> torch.Tensor:
        """The shared online step (:func:`~core.attacks.dro_budget.dual_step`), aimed at ``dual_aim * budget``.

        ``cost`` and ``loss`` are those of the iterate ``x_adv`` the last step started from.
        Clipped to [-1, 3]: one pass over the batch must find the budget, so the price may
        rise fast. Images with a non-finite loss, cost or gradient keep their multiplier
        (pointwise) or are left out of the batch's mean (distributional).
        """
        rule = dict(lr=self.dual_lr, aim=self.dual_aim, clip=(-1.0, 3.0))
        if self.budget_mode == "pointwise":
            return torch.where(finite, dual_step(log_gamma, cost, self.budget, **rule), log_gamma)
        if not bool(finite.any()):
            return log_gamma
        return dual_step(log_gamma, cost[finite].mean(), self.budget, **rule)

    def _fit_budget(self, x: torch.Tensor, x_adv: torch.Tensor, cost_of: PreparedCost) -> torch.Tensor:
        """The shared line search (:func:`~core.attacks.dro_budget.fit_budget`), 30 rounds."""
        return fit_budget(x, x_adv, cost_of, self.budget, mode=self.budget_mode, rounds=30)

    def _clip(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        if self.linf_cap is not None:
            x_adv = x + (x_adv - x).clamp(-self.linf_cap, self.linf_cap)
        return x_adv.clamp(0.0, 1.0)

    @torch.no_grad()
    def _finite_or_fallback(self, x, x_adv, last_finite, cost_of: PreparedCost) -> torch.Tensor:
        """The last update was never evaluated: if its cost is not finite, step back; else use ``x``."""
        for candidate in (last_finite, x):
            bad = ~torch.isfinite(cost_of(x_adv))
            if not bool(bad.any()):
                break
            x_adv = torch.where(bad.view(-1, 1, 1, 1), candidate, x_adv)
        return x_adv
