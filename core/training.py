"""DRO training: ERM, W-DRO with a perceptual transport cost (fast and naive), PGD-AT, Group DRO.

One loop, :func:`train_model`, trains a classifier on a :class:`~core.data.GroupDataset`
with one of five methods (:data:`METHODS`):

* ``"erm"``: plain cross-entropy.
* ``"wdro"``: **fast** W-DRO training. Minimises the worst-case risk in a Wasserstein
  ball whose transport cost is a registered perceptual measure (``cfg.metric``, SSIM by
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
   (:mod:`core.attacks.dro_budget`), with training's parameters.
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
    result.model, result.history[-1]["val"]["worst_group_accuracy"]
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from core.attacks import WDRO, PGDLinf
from core.attacks.dro_budget import BUDGET_MODES, dual_step, fit_budget
from core.data import GroupDataset
from core.evaluation import predict
from core.fairness import group_accuracy
from core.fileio import atomic_save, atomic_write, check_writable
from core.measures import DEFAULT_COST, get_measure
from core.models import Normalized, SmallCNN, SmallResNet, init_parameters, load_state_dict, use_generator
from core.validation import check_positive_int

Method = Literal["erm", "wdro", "wdro-naive", "pgd-at", "group-dro"]
METHODS: tuple[str, ...] = ("erm", "wdro", "wdro-naive", "pgd-at", "group-dro")

CHECKPOINT = "checkpoint.pt"
MODEL_FILE = "model.pt"
INFO_FILE = "train.json"
FORMAT = 1  # version of the checkpoint and train.json layout

BAD_METHOD = "method: expected one of {known}, got {method!r}"
BAD_FORM = "W-DRO needs exactly one of budget (budget form) or gamma (penalty form), got budget={budget!r}, gamma={gamma!r}"
NO_GROUPS = "group-dro needs group labels, but the training set has {n} group(s)"
MISMATCH = "checkpoint {path} was written by another run: its {key} is {theirs!r}, this run's is {ours!r}"
NOT_TRAINED = "{path}: expected a training output folder (with {model} and {info}) or a checkpoint file"
BAD_VALUE = "{name}: expected {expected}, got {value!r}"
FIT_ROUNDS = 12  # bisection rounds of the line search onto the budget, per batch (the attack uses 30)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (stored in every checkpoint and in ``train.json``).

    Defaults are for ``fmnist-groups`` on a CPU: the bundled architecture at half width
    (16 filters: four times cheaper, ~218k parameters, ~430 KB in float16) and the
    optimiser of :mod:`core.zoo` (AdamW, warm-up then cosine decay).
    """

    method: str = "erm"  # one of METHODS
    dataset: str = "fmnist-groups"  # registry name, recorded for loading and evaluation
    epochs: int = 6
    batch_size: int = 128
    lr: float = 2e-3  # AdamW peak learning rate: linear warm-up over 15% of the steps, cosine to 0
    weight_decay: float = 5e-4
    flip: bool = True  # random horizontal flips
    seed: int = 0
    width: int = 16  # filters of the first convolution (SmallCNN for 28 px, SmallResNet otherwise)
    # --- W-DRO (both "wdro" and "wdro-naive")
    metric: str = DEFAULT_COST  # transport cost: any registered measure (default: SSIM of padded images)
    budget: float | None = 0.03  # budget form: the DRO budget delta (set gamma=None); see budget_mode
    gamma: float | None = None  # penalty form: fixed multiplier (set budget=None)
    # --- fast W-DRO
    inner_steps: int = 1  # ascent steps per visit before the training step (one more comes free)
    step_size: float = 0.02  # ascent step, in pixels (RMS over the batch)
    init_noise: float = 0.01  # half-width of the uniform start of a never-visited example
    gamma_init: float | None = 1.0  # starting multiplier of the budget form (None: 1 / budget); also the
    # centre of the naive method's bisection bracket [gamma_init / 1000, gamma_init * 1000]
    dual_lr: float = 0.2  # step of the online update of log gamma per batch (0.05 was too slow to reach the
    # budget within a few hundred batches: measured, see README)
    fit_budget: bool = True  # budget form: pull each batch back onto the budget (cost-only line search)
    budget_mode: str = "distributional"  # fast W-DRO, budget form: "distributional" (the batch's mean cost <= budget,
    # online gamma) or "pointwise" (every example's cost <= budget: ascent on the loss alone, then each example
    # shrunk onto its own budget; no gamma)
    clean_weight: float = 0.0  # fast W-DRO: train on (1 - w) * worst-case loss + w * clean loss (one more pass)
    # --- naive W-DRO (the reference: core.attacks.WDRO with dual="bisection")
    naive_steps: int = 25  # ascent steps per bisection round
    naive_rounds: int = 8  # bisection rounds on log gamma per batch (budget form)
    # --- PGD-AT
    eps: float = 0.1  # L-inf radius (Fashion-MNIST's usual 0.1)
    pgd_steps: int = 5  # step 2.5 * eps / steps
    # --- Group DRO
    group_step: float = 0.01  # exponentiated-gradient step size eta of q (Sagawa et al.'s default)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(BAD_METHOD.format(known=", ".join(METHODS), method=self.method))
        for name in ("epochs", "batch_size", "width", "inner_steps", "naive_steps", "naive_rounds", "pgd_steps"):
            check_positive_int(getattr(self, name), name=name)
        for name in ("lr", "step_size", "init_noise", "dual_lr", "eps", "group_step"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
                raise ValueError(BAD_VALUE.format(name=name, expected="a positive number", value=value))
        if self.method in ("wdro", "wdro-naive"):
            if (self.budget is None) == (self.gamma is None):
                raise ValueError(BAD_FORM.format(budget=self.budget, gamma=self.gamma))
            for name in ("budget", "gamma", "gamma_init"):
                value = getattr(self, name)
                if value is not None and not (isinstance(value, (int, float)) and value > 0):
                    raise ValueError(BAD_VALUE.format(name=name, expected="a positive number or None", value=value))
            get_measure(self.metric)  # unknown names raise with the list of known ones
        if self.budget_mode == "mean":  # the name before 2026-12: the same budget as the attack's "distributional"
            object.__setattr__(self, "budget_mode", "distributional")
        if self.budget_mode not in BUDGET_MODES:
            raise ValueError(BAD_VALUE.format(name="budget_mode", expected="'distributional' or 'pointwise'",
                                              value=self.budget_mode))
        if self.budget_mode == "pointwise" and (self.method != "wdro" or self.budget is None):
            raise ValueError(BAD_VALUE.format(name="budget_mode", expected="'distributional' unless method='wdro' with a budget",
                                              value=self.budget_mode))
        if not (isinstance(self.clean_weight, (int, float)) and 0 <= self.clean_weight < 1):
            raise ValueError(BAD_VALUE.format(name="clean_weight", expected="a number in [0, 1)", value=self.clean_weight))
        if self.clean_weight and self.method != "wdro":
            raise ValueError(BAD_VALUE.format(name="clean_weight", expected="0 unless method='wdro'", value=self.clean_weight))

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Rebuild a config from :func:`dataclasses.asdict` output (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class TrainProgress:
    """What a progress callback receives, after every step and at the end of every epoch.

    Attributes:
        kind: ``"step"`` or ``"epoch"``.
        epoch: 1-based epoch.
        epochs: Epochs of the run.
        step: 1-based step within the epoch (``steps`` at the end of an epoch).
        steps: Steps per epoch (on this rank).
        global_step: Steps done since the start of the run, 1-based.
        total_steps: ``epochs * steps``.
        loss: Loss of the step (``"step"``) or mean loss of the epoch (``"epoch"``).
        metrics: ``"step"``: ``{"gamma", "cost"}`` for W-DRO, ``q_<group>`` for Group DRO;
            ``"epoch"``: the epoch's row of the history (see :class:`TrainResult`).
    """

    kind: str
    epoch: int
    epochs: int
    step: int
    steps: int
    global_step: int
    total_steps: int
    loss: float
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Share of the run done, in [0, 1] (for a progress bar)."""
        return self.global_step / max(self.total_steps, 1)


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`train_model`.

    Attributes:
        model: The trained classifier (a copy when ``copy=True``), in eval mode.
        config: The run's configuration.
        history: One dict per finished epoch: ``epoch``, ``loss``, ``train_acc`` (accuracy on
            the points trained on: adversarial for W-DRO and PGD-AT), ``seconds``, ``lr``, and
            when a validation set was given ``val`` (``mean_accuracy``, ``worst_group_accuracy``,
            ``gap``, ``by_group`` {name: accuracy}); W-DRO adds ``gamma`` (at the end of the
            epoch), ``cost_mean`` and ``cost_by_group`` {name: mean transport cost spent per
            example}; Group DRO adds ``q`` {name: weight}.
        epochs_done: Epochs finished (including those of a resumed checkpoint).
        cancelled: ``should_stop`` returned True before the last epoch ended; the model is then
            the partial one, and the last checkpoint holds the last finished epoch.
        seconds: Wall time of this call.
        groups: Group names of the training set.
    """

    model: nn.Module
    config: TrainConfig
    history: list[dict[str, Any]]
    epochs_done: int
    cancelled: bool
    seconds: float
    groups: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the model)."""
        return {
            "format": FORMAT,
            "config": asdict(self.config),
            "history": self.history,
            "epochs_done": self.epochs_done,
            "cancelled": self.cancelled,
            "seconds": round(self.seconds, 2),
            "groups": list(self.groups),
        }


# --------------------------------------------------------------------------- building blocks (pure)


def group_mean(losses: torch.Tensor, g: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``losses`` within each group.

    Args:
        losses: (N,) per-example losses.
        g: (N,) int64 group labels in [0, n_groups).
        n_groups: Number of groups.

    Returns:
        ``(means, counts)``, both (n_groups,); the mean of an empty group is 0.
    """
    sums = torch.zeros(n_groups, dtype=losses.dtype, device=losses.device).index_add(0, g, losses)
    counts = torch.bincount(g, minlength=n_groups).to(losses.dtype)
    return sums / counts.clamp_min(1), counts


def update_group_weights(q: torch.Tensor, group_loss: torch.Tensor, step: float) -> torch.Tensor:
    """One exponentiated-gradient step of Group DRO: ``q_g <- q_g exp(step * L_g)``, renormalised.

    Equal losses keep ``q``; the weight moves towards the group with the larger loss.
    Returns a new tensor (``q`` is not modified).
    """
    logits = torch.log(q.clamp_min(1e-30)) + step * group_loss.detach()
    return torch.softmax(logits, dim=0)


def dual_update(log_gamma: float, mean_cost: float, budget: float, lr: float) -> float:
    """Training's online dual step, once per batch: the shared rule aimed at the budget, clipped to [-1, 1].

    ``log gamma += lr * clip(log(mean_cost / budget), -1, 1)``: see
    :func:`core.attacks.dro_budget.dual_step` (the attack uses the same rule with its own
    aim and clip). When the perturbations cost more than the budget, ``gamma`` (the price
    of cost) goes up, and down when they cost less.
    """
    step = dual_step(torch.tensor(log_gamma, dtype=torch.float64), torch.tensor(mean_cost, dtype=torch.float64),
                     budget, lr=lr, aim=1.0, clip=(-1.0, 1.0))
    return float(step)


def lr_at(step: int, total: int, peak: float, warmup: float = 0.15) -> float:
    """Learning rate at 0-based ``step`` of ``total``: linear warm-up to ``peak``, cosine to 0."""
    w = max(1, int(warmup * total))
    if step < w:
        return peak * (step + 1) / w
    return peak * 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, total - w)))


def build_classifier(cfg: TrainConfig, *, channels: int, n_classes: int, size: int) -> Normalized:
    """The architecture for a data set: SmallCNN for 28x28 images, SmallResNet otherwise, behind Normalized.

    Fashion-MNIST-shaped data (1 channel, 28 px) gets the bundled models' normalisation;
    anything else gets mean 0.5, std 0.5 per channel.
    """
    if size == 28:
        net: nn.Module = SmallCNN(in_channels=channels, n_classes=n_classes, width=cfg.width)
    else:
        net = SmallResNet(in_channels=channels, n_classes=n_classes, width=cfg.width)
    if channels == 1 and size == 28:
        mean, std = (0.2860,), (0.3530,)
    else:
        mean, std = (0.5,) * channels, (0.5,) * channels
    return Normalized(net, mean, std)


# --------------------------------------------------------------------------- training


def train_model(
    model: nn.Module | None,
    train: GroupDataset,
    *,
    cfg: TrainConfig,
    val: GroupDataset | None = None,
    device: torch.device | str = "cpu",
    copy_model: bool = True,
    progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    half: bool = False,
) -> TrainResult:
    """Train a classifier with ``cfg.method`` (see the module docstring).

    Args:
        model: Classifier on [0, 1] images, or ``None`` to build one (:func:`build_classifier`).
        train: Training split; its group labels are read only by ``"group-dro"`` (and for
            the per-group transport cost reported by W-DRO).
        cfg: The run's configuration.
        val: Optional validation split: per-group accuracy after each epoch (reported only).
        device: Where to train (CPU or CUDA).
        copy_model: Train a deep copy and leave ``model`` untouched (default). ``False``
            trains ``model`` in place.
        progress: Called with a :class:`TrainProgress` after every step and every epoch.
        should_stop: Polled before every step; when it returns True the run stops cleanly
            and the result is marked ``cancelled``.
        out_dir: Folder for ``checkpoint.pt`` (after every epoch), ``model.pt`` and
            ``train.json`` (at the end, also when cancelled). ``None`` writes nothing.
        resume: Continue from ``out_dir/checkpoint.pt`` when it exists (its config must
            match ``cfg``).
        half: Store ``model.pt`` in float16 (half the size; loaded back as float32).

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: Group DRO on a single group, an unknown measure, a measure that does not
            apply to the images, or a checkpoint of another run.
    """
    start_time = time.perf_counter()
    device = torch.device(device)
    dist = _Dist.current()
    x_all, y_all, g_all = train.tensors(device)  # (N, C, H, W) float in [0, 1]; (N,); (N,)
    n, channels, size = x_all.shape[0], x_all.shape[1], x_all.shape[-1]
    n_groups = len(train.groups)
    if cfg.method == "group-dro" and n_groups < 2:
        raise ValueError(NO_GROUPS.format(n=n_groups))
    if cfg.method in ("wdro", "wdro-naive"):
        get_measure(cfg.metric).check(x_all.shape)
    if out_dir is not None and dist.rank == 0:
        check_writable(out_dir)  # a read-only or missing folder fails now, not after the first epoch
    if model is None:  # initial weights from the run's own generator (never torch's process-wide one)
        model = build_classifier(cfg, channels=channels, n_classes=len(train.classes), size=size)
        init_parameters(model, torch.Generator().manual_seed(cfg.seed))
    elif copy_model:
        model = copy.deepcopy(model)
    model = model.to(device)
    net = model  # the plain module: attacks, evaluation, saving
    train_net: nn.Module = model
    if dist.world > 1:
        train_net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=dist.world, rank=dist.rank,
                                                  shuffle=True, seed=cfg.seed, drop_last=False)
    steps = (len(sampler) + cfg.batch_size - 1) // cfg.batch_size
    total = cfg.epochs * steps
    state = _MethodState.initial(cfg, x_all, n_groups, device)
    history: list[dict[str, Any]] = []
    first_epoch = 0
    ckpt_path = Path(out_dir) / CHECKPOINT if out_dir is not None else None
    if resume and ckpt_path is not None and ckpt_path.is_file():
        first_epoch, history = _load_checkpoint(ckpt_path, cfg, net, opt, state, device)
    x_val = y_val = g_val = None
    if val is not None:
        x_val, y_val, g_val = val.tensors(device)

    cancelled = False
    for epoch in range(first_epoch, cfg.epochs):
        epoch_start = time.perf_counter()
        # The run's own generators, one stream per (seed, epoch, rank): two runs in one process never share one.
        noise_gen = torch.Generator(device).manual_seed(_seed(cfg.seed, epoch, dist.rank))  # dropout, random starts
        gen = torch.Generator().manual_seed(_seed(cfg.seed, epoch, dist.rank, 1))  # flips, attack seeds
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler), dtype=torch.int64)
        touched = torch.zeros(n, dtype=torch.bool)
        sums = {"loss": 0.0, "correct": 0.0, "n": 0.0}
        cost_sum = torch.zeros(n_groups, dtype=torch.float64)
        cost_n = torch.zeros(n_groups, dtype=torch.float64)
        for i in range(steps):
            if should_stop is not None and should_stop():
                cancelled = True
                break
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            flip = (torch.rand(len(idx), generator=gen) < 0.5) if cfg.flip else torch.zeros(len(idx), dtype=torch.bool)
            dev_idx, flip_d = idx.to(device), flip.to(device).view(-1, 1, 1, 1)
            x = torch.where(flip_d, x_all[dev_idx].flip(-1), x_all[dev_idx])
            y, g = y_all[dev_idx], g_all[dev_idx]
            for pg in opt.param_groups:
                pg["lr"] = lr_at(epoch * steps + i, total, cfg.lr)
            with use_generator(net, noise_gen):
                loss, logits, extra, cost = _step(cfg, train_net, net, opt, state, x, y, g, idx, flip, gen, noise_gen,
                                                  dist, (epoch * steps + i) / total)
            touched[idx] = True
            b = float(len(idx))
            sums["loss"] += float(loss) * b
            sums["correct"] += float((logits.argmax(1) == y).sum())
            sums["n"] += b
            if cost is not None:
                cost_sum += torch.zeros(n_groups, dtype=torch.float64).index_add(0, g.cpu(), cost.double().cpu())
                cost_n += torch.bincount(g.cpu(), minlength=n_groups).double()
            if progress is not None:
                progress(TrainProgress("step", epoch + 1, cfg.epochs, i + 1, steps, epoch * steps + i + 1, total,
                                       float(loss), extra))
        if cancelled:
            break
        state.end_epoch(touched, dist)
        totals = dist.sum(torch.tensor([sums["loss"], sums["correct"], sums["n"]], dtype=torch.float64))
        cost_sum, cost_n = dist.sum(cost_sum), dist.sum(cost_n)
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": float(totals[0] / totals[2]),
            "train_acc": float(totals[1] / totals[2]),
            "lr_end": lr_at(min((epoch + 1) * steps, total) - 1, total, cfg.lr),
        }
        if x_val is not None:
            row["val"] = _val_report(net, x_val, y_val, g_val, val.groups)  # type: ignore[union-attr]
        row.update(state.report(train.groups))
        if cfg.method in ("wdro", "wdro-naive"):
            row["cost_mean"] = float(cost_sum.sum() / cost_n.sum().clamp_min(1))
            row["cost_by_group"] = {name: float(s / max(float(c), 1.0)) for name, s, c in
                                    zip(train.groups, cost_sum.tolist(), cost_n.tolist())}
        row["seconds"] = round(time.perf_counter() - epoch_start, 3)
        history.append(row)
        if ckpt_path is not None and dist.rank == 0:
            _save_checkpoint(ckpt_path, cfg, epoch + 1, net, opt, state, history)
        if progress is not None:
            progress(TrainProgress("epoch", epoch + 1, cfg.epochs, steps, steps, (epoch + 1) * steps, total,
                                   row["loss"], row))
    net.eval()
    result = TrainResult(
        model=net, config=cfg, history=history, epochs_done=len(history), cancelled=cancelled,
        seconds=time.perf_counter() - start_time, groups=tuple(train.groups),
    )
    if out_dir is not None and dist.rank == 0:
        save_trained(result, out_dir, half=half)
    return result


def save_trained(result: TrainResult, out_dir: str | os.PathLike[str], *, half: bool = False) -> Path:
    """Write ``model.pt`` (state dict of the Normalized wrapper) and ``train.json`` atomically; return the folder."""
    out = Path(out_dir)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in result.model.state_dict().items()}
    atomic_save(state, out / MODEL_FILE)
    info = result.to_dict()
    info.update(model_file=MODEL_FILE, half=half, shape=_shape_from_state(state))
    atomic_write(out / INFO_FILE, json.dumps(info, indent=2) + "\n")
    return out


def load_trained(path: str | os.PathLike[str], *, device: torch.device | str = "cpu") -> tuple[Normalized, dict]:
    """Load a model written by :func:`train_model`: a training folder, its ``model.pt``, or a checkpoint.

    Returns:
        ``(model, info)``: the classifier in eval mode (float32) and the ``train.json``
        dict (for a checkpoint: ``{"config", "history", "epochs_done"}``).

    Raises:
        ValueError: Not a training output, or an unreadable or mismatched file.
    """
    p = Path(path)
    if p.is_dir():
        weights, info_path = p / MODEL_FILE, p / INFO_FILE
        if not weights.is_file() and (p / CHECKPOINT).is_file():
            return load_trained(p / CHECKPOINT, device=device)
    elif p.is_file() and p.name != CHECKPOINT and (p.parent / INFO_FILE).is_file():
        weights, info_path = p, p.parent / INFO_FILE
    elif p.is_file():
        ckpt = _read_checkpoint(p)
        cfg = TrainConfig.from_dict(ckpt["config"])
        model = _model_for(cfg, ckpt["shape"])
        model.load_state_dict(ckpt["model"])
        info = {"config": asdict(cfg), "history": ckpt["history"], "epochs_done": int(ckpt["epoch"])}
        return model.to(device).eval(), info
    else:
        raise ValueError(NOT_TRAINED.format(path=p, model=MODEL_FILE, info=INFO_FILE))
    if not weights.is_file() or not info_path.is_file():
        raise ValueError(NOT_TRAINED.format(path=p, model=MODEL_FILE, info=INFO_FILE))
    try:
        info = json.loads(info_path.read_text())
        cfg = TrainConfig.from_dict(info["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{info_path}: not a readable train.json ({err})") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_state_dict(weights, name=str(p)).items()}
    model = _model_for(cfg, info.get("shape") or _shape_from_state(state))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{weights}: weights do not match the configured architecture ({str(err).splitlines()[0]})") from None
    return model.to(device).eval(), info


# --------------------------------------------------------------------------- one step per method


def _step(cfg, train_net, net, opt, state, x, y, g, idx, flip, gen, noise_gen, dist, progress_fraction):
    """One training step; returns (loss, logits on the trained points, step metrics, cost or None)."""
    extra: dict[str, Any] = {}
    cost = None
    if cfg.method == "wdro":
        x_train, cost = state.fast_inner(cfg, net, x, y, idx, flip, noise_gen, dist, progress_fraction)
        extra = {"gamma": state.gamma, "cost": float(cost.mean())}
        train_net.train()
        x_train = x_train.detach().requires_grad_(True)
        logits = train_net(x_train)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        cost_fn = state.cost_fn
        # One backward pass: weight gradient of the mean loss and input gradient of the
        # penalised objective (the cost term does not depend on the weights).
        penalty = state.gamma * cost_fn(x_train).sum() / len(y) if cost_fn is not None else 0.0
        w = cfg.clean_weight
        objective = loss - penalty
        if w:  # mixed: the clean term adds nothing to the input gradient at x_train, only scales it
            objective = (1 - w) * objective + w * F.cross_entropy(train_net(x), y)
        objective.backward()
        state.store_free_step(cfg, x, x_train, x_train.grad, idx, flip)
        opt.step()
        return loss.detach(), logits.detach(), extra, cost
    if cfg.method == "wdro-naive":
        x_train, cost, gamma = _naive_inner(cfg, net, x, y, gen)
        extra = {"gamma": gamma, "cost": float(cost.mean())}
    elif cfg.method == "pgd-at":
        attack = PGDLinf(net, eps=cfg.eps, steps=cfg.pgd_steps)
        x_train = attack(x, y, seed=int(torch.randint(0, 2**31 - 1, (1,), generator=gen))).x_adv
    else:
        x_train = x
    train_net.train()
    logits = train_net(x_train)
    if cfg.method == "group-dro":
        losses = F.cross_entropy(logits, y, reduction="none")
        n_groups = state.q.shape[0]
        sums = torch.zeros(n_groups, dtype=losses.dtype, device=losses.device).index_add(0, g, losses.detach())
        counts = torch.bincount(g, minlength=n_groups).to(losses.dtype)
        stats = dist.sum(torch.cat([sums, counts]).double().cpu())
        group_loss = (stats[:n_groups] / stats[n_groups:].clamp_min(1)).float()
        state.q = update_group_weights(state.q, group_loss, cfg.group_step)  # the whole batch's (all ranks') losses
        means, _ = group_mean(losses, g, n_groups)
        loss = (state.q.to(means.device) * means).sum()
        extra = {f"q{k}": float(v) for k, v in enumerate(state.q)}
    else:
        loss = F.cross_entropy(logits, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), logits.detach(), extra, cost


def _naive_inner(cfg, net, x, y, gen):
    """The reference inner solver: WDRO with many steps, bisection on log gamma (budget form)."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    if cfg.budget is not None:
        attack = WDRO(net, metric=cfg.metric, budget=cfg.budget, dual="bisection", steps=cfg.naive_steps,
                      bisection_rounds=cfg.naive_rounds, gamma_init=cfg.gamma_init)
    else:
        attack = WDRO(net, metric=cfg.metric, gamma=cfg.gamma, steps=cfg.naive_steps)
    result = attack(x, y, seed=seed)
    return result.x_adv, result.cost.detach(), float(result.final_gamma.mean())


@dataclass
class _MethodState:
    """What a method carries across steps (all of it checkpointed)."""

    log_gamma: float = 0.0  # fast W-DRO: the multiplier, online
    delta: torch.Tensor | None = None  # fast W-DRO: (N, C, H, W) perturbation of each example at its last visit
    visited: torch.Tensor | None = None  # fast W-DRO: (N,) bool
    q: torch.Tensor | None = None  # Group DRO: (n_groups,) weights
    cost_fn: Any = None  # fast W-DRO: the prepared cost of the current batch (not checkpointed)
    step: float = 0.0  # fast W-DRO: the ascent step of the current batch
    measure: Any = None
    pointwise: bool = False  # fast W-DRO: per-example budget (no gamma)

    @property
    def gamma(self) -> float:
        """The multiplier of the cost in the ascent (0 for the pointwise budget: the projection keeps it)."""
        return 0.0 if self.pointwise else math.exp(self.log_gamma)

    @classmethod
    def initial(cls, cfg: TrainConfig, x_all: torch.Tensor, n_groups: int, device: torch.device) -> _MethodState:
        s = cls()
        if cfg.method == "wdro":
            s.measure = get_measure(cfg.metric)
            s.pointwise = cfg.budget_mode == "pointwise"
            gamma0 = cfg.gamma if cfg.gamma is not None else (cfg.gamma_init or 1.0 / cfg.budget)
            s.log_gamma = math.log(gamma0)
            s.delta = torch.zeros_like(x_all, device="cpu")
            s.visited = torch.zeros(x_all.shape[0], dtype=torch.bool)
        if cfg.method == "group-dro":
            s.q = torch.full((n_groups,), 1.0 / n_groups)
        return s

    def fast_inner(self, cfg, net, x, y, idx, flip, noise_gen, dist, progress_fraction: float = 0.0):
        """Warm-started ascent: ``inner_steps`` steps on ``l - gamma d``, then the dual update."""
        self.step = _ascent_step(cfg.step_size, progress_fraction)
        flip_d = flip.to(x.device).view(-1, 1, 1, 1)
        delta = self.delta[idx].to(x.device)
        delta = torch.where(flip_d, delta.flip(-1), delta)  # stored in the un-flipped frame
        fresh = (~self.visited[idx]).to(x.device).view(-1, 1, 1, 1)
        noise = cfg.init_noise * (2 * torch.rand(x.shape, device=x.device, generator=noise_gen) - 1)
        delta = torch.where(fresh, noise, delta)
        x_adv = (x + delta).clamp(0.0, 1.0)
        self.cost_fn = self.measure.prepare(x)
        gamma = self.gamma
        was_training = net.training
        net.eval()
        for _ in range(cfg.inner_steps):
            x_adv = x_adv.detach().requires_grad_(True)
            loss = F.cross_entropy(net(x_adv), y, reduction="none")
            cost = self.cost_fn(x_adv)
            (grad,) = torch.autograd.grad((loss - gamma * cost).sum(), x_adv)
            x_adv = _ascent(x, x_adv.detach(), grad, self.step)
        net.train(was_training)
        with torch.no_grad():
            cost = self.cost_fn(x_adv).nan_to_num(0.0)  # (N,) the cost of the ascent's points
        if self.pointwise:
            x_adv = fit_budget(x, x_adv.detach(), self.cost_fn, cfg.budget, mode="pointwise", rounds=FIT_ROUNDS)
            with torch.no_grad():
                cost = self.cost_fn(x_adv).nan_to_num(0.0)
        elif cfg.budget is not None:
            stats = dist.sum(torch.tensor([float(cost.sum()), float(len(cost))], dtype=torch.float64))
            mean_cost = float(stats[0] / stats[1])
            self.log_gamma = dual_update(self.log_gamma, mean_cost, cfg.budget, cfg.dual_lr)
            if cfg.fit_budget and mean_cost > cfg.budget:
                x_adv = fit_budget(x, x_adv.detach(), self.cost_fn, cfg.budget, rounds=FIT_ROUNDS)
                with torch.no_grad():
                    cost = self.cost_fn(x_adv).nan_to_num(0.0)
        return x_adv.detach(), cost

    def store_free_step(self, cfg, x, x_train, grad, idx, flip):
        """The training step's input gradient is one more ascent step: keep its result for the next visit."""
        with torch.no_grad():
            if grad is None or not bool(torch.isfinite(grad).all()):
                x_next = x_train.detach()
            else:
                x_next = _ascent(x, x_train.detach(), grad, self.step)
            delta = x_next - x
            delta = torch.where(flip.to(x.device).view(-1, 1, 1, 1), delta.flip(-1), delta)
            self.delta[idx] = delta.cpu()
            self.visited[idx] = True

    def end_epoch(self, touched: torch.Tensor, dist: _Dist) -> None:
        """Distributed: every rank gets the perturbations the other ranks stored this epoch."""
        if self.delta is None or dist.world == 1:
            return
        mask = touched.to(self.delta.dtype).view(-1, 1, 1, 1)
        total = dist.sum(self.delta * mask)
        count = dist.sum(mask.clone())
        merged = total / count.clamp_min(1)
        self.delta = torch.where(count > 0, merged, self.delta)
        self.visited = self.visited | (dist.sum(touched.to(torch.float64)) > 0)

    def report(self, groups) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.delta is not None and not self.pointwise:
            out["gamma"] = math.exp(self.log_gamma)
        if self.q is not None:
            out["q"] = {name: float(v) for name, v in zip(groups, self.q)}
        return out

    def to_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"log_gamma": self.log_gamma}
        if self.delta is not None:
            out["delta"] = self.delta
            out["visited"] = self.visited
        if self.q is not None:
            out["q"] = self.q
        return out

    def load_state(self, data: dict[str, Any]) -> None:
        self.log_gamma = float(data["log_gamma"])
        if self.delta is not None:
            self.delta = data["delta"].clone()
            self.visited = data["visited"].clone()
        if self.q is not None:
            self.q = data["q"].clone()


def _ascent(x: torch.Tensor, x_adv: torch.Tensor, grad: torch.Tensor, step: float) -> torch.Tensor:
    """``x_adv + step * grad / rms(grad)`` (RMS over the whole batch), clamped to [0, 1]; non-finite rows stay."""
    finite = torch.isfinite(grad).flatten(1).all(1).view(-1, 1, 1, 1)
    grad = torch.where(finite, grad, 0.0)
    rms = grad.pow(2).mean().sqrt().clamp_min(1e-12)
    return (x_adv + step * grad / rms).clamp(0.0, 1.0)


def _ascent_step(step_size: float, fraction: float) -> float:
    """The fast ascent's step at ``fraction`` of the run: cosine from ``step_size`` to a tenth of it.

    A batch-normalised step keeps moving by ``step`` even at the inner optimum, so the
    perturbations jitter by about ``step``; shrinking it as the weights settle lets the
    warm-started ascent settle too.
    """
    return step_size * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(max(fraction, 0.0), 1.0))))


# --------------------------------------------------------------------------- evaluation during training


def _val_report(net: nn.Module, x, y, g, groups) -> dict[str, Any]:
    pred = predict(net, x)
    acc = group_accuracy(pred.cpu(), y.cpu(), g.cpu(), len(groups))
    return {
        "mean_accuracy": acc.mean_accuracy,
        "worst_group_accuracy": acc.worst_group_accuracy,
        "gap": acc.gap,
        "by_group": {name: a for name, a in zip(groups, acc.accuracy)},
    }


# --------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> _Dist:
        import torch.distributed as td

        if td.is_available() and td.is_initialized():
            return cls(td.get_rank(), td.get_world_size())
        return cls()

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """All-reduce sum (a new tensor; identity on one process). CPU tensors go through the backend's device."""
        if self.world == 1:
            return t
        import torch.distributed as td

        backend = td.get_backend()
        work = t.clone()
        if backend == "nccl":
            work = work.cuda()
        td.all_reduce(work)
        return work.to(t.device)


# --------------------------------------------------------------------------- checkpoints


def _seed(*parts: int) -> int:
    h = 0
    for p in parts:
        h = (h * 1_000_003 + int(p) + 1) % (2**62)
    return h


def _save_checkpoint(path: Path, cfg: TrainConfig, epoch: int, net, opt, state: _MethodState, history) -> None:
    shape = _shape_from_state(net.state_dict())
    data = {
        "format": FORMAT,
        "config": asdict(cfg),
        "epoch": epoch,
        "shape": shape,
        "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "optimizer": opt.state_dict(),
        "method_state": state.to_state(),
        "history": history,
    }
    atomic_save(data, path)


def _read_checkpoint(path: Path) -> dict:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, foreign or pickled objects
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "config" not in data:
        raise ValueError(f"{path}: not a checkpoint of core.training (format {FORMAT})")
    return data


def _load_checkpoint(path: Path, cfg: TrainConfig, net, opt, state: _MethodState, device) -> tuple[int, list]:
    data = _read_checkpoint(path)
    theirs = TrainConfig.from_dict(data["config"])
    for key in ("method", "dataset", "seed", "batch_size", "lr", "metric", "budget", "gamma", "width", "budget_mode",
                "clean_weight"):
        if getattr(theirs, key) != getattr(cfg, key):
            raise ValueError(MISMATCH.format(path=path, key=key, theirs=getattr(theirs, key), ours=getattr(cfg, key)))
    net.load_state_dict(data["model"])
    opt.load_state_dict(data["optimizer"])
    state.load_state(data["method_state"])
    return int(data["epoch"]), list(data["history"])


def _shape_from_state(state: dict) -> dict[str, int]:
    """Architecture facts recoverable from a state dict of a Normalized(SmallCNN | SmallResNet)."""
    if "model.features.0.weight" in state:
        w = state["model.features.0.weight"]
        return {"arch": "SmallCNN", "channels": int(w.shape[1]), "width": int(w.shape[0]),
                "n_classes": int(state["model.classifier.4.weight"].shape[0]), "size": 28}
    w = state["model.stem.0.weight"]
    return {"arch": "SmallResNet", "channels": int(w.shape[1]), "width": int(w.shape[0]),
            "n_classes": int(state["model.head.2.weight"].shape[0]), "size": 0}


def _model_for(cfg: TrainConfig, shape: dict) -> Normalized:
    cfg = replace(cfg, width=int(shape["width"]))
    size = 28 if shape["arch"] == "SmallCNN" else 64
    return build_classifier(cfg, channels=int(shape["channels"]), n_classes=int(shape["n_classes"]), size=size)


__all__ = [
    "METHODS",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "build_classifier",
    "dual_update",
    "group_mean",
    "load_trained",
    "lr_at",
    "save_trained",
    "train_model",
    "update_group_weights",
]
