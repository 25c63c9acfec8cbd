"""Projected gradient descent in L-inf and L2 balls, and FGSM.

References:
    Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018. https://arxiv.org/abs/1706.06083
    Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015.
    https://arxiv.org/abs/1412.6572
"""

from __future__ import annotations

import torch
from torch import nn

from core.attacks.base import Attack, LossName, Perturbation, register_attack
from core.attacks.threat import L2Ball, LinfBall, ThreatModel
from core.validation import check_positive_int


class PGD(Attack):
    """PGD in a norm ball: random start, ``steps`` ascent steps, projection after each.

    Args:
        model: Classifier on [0, 1] images.
        threat: The ball (:class:`LinfBall` or :class:`L2Ball`).
        steps: Ascent steps.
        step_size: Step length; default ``2.5 * eps / steps`` (Madry et al.).
        random_start: Start from a uniform point of the ball.
        loss: ``"ce"`` or ``"margin"``.
    """

    takes_loss = takes_step_size = True

    def __init__(
        self,
        model: nn.Module,
        *,
        threat: ThreatModel,
        steps: int = 10,
        step_size: float | None = None,
        random_start: bool = True,
        loss: LossName = "ce",
    ) -> None:
        super().__init__(model, loss=loss)
        self.threat = threat
        self.measure = threat.measure
        self.steps = check_positive_int(steps, name="steps")
        self.step_size = float(step_size) if step_size is not None else 2.5 * threat.eps / self.steps
        self.random_start = random_start

    def _perturb(self, x, y, target, generator) -> Perturbation:
        x_adv = self.threat.init(x, generator) if self.random_start else x.clone()
        for t in range(self.steps):
            _, grad = self.loss_and_grad(x_adv, y, target)
            x_adv = self.threat.project(x, self.threat.step(x_adv, grad, self.step_size))
            self._step_done(t + 1, self.steps)
        return Perturbation(x_adv=x_adv, steps=self.steps)

    def _cost(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        return self.threat.norm(x_adv - x)


@register_attack("pgd-linf")
class PGDLinf(PGD):
    """PGD in the L-inf ball of radius ``eps`` (default 8/255). Shape: (N, C, H, W) in [0, 1].

    Example:
        >>> result = PGDLinf(model, eps=8 / 255, steps=10)(x, y)
        >>> result.success_rate, result.measures["ssim"].mean()
    """

    label = "PGD-L-inf"

    def __init__(self, model: nn.Module, *, eps: float = 8 / 255, **kwargs) -> None:
        super().__init__(model, threat=LinfBall(eps), **kwargs)


@register_attack("pgd-l2")
class PGDL2(PGD):
    """PGD in the L2 ball of radius ``eps`` (default 1.0). Shape: (N, C, H, W) in [0, 1]."""

    label = "PGD-L2"

    def __init__(self, model: nn.Module, *, eps: float = 1.0, **kwargs) -> None:
        super().__init__(model, threat=L2Ball(eps), **kwargs)


@register_attack("fgsm")
class FGSM(PGD):
    """Fast gradient sign method: one step of length ``eps`` from the clean image, no random start."""

    label = "FGSM"
    takes_steps = takes_step_size = False

    def __init__(self, model: nn.Module, *, eps: float = 8 / 255, loss: LossName = "ce") -> None:
        super().__init__(model, threat=LinfBall(eps), steps=1, step_size=eps, random_start=False, loss=loss)
