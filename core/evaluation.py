"""Running a classifier on data: batched predictions, clean and robust accuracy, group fairness under an attack.

* :func:`predict`: the predicted class of every image, in batches, in eval mode.
* :func:`evaluate` -> :class:`Evaluation`: accuracy clean and under an attack, with the
  attack's perceptual cost.
* :func:`robust_fairness` -> :class:`RobustFairness`: :func:`core.fairness.fairness_report`
  clean and under an attack, and the transport cost the attack spent on each group.
* :func:`evaluate_fairness` -> :class:`FairnessEvaluation`: a model's group fairness clean and
  under each of several attacks, the one evaluation the fairness demo, the CLI and the
  benchmarks run.

Robust accuracy has one definition here (:func:`robust_correct`): an example counts when the
model classifies it correctly both clean and attacked (the adversary may always leave an
example where it is), so robust accuracy never exceeds clean accuracy.

:mod:`core.fairness` holds the metrics (pure functions of predictions); this module runs
the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from core.attacks import Attack
from core.fairness import (
    ArrayLike,
    FairnessReport,
    as_labels,
    check_group_names,
    check_triple,
    fairness_report,
    group_count,
    group_sizes,
)
from core.progress import Counter, Report, counting
from core.validation import check_images, check_labels, check_positive_int

OTHER_MODEL = "attack: expected an attack built on `model`, but attack.model is another module"


def robust_correct(pred_clean: torch.Tensor | np.ndarray, pred_adv: torch.Tensor | np.ndarray,
                   y: torch.Tensor | np.ndarray):
    """(N,) bool: classified correctly both clean and attacked (the one definition of robust accuracy)."""
    return (pred_clean == y) & (pred_adv == y)


def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1000) -> torch.Tensor:
    """(N,) the class ``model`` predicts for each image of ``x``, in batches, in eval mode, without gradients.

    The model's train/eval mode is restored afterwards.
    """
    check_images(x)
    check_positive_int(batch_size, name="batch_size")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat([model(xb).argmax(1) for xb in x.split(batch_size)])
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class Evaluation:
    """Accuracy of a model on ``n`` images, clean and (optionally) under an attack.

    Attributes:
        n: Images evaluated.
        clean_accuracy: Fraction classified correctly, in [0, 1].
        robust_accuracy: Fraction classified correctly both clean and attacked (None without an attack).
        attack_success: Fraction of images whose prediction the attack changed away from the label.
        measures: Mean score of every applicable perceptual measure over the attacked images
            (empty without an attack).
        attack: Registry name of the attack, or None.
    """

    n: int
    clean_accuracy: float
    robust_accuracy: float | None = None
    attack_success: float | None = None
    measures: dict[str, float] | None = None
    attack: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attack: Attack | None = None,
    batch_size: int = 256,
    seed: int = 0,
) -> Evaluation:
    """Evaluate ``model`` on (x, y), clean and under ``attack``, in batches.

    A distributional budget holds on average over each batch of ``batch_size`` images.

    Args:
        model: Classifier on [0, 1] images.
        x: Images, (N, C, H, W), float in [0, 1].
        y: Labels, (N,), int64.
        attack: An attack built on ``model``, or None for clean accuracy only.
        batch_size: Images per batch.
        seed: Seed of the attack's random start (the same for every batch).
    """
    check_images(x)
    check_labels(y, x.shape[0])
    was_training = model.training
    model.eval()
    correct, robust, success, sums = 0, 0, 0, {}
    try:
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            if attack is None:
                with torch.no_grad():
                    correct += int((model(xb).argmax(1) == yb).sum())
                continue
            result = attack(xb, yb, seed=seed)
            correct += int((result.pred_clean == yb).sum())
            robust += int(robust_correct(result.pred_clean, result.pred_adv, yb).sum())
            success += int(result.success.sum())
            for name, values in result.measures.items():
                sums[name] = sums.get(name, 0.0) + float(values.sum())
    finally:
        model.train(was_training)
    n = x.shape[0]
    if attack is None:
        return Evaluation(n=n, clean_accuracy=correct / n)
    return Evaluation(
        n=n,
        clean_accuracy=correct / n,
        robust_accuracy=robust / n,
        attack_success=success / n,
        measures={name: total / n for name, total in sums.items()},
        attack=attack.name,
    )


@dataclass(frozen=True)
class RobustFairness:
    """Group fairness clean and under an attack, and where the attack spent its budget.

    Attributes:
        attack: Registry name of the attack.
        measure: The measure the cost is in (``"ssim"`` for W-DRO, ``"linf"`` for PGD, ...).
        clean: Report of the clean predictions.
        robust: Report of the predictions under attack (an example counts as correct only
            when it is classified correctly both clean and attacked).
        mean_cost: ``{group name: mean cost spent per example of the group}``.
        cost_share: ``{group name: share of the total cost spent on the group}`` (sums to 1;
            all 0 when nothing was spent). Compare with the group's share of the examples.
        n: Examples evaluated.
    """

    attack: str
    measure: str
    clean: FairnessReport
    robust: FairnessReport
    mean_cost: dict[str, float]
    cost_share: dict[str, float]
    n: int

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {
            "attack": self.attack,
            "measure": self.measure,
            "clean": self.clean.to_dict(),
            "robust": self.robust.to_dict(),
            "mean_cost": dict(self.mean_cost),
            "cost_share": dict(self.cost_share),
            "n": self.n,
        }

    @classmethod
    def from_dict(cls, data: dict) -> RobustFairness:
        """The inverse of :meth:`to_dict`."""
        return cls(attack=str(data["attack"]), measure=str(data["measure"]),
                   clean=FairnessReport.from_dict(data["clean"]), robust=FairnessReport.from_dict(data["robust"]),
                   mean_cost=dict(data["mean_cost"]), cost_share=dict(data["cost_share"]), n=int(data["n"]))

    def to_rows(self) -> list[dict[str, float | int | str]]:
        """One plain dict per group: clean and robust accuracy, n, mean cost and cost share."""
        return [
            {
                "group": name,
                "n": int(self.clean.by_group[name]["n"]),
                "clean_accuracy": self.clean.by_group[name]["accuracy"],
                "robust_accuracy": self.robust.by_group[name]["accuracy"],
                "mean_cost": self.mean_cost[name],
                "cost_share": self.cost_share[name],
            }
            for name in self.clean.by_group
        ]


def robust_fairness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    g: ArrayLike,
    attack: Attack,
    group_names: Sequence[str],
    *,
    batch_size: int = 256,
    seed: int = 0,
    shuffle: bool = True,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    progress: Counter | None = None,
) -> RobustFairness:
    """Group fairness of ``model`` clean and under ``attack``, with the cost spent per group.

    The attack runs in batches of ``batch_size``. A distributional budget (W-DRO) holds
    on average over each batch, so by default the batches are a seeded random permutation
    of the data (``shuffle=True``): every batch then mixes the groups as the data does,
    and the attack's worst-case distribution is free to spend more of its budget on one
    group than on another. ``mean_cost`` and ``cost_share`` show where it did. With
    ``shuffle=False`` and data sorted by group, each batch would get its own budget.

    An example counts as robustly correct when the model classifies it correctly both
    clean and attacked (the adversary may always leave an example where it is), so
    robust accuracy never exceeds clean accuracy, in every group.

    Args:
        model: Classifier on [0, 1] images; ``attack`` must be built on it.
        x: Images, (N, C, H, W), float in [0, 1].
        y: Labels, (N,), int64.
        g: Group labels, (N,), integers in [0, len(group_names)).
        attack: A :class:`core.attacks.Attack`, called as ``attack(xb, yb, seed=seed)``.
        group_names: Name of each group, indexed by group label.
        batch_size: Images per attacked batch.
        seed: Seed of the permutation and of the attack's random start (every batch).
        shuffle: Attack a seeded random permutation (see above), else the given order.
        bootstrap: Resamples for the bootstrap intervals of both reports; 0 for none.
        confidence: Coverage of the intervals.
        progress: Called as ``progress(done, total)`` after each batch.

    Returns:
        A :class:`RobustFairness`.

    Raises:
        ValueError: Bad images, labels or groups (as :func:`fairness_report`), a bad
            ``batch_size``, or an attack built on another model.
    """
    check_images(x)
    check_labels(y, x.shape[0])
    names = check_group_names(group_names)
    check_positive_int(batch_size, name="batch_size")
    if getattr(attack, "model", model) is not model:
        raise ValueError(OTHER_MODEL)
    y_a = as_labels(y, "y")
    g_a = as_labels(g, "g")
    check_triple(y_a, y_a, g_a)
    group_count(g_a, len(names), names)
    n = x.shape[0]
    order = (
        torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))) if shuffle else torch.arange(n)
    )
    pred_clean = np.empty(n, dtype=np.int64)
    pred_adv = np.empty(n, dtype=np.int64)
    cost = np.empty(n, dtype=np.float64)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        dev_idx = idx.to(x.device)
        result = attack(x[dev_idx], y[dev_idx], seed=seed)
        where = idx.numpy()
        pred_clean[where] = result.pred_clean.detach().cpu().numpy()
        pred_adv[where] = result.pred_adv.detach().cpu().numpy()
        cost[where] = result.cost.detach().to(torch.float64).cpu().numpy()
        if progress is not None:
            progress(min(start + batch_size, n), n)
    # The worse of the two predictions (the attacked one where the clean one is right, else the clean
    # one): it is correct exactly where robust_correct is true.
    pred_robust = np.where(pred_clean == y_a, pred_adv, pred_clean)
    options = {"bootstrap": bootstrap, "seed": seed, "confidence": confidence}
    clean = fairness_report(pred_clean, y_a, g_a, names, **options)
    robust = fairness_report(pred_robust, y_a, g_a, names, **options)
    counts = group_sizes(g_a, len(names))
    spent = np.bincount(g_a, weights=cost, minlength=len(names))
    total = float(spent.sum())
    return RobustFairness(
        attack=getattr(attack, "name", type(attack).__name__),
        measure=str(getattr(attack, "measure", "")),
        clean=clean,
        robust=robust,
        mean_cost={name: float(s / c) for name, s, c in zip(names, spent, counts)},
        cost_share={name: float(s / total) if total > 0 else 0.0 for name, s in zip(names, spent)},
        n=int(n),
    )


@dataclass(frozen=True)
class FairnessEvaluation:
    """A model's group fairness: clean, and under each attack with the cost it spent per group.

    Attributes:
        clean: Report of the clean predictions.
        clean_images: Examples the clean report is on.
        under_attack: ``{attack key: RobustFairness}`` (empty: clean only, as for a cancelled run).
    """

    clean: FairnessReport
    clean_images: int
    under_attack: dict[str, RobustFairness] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready dict: ``{"clean", "clean_images", "under_attack": {key: RobustFairness.to_dict()}}``."""
        return {"clean": self.clean.to_dict(), "clean_images": self.clean_images,
                "under_attack": {key: value.to_dict() for key, value in self.under_attack.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> FairnessEvaluation:
        """The inverse of :meth:`to_dict` (extra keys, such as a model's config, are ignored)."""
        return cls(clean=FairnessReport.from_dict(data["clean"]), clean_images=int(data["clean_images"]),
                   under_attack={k: RobustFairness.from_dict(v) for k, v in (data.get("under_attack") or {}).items()})


def evaluate_fairness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    g: ArrayLike,
    group_names: Sequence[str],
    *,
    attacks: Mapping[str, Attack] | None = None,
    attacked: torch.Tensor | None = None,
    clean: torch.Tensor | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    batch_size: int = 256,
    progress: Report | None = None,
) -> FairnessEvaluation:
    """Group fairness of ``model`` on ``(x, y, g)``: clean, and under each attack of ``attacks``.

    Args:
        model: Classifier on [0, 1] images; every attack must be built on it.
        x, y, g: Images (N, C, H, W), labels (N,) and group labels (N,).
        group_names: Name of each group, indexed by group label.
        attacks: ``{key: attack}``; each runs through :func:`robust_fairness` (default: none).
        attacked: Indices of the examples the attacks run on (default: all).
        clean: Indices of the examples the clean report is on (default: all).
        bootstrap: Resamples of the bootstrap intervals (0: none).
        seed: Seed of the intervals, the attacks' batch order and their random starts.
        batch_size: Images per attacked batch (a distributional budget holds per batch).
        progress: Called as ``progress(fraction, text)`` before the clean pass and after every
            attacked batch; it may raise (:class:`core.cancel.Cancelled`) to stop.
    """
    say = progress or (lambda fraction, text: None)
    attacks = dict(attacks or {})
    g = torch.as_tensor(g).cpu()  # group labels stay on the CPU (the metrics are numpy)
    say(0.0, "clean accuracy")
    xc, yc, gc = (x, y, g) if clean is None else (x[clean.to(x.device)], y[clean.to(y.device)], g[clean.cpu()])
    report = fairness_report(predict(model, xc).cpu(), yc.cpu(), gc, group_names, bootstrap=bootstrap, seed=seed)
    if attacked is not None:
        x, y, g = x[attacked.to(x.device)], y[attacked.to(y.device)], g[attacked.cpu()]
    under = {}
    for i, (key, attack) in enumerate(attacks.items()):
        batches = counting(say, f"under attack: {key}, images", start=i / len(attacks), span=1 / len(attacks))
        under[key] = robust_fairness(model, x, y, g, attack, group_names, seed=seed, bootstrap=bootstrap,
                                     batch_size=batch_size, progress=batches)
    return FairnessEvaluation(clean=report, clean_images=len(yc), under_attack=under)
