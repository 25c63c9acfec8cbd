"""W-DRO's cheapest flips: the ascent of the W-DRO attack with one multiplier per image, as a minimal attack.

At matched damage every fooled image counts the same, so the distributional worst case at
budget ``delta`` spends the mean cost on the images cheapest to flip, cheapest first (a
knapsack whose items all have the same value). One pass that finds each image's cheapest
flip under the cost therefore gives the worst case at every budget at once: keep the ``k``
cheapest flips and leave the others clean, at budget (sum of those ``k`` costs) / N
(:func:`core.services.compare.keep_cheapest`).

The pass is W-DRO's ascent (:func:`core.dro.penalised_ascent`: Adam-normalised steps on
``l - gamma * d`` with the margin loss, which stops paying once an image is fooled) with a
per-image rule for ``gamma``: after every step each image's ``log gamma`` rises by ``dual_lr``
if the image is fooled (a flip is priced higher, so the iterate moves back towards the
boundary) and falls by ``dual_lr`` if not. The fooled iterate of lowest cost seen is kept, as
minimal attacks keep theirs (:class:`~core.attacks.minimal.BestAdversarial`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from core.attacks.base import MeasuredAttack, Perturbation, register_attack
from core.attacks.minimal import BestAdversarial, is_adversarial
from core.attacks.wdro import clip_to
from core.dro import AscentStep, penalised_ascent
from core.measures import DEFAULT_COST, Measure
from core.validation import check_positive, check_positive_int


# For matched damage at high success rates (90 % and 99 % of the images fooled, the benchmark's
# targets) at 100 steps: a longer first step and a slower multiplier (bench.flips_solver).
HIGH_SUCCESS = {"step_size": 0.1, "dual_lr": 0.1}


@register_attack("wdro-flips")
class CheapestFlips(MeasuredAttack):
    """W-DRO's ascent with one multiplier per image, keeping each image's cheapest flip.

    A minimal attack under W-DRO's transport cost: per image the fooled iterate of lowest
    cost; images never fooled come back clean (``success`` False). The matched-damage
    benchmark and the compare page solve W-DRO at every budget from one such pass.

    Settings were chosen on validation images (bundled test images 1500-1999, never the
    benchmark's), and the best ones depend on how many images the worst case must fool:

    * the defaults (start ``gamma`` 1000, ``dual_lr`` 0.2, step 0.01, 50 steps) for the compare
      page, which matches PGD's damage at 1-8/255 (10-65 % of the images): there they need 0.72-0.89x
      the budget of the budget search (``bench.matched_mode``), and a step of 0.05 needed 0.90-0.96x;
    * :data:`HIGH_SUCCESS` (step 0.1, ``dual_lr`` 0.1, at 100 steps) for the matched-damage
      benchmark's 90 % and 99 %: there they beat the defaults and ALMA with the same cost on every
      structural judge, on both bundled models (``bench.flips_solver``).

    Args:
        model: Classifier on [0, 1] images.
        measure: Transport cost (a registered name or a :class:`~core.measures.Measure`).
        steps: Ascent steps.
        gamma: Starting multiplier of every image.
        dual_lr: Per-step move of each image's ``log gamma``.
        step_size: Initial ascent step (Adam-normalised), decaying with a cosine to 0.
        init_noise: Half-width of the uniform random start.
        kappa: Cap of the margin loss (0: fooled exactly when the loss reaches it).
        max_cost: Optional budget: only fooled iterates within it count.

    Shape:
        x: (N, C, H, W) in [0, 1]; y: (N,) int64. ``cost`` is the transport cost.

    Example:
        >>> flips = CheapestFlips(model)(x, y)
        >>> flips.cost[flips.success].sort().values   # each image's cheapest flip, cheapest first
    """

    label = "W-DRO cheapest flips (minimal, perceptual)"
    minimal = takes_step_size = takes_measure = True

    def __init__(self, model: nn.Module, *, measure: str | Measure = DEFAULT_COST, steps: int = 50,
                 gamma: float = 1000.0, dual_lr: float = 0.2, step_size: float = 0.01, init_noise: float = 1e-3,
                 kappa: float = 0.0, max_cost: float | None = None) -> None:
        super().__init__(model, loss="margin", kappa=kappa)
        self._use_measure(measure)
        self.steps = check_positive_int(steps, name="steps")
        self.gamma = check_positive(gamma, name="gamma")
        self.dual_lr = check_positive(dual_lr, name="dual_lr")
        self.step_size = check_positive(step_size, name="step_size")
        self.init_noise = check_positive(init_noise, name="init_noise")
        self.max_cost = None if max_cost is None else check_positive(max_cost, name="max_cost")

    def _perturb(self, x, y, target, generator) -> Perturbation:
        cost_of = self._measure.prepare(x)
        best = BestAdversarial(x, max_cost=self.max_cost)
        with torch.no_grad():  # an image the model already gets wrong needs no change at all
            best.update(x, torch.zeros(x.shape[0], device=x.device, dtype=x.dtype),
                        is_adversarial(self.model(x), y, target))

        def keep_cheapest(log_gamma: torch.Tensor, s: AscentStep) -> torch.Tensor:
            fooled = (s.loss >= self.kappa) & s.finite  # the margin loss reaches its cap exactly when fooled
            best.update(s.x_adv, s.cost, fooled)
            return log_gamma + self.dual_lr * torch.where(fooled, 1.0, -1.0)

        log_gamma = torch.full((x.shape[0],), math.log(self.gamma), device=x.device, dtype=x.dtype)
        out = penalised_ascent(
            lambda x_adv: self.per_sample_loss(self.model(x_adv), y, target), cost_of, x, log_gamma,
            steps=self.steps, step_size=self.step_size, init_noise=self.init_noise, generator=generator,
            project=lambda x_adv: clip_to(x, x_adv, None), dual=keep_cheapest, on_step=self._step_done,
        )
        with torch.no_grad():  # the last update was never scored
            best.update(out.x_adv, cost_of(out.x_adv), is_adversarial(self.model(out.x_adv), y, target))
        return Perturbation(x_adv=best.x_adv, steps=self.steps, gamma=out.gamma, nonfinite_steps=out.nonfinite_steps)
