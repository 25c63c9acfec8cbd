"""SSIM-shaped versus L-inf perturbations at matched damage, on a batch of images.

Two attacks do the same damage when they fool the same fraction of images.
:func:`compare_ssim_linf` runs PGD-L-inf at a chosen radius and W-DRO (the default cost)
at the DRO budget that fools the same fraction, and traces both attacks' success against
perceptual cost.

W-DRO is solved for every budget at once. Matched damage counts fooled images, and every
fooled image counts the same: so the distributional worst case at budget ``delta`` spends
the mean cost on the images cheapest to flip, cheapest first (a knapsack whose items all
have the same value). One pass of :class:`~core.attacks.CheapestFlips` finds each image's cheapest flip
under the cost; the worst case that fools ``k`` of ``N`` images keeps the ``k`` cheapest and
leaves the others clean, at budget ``delta_k`` = (sum of those ``k`` costs) / N
(:func:`keep_cheapest`). The pointwise budget at the same ``delta`` fools the images whose
cheapest flip costs at most ``delta``. On validation images this one pass found the
matched worst case at a smaller budget (0.38x to 0.89x, two models) than bisecting the budget over
whole W-DRO runs found, in one run instead of eight to ten (``python -m bench.matched_mode``;
docs/benchmarks.md).

Example:
    >>> cmp = compare_ssim_linf(model, x, y, eps=4 / 255)
    >>> cmp.pgd.success_rate, cmp.wdro.success_rate        # matched
    >>> cmp.pgd.measures["ssim"].mean(), cmp.wdro.measures["ssim"].mean()
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from core.attacks import Attack, AttackResult, CheapestFlips, PGDLinf
from core.measures import DEFAULT_COST, evaluate_measures, get_measure
from core.progress import Report
from core.validation import check_images, check_labels

MakeAttack = Callable[[float], Attack]

PGD_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
FRONTIER_POINTS = 12  # W-DRO budgets drawn on the frontier (all from the one pass)
MATCH_ROUNDS = 4


@dataclass(frozen=True)
class SweepPoint:
    """One attack at one budget, summarised.

    Attributes:
        attack: Registry name of the attack.
        param: The budget (eps for PGD, delta for W-DRO).
        success_rate: Fraction of images fooled, in [0, 1].
        measures: Mean score of every measure over the fooled images (the images the
            damage is counted on, as in ``bench.matched_damage``).
    """

    attack: str
    param: float
    success_rate: float
    measures: dict[str, float]

    @classmethod
    def of(cls, param: float, result: AttackResult) -> SweepPoint | None:
        """The point of one result; ``None`` when it fooled no image (nothing to judge)."""
        fooled = result.success
        if not bool(fooled.any()):
            return None
        means = {name: float(v[fooled].double().mean()) for name, v in result.measures.items()}
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
    """PGD-L-inf and W-DRO at matched damage, with their frontiers.

    Attributes:
        x: Clean images, (N, C, H, W).
        y: Labels, (N,).
        eps: PGD's L-inf radius.
        pgd: PGD-L-inf's result at ``eps``.
        wdro: W-DRO's worst case at the matched budget (distributional).
        budget: The matched DRO budget delta (mean cost over the N images).
        matched: Whether W-DRO fools exactly as many images as PGD.
        pointwise: The worst case with the same delta as a per-image budget, for contrast.
        flips: The one pass both come from: each image's cheapest flip found.
        pgd_sweep: PGD over a range of eps.
        wdro_sweep: W-DRO over a range of delta (every point from ``flips``).
    """

    x: torch.Tensor
    y: torch.Tensor
    eps: float
    pgd: AttackResult
    wdro: AttackResult
    budget: float
    matched: bool
    pointwise: AttackResult
    flips: AttackResult
    pgd_sweep: tuple[SweepPoint, ...]
    wdro_sweep: tuple[SweepPoint, ...]


def keep_cheapest(flips: AttackResult, k: int, *, clean: dict[str, torch.Tensor] | None = None) -> AttackResult:
    """The worst case that fools ``k`` images: the ``k`` cheapest flips of ``flips``, the other images clean.

    Fewer than ``k`` when fewer were fooled. ``clean`` is ``evaluate_measures(x, x)``, passed
    to derive the measures per image without recomputing them (computed when missing).
    """
    return _select(flips, cheapest_fooled(flips, k), clean)


def cheapest_fooled(result: AttackResult, k: int) -> torch.Tensor:
    """(N,) bool: the ``k`` fooled images of lowest own cost (all the fooled ones if fewer; ties by index)."""
    order = torch.where(result.success, result.cost, torch.inf).argsort(stable=True)
    kept = torch.zeros_like(result.success)
    kept[order[: min(int(k), int(result.success.sum()))]] = True
    return kept


def keep_within(flips: AttackResult, budget: float, *, clean: dict[str, torch.Tensor] | None = None) -> AttackResult:
    """The pointwise worst case at ``budget``: the flips that cost at most ``budget``, the other images clean."""
    return _select(flips, flips.success & (flips.cost <= budget), clean)


def _select(flips: AttackResult, kept: torch.Tensor, clean: dict[str, torch.Tensor] | None) -> AttackResult:
    if clean is None:
        clean = evaluate_measures(flips.x, flips.x)
    k4 = kept.view(-1, 1, 1, 1)
    out = dataclasses.replace(
        flips, x_adv=torch.where(k4, flips.x_adv, flips.x), success=kept,
        pred_adv=torch.where(kept, flips.pred_adv, flips.pred_clean),
        prob_adv=torch.where(kept[:, None], flips.prob_adv, flips.prob_clean),
        cost=torch.where(kept, flips.cost, 0.0),
    )
    out.__dict__["measures"] = {name: torch.where(kept, v, clean[name]) for name, v in flips.measures.items()}
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
    progress: Report | None = None,
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
    measure: str = DEFAULT_COST,
    seed: int = 0,
    progress: Report | None = None,
) -> Comparison:
    """PGD-L-inf at ``eps`` against W-DRO at the budget that fools the same number of images.

    Args:
        model: Classifier on [0, 1] images (not modified).
        x: Clean images, (N, C, H, W), at least 11 px a side (SSIM's window).
        y: Labels, (N,).
        eps: PGD's radius (10 steps, random start, cross-entropy: Madry et al.).
        steps: Ascent steps of the one W-DRO pass (:class:`~core.attacks.CheapestFlips`).
        pgd_eps: PGD radii of the frontier (``eps`` is added; ``()``: only ``eps``, and the page
            traces the rest afterwards with :func:`run_pgd`).
        measure: W-DRO's transport cost (default :data:`core.measures.DEFAULT_COST`).
        seed: Seed of the random starts.
        progress: Called with (fraction done, what is running, in words).

    Cost: ``len(pgd_eps) + 1`` PGD runs of 10 steps and one W-DRO pass of ``steps`` steps.
    """
    check_images(x)
    check_labels(y, x.shape[0])
    if not eps > 0:
        raise ValueError(f"eps: expected a positive L-inf radius, got {eps!r}")
    n = x.shape[0]
    pgd_params = sorted({*map(float, pgd_eps), float(eps)})
    share = len(pgd_params) * 10 / (len(pgd_params) * 10 + steps)  # of the work: steps, PGD's against W-DRO's

    def tell(fraction: float, what: str) -> None:
        if progress is not None:
            progress(min(fraction, 1.0), what)

    pgd_runs = run_pgd(model, x, y, pgd_params, seed=seed, progress=lambda f, msg: tell(share * f, msg))
    pgd_at = next(result for param, result in pgd_runs if param == float(eps))
    solver = CheapestFlips(model, measure=measure, steps=steps)
    every = max(1, steps // 10)  # ten updates a pass: each one is a message to the browser

    def step_done(t: int, total: int) -> None:
        if t % every == 0 or t == total:
            tell(share + (1 - share) * t / total, f"W-DRO: each image's cheapest flip, step {t} of {total}")

    solver.on_step = step_done
    flips = solver(x, y, seed=seed)
    tell(1.0, "W-DRO at every budget, from the flips found")
    clean = evaluate_measures(x, x)
    k = int(pgd_at.success.sum())
    wdro = keep_cheapest(flips, k, clean=clean)
    budget = float(wdro.cost.sum()) / n
    pointwise = keep_within(flips, budget, clean=clean)
    fooled = int(flips.success.sum())
    counts = sorted({max(1, round(q * fooled)) for q in torch.linspace(0, 1, FRONTIER_POINTS).tolist()} | {k}) if fooled else []
    wdro_points = []
    for count in counts:
        worst = wdro if count == k else keep_cheapest(flips, count, clean=clean)
        wdro_points.append(SweepPoint.of(float(worst.cost.sum()) / n, worst))
    return Comparison(
        x=x, y=y, eps=float(eps), pgd=pgd_at, wdro=wdro, budget=budget, matched=int(wdro.success.sum()) == k,
        pointwise=pointwise, flips=flips,
        pgd_sweep=frontier_points(pgd_runs),
        wdro_sweep=tuple(p for p in wdro_points if p is not None),
    )


def run_pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, radii: Sequence[float], *, seed: int = 0,
    progress: Report | None = None,
) -> list[tuple[float, AttackResult]]:
    """PGD-L-inf (10 steps) at each radius, in order: ``[(radius, result), ...]``."""
    runs = []
    for i, e in enumerate(map(float, radii)):
        if progress is not None:
            progress(i / len(radii), f"PGD-L-inf at radius {e * 255:.3g}/255 ({i + 1} of {len(radii)} radii)")
        runs.append((e, PGDLinf(model, eps=e)(x, y, seed=seed)))
    if progress is not None:
        progress(1.0, "PGD-L-inf done")
    return runs


def frontier_points(runs: Sequence[tuple[float, AttackResult]]) -> tuple[SweepPoint, ...]:
    """The frontier points of ``(budget, result)`` runs, by budget; runs that fooled nothing are left out."""
    points = (SweepPoint.of(param, result) for param, result in sorted(runs, key=lambda r: r[0]))
    return tuple(p for p in points if p is not None)


def correctly_classified(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int, *, chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of (x, y) that ``model`` classifies correctly (attacks then start from 0% error).

    Classifies ``chunk`` images at a time and stops once ``n`` are found (on a CPU, all
    10,000 Fashion-MNIST test images cost seconds; the first few hundred suffice).
    """
    found = []
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk):
            xb, yb = x[start:start + chunk], y[start:start + chunk]
            found.append(start + (model(xb).argmax(1) == yb).nonzero().squeeze(1))
            if sum(len(f) for f in found) >= n:
                break
    idx = torch.cat(found)[:n]
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


def benchmark_rows(report: dict, target: float, *, best: Callable[[str], str]) -> list[dict[str, str]]:
    """The rows of a matched-damage report (``bench.matched_damage``'s ``results.json``) at ``target``.

    One row per attack: name, the measure it optimises, budget, images fooled, "mean / median" of
    every judge over the fooled images, wall time. ``best`` marks the best mean of a column among the
    attacks that reached the target; a trailing ° marks the measure the attack optimises.
    """

    rows = report["results"][str(target)]
    n = report["n"]
    reached = {k for k, r in rows.items() if r["kept"] >= math.ceil(target * n - 1e-9)}
    out = []
    for key, r in rows.items():
        row = {"attack": key, "optimises": r["optimises"], "budget": f"{r['budget']:.4g}",
               "fooled": f"{r['kept']}/{n}" + ("" if key in reached else " (target not reached)")}
        for j in report["judges"]:
            measure = get_measure(j)
            means = [rows[k]["stats"][j]["mean"] for k in reached] or [math.nan]
            top = max(means) if measure.higher_is_better else min(means)
            digits = 2 if j == "psnr" else 4
            mean, median = r["stats"][j]["mean"], r["stats"][j]["median"]
            cell = f"{mean:.{digits}f} / {median:.{digits}f}"
            if key in reached and math.isclose(mean, top, rel_tol=0, abs_tol=1e-12):
                cell = best(cell)
            row[f"{measure.label} {'↑' if measure.higher_is_better else '↓'}"] = cell + (" °" if r["optimises"] == j else "")
        row["wall s"] = f"{r['wall_s']:.1f}"
        out.append(row)
    return out
