"""Group fairness of a classifier: per-group accuracy, worst group, gap, Fairlearn's binary metrics.

Everything here is a pure function of predictions ``pred``, labels ``y`` and group
labels ``g`` (1-D integer arrays or tensors of one length); the report under an attack,
which runs the attack, is :func:`core.evaluation.robust_fairness`.

* :func:`group_accuracy`: accuracy and size of each group, the worst group, the gap.
* :func:`demographic_parity_difference`, :func:`equalized_odds_difference`,
  :func:`equal_opportunity_difference` and :func:`binary_fairness`: for binary tasks,
  with Fairlearn's definitions (https://fairlearn.org/main/user_guide/assessment/common_fairness_metrics.html).
* :func:`bootstrap_ci`: percentile bootstrap intervals, resampling within each group.
* :func:`fairness_report` -> :class:`FairnessReport`: all of the above, JSON-ready.

References:
    Sagawa, Koh, Hashimoto, Liang, "Distributionally Robust Neural Networks for Group
    Shifts", ICLR 2020. https://arxiv.org/abs/1911.08731 (worst-group accuracy).
    Hardt, Price, Srebro, "Equality of Opportunity in Supervised Learning", NeurIPS 2016.
    https://arxiv.org/abs/1610.02413 (equalized odds, equal opportunity).

Example::

    report = fairness_report(pred, y, g, ("standard", "inverted"), bootstrap=1000, seed=0)
    report.worst_group_accuracy, report.gap, report.ci["gap"]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from dataclasses import asdict, dataclass

import numpy as np
import torch

from core.validation import check_positive_int

__all__ = [
    "BAD_CONFIDENCE",
    "BAD_RESAMPLES",
    "EMPTY_GROUP",
    "EMPTY_INPUT",
    "GROUP_RANGE",
    "LENGTH_MISMATCH",
    "MISSING_LABEL",
    "NOT_BINARY",
    "NOT_INTEGER",
    "NOT_ONE_D",
    "BinaryFairness",
    "FairnessReport",
    "GroupAccuracy",
    "binary_fairness",
    "bootstrap_ci",
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "fairness_report",
    "group_accuracy",
]

# --- error messages (format strings) -------------------------------------------------
NOT_ONE_D = "{name}: expected a 1-D array of labels, got shape {shape} (for logits pass logits.argmax(1))"
NOT_INTEGER = "{name}: expected integer labels, got {detail}"
EMPTY_INPUT = "{name}: expected at least one example, got none"
LENGTH_MISMATCH = "expected pred, y and g of one length, got lengths {lengths}"
GROUP_RANGE = "g: expected group labels in [0, {num_groups}), got min={lo}, max={hi}"
EMPTY_GROUP = "group {group!r} has no examples; every one of the {num_groups} groups needs at least one"
NOT_BINARY = "{name}: binary fairness metrics need values in {{0, 1}}, found {values}"
MISSING_LABEL = "group {group!r} has no examples with y={label}, so its {rate} is undefined"
BAD_GROUP_NAMES = "group_names: expected a sequence of distinct strings, got {value!r}"
BAD_RESAMPLES = "bootstrap: expected a non-negative int (0 for no intervals), got {value!r}"
BAD_CONFIDENCE = "confidence: expected a number in (0, 1), got {value!r}"

CI_KEYS: tuple[str, ...] = ("mean_accuracy", "worst_group_accuracy", "gap")
"""The statistics :func:`bootstrap_ci` gives intervals for."""

ArrayLike = torch.Tensor | np.ndarray | Sequence[int]


# --------------------------------------------------------------------------- accuracy


@dataclass(frozen=True)
class GroupAccuracy:
    """Accuracy per group and its summaries.

    Attributes:
        accuracy: Accuracy of each group, indexed by group label, each in [0, 1].
        counts: Examples in each group.
        mean_accuracy: Accuracy over all examples (each example weighs the same).
        worst_group_accuracy: ``min(accuracy)``; 1 is ideal.
        worst_group: Group label of the worst group (the first one on ties).
        gap: ``max(accuracy) - min(accuracy)``; 0 means all groups are equally accurate.
    """

    accuracy: tuple[float, ...]
    counts: tuple[int, ...]
    mean_accuracy: float
    worst_group_accuracy: float
    worst_group: int
    gap: float

    def by_group(self, names: Sequence[str]) -> dict[str, dict[str, float | int]]:
        """``{group name: {"accuracy": float, "n": int}}``, in group-label order: the one shape of
        every ``by_group`` (fairness reports, robust fairness, validation rows, the command line)."""
        return {name: {"accuracy": a, "n": n} for name, a, n in zip(names, self.accuracy, self.counts)}

    def summary(self, names: Sequence[str]) -> dict[str, Any]:
        """``mean_accuracy``, ``worst_group_accuracy``, ``worst_group`` (its name), ``gap`` and
        :meth:`by_group`: a JSON-ready dict (``train.json``'s validation rows)."""
        return {"mean_accuracy": self.mean_accuracy, "worst_group_accuracy": self.worst_group_accuracy,
                "worst_group": names[self.worst_group], "gap": self.gap, "by_group": self.by_group(names)}


def group_accuracy(pred: ArrayLike, y: ArrayLike, g: ArrayLike, num_groups: int | None = None) -> GroupAccuracy:
    """Accuracy of each group, the worst group's accuracy, and the largest gap between groups.

    Args:
        pred: Predicted classes, (N,), integers.
        y: True classes, (N,), integers.
        g: Group labels, (N,), integers in [0, num_groups).
        num_groups: Number of groups; ``None`` for ``max(g) + 1``. Every group needs an example.

    Returns:
        A :class:`GroupAccuracy` (plain Python floats, computed in float64).

    Raises:
        ValueError: Inputs not 1-D integer arrays of one non-zero length, group labels out
            of range, or an empty group.
    """
    pred_a, y_a, g_a = check_triple(pred, y, g)
    k = group_count(g_a, num_groups)
    counts = group_sizes(g_a, k)
    correct = np.bincount(g_a, weights=(pred_a == y_a).astype(np.float64), minlength=k)
    accuracy = correct / counts
    worst = int(np.argmin(accuracy))
    return GroupAccuracy(
        accuracy=tuple(float(a) for a in accuracy),
        counts=tuple(int(c) for c in counts),
        mean_accuracy=float(correct.sum() / counts.sum()),
        worst_group_accuracy=float(accuracy[worst]),
        worst_group=worst,
        gap=float(accuracy.max() - accuracy.min()),
    )


# --------------------------------------------------------------------------- binary tasks


@dataclass(frozen=True)
class BinaryFairness:
    """Fairlearn's group fairness metrics of a binary classifier; 0 is ideal for each difference.

    Attributes:
        demographic_parity_difference: max - min over groups of the selection rate.
        equalized_odds_difference: max of the TPR difference and the FPR difference.
        equal_opportunity_difference: max - min over groups of the TPR.
        selection_rate: ``P(pred = 1 | g)`` per group.
        true_positive_rate: ``P(pred = 1 | y = 1, g)`` per group.
        false_positive_rate: ``P(pred = 1 | y = 0, g)`` per group.
    """

    demographic_parity_difference: float
    equalized_odds_difference: float
    equal_opportunity_difference: float
    selection_rate: tuple[float, ...]
    true_positive_rate: tuple[float, ...]
    false_positive_rate: tuple[float, ...]

    def to_dict(self) -> dict:
        """A JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> BinaryFairness:
        """The inverse of :meth:`to_dict`."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def demographic_parity_difference(pred: ArrayLike, g: ArrayLike, *, num_groups: int | None = None) -> float:
    """Largest difference between groups of the selection rate ``P(pred = 1 | g)``.

    Fairlearn's ``demographic_parity_difference`` (``method="between_groups"``).
    0 means every group is selected (predicted 1) equally often; 1 is the worst.

    Args:
        pred: Binary predictions, (N,), values in {0, 1}.
        g: Group labels, (N,), integers in [0, num_groups).
        num_groups: Number of groups; ``None`` for ``max(g) + 1``.

    Raises:
        ValueError: Non-binary ``pred``, mismatched lengths, or an empty group.
    """
    pred_a, _, g_a = check_triple(pred, pred, g)
    _check_binary(pred_a, "pred")
    k = group_count(g_a, num_groups)
    rate = _rate(pred_a, np.ones_like(pred_a, dtype=bool), g_a, k, "selection rate")
    return float(rate.max() - rate.min())


def equalized_odds_difference(
    pred: ArrayLike, y: ArrayLike, g: ArrayLike, *, num_groups: int | None = None
) -> float:
    """Largest difference between groups of the true or the false positive rate.

    Fairlearn's ``equalized_odds_difference`` (``agg="worst_case"``): the larger of
    ``max_g TPR - min_g TPR`` and ``max_g FPR - min_g FPR``, where
    ``TPR = P(pred = 1 | y = 1, g)`` and ``FPR = P(pred = 1 | y = 0, g)``.
    0 means the errors are independent of the group given the label.

    Args:
        pred: Binary predictions, (N,), values in {0, 1}.
        y: Binary labels, (N,), values in {0, 1}.
        g: Group labels, (N,), integers in [0, num_groups).
        num_groups: Number of groups; ``None`` for ``max(g) + 1``.

    Raises:
        ValueError: Non-binary inputs, mismatched lengths, an empty group, or a group
            without positives or without negatives (its TPR or FPR is undefined).
    """
    result = binary_fairness(pred, y, g, num_groups=num_groups)
    return result.equalized_odds_difference


def equal_opportunity_difference(
    pred: ArrayLike, y: ArrayLike, g: ArrayLike, *, num_groups: int | None = None
) -> float:
    """Largest difference between groups of the true positive rate ``P(pred = 1 | y = 1, g)``.

    Fairlearn's ``equal_opportunity_difference``. 0 means every group's positives are
    recognised equally often.

    Args:
        pred: Binary predictions, (N,), values in {0, 1}.
        y: Binary labels, (N,), values in {0, 1}.
        g: Group labels, (N,), integers in [0, num_groups).
        num_groups: Number of groups; ``None`` for ``max(g) + 1``.

    Raises:
        ValueError: Non-binary inputs, mismatched lengths, an empty group, or a group
            without positives.
    """
    pred_a, y_a, g_a = check_triple(pred, y, g)
    _check_binary(pred_a, "pred")
    _check_binary(y_a, "y")
    k = group_count(g_a, num_groups)
    tpr = _rate(pred_a, y_a == 1, g_a, k, "true positive rate", label=1)
    return float(tpr.max() - tpr.min())


def binary_fairness(
    pred: ArrayLike,
    y: ArrayLike,
    g: ArrayLike,
    *,
    num_groups: int | None = None,
    group_names: Sequence[str] | None = None,
) -> BinaryFairness:
    """All of Fairlearn's binary group metrics at once (see the three functions above).

    Args:
        pred: Binary predictions, (N,), values in {0, 1}.
        y: Binary labels, (N,), values in {0, 1}.
        g: Group labels, (N,), integers in [0, num_groups).
        num_groups: Number of groups; ``None`` for ``max(g) + 1`` (or ``len(group_names)``).
        group_names: Optional names, used in error messages.

    Returns:
        A :class:`BinaryFairness`.

    Raises:
        ValueError: As :func:`equalized_odds_difference`.
    """
    pred_a, y_a, g_a = check_triple(pred, y, g)
    _check_binary(pred_a, "pred")
    _check_binary(y_a, "y")
    if num_groups is None and group_names is not None:
        num_groups = len(group_names)
    k = group_count(g_a, num_groups, group_names)
    selection = _rate(pred_a, np.ones_like(pred_a, dtype=bool), g_a, k, "selection rate", names=group_names)
    tpr = _rate(pred_a, y_a == 1, g_a, k, "true positive rate", label=1, names=group_names)
    fpr = _rate(pred_a, y_a == 0, g_a, k, "false positive rate", label=0, names=group_names)
    tpr_diff, fpr_diff = float(tpr.max() - tpr.min()), float(fpr.max() - fpr.min())
    return BinaryFairness(
        demographic_parity_difference=float(selection.max() - selection.min()),
        equalized_odds_difference=max(tpr_diff, fpr_diff),
        equal_opportunity_difference=tpr_diff,
        selection_rate=tuple(float(v) for v in selection),
        true_positive_rate=tuple(float(v) for v in tpr),
        false_positive_rate=tuple(float(v) for v in fpr),
    )


# --------------------------------------------------------------------------- bootstrap


def bootstrap_ci(
    pred: ArrayLike,
    y: ArrayLike,
    g: ArrayLike,
    *,
    num_groups: int | None = None,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals for the mean accuracy, the worst-group accuracy and the gap.

    The bootstrap is **stratified by group**: each resample draws ``n_k`` examples with
    replacement from group ``k`` for every group, so group sizes stay fixed and no group
    can vanish from a resample. The number of correct examples among ``n_k`` draws with
    replacement from a group whose accuracy is ``a_k`` is exactly ``Binomial(n_k, a_k)``,
    so that is what is drawn (the same distribution as resampling indices, at a fraction
    of the cost). The interval is ``[q_{(1-c)/2}, q_{(1+c)/2}]`` of the ``resamples``
    bootstrap values (numpy's linear quantiles).

    Caveat: the worst-group accuracy and the gap are a minimum and a range, so their
    bootstrap distributions are biased (downwards and upwards) when groups have nearly
    the same accuracy; the interval may then miss the point estimate (for equal groups
    the gap's interval lies above 0).

    Args:
        pred: Predicted classes, (N,), integers.
        y: True classes, (N,), integers.
        g: Group labels, (N,), integers in [0, num_groups).
        num_groups: Number of groups; ``None`` for ``max(g) + 1``.
        resamples: Number of bootstrap resamples ``B``.
        seed: Seed of numpy's generator: the same seed gives the same intervals.
        confidence: Coverage ``c`` of the intervals, in (0, 1).

    Returns:
        ``{"mean_accuracy": (lo, hi), "worst_group_accuracy": (lo, hi), "gap": (lo, hi)}``.

    Raises:
        ValueError: As :func:`group_accuracy`, or a bad ``resamples`` or ``confidence``.
    """
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(BAD_RESAMPLES.format(value=resamples))
    _check_confidence(confidence)
    acc = group_accuracy(pred, y, g, num_groups)
    counts = np.asarray(acc.counts, dtype=np.int64)
    rates = np.asarray(acc.accuracy, dtype=np.float64)
    rng = np.random.default_rng(seed)
    correct = rng.binomial(counts[None, :], rates[None, :], size=(int(resamples), len(counts)))  # (B, K)
    group_acc = correct / counts  # (B, K)
    stats = {
        "mean_accuracy": correct.sum(1) / counts.sum(),
        "worst_group_accuracy": group_acc.min(1),
        "gap": group_acc.max(1) - group_acc.min(1),
    }
    tail = (1.0 - confidence) / 2.0
    return {name: (float(np.quantile(v, tail)), float(np.quantile(v, 1.0 - tail))) for name, v in stats.items()}


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class FairnessReport:
    """Group fairness of one set of predictions.

    Attributes:
        mean_accuracy: Accuracy over all examples, in [0, 1].
        worst_group_accuracy: Lowest accuracy of any group; 1 is ideal.
        worst_group: Name of that group.
        gap: Highest minus lowest group accuracy; 0 is ideal.
        by_group: ``{group name: {"accuracy": float, "n": int}}``, in group-label order.
        binary: Fairlearn's binary metrics, or None (not a binary task, or not computed).
        ci: ``{statistic: (lo, hi)}`` bootstrap intervals for :data:`CI_KEYS`; empty
            when ``bootstrap=0``.
        confidence: Coverage of the intervals.
        bootstrap: Number of bootstrap resamples (0: none).
    """

    mean_accuracy: float
    worst_group_accuracy: float
    worst_group: str
    gap: float
    by_group: dict[str, dict[str, float | int]]
    binary: BinaryFairness | None
    ci: dict[str, tuple[float, float]]
    confidence: float
    bootstrap: int

    def to_dict(self) -> dict:
        """A JSON-ready dict (tuples become lists, ``binary`` a dict or None)."""
        return {
            "mean_accuracy": self.mean_accuracy,
            "worst_group_accuracy": self.worst_group_accuracy,
            "worst_group": self.worst_group,
            "gap": self.gap,
            "by_group": {name: dict(row) for name, row in self.by_group.items()},
            "binary": self.binary.to_dict() if self.binary is not None else None,
            "ci": {name: list(bounds) for name, bounds in self.ci.items()},
            "confidence": self.confidence,
            "bootstrap": self.bootstrap,
        }

    @classmethod
    def from_dict(cls, data: dict) -> FairnessReport:
        """The inverse of :meth:`to_dict` (a report read back from JSON)."""
        binary = data.get("binary")
        return cls(
            mean_accuracy=float(data["mean_accuracy"]), worst_group_accuracy=float(data["worst_group_accuracy"]),
            worst_group=str(data["worst_group"]), gap=float(data["gap"]),
            by_group={name: dict(row) for name, row in data["by_group"].items()},
            binary=BinaryFairness.from_dict(binary) if binary is not None else None,
            ci={name: (float(lo), float(hi)) for name, (lo, hi) in (data.get("ci") or {}).items()},
            confidence=float(data.get("confidence", 0.95)), bootstrap=int(data.get("bootstrap", 0)),
        )

    def to_rows(self) -> list[dict[str, float | int | str]]:
        """One plain dict per group (for tables): group, accuracy, n."""
        return [{"group": name, "accuracy": row["accuracy"], "n": int(row["n"])} for name, row in self.by_group.items()]


def fairness_report(
    pred: ArrayLike,
    y: ArrayLike,
    g: ArrayLike,
    group_names: Sequence[str],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    binary: bool | None = None,
) -> FairnessReport:
    """Per-group accuracy, worst group, gap, bootstrap intervals and (binary tasks) Fairlearn metrics.

    Args:
        pred: Predicted classes, (N,), integers.
        y: True classes, (N,), integers.
        g: Group labels, (N,), integers in [0, len(group_names)).
        group_names: Name of each group, indexed by group label.
        bootstrap: Resamples of :func:`bootstrap_ci`; 0 for no intervals.
        seed: Seed of the bootstrap.
        confidence: Coverage of the intervals, in (0, 1).
        binary: Compute :class:`BinaryFairness`: ``None`` (default) when ``pred`` and ``y``
            are in {0, 1} and every group has both labels, ``True`` always (errors raise),
            ``False`` never.

    Returns:
        A :class:`FairnessReport`.

    Raises:
        ValueError: As :func:`group_accuracy` (with ``num_groups = len(group_names)``),
            bad names, a bad ``bootstrap`` or ``confidence``, or (``binary=True``) as
            :func:`binary_fairness`.
    """
    names = check_group_names(group_names)
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) or bootstrap < 0:
        raise ValueError(BAD_RESAMPLES.format(value=bootstrap))
    _check_confidence(confidence)
    pred_a, y_a, g_a = check_triple(pred, y, g)
    group_count(g_a, len(names), names)
    acc = group_accuracy(pred_a, y_a, g_a, len(names))
    ci = bootstrap_ci(pred_a, y_a, g_a, num_groups=len(names), resamples=bootstrap, seed=seed,
                      confidence=confidence) if bootstrap else {}
    metrics = None
    if binary or (binary is None and _binary_defined(pred_a, y_a, g_a, len(names))):
        metrics = binary_fairness(pred_a, y_a, g_a, num_groups=len(names), group_names=names)
    return FairnessReport(
        **acc.summary(names),
        binary=metrics,
        ci=ci,
        confidence=float(confidence),
        bootstrap=int(bootstrap),
    )


# --------------------------------------------------------------------------- helpers


def as_labels(values: object, name: str) -> np.ndarray:
    """A 1-D int64 numpy copy of integer (or integral float, or bool) labels."""
    if isinstance(values, torch.Tensor):
        array = values.detach().cpu().numpy()
    else:
        array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(NOT_ONE_D.format(name=name, shape=tuple(array.shape)))
    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if finite.all() and np.array_equal(array, np.round(array)):
            return array.astype(np.int64)
        bad = array[~finite | (array != np.round(np.where(finite, array, 0)))]
        raise ValueError(NOT_INTEGER.format(name=name, detail=f"non-integer value {float(bad[0])!r}"))
    raise ValueError(NOT_INTEGER.format(name=name, detail=f"dtype {array.dtype}"))


def check_triple(pred: object, y: object, g: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred_a, y_a, g_a = as_labels(pred, "pred"), as_labels(y, "y"), as_labels(g, "g")
    lengths = (len(pred_a), len(y_a), len(g_a))
    if len(set(lengths)) != 1:
        raise ValueError(LENGTH_MISMATCH.format(lengths=lengths))
    if lengths[0] == 0:
        raise ValueError(EMPTY_INPUT.format(name="pred"))
    return pred_a, y_a, g_a


def group_count(g: np.ndarray, num_groups: int | None, names: Sequence[str] | None = None) -> int:
    """Validate group labels against ``num_groups`` (default ``max(g) + 1``); every group non-empty."""
    lo, hi = int(g.min()), int(g.max())
    if num_groups is None:
        num_groups = hi + 1
    else:
        num_groups = check_positive_int(num_groups, name="num_groups")
    if lo < 0 or hi >= num_groups:
        raise ValueError(GROUP_RANGE.format(num_groups=num_groups, lo=lo, hi=hi))
    counts = np.bincount(g, minlength=num_groups)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise ValueError(EMPTY_GROUP.format(group=_group_name(int(empty[0]), names), num_groups=num_groups))
    return int(num_groups)


def group_sizes(g: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(g, minlength=k).astype(np.float64)


def _group_name(k: int, names: Sequence[str] | None) -> str | int:
    return names[k] if names is not None and k < len(names) else k


def _check_binary(values: np.ndarray, name: str) -> None:
    found = np.unique(values)
    if not np.isin(found, (0, 1)).all():
        shown = ", ".join(str(v) for v in found[:6]) + (", ..." if len(found) > 6 else "")
        raise ValueError(NOT_BINARY.format(name=name, values="{" + shown + "}"))


def _rate(
    pred: np.ndarray,
    mask: np.ndarray,
    g: np.ndarray,
    k: int,
    what: str,
    *,
    label: int | None = None,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """(K,) ``P(pred = 1 | mask, g)``; a group with no masked example raises MISSING_LABEL."""
    denominator = np.bincount(g[mask], minlength=k).astype(np.float64)
    empty = np.flatnonzero(denominator == 0)
    if len(empty):
        if label is None:
            raise ValueError(EMPTY_GROUP.format(group=_group_name(int(empty[0]), names), num_groups=k))
        raise ValueError(MISSING_LABEL.format(group=_group_name(int(empty[0]), names), label=label, rate=what))
    numerator = np.bincount(g[mask], weights=(pred[mask] == 1).astype(np.float64), minlength=k)
    return numerator / denominator


def _binary_defined(pred: np.ndarray, y: np.ndarray, g: np.ndarray, k: int) -> bool:
    """Whether pred and y are in {0, 1} and every group has both labels."""
    if not (np.isin(pred, (0, 1)).all() and np.isin(y, (0, 1)).all()):
        return False
    both = np.bincount(g[y == 1], minlength=k) > 0
    return bool(both.all() and (np.bincount(g[y == 0], minlength=k) > 0).all())


def _check_confidence(confidence: object) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(BAD_CONFIDENCE.format(value=confidence))


def check_group_names(group_names: object) -> tuple[str, ...]:
    if isinstance(group_names, str) or not isinstance(group_names, Sequence):
        raise ValueError(BAD_GROUP_NAMES.format(value=group_names))
    names = tuple(group_names)
    if not names or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise ValueError(BAD_GROUP_NAMES.format(value=group_names))
    return names
