"""DRO training: ERM, W-DRO with a perceptual transport cost (fast and naive), PGD-AT, Group DRO.

One loop, :func:`train_model`, trains a classifier on a :class:`~core.data.GroupDataset`
with one of five methods (:data:`METHODS`):

* ``"erm"``: plain cross-entropy.
* ``"wdro"``: **fast** W-DRO training. Minimises the worst-case risk in a Wasserstein
  ball whose transport cost is a registered perceptual measure (``cfg.measure``, SSIM by
  default), budget form (``cfg.budget``, distributional: the mean cost) or penalty form (``cfg.gamma``).
  Three ideas make it cheap (see "Fast W-DRO" below).
* ``"wdro-naive"``: the reference nested loop: for **every batch** the inner problem is
  solved by :class:`~core.attacks.WDRO` with many ascent steps and, in the budget form,
  ``gamma`` is found by bisection on ``log gamma`` (``dual="bisection"``), each round a
  full ascent; the batch is then pulled back onto the budget.
* ``"pgd-at"``: PGD adversarial training in an L-inf ball (Madry et al., 2018).
* ``"group-dro"``: Group DRO (Sagawa et al., 2020): the loss of each group in the batch,
  weighted by ``q``, which follows an exponentiated-gradient ascent on the group losses.
  **The only method that reads group labels.** ERM, PGD-AT and both W-DRO methods never
  see ``g`` during training; ``g`` is used only to *report* per-group validation accuracy
  and per-group transport cost in the training curves. No model selection is done: the
  model of the last epoch is returned for every method (no early stopping on validation
  worst-group accuracy, which would leak group labels into W-DRO).

Fast W-DRO (``"wdro"``), per batch, with ``K = cfg.inner_steps`` (default 1):

1. *Warm start.* Each training example keeps its perturbation from its previous visit
   (a buffer of the size of the training images, part of the checkpoint), so a few
   ascent steps per visit continue one long ascent across epochs instead of restarting
   from scratch every batch.
2. *Online dual update.* ``log gamma`` is one number carried across batches and moved
   after each batch by ``dual_lr * log(mean cost / budget)`` (clipped to [-1, 1]): the
   dual gradient of ``gamma * delta + E[sup l - gamma d]`` is ``delta - mean cost``, and
   the multiplicative step is scale-free in the measure. No bisection. The rule and the
   final line search onto the budget are the attack's own
   (:mod:`core.dro`, the one W-DRO solver module), with training's parameters.
3. *Reused backward pass* (as in "free" adversarial training, Shafahi et al. 2019): the
   training step's backward pass gives the weight gradient *and* the input gradient at
   the training point; the latter is one more ascent step, stored for the next visit.
   So a batch costs ``K + 1`` forward/backward passes (2 by default) against ERM's 1 and
   the naive method's ``steps * bisection_rounds`` (200 by default).

Two options of the fast method (both off by default): ``budget_mode="pointwise"`` bounds
every example's cost by the budget instead of the batch's mean (the ascent then climbs the
loss alone and each example is shrunk onto its own budget by bisection; no ``gamma``), and
``clean_weight=w`` trains on ``(1 - w) * worst-case loss + w * clean loss`` (one more pass).

Ascent steps of the fast method move ``x'`` by ``step_size * grad / rms(grad)`` with the
RMS taken over the whole batch: images whose objective is steeper move further, so the
worst case spends more of the (distributional) budget on images that are cheap to flip.

Reproducibility and resuming: every random draw (initial weights, order, flips, dropout,
random starts) comes from the run's own ``torch.Generator`` objects seeded by ``(seed,
epoch)``, never from torch's process-wide generator, so two runs in one process (two app
sessions) give what each gives alone, bitwise (tested; dropout layers must be
:class:`core.models.Dropout`, as in the bundled architectures). The output folder is checked
for writing before the first step, and a checkpoint is written after each epoch atomically
(:mod:`core.fileio`): a full disk or a read-only folder ends the run with one
:class:`core.fileio.WriteError` line, the last good checkpoint intact and no temporary file
left. A run killed or cancelled in epoch ``k + 1`` resumes from the end of epoch ``k`` and
ends with the same weights as an uninterrupted run (bitwise on CPU; tested).

Distributed: when ``torch.distributed`` is initialised, the model is wrapped in
``DistributedDataParallel``, each rank reads its shard from a ``DistributedSampler``, the
batch's mean cost (W-DRO) and group losses (Group DRO) are all-reduced so ``gamma`` and
``q`` agree, the warm-start buffer is merged after each epoch, and only rank 0 writes files.

References:
    Hua, Xu, Blanchet, Nguyen, "Human Imperceptible Attacks and Applications to Improve
    Fairness", 2021. https://arxiv.org/abs/2111.15603
    Sinha, Namkoong, Duchi, "Certifying Some Distributional Robustness with Principled
    Adversarial Training", ICLR 2018. https://arxiv.org/abs/1710.10571
    Sagawa, Koh, Hashimoto, Liang, "Distributionally Robust Neural Networks for Group
    Shifts", ICLR 2020. https://arxiv.org/abs/1911.08731
    Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR
    2018. https://arxiv.org/abs/1706.06083
    Shafahi et al., "Adversarial Training for Free!", NeurIPS 2019. https://arxiv.org/abs/1904.12843

Example::

    from core.data import load_group_dataset
    from core.training import TrainConfig, train_model

    train = load_group_dataset("fmnist-groups", "train")
    val = load_group_dataset("fmnist-groups", "val")
    result = train_model(None, train, val=val, cfg=TrainConfig(method="wdro", budget=0.02),
                         progress=lambda p: print(p.epoch, p.step, p.loss))
    result.model, result.history[-1].val["worst_group_accuracy"]
"""

from __future__ import annotations

from core.training.blocks import build_classifier, lr_at
from core.training.checkpoint import load_trained, save_trained
from core.training.config import (
    CHECKPOINT,
    EpochStats,
    INFO_FILE,
    METHODS,
    MODEL_FILE,
    TrainConfig,
    TrainProgress,
    TrainResult,
    TRAIN_BUDGET,
)
from core.training.loop import train_model
from core.training.methods import METHOD_CLASSES, Batch, Method, StepContext, StepStats

__all__ = [
    "CHECKPOINT",
    "INFO_FILE",
    "METHODS",
    "TRAIN_BUDGET",
    "METHOD_CLASSES",
    "MODEL_FILE",
    "Batch",
    "EpochStats",
    "Method",
    "StepContext",
    "StepStats",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "build_classifier",
    "load_trained",
    "lr_at",
    "save_trained",
    "train_model",
]
