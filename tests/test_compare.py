"""core.services.compare: matched damage on a batch (the one-pass W-DRO solver, the budget search, the paired interval)."""

from __future__ import annotations

import math

import pytest
import torch

from core.attacks import WDRO, CheapestFlips, PGDLinf
from core.services.compare import compare_ssim_linf, correctly_classified, keep_cheapest, match_success
from core.data import load_fashion_mnist
from core.measures import evaluate_measures
from core.models import load_model


@pytest.fixture(scope="module")
def bundled():
    return load_model("fmnist-cnn"), None


@pytest.fixture(scope="module")
def batch(bundled):
    model, _ = bundled
    x, y = load_fashion_mnist("test", source="bundled").tensors()
    return correctly_classified(model, x, y, 24)


def test_match_success_recovers_a_known_radius(bundled, batch):
    """Searching PGD's own radius for the success PGD reached at 4/255 finds a radius with the same success."""
    model, _ = bundled
    x, y = batch
    target = PGDLinf(model, eps=4 / 255)(x, y).success_rate
    assert 0.0 < target < 1.0
    match = match_success(lambda e: PGDLinf(model, eps=e), target, x, y, lo=1 / 255, hi=16 / 255, rounds=8)
    assert match.matched and abs(match.achieved - target) <= 1 / 24
    assert 1 / 255 < match.param < 16 / 255
    with pytest.raises(ValueError, match="target"):
        match_success(lambda e: PGDLinf(model, eps=e), 1.5, x, y)


def test_match_success_at_least_returns_the_smallest_budget_reaching_the_target(bundled, batch):
    model, _ = bundled
    x, y = batch
    make = lambda e: PGDLinf(model, eps=e)  # noqa: E731
    known = [(e, make(e)(x, y)) for e in (2 / 255, 4 / 255, 8 / 255)]
    target = known[1][1].success_rate  # 4/255 reaches it exactly
    assert 0.0 < target < 1.0
    match = match_success(make, target, x, y, known=known, rounds=0, at_least=True)
    assert match.param == 4 / 255 and match.achieved >= target and match.runs == 0
    # a target between two known rates: the closest run may fall short, at_least never does
    between = (known[1][1].success_rate + known[2][1].success_rate) / 2
    if known[2][1].success_rate > known[1][1].success_rate:
        match = match_success(make, between, x, y, known=known, rounds=2, at_least=True, tolerance=0.2)
        assert match.achieved >= between and match.param <= 8 / 255


def test_compare_matches_damage_and_wdro_wins_on_its_cost(bundled, batch):
    model, _ = bundled
    x, y = batch
    seen = []
    cmp = compare_ssim_linf(model, x, y, eps=4 / 255, steps=20, progress=lambda f, msg: seen.append((f, msg)))
    assert seen[-1][0] == 1.0 and all(0.0 <= f <= 1.0 for f, _ in seen)
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)  # the bar only moves forward
    assert any("radius 4/255" in msg for _, msg in seen) and any("step 20 of 20" in msg for _, msg in seen)
    k = int(cmp.pgd.success.sum())
    assert cmp.matched and int(cmp.wdro.success.sum()) == k > 0  # exactly PGD's count
    assert cmp.budget == pytest.approx(float(cmp.wdro.cost.mean()))  # delta is the mean cost it spent
    assert float(cmp.pointwise.cost.max()) <= cmp.budget  # the pointwise worst case holds every image to delta
    assert int(cmp.pointwise.success.sum()) <= k  # the distributional budget never fools fewer
    # the unattacked images are exactly clean, and the kept ones are the k cheapest flips
    assert torch.equal(cmp.wdro.x_adv[~cmp.wdro.success], x[~cmp.wdro.success])
    flips = cmp.flips.cost[cmp.flips.success].sort().values
    assert float(cmp.wdro.cost.sum()) == pytest.approx(float(flips[:k].sum()))
    # the derived measures are those of the images shown
    fresh = evaluate_measures(x, cmp.wdro.x_adv)
    for name in ("ssim-padded", "haarpsi", "linf"):
        torch.testing.assert_close(cmp.wdro.measures[name], fresh[name], atol=1e-6, rtol=1e-5)
    fooled = cmp.wdro.success
    assert float(cmp.wdro.measures["ssim-padded"][fooled].mean()) > float(cmp.pgd.measures["ssim-padded"][cmp.pgd.success].mean())
    assert float(cmp.pgd.measures["linf"].max()) <= 4 / 255 + 1e-6
    rates = [p.success_rate for p in cmp.pgd_sweep]
    assert rates == sorted(rates)  # more radius, more damage
    budgets = [p.param for p in cmp.wdro_sweep]
    assert budgets == sorted(budgets) and [p.success_rate for p in cmp.wdro_sweep] == sorted(p.success_rate for p in cmp.wdro_sweep)
    assert {p.param for p in cmp.pgd_sweep} >= {4 / 255} and cmp.budget in budgets


@pytest.mark.slow
def test_one_pass_worst_case_is_no_costlier_than_the_budget_search(bundled, batch):
    """The one pass against bisecting the distributional budget over W-DRO runs, at PGD's damage (bench.matched_mode)."""
    model, _ = bundled
    x, y = batch
    k = int(PGDLinf(model, eps=4 / 255)(x, y).success.sum())
    assert 0 < k < len(x)
    flips = CheapestFlips(model, steps=30)(x, y)
    one = keep_cheapest(flips, k)
    match = match_success(lambda d: WDRO(model, budget=d, steps=30, loss="margin"), k / len(x), x, y,
                          lo=1e-5, hi=0.1, rounds=6, at_least=True)
    assert match.achieved >= k / len(x)
    search = keep_cheapest(match.result, k)
    assert int(one.success.sum()) == int(search.success.sum()) == k
    assert float(one.cost.mean()) <= float(search.cost.mean()) * 1.05
    assert float(one.cost.mean()) > 0


def test_paired_difference_of_success_rates_has_an_honest_interval():
    from core.services.compare import paired_difference

    a = torch.tensor([True] * 34 + [False] * 66)
    b = torch.tensor([True] * 30 + [False] * 4 + [True] * 8 + [False] * 58)  # 38 % against 34 %
    gap = paired_difference(a, b)
    assert gap.difference == pytest.approx(-0.04) and gap.n == 100
    assert gap.low < 0 < gap.high and not gap.clear  # 12 disagreements: the sign is not settled
    big = paired_difference(a.repeat(20), torch.zeros(2000, dtype=torch.bool))
    assert big.clear and big.low == pytest.approx(0.34 - 1.96 * math.sqrt(0.34 * 0.66 / 1999), abs=1e-3)
    same = paired_difference(a, a)
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same length"):
        paired_difference(a, b[:5])


def test_benchmark_rows_reproduce_the_committed_tables():
    """The page and bench.matched_damage share one table of a matched-damage run: it rebuilds every committed table.md."""
    import json
    from pathlib import Path

    from bench.matched_damage import table

    runs = sorted(Path(__file__).resolve().parent.parent.glob("assets/benchmark/heldout/*/results*.json"))
    assert len(runs) >= 4
    for path in runs:
        report = json.loads(path.read_text())
        for target in report["targets"]:
            assert table(report, target) == report["tables"][str(target)], (path, target)
