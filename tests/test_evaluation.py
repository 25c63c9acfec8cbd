"""core.evaluation: batched predictions, clean and robust accuracy (and the `evaluate` command), fairness under attack."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

from core.attacks import PGDLinf, WDRO
from core.cli import main
from core.data import load_fashion_mnist
from core.evaluation import OTHER_MODEL, evaluate, predict, robust_fairness
from core.fairness import EMPTY_GROUP, LENGTH_MISMATCH, group_accuracy
from core.measures import available_measures
from core.models import load_model


@pytest.fixture(scope="module")
def data():
    x, y = load_fashion_mnist("test", source="bundled").tensors()
    return x[:300], y[:300]


def test_clean_accuracy_matches_a_direct_count(data):
    x, y = data
    model = load_model("fmnist-cnn")
    with torch.no_grad():
        expected = int((model(x).argmax(1) == y).sum()) / len(y)
    report = evaluate(model, x, y, batch_size=128)  # 300 = 128 + 128 + 44: uneven batches
    assert report.n == 300
    assert report.clean_accuracy == pytest.approx(expected, abs=1e-12)
    assert report.robust_accuracy is None and report.measures is None


@pytest.mark.slow
def test_robust_accuracy_under_attack(data):
    x, y = data
    model = load_model("fmnist-cnn")
    clean = evaluate(model, x, y).clean_accuracy
    weak = evaluate(model, x, y, attack=PGDLinf(model, eps=1 / 255, steps=3), batch_size=150)
    strong = evaluate(model, x, y, attack=PGDLinf(model, eps=0.1, steps=10), batch_size=150)
    assert weak.clean_accuracy == pytest.approx(clean)
    assert strong.robust_accuracy < weak.robust_accuracy <= clean
    assert strong.robust_accuracy < 0.1
    assert strong.attack_success >= 1 - strong.robust_accuracy - 1e-12  # fooled = not robust
    assert set(weak.measures) == set(available_measures(x.shape))
    assert strong.measures["linf"] <= 0.1 + 1e-6
    assert 0.0 < strong.measures["ssim"] < weak.measures["ssim"] <= 1.0


def test_model_mode_is_restored(data):
    x, y = data
    model = load_model("fmnist-cnn").train()
    evaluate(model, x[:10], y[:10], attack=WDRO(model, budget=0.01, steps=3))
    assert model.training


def test_evaluate_command_json(capsys):
    code = main(["evaluate", "--model", "fmnist-cnn", "--n", "64", "--attack", "wdro", "--budget", "0.01",
                 "--steps", "20", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["n"] == 64 and report["attack"] == "wdro"
    assert 0.8 <= report["clean_accuracy"] <= 1.0
    assert 0.0 <= report["robust_accuracy"] < report["clean_accuracy"]
    assert {"ssim", "psnr", "l2", "linf"} <= set(report["measures"])
    assert report["measures"]["ssim-padded"] == pytest.approx(0.99, abs=2e-3)  # mean 1 - padded SSIM = budget


@pytest.mark.parametrize(
    "argv, message, status",
    [
        (["--n", "0"], "--n: expected a whole number from 1 to 60,000", 2),  # a usage error, as argparse's own
        (["--eps", "0.1"], "need --attack", 1),
        (["--attack", "fgsm", "--budget", "0.1"], "fgsm takes eps, not a budget", 1),
    ],
)
def test_evaluate_command_errors_are_one_line(capsys, argv, message, status):
    try:
        code = main(["evaluate", "--model", "fmnist-cnn", *argv])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == status
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


# --------------------------------------------------------------------------- under attack


class _Tiny(nn.Module):
    """A fixed linear classifier on 1x16x16 images: class = which third of the image is brightest."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(256, 3)
        with torch.no_grad():
            weight = torch.zeros(3, 16, 16)
            for k in range(3):
                weight[k, :, 5 * k : 5 * k + 5] = 1.0
            self.linear.weight.copy_(weight.flatten(1) * 4)
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def _attack_data(n: int = 60):
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    g = (torch.arange(n) % 4 == 0).long()  # group 1: a quarter of the images
    x = torch.rand(n, 1, 16, 16, generator=gen) * 0.05 + 0.4
    margin = torch.where(g == 1, 0.02, 0.3)  # group 1 is close to the decision boundary
    for i in range(n):
        x[i, 0, :, 5 * y[i] : 5 * y[i] + 5] += margin[i]
    return x.clamp(0, 1), y, g


def test_robust_fairness_with_pgd():
    model = _Tiny()
    x, y, g = _attack_data()
    attack = PGDLinf(model, eps=0.03, steps=5)
    calls = []
    result = robust_fairness(model, x, y, g, attack, ("far", "near"), batch_size=16, seed=0, bootstrap=100,
                             progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (60, 60) and len(calls) == 4
    assert result.attack == "pgd-linf" and result.measure == "linf" and result.n == 60
    for name in ("far", "near"):
        assert result.robust.by_group[name]["accuracy"] <= result.clean.by_group[name]["accuracy"]
        assert 0 <= result.mean_cost[name] <= 0.03 + 1e-6  # L-inf cost within the budget
    assert result.clean.mean_accuracy == 1.0  # the margins make every clean image right
    # group 1's margin (0.02 over 80 pixels) is within the attack's reach, group 0's (0.3) is not
    assert result.robust.by_group == {"far": {"accuracy": 1.0, "n": 45}, "near": {"accuracy": 0.0, "n": 15}}
    assert result.robust.worst_group == "near"
    assert sum(result.cost_share.values()) == pytest.approx(1.0)
    # clean report agrees with the model's own predictions
    with torch.no_grad():
        direct = group_accuracy(model(x).argmax(1), y, g)
    assert result.clean.by_group["near"]["accuracy"] == pytest.approx(direct.accuracy[1], abs=1e-12)
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data["mean_cost"]) == {"far", "near"}
    assert result.to_rows()[1]["group"] == "near"
    # same seed -> same result
    again = robust_fairness(model, x, y, g, attack, ("far", "near"), batch_size=16, seed=0, bootstrap=100)
    assert again.to_dict() == result.to_dict()


def test_robust_fairness_checks():
    model = _Tiny()
    x, y, g = _attack_data(12)
    with pytest.raises(ValueError, match=re.escape(OTHER_MODEL)):
        robust_fairness(model, x, y, g, PGDLinf(_Tiny(), eps=0.01, steps=1), ("a", "b"))
    with pytest.raises(ValueError, match=re.escape(LENGTH_MISMATCH.format(lengths=(12, 12, 11)))):
        robust_fairness(model, x, y, g[:11], PGDLinf(model, eps=0.01, steps=1), ("a", "b"))
    with pytest.raises(ValueError, match=re.escape(EMPTY_GROUP.format(group="c", num_groups=3))):
        robust_fairness(model, x, y, g, PGDLinf(model, eps=0.01, steps=1), ("a", "b", "c"))


def test_predict_is_batched_and_restores_the_mode(data):
    model = load_model("fmnist-cnn")
    x, y = data
    model.train()
    pred = predict(model, x[:300], batch_size=64)
    assert model.training  # put back as it was
    model.eval()
    with torch.no_grad():
        assert torch.equal(pred, model(x[:300]).argmax(1))  # the same as one big batch
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, x[:4], batch_size=0)


def test_evaluate_fairness_is_clean_plus_each_robust_fairness():
    """The one fairness evaluation: its clean report is fairness_report's, each attack's entry robust_fairness's."""
    from core.evaluation import FairnessEvaluation, evaluate_fairness
    from core.fairness import fairness_report

    model = _Tiny()
    x, y, g = _attack_data()
    attacks = {"pgd": PGDLinf(model, eps=0.03, steps=5), "weak": PGDLinf(model, eps=0.001, steps=2)}
    seen = []
    result = evaluate_fairness(model, x, y, g, ("far", "near"), attacks=attacks, bootstrap=50, seed=3, batch_size=16,
                               progress=lambda fraction, text: seen.append(fraction))
    assert seen[0] == 0.0 and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    with torch.no_grad():
        pred = model(x).argmax(1)
    assert result.clean == fairness_report(pred, y, g, ("far", "near"), bootstrap=50, seed=3)
    assert result.clean_images == 60 and list(result.under_attack) == ["pgd", "weak"]
    expected = robust_fairness(model, x, y, g, attacks["pgd"], ("far", "near"), batch_size=16, seed=3, bootstrap=50)
    assert result.under_attack["pgd"] == expected
    assert result.under_attack["pgd"].robust.by_group["near"]["accuracy"] == 0.0
    assert result.under_attack["weak"].robust.by_group["near"]["accuracy"] == 1.0
    # JSON round trip: from_dict inverts to_dict, and an evaluation.json entry with extra keys reads back
    data = json.loads(json.dumps(result.to_dict()))
    assert FairnessEvaluation.from_dict(data) == result
    assert FairnessEvaluation.from_dict({**data, "config": {}, "label": "x"}) == result
    # subsets: the attacks on some examples, the clean report on others
    part = evaluate_fairness(model, x, y, g, ("far", "near"), attacks={"pgd": attacks["pgd"]}, bootstrap=0,
                             attacked=torch.arange(40, 60), clean=torch.arange(0, 50))
    assert part.clean_images == 50 and part.under_attack["pgd"].n == 20


def test_the_committed_demo_evaluation_reads_back_typed():
    from core.evaluation import FairnessEvaluation
    from core.services.fairness_demo import load_demo_evaluation

    for entry in load_demo_evaluation()["models"].values():
        typed = FairnessEvaluation.from_dict(entry)
        assert set(typed.under_attack) == {"wdro", "pgd-linf"}
        again = typed.to_dict()
        assert again["clean"] == entry["clean"] and again["under_attack"] == entry["under_attack"]


def test_robust_accuracy_has_one_definition():
    """Correct both clean and attacked: an image the model gets wrong clean never counts, even if an attack 'fixes' it."""
    from core.evaluation import robust_correct

    y = torch.tensor([0, 1, 2, 3])
    clean = torch.tensor([0, 1, 9, 9])
    adv = torch.tensor([0, 7, 2, 9])
    assert robust_correct(clean, adv, y).tolist() == [True, False, False, False]
    model = _Tiny()
    x, y, g = _attack_data()
    wrong = (y + 1) % 2  # every clean prediction is now wrong: nothing is robustly correct
    assert evaluate(model, x, wrong, attack=PGDLinf(model, eps=0.03, steps=5)).robust_accuracy == 0.0
