"""ALMA with an SSIM distance: the augmented Lagrangian minimal-perturbation attack.

ALMA solves ``min_{x'} d(x, x')  s.t.  the classifier is fooled``, with the constraint written
as the difference of logits ratio ``DLR(x') < 0``, by minimising the augmented Lagrangian
``d(x, x') + P(DLR(x'), rho, mu)`` with RMSProp-with-momentum steps, while the multiplier ``mu``
follows the penalty's derivative (an exponential moving average) and the penalty parameter
``rho`` grows where the constraint stops improving.

References:
    Rony, Granger, Pedersoli, Ben Ayed, "Augmented Lagrangian Adversarial Attacks",
    ICCV 2021. https://arxiv.org/abs/2011.11857
    Birgin, Castillo, Martinez, "Numerical comparison of augmented Lagrangian algorithms for
    nonconvex problems", Comput. Optim. Appl. 31, 2005 (the penalty-Lagrangian P2).
    Croce, Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
    parameter-free attacks", ICML 2020. https://arxiv.org/abs/2003.01690 (the DLR).
"""

from __future__ import annotations

import torch
from torch import nn

from core.attacks.base import MeasuredAttack, Perturbation, register_attack
from core.attacks.minimal import (
    BestAdversarial,
    check_levels,
    difference_of_logits_ratio,
    is_adversarial,
    quantize,
)
from core.measures import PreparedCost
from core.validation import check_positive, check_positive_int

_RMS_EPS = 1e-8  # RMSProp's denominator guard (adv_lib)
_MU_RANGE = (1e-6, 1e12)  # the multiplier is clamped to this range after each update (adv_lib)
_MAX_DOUBLINGS = 40  # the initial step search doubles at most this many times


def penalty_p2(y: torch.Tensor, rho: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """The penalty-Lagrangian P2 of ALMA (Rony et al., Table 1; Birgin et al. 2005).

    ``mu y + mu rho y^2 + rho^2 y^3 / 6`` for ``y >= 0`` (constraint violated) and
    ``mu y / (1 - rho y)`` for ``y < 0`` (satisfied): smooth, increasing, its derivative in ``y``
    at 0 is ``mu``, and it flattens out to ``-mu / rho`` deep inside the feasible side.

    Args:
        y: Constraint values, (N,); negative means satisfied.
        rho: Penalty parameters, (N,), positive.
        mu: Multipliers, (N,), positive.

    Returns:
        (N,) penalty values.
    """
    above = mu * y + mu * rho * y**2 + rho**2 * y**3 / 6
    below = mu * y / (1 - rho * y.clamp(max=0))
    return torch.where(y >= 0, above, below)


def penalty_p2_grad(y: torch.Tensor, rho: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """(N,) derivative of :func:`penalty_p2` in ``y``: the multiplier estimate ALMA averages into ``mu``."""
    above = mu + 2 * mu * rho * y + rho**2 * y**2 / 2
    below = mu / (1 - rho * y.clamp(max=0)) ** 2
    return torch.where(y >= 0, above, below)


@register_attack("alma-ssim")
class ALMA(MeasuredAttack):
    """ALMA (Rony et al., ICCV 2021) with the SSIM distance ``1 - SSIM``: the least visible flip.

    Minimal-distortion attack: returns, per image, the adversarial iterate of lowest
    ``1 - SSIM`` found; images never flipped come back unchanged (``success`` False).

    Settings that follow the paper and its reference implementation (adv_lib's ``alma``, by
    the first author, with the SSIM settings of the paper's experiments): penalty P2;
    constraint the difference of logits ratio with tolerance 1e-4; ``mu_init`` 1, ``rho_init``
    1, ``check_steps`` (the paper's M) 10, ``tau`` 0.95, ``rho_growth`` (the paper's gamma) 1.2;
    RMSProp with momentum, both weighted by ``alpha``, squared-gradient average started at 1;
    the first step descends the penalty alone; the learning rate starts at ``lr_init`` = 0.1
    (adv_lib's default) and decays exponentially to ``lr_reduction`` = 0.01 of its start
    between the step an image is first fooled and the last step.

    Changes: the default is the paper's short configuration, 100 steps with ``alpha`` 0.5 (its
    100-step runs), rather than its main one, 1000 steps with ``alpha`` 0.9 (pass
    ``steps=1000``; ``alpha=None`` picks 0.9 above 100 steps), so that it costs what
    W-DRO's 100 steps cost. ``init_lr_distance`` (the paper's epsilon: each image's first
    learning rate found by a line search so that the first step adds that distance; 1e-4 for
    SSIM) is off by default: chosen on the validation images (bundled test images 1500-1999,
    128 of them, 100 steps), it made the attack weaker on both bundled models and both SSIM
    costs, the median 1 - SSIM of the fooled images 0.00085 against 0.00014 (fmnist-cnn,
    valid SSIM) and the 90th percentile 0.109 against 0.018 (padded SSIM); at 20 steps it is
    the stronger choice (0.048 against 0.064). With the same settings this implementation
    matches adv_lib's ``alma`` (``python -m bench.reference_check``). SSIM is this project's
    separable-Gaussian SSIM
    (``core.measures``: piq's, 11-pixel window, sigma 1.5, valid convolution; piq average-pools
    images of 256 pixels or more first, adv_lib does not). Success is tracked by the arg-max,
    as the base class reports it, rather than by the sign of the DLR. The initial line search
    stops after 40 doublings; the last iterate is checked too; ``max_cost`` (a budget) and
    ``levels`` (quantisation, which the paper's runs do not use) are additions.

    Note:
        The valid-window SSIM gives pixels within 5 of the image border almost no weight, and a
        minimal-SSIM attack finds that out: on 28x28 Fashion-MNIST nearly all of ALMA-SSIM's
        perturbation lies in that border, with pixel changes up to the full range. Read its
        SSIM together with a measure it did not optimise (L-inf, L2, HaarPSI, ...).

    Args:
        model: Classifier on [0, 1] images.
        steps: Iterations (one forward and backward pass each).
        measure: The registered measure whose cost is minimised (default ``"ssim"``, the
            paper's; any registered measure works, as in the reference implementation, so
            ALMA can run with the same cost as W-DRO).
        init_lr_distance: Distance the first step should add (sets each image's learning rate;
            the paper uses 1e-4 for SSIM); ``None`` (default) uses ``lr_init`` for every image.
        lr_init: Learning rate when ``init_lr_distance`` is ``None``.
        lr_reduction: Final learning rate as a fraction of the initial one.
        mu_init: Initial multiplier ``mu``.
        rho_init: Initial penalty parameter ``rho``.
        check_steps: Every this many steps, ``rho *= rho_growth`` for images not yet fooled whose
            constraint did not fall below ``tau`` times its previous check.
        tau: Required improvement ratio of the constraint.
        rho_growth: Growth factor of ``rho``.
        alpha: Moving-average weight of ``mu`` and of RMSProp (``None``: 0.5 for ``steps <= 100``,
            else 0.9, as in the paper).
        logit_tolerance: Margin added to the difference of logits.
        max_cost: Optional budget on ``1 - SSIM``: only adversarial iterates within it count,
            so the cost of every image stays within it.
        levels: Quantise each iterate to this many grey levels (``None``: no quantisation).

    Shape:
        x: (N, C, H, W) in [0, 1], at least 11x11; y: (N,) int64. ``cost`` is ``1 - SSIM``.

    Example:
        >>> result = ALMA(model)(x, y)
        >>> result.success_rate, result.measures["ssim"][result.success].mean()

    References:
        Rony, Granger, Pedersoli, Ben Ayed, "Augmented Lagrangian Adversarial Attacks",
        ICCV 2021. https://arxiv.org/abs/2011.11857
    """

    label = "ALMA (minimal SSIM)"
    minimal = True

    measure = "ssim"

    def __init__(
        self,
        model: nn.Module,
        *,
        steps: int = 100,
        measure: str = "ssim",
        init_lr_distance: float | None = None,
        lr_init: float = 0.1,
        lr_reduction: float = 0.01,
        mu_init: float = 1.0,
        rho_init: float = 1.0,
        check_steps: int = 10,
        tau: float = 0.95,
        rho_growth: float = 1.2,
        alpha: float | None = None,
        logit_tolerance: float = 1e-4,
        max_cost: float | None = None,
        levels: int | None = None,
    ) -> None:
        super().__init__(model)
        self._use_measure(measure)
        self.steps = check_positive_int(steps, name="steps")
        self.init_lr_distance = None if init_lr_distance is None else check_positive(init_lr_distance, name="init_lr_distance")
        self.lr_init = check_positive(lr_init, name="lr_init")
        self.lr_reduction = check_positive(lr_reduction, name="lr_reduction")
        self.mu_init = check_positive(mu_init, name="mu_init")
        self.rho_init = check_positive(rho_init, name="rho_init")
        self.check_steps = check_positive_int(check_steps, name="check_steps")
        self.tau = check_positive(tau, name="tau")
        self.rho_growth = check_positive(rho_growth, name="rho_growth")
        if alpha is None:
            alpha = 0.5 if self.steps <= 100 else 0.9
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha: expected a weight in [0, 1), got {alpha!r}")
        self.alpha = float(alpha)
        if logit_tolerance < 0:
            raise ValueError(f"logit_tolerance: expected a number >= 0, got {logit_tolerance!r}")
        self.logit_tolerance = float(logit_tolerance)
        self.max_cost = None if max_cost is None else check_positive(max_cost, name="max_cost")
        self.levels = check_levels(levels)

    def _perturb(self, x, y, target, generator) -> Perturbation:
        n, steps = x.shape[0], self.steps
        view = (-1, 1, 1, 1)
        cost_of = self._measure.prepare(x)
        label, targeted = (y, False) if target is None else (target, True)
        mu = torch.full((n,), self.mu_init, device=x.device, dtype=x.dtype)
        rho = torch.full((n,), self.rho_init, device=x.device, dtype=x.dtype)
        lr = torch.full((n,), self.lr_init, device=x.device, dtype=x.dtype)
        square_avg = torch.ones_like(x)  # RMSProp's running mean of the squared gradient
        momentum = torch.zeros_like(x)
        step_found = torch.full((n,), float(steps + 1), device=x.device, dtype=x.dtype)
        adv_found = torch.zeros(n, dtype=torch.bool, device=x.device)  # fooled at some step (budget or not)
        best = BestAdversarial(x, max_cost=self.max_cost)
        x_adv = x.clone()
        prev_constraint = None
        for i in range(steps):
            x_adv = x_adv.detach().requires_grad_(True)
            logits = self.model(x_adv)
            dist = cost_of(x_adv)  # (N,)
            constraint = difference_of_logits_ratio(
                logits, label, targeted=targeted, tolerance=self.logit_tolerance
            )  # (N,) < 0 when fooled
            with torch.no_grad():
                c = constraint.detach()
                is_adv = is_adversarial(logits, y, target)
                if i == 0:
                    prev_constraint = c
                elif (i + 1) % self.check_steps == 0:
                    stalled = ~(adv_found | (c < self.tau * prev_constraint))
                    rho = torch.where(stalled, self.rho_growth * rho, rho)
                    prev_constraint = c
                if i > 0:
                    mu = (self.alpha * mu + (1 - self.alpha) * penalty_p2_grad(c, rho, mu)).clamp(*_MU_RANGE)
                step_found = torch.where(~adv_found & is_adv, torch.full_like(step_found, i), step_found)
                adv_found |= is_adv
                best.update(x_adv, dist, is_adv)
            objective = penalty_p2(constraint, rho, mu)
            if i > 0:  # the first step descends the penalty alone (SSIM's gradient is 0 at x' = x)
                objective = objective + dist
            (grad,) = torch.autograd.grad(objective.sum(), x_adv)
            with torch.no_grad():
                x_adv = x_adv.detach()
                if i == 0 and self.init_lr_distance is not None:
                    grad = _nonzero_direction(grad, generator)
                    lr = _initial_lr(x, grad, cost_of, self.init_lr_distance)
                # exponential decay from the step an image is first fooled to the last step
                decay_exp = (i - step_found).clamp_min(0) / (steps - step_found)
                step_lr = lr * self.lr_reduction**decay_exp
                square_avg.mul_(self.alpha).addcmul_(grad, grad, value=1 - self.alpha)
                momentum.mul_(self.alpha).addcdiv_(grad, square_avg.sqrt().add_(_RMS_EPS))
                x_adv = quantize((x_adv - step_lr.view(view) * momentum).clamp(0.0, 1.0), self.levels)
            self._step_done(i + 1, steps)
        with torch.no_grad():
            best.update(x_adv, cost_of(x_adv), is_adversarial(self.model(x_adv), y, target))
        return Perturbation(x_adv=best.x_adv, steps=steps)


def _nonzero_direction(grad: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``grad``, with a random direction of norm 1 for images whose gradient norm is <= 1e-6 (adv_lib)."""
    norm = grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    small = norm <= 1e-6
    if not bool(small.any()):
        return grad
    noise = torch.randn(grad.shape, generator=generator, device=grad.device, dtype=grad.dtype)
    return torch.where(small, noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1), grad)


def _initial_lr(x: torch.Tensor, grad: torch.Tensor, distance: PreparedCost, target: float) -> torch.Tensor:
    """(N,) learning rate ``eta`` per image with ``distance(clip(x - eta * grad)) ~= target``.

    Doubling from 1 until the distance passes ``target`` (at most 40 times), then 20 rounds of
    bisection, as adv_lib's ``init_lr_finder``.
    """
    view = (-1, 1, 1, 1)
    n = x.shape[0]
    hi = torch.ones(n, device=x.device, dtype=x.dtype)
    lo = torch.zeros_like(hi)

    def over(eta: torch.Tensor) -> torch.Tensor:
        return distance((x - eta.view(view) * grad).clamp(0.0, 1.0)) > target

    found = over(hi)
    for _ in range(_MAX_DOUBLINGS):
        if bool(found.all()):
            break
        lo = torch.where(found, lo, hi)
        hi = torch.where(found, hi, hi * 2)
        found = over(hi)
    for _ in range(20):
        mid = (lo + hi) / 2
        larger = over(mid)
        lo, hi = torch.where(larger, lo, mid), torch.where(larger, mid, hi)
    return (lo + hi) / 2
