"""One options-to-attack builder for the command line and the app (core.attacks.options)."""

import pytest
import torch

from core.attacks import ALMA, DDN, FGSM, WDRO, PGDL2, PGDLinf
from core.attacks.options import DEFAULT_BUDGET, DEFAULT_LOSS, AttackOptions
from core.cli import build_parser
from core.services.explore import AttackSettings
from core.measures import DEFAULT_COST


@pytest.fixture(scope="module")
def model():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))


def test_defaults_are_stated_once(model):
    attack = AttackOptions().build(model)
    assert isinstance(attack, WDRO)
    assert (attack.measure, attack.budget, attack.gamma, attack.loss) == (DEFAULT_COST, DEFAULT_BUDGET, None, "margin")
    assert AttackSettings().build(model).budget == DEFAULT_BUDGET  # the app's settings are the same options
    parsed = build_parser().parse_args(["attack", "--model", "fmnist-cnn", "--image", "x.png", "--attack", "wdro",
                                        "--out", "y.png"])
    assert (parsed.measure, parsed.budget, parsed.loss) == (DEFAULT_COST, None, DEFAULT_LOSS)  # None: the default


def test_each_attack_gets_the_options_it_takes(model):
    pgd = AttackOptions("pgd-linf", steps=7, step_size=0.01, loss="ce").build(model)
    assert isinstance(pgd, PGDLinf) and pgd.threat.eps == pytest.approx(8 / 255) and pgd.steps == 7
    assert pgd.loss == "ce" and pgd.step_size == 0.01
    assert AttackOptions("pgd-l2").build(model).threat.eps == 1.0
    fgsm = AttackOptions("fgsm", eps=0.1, steps=50).build(model)  # FGSM takes one step whatever steps says
    assert isinstance(fgsm, FGSM) and fgsm.steps == 1
    wdro = AttackOptions(gamma=5.0, linf_cap=0.1, kappa=2.0).build(model)
    assert (wdro.gamma, wdro.budget, wdro.linf_cap, wdro.kappa) == (5.0, None, 0.1, 2.0)
    assert isinstance(AttackOptions("pgd-l2", eps=0.5).build(model), PGDL2)
    ddn = AttackOptions("ddn", eps=0.5, steps=9).build(model)
    assert isinstance(ddn, DDN) and ddn.max_cost == 0.5 and ddn.steps == 9
    assert AttackOptions("alma-ssim").build(model).max_cost is None
    assert isinstance(AttackOptions("alma-ssim", loss="ce").build(model), ALMA)  # its own loss: the option is moot


@pytest.mark.parametrize(("options", "message"), [
    (dict(attack="wdro", eps=0.03), "eps is for pgd-linf"),
    (dict(attack="wdro", budget=0.01, gamma=1.0), "a budget or gamma, not both"),
    (dict(attack="pgd-linf", budget=0.02), "pgd-linf takes eps, not a budget"),
    (dict(attack="fgsm", linf_cap=0.1), "fgsm takes eps"),
    (dict(attack="nope"), "attack: expected one of"),
])
def test_options_an_attack_does_not_take_are_refused(model, options, message):
    with pytest.raises(ValueError, match=message):
        AttackOptions(**options).build(model)
