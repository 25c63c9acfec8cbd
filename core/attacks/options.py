"""A person's attack options -> an attack: the one builder of the command line and the app.

:class:`AttackOptions` holds what a person chooses (the attack's name and its options, each
``None`` for "the default") and :meth:`AttackOptions.build` turns it into an attack,
refusing, with one line, an option that the attack does not take. The defaults are stated
here or on the attack classes (their constructor's defaults and what each declares it takes:
:attr:`~core.attacks.base.Attack.minimal`, ``takes_loss``, ...), and the CLI's help, the app's
widgets and the README read them from here:

* W-DRO: cost :data:`~core.measures.DEFAULT_COST`, budget form with
  :data:`DEFAULT_BUDGET` = 0.02 unless a budget or ``gamma`` is given.
* PGD-L-inf and FGSM: ``eps`` 8/255; PGD-L2: ``eps`` 1.0 (:data:`DEFAULT_EPS`).
* DDN, ALMA-SSIM, PerC-AL, W-DRO's cheapest flips: no budget; ``eps`` is an optional cap on
  their own distance.
* Loss :data:`DEFAULT_LOSS` = ``"margin"`` (Carlini-Wagner margin capped at ``kappa``) for
  the attacks that take one: it spends budget only until the image is fooled, and on one
  confident image the cross-entropy saturates (its gradient underflows in float32).
  ``"ce"`` is the DRO objective of the paper.

Example:
    >>> attack = AttackOptions("wdro", budget=0.01).build(model)
    >>> attack = AttackOptions("pgd-linf").build(model)        # eps 8/255
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

import core.attacks  # noqa: F401  (registers every attack before the tuples below read the registry)
from core.attacks.base import ATTACKS, Attack, get_attack
from core.measures import DEFAULT_COST

DEFAULT_BUDGET = 0.02  # W-DRO's DRO budget delta when neither a budget nor gamma is given
DEFAULT_LOSS = "margin"
# Read from the attack classes (their constructors' defaults and what each declares):
DEFAULT_EPS = {n: c.default("eps") for n, c in ATTACKS.items() if not c.minimal and c.default("eps") is not None}
MINIMAL = tuple(n for n, c in ATTACKS.items() if c.minimal)  # the smallest change that fools; eps -> their max_cost
TAKES_LOSS = tuple(n for n, c in ATTACKS.items() if c.takes_loss)
TAKES_STEP_SIZE = tuple(n for n, c in ATTACKS.items() if c.takes_step_size)


@dataclass(frozen=True)
class AttackOptions:
    """What a person chose for one attack; ``None`` means the attack's default.

    Attributes:
        attack: A registered attack name (:data:`~core.attacks.ATTACKS`).
        measure: W-DRO's transport cost (a registered measure name), also of its cheapest flips.
        budget: W-DRO's DRO budget delta (budget form), in the cost's units.
        gamma: W-DRO's fixed multiplier (penalty form); not together with ``budget``.
        eps: Radius of the PGD / FGSM ball, or the optional cap of a minimal attack.
        linf_cap: W-DRO: optional cap on ``||x' - x||_inf``.
        steps: Steps (FGSM takes one).
        step_size: Ascent step of W-DRO and PGD.
        loss: ``"margin"`` or ``"ce"``, for W-DRO, PGD and FGSM (the minimal attacks have their own).
        kappa: Cap of the margin loss, in logits (W-DRO).
    """

    attack: str = "wdro"
    measure: str = DEFAULT_COST
    budget: float | None = None
    gamma: float | None = None
    eps: float | None = None
    linf_cap: float | None = None
    steps: int | None = None
    step_size: float | None = None
    loss: str = DEFAULT_LOSS
    kappa: float = 0.0

    @property
    def wdro(self) -> bool:
        return self.attack == "wdro"

    @property
    def effective_budget(self) -> float | None:
        """W-DRO's budget: the one given, else :data:`DEFAULT_BUDGET` unless ``gamma`` is given."""
        if not self.wdro or self.gamma is not None:
            return None
        return self.budget if self.budget is not None else DEFAULT_BUDGET

    @property
    def effective_eps(self) -> float | None:
        """The ball's radius (the default one where none is given) or a minimal attack's cap."""
        return self.eps if self.eps is not None else DEFAULT_EPS.get(self.attack)

    def build(self, model: nn.Module) -> Attack:
        """The attack these options describe, on ``model``; ValueError for an option it does not take."""
        if self.attack not in ATTACKS:
            raise ValueError(f"attack: expected one of {', '.join(sorted(ATTACKS))}, got {self.attack!r}")
        cls = get_attack(self.attack)
        if self.wdro:
            if self.eps is not None:
                raise ValueError("eps is for pgd-linf, pgd-l2, fgsm and the minimal attacks; wdro takes a budget "
                                 "or gamma (and linf_cap)")
            if self.budget is not None and self.gamma is not None:
                raise ValueError("wdro takes a budget or gamma, not both")
            form = dict(gamma=self.gamma) if self.gamma is not None else dict(budget=self.effective_budget)
            kwargs: dict = dict(measure=self.measure, linf_cap=self.linf_cap, kappa=self.kappa, **form)
        else:
            if self.budget is not None or self.gamma is not None or self.linf_cap is not None:
                raise ValueError(f"{self.attack} takes eps, not a budget, gamma or linf_cap")
            if self.attack in MINIMAL:
                kwargs = dict(max_cost=self.eps)
            else:
                kwargs = dict(eps=self.effective_eps)
        if cls.takes_measure and not self.wdro:
            kwargs["measure"] = self.measure
        if cls.takes_loss:
            kwargs["loss"] = self.loss
        if self.steps is not None and cls.takes_steps:
            kwargs["steps"] = self.steps
        if self.step_size is not None and cls.takes_step_size:
            kwargs["step_size"] = self.step_size
        return cls(model, **kwargs)


__all__ = ["DEFAULT_BUDGET", "DEFAULT_EPS", "DEFAULT_LOSS", "AttackOptions"]
