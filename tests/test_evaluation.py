"""Clean and robust accuracy: the library function and the `evaluate` command."""

from __future__ import annotations

import json

import pytest
import torch

from core.attacks import PGDLinf, WDRO
from core.cli import main
from core.data import load_fashion_mnist
from core.evaluation import evaluate
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
    "argv, message",
    [
        (["--n", "0"], "--n: expected a positive number"),
        (["--eps", "0.1"], "need --attack"),
        (["--attack", "fgsm", "--budget", "0.1"], "fgsm takes eps, not a budget"),
    ],
)
def test_evaluate_command_errors_are_one_line(capsys, argv, message):
    code = main(["evaluate", "--model", "fmnist-cnn", *argv])
    err = capsys.readouterr().err
    assert code == 1
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
