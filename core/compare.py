"""SSIM-shaped versus L-inf perturbations at matched damage, on a batch of images.

Two attacks do the same damage when they fool the same fraction of images.
:func:`compare_ssim_linf` runs PGD-L-inf at a chosen radius, then tunes the DRO
budget of W-DRO-SSIM until it fools the same fraction, and sweeps both attacks'
budgets to trace attack success against perceptual cost.

Example:
    >>> cmp = compare_ssim_linf(model, x, y, eps=4 / 255)
    >>> cmp.pgd.success_rate, cmp.wdro.success_rate        # matched
    >>> cmp.pgd.measures["ssim"].mean(), cmp.wdro.measures["ssim"].mean()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from core.attacks import WDRO, Attack, AttackResult, PGDLinf
from core.measures import DEFAULT_COST
from core.validation import check_images, check_labels

Progress = Callable[[float, str], None]
MakeAttack = Callable[[float], Attack]

PGD_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)
WDRO_BUDGETS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)  # mean cost; padded SSIM needs ~10x valid SSIM's
MATCH_ROUNDS = 4


@dataclass(frozen=True)
class SweepPoint:
    """One attack run at one budget, summarised.

    Attributes:
        attack: Registry name of the attack.
        param: The budget (eps for PGD, delta for W-DRO).
        success_rate: Fraction of images fooled, in [0, 1].
        measures: Mean score of every measure over the batch.
    """

    attack: str
    param: float
    success_rate: float
    measures: dict[str, float]

    @classmethod
    def of(cls, param: float, result: AttackResult) -> SweepPoint:
        means = {name: float(v.float().mean()) for name, v in result.measures.items()}
        return cls(result.attack, float(param), result.success_rate, means)


@dataclass(frozen=True)
class Match:
    """The budget at which an attack reaches a target success rate.

    Attributes:
        param: The budget found.
        result: The attack's result at that budget.
        target: The success rate aimed at.
        runs: Attack runs spent searching (not counting the sweep it started from).
    """

    param: float
    result: AttackResult
    target: float
    runs: int

    @property
    def achieved(self) -> float:
        return self.result.success_rate

    @property
    def matched(self) -> bool:
        """Whether the success rates agree to within one image."""
        return abs(self.achieved - self.target) <= 1.0 / self.result.success.numel() + 1e-9


@dataclass(frozen=True)
class Comparison:
    """PGD-L-inf and W-DRO-SSIM at matched damage, with their sweeps.

    Attributes:
        x: Clean images, (N, C, H, W).
        y: Labels, (N,).
        eps: PGD's L-inf radius.
        pgd: PGD-L-inf's result at ``eps``.
        wdro: W-DRO-SSIM's result at the matched budget (distributional).
        budget: The matched DRO budget delta (mean 1 - SSIM).
        matched: Whether the success rates agree to within one image.
        pointwise: W-DRO-SSIM with the same delta as a per-image budget, for contrast.
        pgd_sweep: PGD over a range of eps.
        wdro_sweep: W-DRO-SSIM over a range of delta (and every run of the match).
    """

    x: torch.Tensor
    y: torch.Tensor
    eps: float
    pgd: AttackResult
    wdro: AttackResult
    budget: float
    matched: bool
    pointwise: AttackResult
    pgd_sweep: tuple[SweepPoint, ...]
    wdro_sweep: tuple[SweepPoint, ...]


def sweep(
    make: MakeAttack,
    params: Sequence[float],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[tuple[SweepPoint, AttackResult]]:
    """Run ``make(param)`` on (x, y) for each param, in order."""
    out = []
    for i, param in enumerate(params):
        if progress is not None:
            progress(i / len(params), f"budget {param:.4g}")
        result = make(param)(x, y, seed=seed)
        out.append((SweepPoint.of(param, result), result))
    return out


def match_success(
    make: MakeAttack,
    target: float,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    known: Sequence[tuple[float, AttackResult]] = (),
    lo: float = 1e-4,
    hi: float = 0.5,
    rounds: int = MATCH_ROUNDS,
    seed: int = 0,
    progress: Progress | None = None,
    at_least: bool = False,
    tolerance: float | None = None,
) -> Match:
    """Search the budget (on a log scale) at which ``make(budget)`` fools a ``target`` fraction.

    The results in ``known`` narrow the bracket first (for example a sweep already run);
    then up to ``rounds`` bisection runs. Success is taken as non-decreasing in the budget.
    Returns the run closest to the target (the smaller budget on a tie); it stops early
    once the rates agree to within ``tolerance`` (default half an image).

    With ``at_least=True`` it returns the smallest budget whose run reaches the target (the
    closest run when none does), and stops once one lands in ``[target, target + tolerance]``:
    the run can then be trimmed down to exactly the target (see ``bench/matched_damage.py``).
    """
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target: expected a success rate in [0, 1], got {target!r}")
    n = x.shape[0]
    tol = 0.5 / n if tolerance is None else float(tolerance)
    tried: list[tuple[float, AttackResult]] = list(known)
    for param, result in tried:
        if result.success_rate < target:
            lo = max(lo, param)
        else:
            hi = min(hi, param)
    runs = 0

    def best() -> tuple[float, AttackResult]:
        reached = [pr for pr in tried if pr[1].success_rate >= target]
        if at_least and reached:
            return min(reached, key=lambda pr: pr[0])
        return min(tried, key=lambda pr: (abs(pr[1].success_rate - target), pr[0]))

    def close_enough() -> bool:
        rate = best()[1].success_rate
        return target <= rate <= target + tol if at_least else abs(rate - target) <= tol

    while runs < rounds and (not tried or not close_enough()):
        mid = math.sqrt(lo * hi)
        if progress is not None:
            progress(runs / rounds, f"matching: budget {mid:.4g}")
        result = make(mid)(x, y, seed=seed)
        tried.append((mid, result))
        runs += 1
        if result.success_rate < target:
            lo = mid
        else:
            hi = mid
    param, result = best()
    return Match(param=param, result=result, target=target, runs=runs)


def compare_ssim_linf(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float = 4 / 255,
    steps: int = 50,
    pgd_eps: Sequence[float] = PGD_EPS,
    budgets: Sequence[float] = WDRO_BUDGETS,
    metric: str = DEFAULT_COST,
    loss: str = "margin",
    seed: int = 0,
    progress: Progress | None = None,
) -> Comparison:
    """PGD-L-inf at ``eps`` against W-DRO-SSIM tuned to the same attack success rate.

    Args:
        model: Classifier on [0, 1] images (not modified).
        x: Clean images, (N, C, H, W), at least 11 px a side (SSIM's window).
        y: Labels, (N,).
        eps: PGD's radius (10 steps, random start, cross-entropy: Madry et al.).
        steps: W-DRO's ascent steps.
        pgd_eps: PGD radii of the sweep (``eps`` is added).
        budgets: W-DRO budgets of the sweep.
        metric: W-DRO's transport cost (default :data:`core.measures.DEFAULT_COST`).
        loss: W-DRO's loss: ``"margin"`` (spends the budget only until an image is fooled) or
            ``"ce"``.
        seed: Seed of the random starts.
        progress: Called with (fraction done, what is running).
    """
    check_images(x)
    check_labels(y, x.shape[0])
    if not eps > 0:
        raise ValueError(f"eps: expected a positive L-inf radius, got {eps!r}")

    def pgd(e: float) -> Attack:
        return PGDLinf(model, eps=e)

    def wdro(delta: float, mode: str = "distributional") -> Attack:
        return WDRO(model, metric=metric, budget=delta, budget_mode=mode, steps=steps, loss=loss)

    def stage(start: float, width: float) -> Progress | None:
        if progress is None:
            return None
        return lambda f, msg: progress(start + width * f, msg)

    pgd_params = sorted({*map(float, pgd_eps), float(eps)})
    pgd_runs = sweep(pgd, pgd_params, x, y, seed=seed, progress=stage(0.0, 0.15))
    pgd_at = next(result for point, result in pgd_runs if point.param == float(eps))
    wdro_runs = sweep(wdro, budgets, x, y, seed=seed, progress=stage(0.15, 0.45))
    match = match_success(
        wdro, pgd_at.success_rate, x, y, known=[(p.param, r) for p, r in wdro_runs], seed=seed,
        progress=stage(0.6, 0.3),
    )
    if progress is not None:
        progress(0.9, "the same budget per image (pointwise)")
    pointwise = wdro(match.param, "pointwise")(x, y, seed=seed)
    if progress is not None:
        progress(1.0, "done")
    wdro_points = {p.param: p for p, _ in wdro_runs}
    wdro_points.setdefault(match.param, SweepPoint.of(match.param, match.result))
    return Comparison(
        x=x, y=y, eps=float(eps), pgd=pgd_at, wdro=match.result, budget=match.param, matched=match.matched,
        pointwise=pointwise,
        pgd_sweep=tuple(p for p, _ in pgd_runs),
        wdro_sweep=tuple(sorted(wdro_points.values(), key=lambda p: p.param)),
    )


def correctly_classified(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of (x, y) that ``model`` classifies correctly (attacks then start from 0% error)."""
    with torch.no_grad():
        keep = torch.cat([model(xb).argmax(1) == yb for xb, yb in zip(x.split(256), y.split(256))])
    idx = keep.nonzero().squeeze(1)[:n]
    if idx.numel() == 0:
        raise ValueError("the model classifies none of these images correctly")
    return x[idx], y[idx]


@dataclass(frozen=True)
class PairedDifference:
    """The difference of two success rates measured on the same images, with a 95 % interval.

    Attributes:
        difference: ``rate(a) - rate(b)``, in [-1, 1].
        low: Lower end of the 95 % interval (normal approximation on the per-image differences).
        high: Upper end.
        n: Images.
    """

    difference: float
    low: float
    high: float
    n: int

    @property
    def clear(self) -> bool:
        """Whether the interval excludes 0 (the sign would survive another sample of this size)."""
        return self.low > 0 or self.high < 0


def paired_difference(a: torch.Tensor, b: torch.Tensor) -> PairedDifference:
    """``a`` and ``b``: (N,) bool success per image of two attacks on the same images.

    The per-image differences ``a_i - b_i`` are in {-1, 0, 1}; the interval is their mean
    +- 1.96 standard errors, clipped to [-1, 1] (McNemar's setting: only the images where
    the attacks disagree move it).
    """
    if a.shape != b.shape or a.dim() != 1 or a.numel() == 0:
        raise ValueError(f"expected two (N,) success vectors of the same length, got {tuple(a.shape)} and {tuple(b.shape)}")
    d = a.double() - b.double()
    n = d.numel()
    mean = float(d.mean())
    se = float(d.std(unbiased=True)) / math.sqrt(n) if n > 1 else float("inf")
    return PairedDifference(mean, max(-1.0, mean - 1.96 * se), min(1.0, mean + 1.96 * se), n)
