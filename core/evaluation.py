"""Clean and robust accuracy of a classifier, with the perceptual cost of an attack."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from core.attacks import Attack
from core.validation import check_images, check_labels


@dataclass(frozen=True)
class Evaluation:
    """Accuracy of a model on ``n`` images, clean and (optionally) under an attack.

    Attributes:
        n: Images evaluated.
        clean_accuracy: Fraction classified correctly, in [0, 1].
        robust_accuracy: Fraction still classified correctly after the attack (None without one).
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
            robust += int((result.pred_adv == yb).sum())
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
