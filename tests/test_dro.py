"""The W-DRO solver shared by the attack and training (core.dro)."""

import math

import pytest
import torch

from core.attacks import WDRO
from core.dro import check_budget_mode, dual_step, fit_budget
from core.measures import get_measure


def test_dual_step_follows_the_sign_of_the_dual_gradient():
    zero = torch.tensor(0.0, dtype=torch.float64)
    assert float(dual_step(zero, torch.tensor(0.02, dtype=torch.float64), 0.02, lr=0.1)) == 0.0  # on budget: no move
    assert float(dual_step(zero, torch.tensor(0.04), 0.02, lr=0.1)) == pytest.approx(0.1 * math.log(2))
    assert float(dual_step(zero, torch.tensor(0.01), 0.02, lr=0.1)) == pytest.approx(-0.1 * math.log(2))
    assert float(dual_step(zero, torch.tensor(1.0), 0.02, lr=0.1)) == pytest.approx(0.1)  # clipped at +1
    assert float(dual_step(zero, torch.tensor(1.0), 0.02, lr=0.1, clip=(-1.0, 3.0))) == pytest.approx(0.3)
    # aimed at 1.2 x budget: a cost of exactly the budget is under the aim, so the price falls
    assert float(dual_step(zero, torch.tensor(0.02), 0.02, lr=0.1, aim=1.2)) == pytest.approx(-0.1 * math.log(1.2))


def test_dual_step_is_per_image_and_treats_bad_costs_as_the_floor():
    log_gamma = torch.zeros(4)
    cost = torch.tensor([0.04, 0.0, float("nan"), -1.0])
    out = dual_step(log_gamma, cost, 0.02, lr=1.0)
    assert out[0] == pytest.approx(math.log(2))
    assert torch.equal(out[1:], torch.full((3,), -1.0))  # floor 1e-3 x target: log ratio clipped at -1


def _images(n=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=gen)
    scale = torch.tensor([0.0, 0.01, 0.05, 0.2, 0.5, 1.0][:n]).view(-1, 1, 1, 1)
    x_adv = (x + scale * (2 * torch.rand(x.shape, generator=gen) - 1)).clamp(0, 1)
    return x, x_adv


def test_pointwise_fit_puts_every_example_within_its_budget():
    """Each example over the budget is shrunk onto it (to bisection precision); those under it are kept."""
    x, x_adv = _images()
    cost_of = get_measure("ssim").prepare(x)
    budget = 0.03
    before = cost_of(x_adv)
    fitted = fit_budget(x, x_adv, cost_of, budget, mode="pointwise", rounds=12)
    after = cost_of(fitted)
    assert bool((after <= budget + 1e-6).all())
    under = before <= budget
    assert under[:2].all() and not under[3:].any()
    assert torch.equal(fitted[under], x_adv[under])
    assert bool((after[~under] > 0.9 * budget).all())  # shrunk onto the budget, not to zero


@pytest.mark.parametrize("rounds", [12, 30])
def test_distributional_fit_holds_the_mean_with_one_factor(rounds):
    x, x_adv = _images()
    cost_of = get_measure("ssim-padded").prepare(x)
    budget = 0.5 * float(cost_of(x_adv).mean())
    fitted = fit_budget(x, x_adv, cost_of, budget, rounds=rounds)
    mean = float(cost_of(fitted).mean())
    assert budget * (1 - max(2.0 ** -(rounds - 6), 1e-5)) <= mean <= budget  # float32 limits 30 rounds
    factor = (fitted - x)[5].abs().sum() / (x_adv - x)[5].abs().sum()  # the same shrink factor for every image
    assert torch.allclose((fitted - x)[2:], factor * (x_adv - x)[2:], atol=1e-5)
    assert torch.equal(fit_budget(x, x_adv, cost_of, 10 * budget, rounds=rounds), x_adv)  # within: untouched


def test_budget_mode_has_one_vocabulary():
    assert check_budget_mode("distributional") == "distributional"
    with pytest.raises(ValueError, match="'distributional' or 'pointwise', got 'mean'"):
        check_budget_mode("mean")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    with pytest.raises(ValueError, match="budget_mode"):
        WDRO(model, budget=0.01, budget_mode="mean")
