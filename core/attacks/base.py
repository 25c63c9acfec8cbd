"""The attack contract shared by every attack, and the result it returns.

:class:`Attack.__call__` owns the contract, so a subclass cannot forget it:

1. validate the inputs;
2. put the model in eval mode and restore its mode afterwards;
3. run the subclass's :meth:`Attack._perturb`;
4. clamp the output to [0, 1];
5. build the :class:`AttackResult`, scoring the output under every registered measure.
"""

from __future__ import annotations

import functools
import inspect

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from core.measures import Measure, evaluate_measures, get_measure
from core.progress import Counter
from core.registry import Registry
from core.validation import check_images, check_labels

LossName = Literal["ce", "margin"]

BAD_LOSS = "loss: expected 'ce' or 'margin', got {loss!r}"


@dataclass(frozen=True)
class AttackResult:
    """What an attack produced, per image.

    Attributes:
        attack: Registry name of the attack.
        measure: The measure the attack's budget or cost is in (``"ssim"``, ``"linf"``, ...).
        x_adv: Adversarial images, (N, C, H, W), float in [0, 1].
        y: True labels, (N,).
        success: (N,) bool; prediction changed away from ``y`` (or, targeted, equals the target).
        pred_clean: (N,) predicted class on the clean images.
        pred_adv: (N,) predicted class on the adversarial images.
        prob_clean: (N, K) softmax probabilities on the clean images.
        prob_adv: (N, K) softmax probabilities on the adversarial images.
        cost: (N,) cost spent per image, in the attack's own ``measure`` (its transport cost
            ``d`` for W-DRO, the norm of the perturbation for PGD and FGSM).
        x: The clean images the attack started from, (N, C, H, W) (the caller's tensor).
        measures: ``{measure name: (N,) score}`` under every registered measure valid for the
            image size, not only the one attacked; computed on first access and kept (an
            attack inside a training loop never pays for it). :meth:`score` computes one.
        gamma: (T, N) dual multiplier per step and image; identical columns under a
            distributional budget; (0, N) for attacks without one.
        steps: Ascent steps taken (for bisection: all of its passes together).
        nonfinite_steps: (N,) how many steps of each image were skipped because the loss,
            the cost or the gradient was NaN or infinite.
    """

    attack: str
    measure: str
    x_adv: torch.Tensor
    y: torch.Tensor
    success: torch.Tensor
    pred_clean: torch.Tensor
    pred_adv: torch.Tensor
    prob_clean: torch.Tensor
    prob_adv: torch.Tensor
    cost: torch.Tensor
    x: torch.Tensor = field(repr=False)
    gamma: torch.Tensor
    steps: int
    nonfinite_steps: torch.Tensor = field(default_factory=lambda: torch.zeros(0))

    @functools.cached_property
    def measures(self) -> dict[str, torch.Tensor]:
        """Every registered measure valid for the image size, per image (computed once, on first access)."""
        return evaluate_measures(self.x, self.x_adv)

    def score(self, name: str) -> torch.Tensor:
        """(N,) one measure's score of the result (from :attr:`measures` when already computed)."""
        cached = self.__dict__.get("measures")
        if cached is not None and name in cached:
            return cached[name]
        return evaluate_measures(self.x, self.x_adv, names=[name])[name]

    @property
    def success_rate(self) -> float:
        """Fraction of images on which the attack succeeded, in [0, 1]."""
        return float(self.success.float().mean())

    @property
    def final_gamma(self) -> torch.Tensor:
        """(N,) the multiplier at the last step (NaN where the attack has none)."""
        if self.gamma.shape[0] == 0:
            return torch.full((self.x_adv.shape[0],), float("nan"))
        return self.gamma[-1]

    def to_rows(self) -> list[dict[str, float | int | bool]]:
        """One plain dict per image (for tables and JSON)."""
        rows = []
        for i in range(self.x_adv.shape[0]):
            row: dict[str, float | int | bool] = {
                "y": int(self.y[i]),
                "pred_clean": int(self.pred_clean[i]),
                "pred_adv": int(self.pred_adv[i]),
                "success": bool(self.success[i]),
                "cost": float(self.cost[i]),
            }
            row.update({name: float(v[i]) for name, v in self.measures.items()})
            rows.append(row)
        return rows


class Attack:
    """Base class: subclasses set ``name`` and ``measure`` and implement :meth:`_perturb`.

    Args:
        model: Classifier taking (N, C, H, W) images in [0, 1] and returning logits.
        loss: ``"ce"`` (cross-entropy, the DRO objective) or ``"margin"`` (Carlini-Wagner
            margin ``max_{j != y} z_j - z_y``, capped at ``kappa``).
        kappa: Cap of the margin loss (confidence), ignored for ``"ce"``.

    Attributes:
        on_step: Optional ``(step, total)`` callback after each ascent step (progress bars);
            a bisection's passes report one after another.
    """

    name: ClassVar[str] = ""
    measure: str = ""
    # What a person's interface needs to know (the explorer, the CLI, AttackOptions):
    label: ClassVar[str] = ""  # for people
    minimal: ClassVar[bool] = False  # no budget: the smallest change that fools (an optional cap, max_cost)
    takes_loss: ClassVar[bool] = False  # a choice of loss ("ce" or "margin")
    takes_steps: ClassVar[bool] = True
    takes_step_size: ClassVar[bool] = False
    takes_measure: ClassVar[bool] = False  # its cost is a measure a person chooses (W-DRO's transport cost)

    @classmethod
    def default(cls, option: str) -> Any:
        """The default of one of the constructor's keyword options (``None`` where it has none).

        Example:
            >>> get_attack("pgd-linf").default("eps"), get_attack("wdro").default("steps")
            (0.03137254901960784, 100)
        """
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            param = inspect.signature(init).parameters.get(option) if init is not None else None
            if param is not None and param.default is not inspect.Parameter.empty:
                return param.default
        return None

    def __init__(self, model: nn.Module, *, loss: LossName = "ce", kappa: float = 0.0) -> None:
        if loss not in ("ce", "margin"):
            raise ValueError(BAD_LOSS.format(loss=loss))
        self.model = model
        self.loss = loss
        self.kappa = float(kappa)
        self.on_step: Counter | None = None

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, *, target: torch.Tensor | None = None, seed: int = 0
    ) -> AttackResult:
        """Attack a batch.

        Args:
            x: Clean images, (N, C, H, W), float in [0, 1].
            y: True labels, (N,), int64.
            target: Optional target labels, (N,), int64, for a targeted attack.
            seed: Seed of the attack's own random generator (random starts): the same seed
                gives the same result.

        Returns:
            An :class:`AttackResult`.
        """
        check_images(x)
        check_labels(y, x.shape[0])
        if target is not None:
            check_labels(target, x.shape[0], name="target")
        self._check(x)
        generator = torch.Generator(device=x.device).manual_seed(int(seed))
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                logits_clean = self.model(x)
            out = self._perturb(x.detach(), y, target, generator)
            x_adv = out.x_adv.detach().clamp(0.0, 1.0)
            with torch.no_grad():
                logits_adv = self.model(x_adv)
        finally:
            self.model.train(was_training)
        pred_clean, pred_adv = logits_clean.argmax(1), logits_adv.argmax(1)
        success = pred_adv == target if target is not None else pred_adv != y
        n = x.shape[0]
        return AttackResult(
            attack=self.name,
            measure=self.measure,
            x_adv=x_adv,
            y=y,
            success=success,
            pred_clean=pred_clean,
            pred_adv=pred_adv,
            prob_clean=logits_clean.softmax(1),
            prob_adv=logits_adv.softmax(1),
            cost=self._cost(x, x_adv).detach(),
            x=x.detach(),
            gamma=out.gamma if out.gamma is not None else torch.zeros(0, n, device=x.device),
            steps=out.steps,
            nonfinite_steps=out.nonfinite_steps if out.nonfinite_steps is not None
            else torch.zeros(n, dtype=torch.int64, device=x.device),
        )

    # -- for subclasses --------------------------------------------------------------------

    def _check(self, x: torch.Tensor) -> None:
        """Attack-specific input checks, run before the model sees ``x`` (default: none)."""

    def _perturb(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, generator: torch.Generator
    ) -> Perturbation:
        raise NotImplementedError

    def _cost(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """(N,) what the attack spent, in its own measure."""
        raise NotImplementedError

    def _step_done(self, step: int, total: int) -> None:
        """Tell ``on_step`` (if set, e.g. by a progress bar) that ascent step ``step`` of ``total`` is done."""
        if self.on_step is not None:
            self.on_step(step, total)

    def per_sample_loss(self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """(N,) the loss the attack ascends: untargeted pushes away from ``y``, targeted towards ``target``."""
        if self.loss == "ce":
            if target is None:
                return F.cross_entropy(logits, y, reduction="none")
            return -F.cross_entropy(logits, target, reduction="none")
        label = y if target is None else target
        true = logits.gather(1, label[:, None]).squeeze(1)
        other = logits.masked_fill(F.one_hot(label, logits.shape[1]).bool(), float("-inf")).amax(1)
        margin = other - true if target is None else true - other
        return margin.clamp(max=self.kappa)

    def loss_and_grad(
        self, x_adv: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward and backward pass: per-sample loss (N,) and its gradient in ``x_adv``."""
        x_adv = x_adv.detach().requires_grad_(True)
        loss = self.per_sample_loss(self.model(x_adv), y, target)
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
        return loss.detach(), grad


class MeasuredAttack(Attack):
    """An attack whose cost is a perceptual measure: it checks the image size against the measure and
    reports the measure's cost (W-DRO, its cheapest flips, ALMA). Subclasses call :meth:`_use_measure`."""

    _measure: Measure

    def _use_measure(self, measure: str | Measure) -> None:
        self._measure = get_measure(measure) if isinstance(measure, str) else measure
        self.measure = self._measure.name

    def _check(self, x: torch.Tensor) -> None:
        self._measure.check(x.shape)

    def _cost(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._measure.cost(x, x_adv)


@dataclass(frozen=True)
class Perturbation:
    """What :meth:`Attack._perturb` hands back to the base class."""

    x_adv: torch.Tensor
    steps: int
    gamma: torch.Tensor | None = None  # (T, N)
    nonfinite_steps: torch.Tensor | None = None  # (N,)


ATTACKS: Registry[type[Attack]] = Registry("attack")


def register_attack(name: str):
    """Class decorator adding an attack to :data:`ATTACKS` under ``name``."""

    def decorator(cls: type[Attack]) -> type[Attack]:
        cls.name = name
        return ATTACKS.add(name, cls)

    return decorator


def get_attack(name: str) -> type[Attack]:
    """Look an attack class up by name, with a clear error listing the known names."""
    return ATTACKS.lookup(name)
