"""What the explorer and the compare page compute: one attacked image, and matched damage on a batch."""

from __future__ import annotations

import math

import pytest
import torch

from core.attacks import WDRO, PGDLinf
from core.compare import CheapestFlips, compare_ssim_linf, correctly_classified, keep_cheapest, match_success
from core.data import load_fashion_mnist
from core.explore import (
    AttackSettings,
    gallery,
    gallery_for,
    label_index,
    measure_support,
    perturbation_image,
    run_attack,
    suggested_factor,
)
from core.imageio import load_tensor
from core.measures import evaluate_measures
from core.models import get_model_spec, load_model


@pytest.fixture(scope="module")
def bundled():
    return load_model("fmnist-cnn"), get_model_spec("fmnist-cnn")


def test_gallery_labels_are_the_model_classes(bundled):
    _, spec = bundled
    items = gallery_for(spec)
    assert len(items) == 30
    indices = [label_index(spec, item.label) for item in items]
    assert None not in indices and set(indices) == set(range(10))  # every class, three each
    assert {label_index(spec, "T-shirt-top"), label_index(spec, "ankle boot")} == {0, 9}
    assert [p.label for p in gallery("photos")] == [None] * 4
    with pytest.raises(ValueError, match="gallery"):
        gallery("cifar")


def test_run_attack_on_a_gallery_image(bundled):
    model, spec = bundled
    item = gallery_for(spec)[0]
    x = load_tensor(item.path, channels=1, size=28)
    steps = []
    out = run_attack(model, x, AttackSettings(attack="wdro", metric="ssim", budget=0.01), labels=spec.labels,
                     label=label_index(spec, item.label), progress=lambda t, n: steps.append((t, n)))
    assert steps == [(t, 100) for t in range(1, 101)]
    assert out.label == "Trouser" and out.pred_clean == "Trouser"
    assert out.success and out.pred_adv != "Trouser"
    assert out.measures["ssim"] >= 1 - 0.01 - 1e-4  # the budget holds on one image
    assert 0.0 <= out.measures["haarpsi"] <= 1.0 and out.measures["psnr"] > 20
    assert set(out.skipped) == {"ms_ssim", "fsim", "vif"}  # too small or not RGB at 28 px gray
    assert out.difference.shape == (28, 28) and float(out.difference.min()) >= -1e-6
    rows = out.top_classes(5)
    assert rows[0]["class"] == "Trouser" and out.pred_adv in [r["class"] for r in rows]
    assert all(0.0 <= r["before"] <= 1.0 and 0.0 <= r["after"] <= 1.0 for r in rows)
    assert out.raw_perturbation().abs().max() == pytest.approx(out.measures["linf"], abs=1e-6)


def test_run_attack_without_a_label_attacks_the_prediction(bundled):
    model, spec = bundled
    x = load_tensor(gallery_for(spec)[5].path, channels=1, size=28)
    out = run_attack(model, x, AttackSettings(attack="pgd-linf", eps=8 / 255), labels=spec.labels)
    assert int(out.result.y[0]) == int(out.result.pred_clean[0])
    assert not out.labelled and out.label == f"unknown (attacked: {out.pred_clean})"  # never called the true class
    assert out.measures["linf"] <= 8 / 255 + 1e-6


def test_run_attack_refuses_bad_input(bundled):
    model, spec = bundled
    x = load_tensor(gallery_for(spec)[0].path, channels=1, size=28)
    with pytest.raises(ValueError, match="MS-SSIM"):
        run_attack(model, x, AttackSettings(attack="wdro", metric="ms_ssim"))
    with pytest.raises(ValueError, match="label"):
        run_attack(model, x, AttackSettings(attack="fgsm"), label=10)
    with pytest.raises(ValueError, match="one image"):
        run_attack(model, x.repeat(2, 1, 1, 1), AttackSettings(attack="fgsm"))
    with pytest.raises(ValueError, match="class names"):
        run_attack(model, x, AttackSettings(attack="fgsm"), labels=("a", "b"))


def test_model_is_not_modified_by_an_attack(bundled):
    model, spec = bundled
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = load_tensor(gallery_for(spec)[3].path, channels=1, size=28)
    run_attack(model, x, AttackSettings(attack="wdro", steps=5))
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_perturbation_display():
    x = torch.full((1, 4, 4), 0.5)
    x_adv = x.clone()
    x_adv[0, 0, 0] = 0.51
    shown = perturbation_image(x, x_adv, 10)
    assert float(shown[0, 0, 0]) == pytest.approx(0.6) and float(shown[0, 1, 1]) == 0.5
    assert float(perturbation_image(x, x_adv, 1000).max()) == 1.0  # clipped
    assert suggested_factor(x, x_adv) == 50.0 and suggested_factor(x, x) == 1.0
    with pytest.raises(ValueError, match="factor"):
        perturbation_image(x, x_adv, 0)


def test_measure_support_names_the_reason():
    valid, skipped = measure_support((1, 1, 28, 28))
    assert {"ssim", "haarpsi", "psnr", "l2", "linf"} <= set(valid)
    assert "161" in skipped["ms_ssim"] and "RGB" in skipped["fsim"]
    valid, skipped = measure_support((1, 3, 224, 224))
    assert skipped == {}
    _, skipped = measure_support((1, 3, 10, 10))
    assert "ssim" in skipped and "11" in skipped["ssim"]


def test_settings_describe_and_build(bundled):
    model, _ = bundled
    assert AttackSettings(attack="wdro", budget=0.02).describe() == "W-DRO (perceptual), SSIM (padded) cost, budget delta = 0.02"
    assert "gamma = 5" in AttackSettings(attack="wdro", gamma=5.0).describe()
    assert AttackSettings(attack="pgd-l2", eps=1.0).describe() == "PGD-L2, eps = 1"
    attack = AttackSettings(attack="wdro", gamma=5.0, steps=7, step_size=0.02, loss="ce").build(model)
    assert (attack.gamma, attack.budget, attack.steps, attack.step_size, attack.loss) == (5.0, None, 7, 0.02, "ce")


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
    from core.compare import paired_difference

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


def test_frontier_spreads_scores_that_crowd_near_one_on_a_log_axis():
    from core.compare import SweepPoint
    from core.figures import frontier_figure

    wdro = [SweepPoint("wdro", d, s, {"ssim-padded": q, "gmsd": g})
            for d, s, q, g in ((1e-3, 0.2, 0.999, 0.001), (1e-2, 0.9, 0.99, 0.01))]
    fig = frontier_figure({"W-DRO": wdro}, "ssim-padded", marks={"W-DRO": wdro[1]})
    assert fig.layout.xaxis.type == "log"
    assert list(fig.data[0].x) == pytest.approx([0.001, 0.01])  # 1 - SSIM: not a vertical line at x = 1
    assert fig.data[1].x[0] == pytest.approx(0.01)  # the matched star
    assert list(frontier_figure({"W-DRO": wdro}, "gmsd").data[0].x) == pytest.approx([0.001, 0.01])  # lower is better: as is


def test_heatmap_image_has_the_map_own_pixel_grid():
    from core.figures import heatmap_image

    values = torch.zeros(30, 28)
    values[3, 5] = 2.0  # clipped at vmax
    values[10, 7] = 0.5
    img = heatmap_image(values, vmax=1.0)
    assert img.size == (28, 30) and img.mode == "RGB"  # (width, height): one pixel per map entry
    assert img.getpixel((0, 0)) == (0, 0, 4)  # 0: Inferno's black
    assert img.getpixel((5, 3)) == (252, 255, 164)  # vmax and above: its pale yellow
    assert img.getpixel((7, 10))[0] > 100  # in between
