"""core.attacks.CheapestFlips: W-DRO's ascent as a minimal attack (one multiplier per image, the cheapest flip kept)."""

from __future__ import annotations

import pytest
import torch

from core.attacks import ATTACKS, CheapestFlips
from core.attacks.options import MINIMAL, AttackOptions
from core.measures import get_measure


@pytest.fixture(scope="module")
def flips(trained):
    model, x, y = trained
    return CheapestFlips(model, measure="ssim-padded", steps=100)(x, y)


def test_registered_as_a_minimal_attack_that_takes_a_measure():
    assert ATTACKS["wdro-flips"] is CheapestFlips and "wdro-flips" in MINIMAL
    assert CheapestFlips.minimal and CheapestFlips.takes_measure and not CheapestFlips.takes_loss
    attack = AttackOptions("wdro-flips", measure="ssim", eps=0.01, steps=7).build(torch.nn.Identity())
    assert (attack.measure, attack.max_cost, attack.steps) == ("ssim", 0.01, 7)


def test_flips_nearly_everything_and_reports_its_own_cost(trained, flips):
    model, x, y = trained
    assert flips.success_rate > 0.95 and flips.measure == "ssim-padded"
    assert torch.allclose(flips.cost, get_measure("ssim-padded").cost(x, flips.x_adv), atol=1e-6)
    assert torch.equal(flips.x_adv[~flips.success], x[~flips.success])  # never fooled: clean
    # one multiplier per image, moving in opposite directions on fooled and unfooled images
    assert flips.gamma.shape == (100, len(x)) and not torch.allclose(flips.gamma[-1], flips.gamma[-1, :1])


def test_max_cost_holds_and_binds(trained, flips):
    model, x, y = trained
    cap = float(flips.cost[flips.success].median())
    capped = CheapestFlips(model, measure="ssim-padded", steps=100, max_cost=cap)(x, y)
    assert float(capped.cost.max()) <= cap * (1 + 1e-5)
    assert 0.3 < capped.success_rate < flips.success_rate
    # images whose cheapest flip fits well within the cap are found again under it
    fits = flips.success & (flips.cost <= 0.8 * cap)
    assert float((capped.success & fits).sum()) >= 0.9 * float(fits.sum())


def test_an_image_already_misclassified_comes_back_unchanged(trained):
    model, x, y = trained
    wrong = (y[:8] + 1) % 10
    result = CheapestFlips(model, steps=5)(x[:8], wrong)
    assert bool(result.success.all()) and torch.equal(result.x_adv, x[:8]) and float(result.cost.abs().max()) == 0.0


def test_the_high_success_settings_find_cheaper_flips_for_most_images(trained, flips):
    """HIGH_SUCCESS (the benchmark's 90-99 % settings): at the 90th percentile of costs, cheaper than the defaults."""
    from core.attacks.cheapest_flips import HIGH_SUCCESS

    model, x, y = trained
    default = flips  # the defaults at 100 steps
    high = CheapestFlips(model, measure="ssim-padded", steps=100, **HIGH_SUCCESS)(x, y)
    assert bool(default.success.all()) and bool(high.success.all())
    assert float(high.cost.quantile(0.9)) < float(default.cost.quantile(0.9))
