"""What the fairness page's "train now" runs: train one model on a copy, evaluate it like the demo."""

from __future__ import annotations

import pytest
import torch

from core.services.fairness_demo import train_and_evaluate
from core.training import TrainConfig, build_classifier

BUNDLED = {"source": "bundled"}  # 1,200 / 300 / 500 images: the same split on every machine


@pytest.fixture
def frozen():
    model = build_classifier(TrainConfig(), channels=1, n_classes=10, size=28)
    for p in model.parameters():
        p.requires_grad_(False)  # as the app's cached models are
    return model


@pytest.mark.slow
def test_fine_tunes_a_copy_and_evaluates_it(frozen):
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    seen = []
    out = train_and_evaluate(TrainConfig(method="wdro", epochs=1, budget=0.03), data_options=BUNDLED, start=frozen,
                             n_attacked=64, bootstrap=50, report=lambda f, text: seen.append(f))
    assert out is not None
    model, entry = out
    assert model is not frozen
    assert all(torch.equal(before[k], v) for k, v in frozen.state_dict().items())  # the original is untouched
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # the copy was trained
    assert seen == sorted(seen) and 0.0 <= seen[0] and seen[-1] <= 1.0  # progress only moves forward
    assert entry["cancelled"] is False and entry["dataset"] == "fmnist-groups"
    assert entry["groups"] == ["standard", "inverted"]
    clean = entry["clean"]
    assert clean["worst_group_accuracy"] == min(g["accuracy"] for g in clean["by_group"].values())
    assert sum(g["n"] for g in clean["by_group"].values()) == 500  # the whole bundled test split
    for attack in ("wdro", "pgd-linf"):
        robust = entry["under_attack"][attack]["robust"]
        assert robust["mean_accuracy"] <= clean["mean_accuracy"] + 1e-12
        assert sum(g["n"] for g in robust["by_group"].values()) == 64
    assert entry["history"][0]["cost_mean"] > 0 and entry["config"]["method"] == "wdro"


def test_cancelled_before_the_first_step_gives_nothing():
    assert train_and_evaluate(TrainConfig(epochs=1), data_options=BUNDLED, should_stop=lambda: True) is None


def test_cancelled_after_some_steps_keeps_the_partial_model():
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 3  # three steps, then stop

    out = train_and_evaluate(TrainConfig(epochs=2), data_options=BUNDLED, should_stop=stop, n_attacked=32,
                             bootstrap=0, cancelled_sample=200)
    assert out is not None
    model, entry = out
    assert entry["cancelled"] is True and entry["history"] == []  # no epoch finished
    assert entry["under_attack"] == {}  # shown at once: no attacks after a cancel
    # on a seeded sample of the test split, not all of it: Cancel answers at once
    assert entry["clean_images"] == 200 == sum(g["n"] for g in entry["clean"]["by_group"].values())
    from core.services.fairness_demo import attacked_subset
    from core.data import load_group_dataset

    x, y, _ = load_group_dataset("fmnist-groups", "test", source="bundled").tensors()
    sample = attacked_subset(len(y), 200)
    with torch.no_grad():
        right = (model(x[sample]).argmax(1) == y[sample]).double().mean()
    assert entry["clean"]["mean_accuracy"] == pytest.approx(float(right))  # the accuracy of those 200 images


def test_a_cancelled_run_can_be_evaluated_in_full():
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    out = train_and_evaluate(TrainConfig(epochs=2), data_options=BUNDLED, should_stop=stop, n_attacked=16,
                             bootstrap=0, cancelled_sample=None)
    assert out is not None
    _, entry = out
    assert entry["cancelled"] is True and entry["clean_images"] == 500  # the whole bundled test split
    assert set(entry["under_attack"]) == {"wdro", "pgd-linf"}  # and both attacks

