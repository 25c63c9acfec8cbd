"""Tests of core.fairness: hand-worked values, a per-group oracle, bootstrap intervals, robust fairness."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from core.fairness import (
    BAD_CONFIDENCE,
    BAD_RESAMPLES,
    EMPTY_GROUP,
    GROUP_RANGE,
    LENGTH_MISMATCH,
    MISSING_LABEL,
    NOT_BINARY,
    NOT_INTEGER,
    binary_fairness,
    bootstrap_ci,
    demographic_parity_difference,
    equal_opportunity_difference,
    equalized_odds_difference,
    fairness_report,
    group_accuracy,
)


def _match(template: str, **fields) -> str:
    """A regex matching the message built from ``template`` (with the given fields filled in)."""
    return re.escape(template.format(**fields))


# --------------------------------------------------------------------------- accuracy


def test_group_accuracy_by_hand():
    pred = torch.tensor([0, 1, 1, 0, 2, 2, 1, 0])
    y = torch.tensor([0, 1, 0, 0, 2, 1, 1, 1])
    g = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])
    acc = group_accuracy(pred, y, g)
    # group 0 (examples 0-2): right, right, wrong -> 2/3
    # group 1 (examples 3-7): right, right, wrong, right, wrong -> 3/5 = 0.6
    assert acc.accuracy == pytest.approx((2 / 3, 0.6), abs=1e-15)
    assert acc.counts == (3, 5)
    assert acc.mean_accuracy == pytest.approx(5 / 8, abs=1e-15)  # 5 right of 8
    assert acc.worst_group_accuracy == pytest.approx(0.6, abs=1e-15)
    assert acc.worst_group == 1
    assert acc.gap == pytest.approx(2 / 3 - 0.6, abs=1e-15)  # 0.0667
    summary = acc.summary(["light", "dark"])  # the shape of every by_group
    assert summary["worst_group"] == "dark" and summary["by_group"]["dark"] == {"accuracy": 0.6, "n": 5}
    assert summary["by_group"] == fairness_report(pred, y, g, ["light", "dark"], bootstrap=0).by_group


def test_group_accuracy_accepts_numpy_lists_and_integral_floats():
    ref = group_accuracy([0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 1, 1])
    assert group_accuracy(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), np.array([0, 0, 1, 1])) == ref
    assert group_accuracy(torch.tensor([0.0, 1.0, 1.0, 0.0]), [0, 1, 0, 0], [0, 0, 1, 1]) == ref
    # group 0: 2/2, group 1: 1/2 -> gap 0.5
    assert ref.accuracy == (1.0, 0.5) and ref.gap == 0.5


def test_group_accuracy_oracle_random_data():
    """Oracle: mask each group and compute its accuracy directly, in float64."""
    rng = np.random.default_rng(3)
    n, k, classes = 997, 5, 7
    y = torch.from_numpy(rng.integers(0, classes, n))
    g = torch.from_numpy(rng.integers(0, k, n))
    # make the predictor better on some groups than on others
    keep = torch.from_numpy(rng.random(n)) < (0.4 + 0.1 * g.double())
    pred = torch.where(keep, y, torch.from_numpy(rng.integers(0, classes, n)))
    acc = group_accuracy(pred, y, g, num_groups=k)
    oracle = [float((pred[g == j] == y[g == j]).double().mean()) for j in range(k)]
    np.testing.assert_allclose(acc.accuracy, oracle, rtol=0, atol=1e-12)
    assert acc.counts == tuple(int((g == j).sum()) for j in range(k))
    assert acc.mean_accuracy == pytest.approx(float((pred == y).double().mean()), abs=1e-12)
    assert acc.worst_group_accuracy == pytest.approx(min(oracle), abs=1e-12)
    assert acc.gap == pytest.approx(max(oracle) - min(oracle), abs=1e-12)
    assert acc.worst_group == int(np.argmin(oracle))


@pytest.mark.parametrize(
    ("pred", "y", "g", "message"),
    [
        ([0, 1], [0, 1, 1], [0, 0, 1], _match(LENGTH_MISMATCH, lengths=(2, 3, 3))),
        ([], [], [], "expected at least one example"),
        ([0.5, 1.0], [0, 1], [0, 1], _match(NOT_INTEGER, name="pred", detail="non-integer value 0.5")),
        ([[0, 1]], [0], [0], "pred: expected a 1-D array"),
        ([0, 1], [0, 1], [0, 3], _match(GROUP_RANGE, num_groups=2, lo=0, hi=3)),
        (["a", "b"], [0, 1], [0, 1], "pred: expected integer labels, got dtype"),
    ],
)
def test_group_accuracy_errors(pred, y, g, message):
    with pytest.raises(ValueError, match=message):
        group_accuracy(pred, y, g, num_groups=2 if message.startswith("g:") else None)


def test_empty_group_is_an_error():
    with pytest.raises(ValueError, match=_match(EMPTY_GROUP, group=1, num_groups=3)):
        group_accuracy([0, 1, 1], [0, 1, 0], [0, 0, 2])  # inferred 3 groups, group 1 empty
    with pytest.raises(ValueError, match=_match(EMPTY_GROUP, group="old", num_groups=3)):
        fairness_report([0, 1, 1], [0, 1, 0], [0, 0, 1], ("young", "adult", "old"), bootstrap=0)


# --------------------------------------------------------------------------- binary metrics


def test_binary_metrics_by_hand():
    g = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    y = [1, 1, 1, 0, 0, 1, 1, 0, 0, 0]
    pred = [1, 1, 0, 1, 0, 1, 0, 0, 0, 0]
    # group 0: selection 3/5 = 0.6, TPR 2/3 (two of its three positives), FPR 1/2
    # group 1: selection 1/5 = 0.2, TPR 1/2, FPR 0/3 = 0
    # DP = 0.6 - 0.2 = 0.4; TPR difference = 2/3 - 1/2 = 1/6; FPR difference = 1/2 - 0 = 1/2
    assert demographic_parity_difference(pred, g) == pytest.approx(0.4, abs=1e-15)
    assert equal_opportunity_difference(pred, y, g) == pytest.approx(1 / 6, abs=1e-15)
    assert equalized_odds_difference(pred, y, g) == pytest.approx(0.5, abs=1e-15)  # max(1/6, 1/2)
    result = binary_fairness(torch.tensor(pred), torch.tensor(y), torch.tensor(g))
    assert result.selection_rate == pytest.approx((0.6, 0.2))
    assert result.true_positive_rate == pytest.approx((2 / 3, 0.5))
    assert result.false_positive_rate == pytest.approx((0.5, 0.0))
    assert json.loads(json.dumps(result.to_dict()))["selection_rate"] == pytest.approx([0.6, 0.2])


def test_binary_metrics_zero_for_a_fair_predictor():
    # Both groups: two positives and two negatives; the predictor errs once on each label in each.
    y = [1, 1, 0, 0] * 2
    pred = [1, 0, 1, 0] * 2
    g = [0] * 4 + [1] * 4
    result = binary_fairness(pred, y, g)
    assert result.demographic_parity_difference == 0.0
    assert result.equalized_odds_difference == 0.0
    assert result.equal_opportunity_difference == 0.0
    # the perfect predictor is fair too (TPR 1, FPR 0 everywhere), even with unequal base rates
    assert equalized_odds_difference([1, 0, 0, 1, 1, 0], [1, 0, 0, 1, 1, 0], [0, 0, 0, 1, 1, 1]) == 0.0


def test_binary_metrics_errors():
    with pytest.raises(ValueError, match=re.escape(NOT_BINARY.format(name="pred", values="{0, 1, 2}"))):
        demographic_parity_difference([0, 1, 2], [0, 1, 1])
    with pytest.raises(ValueError, match=re.escape(NOT_BINARY.format(name="y", values="{0, 3}"))):
        equalized_odds_difference([0, 1], [0, 3], [0, 1])
    with pytest.raises(ValueError, match=_match(MISSING_LABEL, group=1, label=1, rate="true positive rate")):
        equal_opportunity_difference([0, 1, 0], [0, 1, 0], [0, 0, 1])
    with pytest.raises(ValueError, match=_match(MISSING_LABEL, group="b", label=0, rate="false positive rate")):
        binary_fairness([0, 1, 1], [0, 1, 1], [0, 0, 1], group_names=("a", "b"))
    with pytest.raises(ValueError, match=re.escape(LENGTH_MISMATCH.format(lengths=(2, 2, 3)))):
        equal_opportunity_difference([0, 1], [0, 1], [0, 1, 1])


# --------------------------------------------------------------------------- bootstrap


def _two_groups(n_per_group: int, acc=(0.9, 0.7)):
    """Predictions right on exactly acc[k] of group k (deterministic)."""
    y = torch.zeros(2 * n_per_group, dtype=torch.int64)
    g = torch.arange(2).repeat_interleave(n_per_group)
    pred = torch.zeros_like(y)
    for k, a in enumerate(acc):
        wrong = torch.arange(int(round((1 - a) * n_per_group))) + k * n_per_group
        pred[wrong] = 1
    return pred, y, g


def test_bootstrap_contains_the_estimate_and_narrows_with_n():
    widths = {}
    for n in (50, 5000):
        pred, y, g = _two_groups(n)
        acc = group_accuracy(pred, y, g)
        ci = bootstrap_ci(pred, y, g, resamples=2000, seed=0)
        assert set(ci) == {"mean_accuracy", "worst_group_accuracy", "gap"}
        for name, value in (("mean_accuracy", acc.mean_accuracy), ("worst_group_accuracy", 0.7), ("gap", 0.2)):
            lo, hi = ci[name]
            assert lo <= value <= hi, (n, name, lo, value, hi)
        widths[n] = {name: hi - lo for name, (lo, hi) in ci.items()}
    for name in widths[50]:
        assert widths[5000][name] < widths[50][name] / 5  # ~ 1/sqrt(n): 10x narrower
    # the mean accuracy's 95% interval has width about 2 * 1.96 * sqrt(p(1-p)/n)
    p_mean = 0.8
    assert widths[5000]["mean_accuracy"] == pytest.approx(
        2 * 1.96 * np.sqrt((0.9 * 0.1 + 0.7 * 0.3) / 2 / 10000), rel=0.1
    )
    assert 0 < p_mean < 1


def test_bootstrap_matches_resampling_indices():
    """The binomial draw equals resampling each group's examples with replacement (in distribution)."""
    pred, y, g = _two_groups(200, acc=(0.85, 0.6))
    ci = bootstrap_ci(pred, y, g, resamples=4000, seed=1)
    rng = np.random.default_rng(2)
    correct = (pred == y).numpy()
    members = [np.flatnonzero(g.numpy() == k) for k in range(2)]
    worst, gap, mean = [], [], []
    for _ in range(4000):
        accs = [correct[rng.choice(m, size=len(m))].mean() for m in members]
        worst.append(min(accs))
        gap.append(max(accs) - min(accs))
        mean.append(np.mean(accs))  # equal group sizes
    for name, values in (("worst_group_accuracy", worst), ("gap", gap), ("mean_accuracy", mean)):
        expected = np.quantile(values, [0.025, 0.975])
        np.testing.assert_allclose(ci[name], expected, atol=0.012)


def test_bootstrap_seeded_and_confidence():
    pred, y, g = _two_groups(100)
    assert bootstrap_ci(pred, y, g, seed=4) == bootstrap_ci(pred, y, g, seed=4)
    assert bootstrap_ci(pred, y, g, seed=4) != bootstrap_ci(pred, y, g, seed=5)
    wide = bootstrap_ci(pred, y, g, confidence=0.99)["gap"]
    narrow = bootstrap_ci(pred, y, g, confidence=0.5)["gap"]
    assert wide[0] <= narrow[0] and narrow[1] <= wide[1]
    with pytest.raises(ValueError, match=_match(BAD_CONFIDENCE, value=1.0)):
        bootstrap_ci(pred, y, g, confidence=1.0)
    with pytest.raises(ValueError, match=_match(BAD_RESAMPLES, value=0)):
        bootstrap_ci(pred, y, g, resamples=0)


# --------------------------------------------------------------------------- report


def test_fairness_report_multiclass_and_json():
    pred = torch.tensor([0, 1, 1, 0, 2, 2, 1, 0])
    y = torch.tensor([0, 1, 0, 0, 2, 1, 1, 1])
    g = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])
    report = fairness_report(pred, y, g, ("light", "dark"), bootstrap=200, seed=0)
    assert report.mean_accuracy == pytest.approx(0.625)
    assert report.worst_group == "dark" and report.worst_group_accuracy == pytest.approx(0.6)
    assert report.by_group == {"light": {"accuracy": pytest.approx(2 / 3), "n": 3},
                               "dark": {"accuracy": pytest.approx(0.6), "n": 5}}
    assert report.binary is None  # three classes
    assert set(report.ci) == {"mean_accuracy", "worst_group_accuracy", "gap"} and report.bootstrap == 200
    data = json.loads(json.dumps(report.to_dict()))
    assert data["by_group"]["dark"]["n"] == 5 and len(data["ci"]["gap"]) == 2 and data["binary"] is None
    assert report.to_rows()[1] == {"group": "dark", "accuracy": pytest.approx(0.6), "n": 5}
    assert fairness_report(pred, y, g, ("light", "dark"), bootstrap=0).ci == {}


def test_fairness_report_binary():
    g = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    y = [1, 1, 1, 0, 0, 1, 1, 0, 0, 0]
    pred = [1, 1, 0, 1, 0, 1, 0, 0, 0, 0]
    report = fairness_report(pred, y, g, ("a", "b"), bootstrap=0)
    assert report.binary is not None
    assert report.binary.demographic_parity_difference == pytest.approx(0.4)
    assert report.binary.equalized_odds_difference == pytest.approx(0.5)
    assert fairness_report(pred, y, g, ("a", "b"), bootstrap=0, binary=False).binary is None
    # a group without positives: auto mode skips the metrics, binary=True explains why it cannot
    y_no_pos = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert fairness_report(pred, y_no_pos, g, ("a", "b"), bootstrap=0).binary is None
    with pytest.raises(ValueError, match=_match(MISSING_LABEL, group="b", label=1, rate="true positive rate")):
        fairness_report(pred, y_no_pos, g, ("a", "b"), bootstrap=0, binary=True)


def test_fairness_report_argument_errors():
    with pytest.raises(ValueError, match="group_names: expected a sequence of distinct strings"):
        fairness_report([0], [0], [0], ("a", "a"))
    with pytest.raises(ValueError, match=_match(GROUP_RANGE, num_groups=1, lo=0, hi=1)):
        fairness_report([0, 0], [0, 0], [0, 1], ("only",))
    with pytest.raises(ValueError, match=_match(BAD_RESAMPLES, value=-1)):
        fairness_report([0], [0], [0], ("a",), bootstrap=-1)
