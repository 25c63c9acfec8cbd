"""Attacks: budgets hold, outputs in [0, 1], reproducible, known answers, NaN guard, real damage."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.attacks import ALMA, ATTACKS, DDN, FGSM, PGDL2, WDRO, PerCAL, PGDLinf, get_attack
from core.measures import MEASURES, Measure, available_measures

BUDGET_RTOL = 1e-4  # the budget form's final line search is exact up to float rounding


GENEROUS = {
    "fgsm": dict(eps=0.25),
    "pgd-linf": dict(eps=0.15, steps=20),
    "pgd-l2": dict(eps=3.0, steps=20),
    "wdro": dict(measure="ssim", budget=0.3, loss="margin", kappa=5.0),
    # the minimal-perturbation baselines have no budget by default: they flip nearly everything
    "ddn": dict(steps=50),
    "alma-ssim": dict(steps=50),
    "perc-al": dict(steps=50),
    "wdro-flips": dict(measure="ssim", steps=50),
}
MILD = {
    "fgsm": dict(eps=8 / 255),
    "pgd-linf": dict(eps=8 / 255, steps=5),
    "pgd-l2": dict(eps=0.5, steps=5),
    "wdro": dict(measure="ssim", budget=0.02, steps=30),
    "ddn": dict(steps=20, max_cost=0.5),
    "alma-ssim": dict(steps=20, max_cost=0.01),
    "perc-al": dict(steps=20, max_cost=20.0),
    "wdro-flips": dict(measure="ssim", steps=20, max_cost=0.01),
}


def test_every_registered_attack_has_settings_here():
    assert set(ATTACKS) == set(GENEROUS) == set(MILD)


@pytest.mark.parametrize("name", sorted(GENEROUS))
def test_trained_model_is_fooled_at_a_generous_budget(trained, name):
    model, x, y = trained
    result = get_attack(name)(model, **GENEROUS[name])(x, y)
    assert result.success_rate > 0.9
    assert bool((result.pred_clean == y).all())  # the images were correctly classified before


@pytest.mark.parametrize("name", sorted(MILD))
def test_output_in_unit_range_and_result_complete(trained, name):
    model, x, y = trained
    result = get_attack(name)(model, **MILD[name])(x, y)
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == x.dtype
    assert float(result.x_adv.min()) >= 0.0 and float(result.x_adv.max()) <= 1.0
    assert set(result.measures) == set(available_measures(x.shape))
    for values in result.measures.values():
        assert values.shape == (len(x),) and bool(torch.isfinite(values).all())
    assert torch.allclose(result.prob_clean.sum(1), torch.ones(len(x)), atol=1e-5)
    assert torch.equal(result.success, result.pred_adv != y)
    assert len(result.to_rows()) == len(x)


@pytest.mark.parametrize("name", sorted(MILD))
def test_same_seed_same_result(trained, name):
    model, x, y = trained
    attack = get_attack(name)(model, **MILD[name])
    first, second = attack(x[:16], y[:16], seed=3), attack(x[:16], y[:16], seed=3)
    assert torch.equal(first.x_adv, second.x_adv)


def test_different_seed_different_random_start(trained):
    model, x, y = trained
    attack = PGDLinf(model, eps=8 / 255, steps=2)
    assert not torch.equal(attack(x[:8], y[:8], seed=0).x_adv, attack(x[:8], y[:8], seed=1).x_adv)


def test_linf_and_l2_budgets_hold(trained):
    model, x, y = trained
    for attack, eps in [(PGDLinf(model, eps=0.05), 0.05), (FGSM(model, eps=0.05), 0.05)]:
        linf = (attack(x, y).x_adv - x).flatten(1).abs().amax(1)
        assert float(linf.max()) <= eps + 1e-6
    l2 = (PGDL2(model, eps=1.5, steps=10)(x, y).x_adv - x).flatten(1).norm(dim=1)
    assert float(l2.max()) <= 1.5 * (1 + 1e-5)


@pytest.mark.parametrize("budget", [0.005, 0.03])
def test_pointwise_budget_holds_for_every_image(trained, budget):
    model, x, y = trained
    result = WDRO(model, budget=budget, budget_mode="pointwise", steps=50)(x, y)
    assert float(result.cost.max()) <= budget * (1 + BUDGET_RTOL)
    assert result.cost.shape == (len(x),)
    assert result.gamma.shape == (50, len(x))


@pytest.mark.parametrize("budget", [0.005, 0.02])
def test_distributional_budget_lands_within_5_percent(trained, budget):
    model, x, y = trained
    result = WDRO(model, budget=budget, steps=100)(x, y)
    mean_cost = float(result.cost.mean())
    assert mean_cost <= budget * (1 + BUDGET_RTOL)
    assert mean_cost >= 0.95 * budget
    # one multiplier for the whole batch
    assert torch.allclose(result.gamma, result.gamma[:, :1].expand_as(result.gamma))


def test_distributional_budget_is_spent_unevenly(trained):
    """The worst-case distribution spends more on some images than on others (DESIGN section 2)."""
    model, x, y = trained
    budget = 0.02
    result = WDRO(model, budget=budget, steps=100, loss="margin", kappa=2.0)(x, y)
    assert float(result.cost.max()) > 2 * budget  # some images get more than the average
    assert float(result.cost.min()) < 0.5 * budget  # and some much less


def test_bisection_reference_is_feasible_and_close(trained):
    model, x, y = trained
    budget = 0.02
    online = WDRO(model, budget=budget, steps=40)(x[:32], y[:32])
    bisection = WDRO(model, budget=budget, steps=40, dual="bisection", bisection_rounds=6)(x[:32], y[:32])
    assert float(bisection.cost.mean()) <= budget * (1 + BUDGET_RTOL)
    assert float(bisection.cost.mean()) >= 0.5 * budget
    assert bisection.steps == 6 * 40 and online.steps == 40


def test_larger_gamma_gives_smaller_cost(trained):
    model, x, y = trained
    costs = [float(WDRO(model, gamma=g, steps=40)(x, y).cost.mean()) for g in (1.0, 10.0, 100.0, 1000.0)]
    assert all(a > b for a, b in zip(costs, costs[1:])), costs
    # the penalty form keeps gamma fixed
    result = WDRO(model, gamma=10.0, steps=5)(x[:4], y[:4])
    assert torch.allclose(result.gamma, torch.full((5, 4), 10.0))


def test_linf_cap_holds(trained):
    model, x, y = trained
    result = WDRO(model, budget=0.1, steps=30, linf_cap=0.03)(x, y)
    assert float(result.measures["linf"].max()) <= 0.03 + 1e-6


def test_model_mode_is_restored(trained):
    model, x, y = trained
    model.train()
    try:
        WDRO(model, gamma=10.0, steps=2)(x[:4], y[:4])
        assert model.training
    finally:
        model.eval()
    PGDLinf(model, steps=2)(x[:4], y[:4])
    assert not model.training


def test_targeted_attack_reaches_the_target(trained):
    model, x, y = trained
    target = (y + 1) % 10
    result = PGDLinf(model, eps=0.2, steps=30)(x, y, target=target)
    assert torch.equal(result.success, result.pred_adv == target)
    assert result.success_rate > 0.8


class _Linear2(nn.Module):
    """f(x) = W x + b with two classes, on (N, 1, 4, 4) images."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.weight = nn.Parameter(torch.randn(2, 16, generator=generator) * 0.05)
        self.bias = nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


def test_wrm_known_answer_on_a_linear_model():
    """Squared-L2 cost, linear model, uncapped margin loss: worked out by hand.

    For y = 0 the margin loss is l(x') = (w_1 - w_0) . x' + (b_1 - b_0), linear with
    gradient w = w_1 - w_0. The penalty problem max_x' w . x' - gamma ||x' - x||^2 has the
    maximiser x' = x + w / (2 gamma) (inside [0, 1] here), at cost ||w||^2 / (4 gamma^2).
    The pointwise budget form with budget delta has gamma* = ||w|| / (2 sqrt(delta)).
    """
    model = _Linear2()
    x = torch.full((3, 1, 4, 4), 0.5)
    y = torch.zeros(3, dtype=torch.int64)
    w = (model.weight[1] - model.weight[0]).detach().view(1, 4, 4)
    gamma = 2.0
    expected = x + w / (2 * gamma)
    result = WDRO(model, measure="l2-squared", gamma=gamma, steps=300, step_size=0.005, loss="margin", kappa=1e9)(x, y)
    assert torch.allclose(result.x_adv, expected, atol=2e-4)
    assert torch.allclose(result.cost, torch.full((3,), float(w.pow(2).sum()) / (4 * gamma**2)), rtol=2e-3)

    delta = 0.002
    gamma_star = float(w.norm()) / (2 * math.sqrt(delta))
    common = dict(measure="l2-squared", budget=delta, budget_mode="pointwise", steps=300, step_size=0.005,
                  loss="margin", kappa=1e9)
    for dual in ("online", "bisection"):
        budget = WDRO(model, dual=dual, bisection_rounds=12, **common)(x, y)
        assert float(budget.cost.max()) <= delta * (1 + BUDGET_RTOL), dual
        assert float(budget.cost.min()) >= 0.97 * delta, dual
        direction = (budget.x_adv - x).flatten(1)
        cosine = F.cosine_similarity(direction, w.flatten()[None].expand_as(direction), dim=1)
        # the perturbation points along w: exactly for bisection (each run converges at a fixed
        # gamma), approximately online (gamma still moves while Adam's steps shrink)
        assert bool((cosine > (0.999 if dual == "bisection" else 0.95)).all()), (dual, cosine)
    # bisection on log gamma recovers the multiplier of strong duality
    assert torch.allclose(budget.final_gamma, torch.full((3,), gamma_star), rtol=0.02)


def test_nan_guard_keeps_the_last_finite_iterate(trained):
    """A cost that turns NaN for image 0 once it moves more than 0.02 in L-inf."""
    model, x, y = trained
    x, y = x[:8], y[:8]

    def nan_cost(x_ref: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        cost = (x_adv - x_ref).pow(2).flatten(1).sum(1)
        far = (x_adv - x_ref).flatten(1).abs().amax(1) > 0.02
        first = torch.arange(len(cost)) == 0
        return torch.where(far & first, torch.full_like(cost, float("nan")), cost)

    measure = Measure(name="nan-test", label="NaN test", cost_fn=nan_cost, score_fn=nan_cost,
                      higher_is_better=False, score_range=(0, 1), cost_formula="test", min_size=1)
    with pytest.warns(RuntimeWarning, match="NaN or infinite"):
        result = WDRO(model, measure=measure, gamma=1.0, steps=40, step_size=0.01, loss="margin", kappa=10.0)(x, y)
    assert bool(torch.isfinite(result.x_adv).all())
    linf = (result.x_adv - x).flatten(1).abs().amax(1)
    assert float(linf[0]) <= 0.02
    assert int(result.nonfinite_steps[0]) > 0
    assert int(result.nonfinite_steps[1:].sum()) == 0
    assert float(linf[1:].max()) > 0.02  # the others were not held back


def test_every_measure_works_as_a_transport_cost():
    """Each registered measure drives the attack on images it accepts, with finite results."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3))
    for name, measure in MEASURES.items():
        side = max(measure.min_size, 16)
        x = torch.rand(2, 3, side, side)
        y = torch.tensor([0, 1])
        result = WDRO(model, measure=name, gamma=1.0, steps=3)(x, y)
        assert bool(torch.isfinite(result.x_adv).all()), name
        assert int(result.nonfinite_steps.sum()) == 0, name
        assert float(result.cost.min()) >= 0.0, name


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(), "exactly one of gamma"),
        (dict(gamma=1.0, budget=0.1), "exactly one of gamma"),
        (dict(budget=-0.1), "positive"),
        (dict(budget=0.1, measure="nope"), "unknown measure"),
        (dict(budget=0.1, budget_mode="each"), "budget_mode"),
        (dict(budget=0.1, dual="bisection", bisection_rounds=0), "bisection_rounds"),
    ],
)
def test_wdro_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WDRO(nn.Identity(), **kwargs)


def test_attack_rejects_bad_inputs(trained):
    model, x, y = trained
    attack = PGDLinf(model)
    with pytest.raises(ValueError, match=r"expected values in \[0, 1\]"):
        attack(x * 2, y)
    with pytest.raises(ValueError, match="int64 labels"):
        attack(x, y[:3])
    with pytest.raises(TypeError, match="torch.Tensor"):
        attack(x.numpy(), y)
    with pytest.raises(ValueError, match="needs images of at least 11x11"):
        WDRO(model, measure="ssim", budget=0.1)(torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="unknown attack"):
        get_attack("cw")


@pytest.mark.parametrize("make", [
    lambda m, v: PGDLinf(m, steps=v), lambda m, v: WDRO(m, budget=0.01, steps=v),
    lambda m, v: WDRO(m, budget=0.01, dual="bisection", bisection_rounds=v),
    lambda m, v: DDN(m, steps=v), lambda m, v: ALMA(m, steps=v), lambda m, v: PerCAL(m, steps=v),
])
@pytest.mark.parametrize("value", [2.5, 0, True, "3"])
def test_every_count_is_checked_the_same_way(make, value):
    """One check of counts: 2.5 steps used to pass PGD and W-DRO (int() truncated it) while DDN refused."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    with pytest.raises(ValueError, match=r"(steps|bisection_rounds): expected a positive integer, got "):
        make(model, value)
