"""The run's configuration and typed results: :class:`TrainConfig`, :class:`TrainProgress`, :class:`TrainResult`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

from torch import nn

from core.dro import BUDGET_MODES
from core.measures import DEFAULT_COST, get_measure
from core.validation import check_positive_int

MethodName = Literal["erm", "wdro", "wdro-naive", "pgd-at", "group-dro", "jtt"]
METHODS: tuple[str, ...] = ("erm", "wdro", "wdro-naive", "pgd-at", "group-dro", "jtt")

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
TRAIN_BUDGET = 0.03  # W-DRO training's DRO budget delta (mean 1 - padded SSIM), and the fairness attack's
FIT_ROUNDS = 12  # bisection rounds of the line search onto the budget, per batch (the attack uses 30)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (stored in every checkpoint and in ``train.json``).

    Defaults are for ``fmnist-groups`` on a CPU: the bundled architecture at half width
    (16 filters: four times cheaper, ~218k parameters, ~430 KB in float16) and the
    optimiser of :mod:`core.training.zoo` (AdamW, warm-up then cosine decay).
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
    measure: str = DEFAULT_COST  # transport cost: any registered measure (default: SSIM of padded images)
    budget: float | None = TRAIN_BUDGET  # budget form: the DRO budget delta (set gamma=None); see budget_mode
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
    cvar: float = 1.0  # fast W-DRO, this project's extension (not the paper's): train on the mean of the batch's
    # highest cvar-fraction of worst-case losses (CVaR of the W-DRO worst case; label-free); 1.0: the plain mean
    # --- naive W-DRO (the reference: core.attacks.WDRO with dual="bisection")
    naive_steps: int = 25  # ascent steps per bisection round
    naive_rounds: int = 8  # bisection rounds on log gamma per batch (budget form)
    # --- PGD-AT
    eps: float = 0.1  # L-inf radius (Fashion-MNIST's usual 0.1)
    pgd_steps: int = 5  # step 2.5 * eps / steps
    # --- Group DRO
    group_step: float = 0.01  # exponentiated-gradient step size eta of q (Sagawa et al.'s default)
    # --- JTT (Liu et al. 2021): ERM for jtt_epochs, then a new run with its misclassified training images
    # weighted jtt_upweight times (the upsampling factor lambda); reads no group labels
    jtt_epochs: int = 1  # epochs of the identification run (the paper: 1 on CelebA, 60 on Waterbirds)
    jtt_upweight: float = 20.0  # lambda (the paper: 20 to 100); chosen on validation, docs/fairness-training.md

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(BAD_METHOD.format(known=", ".join(METHODS), method=self.method))
        for name in ("epochs", "batch_size", "width", "inner_steps", "naive_steps", "naive_rounds", "pgd_steps",
                     "jtt_epochs"):
            check_positive_int(getattr(self, name), name=name)
        for name in ("lr", "step_size", "init_noise", "dual_lr", "eps", "group_step", "jtt_upweight"):
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
            get_measure(self.measure)  # unknown names raise with the list of known ones
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
        if not (isinstance(self.cvar, (int, float)) and 0 < self.cvar <= 1):
            raise ValueError(BAD_VALUE.format(name="cvar", expected="a number in (0, 1]", value=self.cvar))
        if self.cvar != 1.0 and (self.method != "wdro" or self.clean_weight):
            raise ValueError(BAD_VALUE.format(name="cvar", expected="1.0 unless method='wdro' without clean_weight",
                                              value=self.cvar))
        if self.clean_weight and self.method != "wdro":
            raise ValueError(BAD_VALUE.format(name="clean_weight", expected="0 unless method='wdro'", value=self.clean_weight))

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Rebuild a config from :func:`dataclasses.asdict` output (unknown keys are ignored).

        Files written before the transport cost was called ``measure`` name it ``metric``.
        """
        if "metric" in data and "measure" not in data:
            data = {**data, "measure": data["metric"]}
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
class EpochStats:
    """One finished epoch of a run (``train.json`` and checkpoints store :meth:`to_dict`).

    Attributes:
        epoch: The epoch, from 1.
        loss: Mean training loss over the epoch.
        train_acc: Accuracy on the points trained on (adversarial for W-DRO and PGD-AT).
        lr_end: Learning rate at the epoch's last step.
        seconds: Wall time of the epoch.
        val: With a validation set: :meth:`core.fairness.GroupAccuracy.summary` (``mean_accuracy``,
            ``worst_group_accuracy``, ``worst_group``, ``gap``, ``by_group`` {name: {accuracy, n}}).
        gamma: W-DRO (budget or penalty form): the multiplier at the end of the epoch.
        q: Group DRO: {group name: weight}.
        cost_mean: W-DRO: mean transport cost spent per example.
        cost_by_group: W-DRO: {group name: mean transport cost spent per example}.
        loss_by_group: {group name: mean cross-entropy on the points trained on (adversarial for
            W-DRO and PGD-AT)}, before each step's update (as ``loss``).
    """

    epoch: int
    loss: float
    train_acc: float
    lr_end: float
    seconds: float = 0.0
    val: dict[str, Any] | None = None
    gamma: float | None = None
    q: dict[str, float] | None = None
    cost_mean: float | None = None
    cost_by_group: dict[str, float] | None = None
    loss_by_group: dict[str, float] | None = None

    _ORDER: ClassVar[tuple[str, ...]] = ("epoch", "loss", "train_acc", "lr_end", "val", "gamma", "q", "cost_mean",
                                         "cost_by_group", "loss_by_group", "seconds")  # the keys of train.json's rows, in order

    def to_dict(self) -> dict[str, Any]:
        """The JSON row: every field that is set."""
        return {key: getattr(self, key) for key in self._ORDER if getattr(self, key) is not None}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> EpochStats:
        return cls(**{key: row[key] for key in cls._ORDER if key in row})


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`train_model`.

    Attributes:
        model: The trained classifier (a copy when ``copy=True``), in eval mode.
        config: The run's configuration.
        history: One :class:`EpochStats` per finished epoch.
        epochs_done: Epochs finished (including those of a resumed checkpoint).
        cancelled: ``should_stop`` returned True before the last epoch ended; the model is then
            the partial one, and the last checkpoint holds the last finished epoch.
        seconds: Wall time of this call.
        groups: Group names of the training set.
    """

    model: nn.Module
    config: TrainConfig
    history: list[EpochStats]
    epochs_done: int
    cancelled: bool
    seconds: float
    groups: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the model)."""
        return {
            "format": FORMAT,
            "config": asdict(self.config),
            "history": [row.to_dict() for row in self.history],
            "epochs_done": self.epochs_done,
            "cancelled": self.cancelled,
            "seconds": round(self.seconds, 2),
            "groups": list(self.groups),
        }
