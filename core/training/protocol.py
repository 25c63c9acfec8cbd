"""The fair protocol of the fairness figures: one epoch budget for every method, chosen on ERM, and three model selections.

* :func:`choose_epochs`: train ERM for 6, 12, 18, ... epochs (each a full run with its
  own learning-rate schedule) and stop once its validation **mean** accuracy stops
  improving; every method is then trained for that many epochs.
* :func:`train_selected`: one run that also keeps the weights of the epochs each
  selection rule picks (:data:`SELECTIONS`): the last epoch, the best validation mean
  accuracy (no group labels), and the best validation worst-group accuracy (reads group
  labels: marked as such wherever it is reported).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from core.data import GroupDataset
from core.training.config import TrainConfig, TrainProgress, TrainResult
from core.training.loop import _initial_model, train_model

SELECTIONS: dict[str, str] = {
    "last": "last epoch",
    "val-mean": "best validation mean accuracy (no group labels)",
    "val-worst": "best validation worst-group accuracy (reads group labels)",
}
EPOCH_CANDIDATES = (6, 12, 18, 24, 30)
MIN_GAIN = 0.005  # validation mean accuracy a longer run must add to count as an improvement (0.5 points)


@dataclass(frozen=True)
class Selected:
    """The weights one selection rule picked: the epoch (from 1), its validation report, the state dict."""

    epoch: int
    val: dict[str, Any]
    state: dict[str, torch.Tensor]


@dataclass(frozen=True)
class SelectedRun:
    """A run of :func:`train_selected`: the result (last epoch) and ``{selection: Selected}``."""

    result: TrainResult
    selected: dict[str, Selected]

    def model(self, selection: str) -> nn.Module:
        """A copy of the trained classifier with the weights ``selection`` picked, in eval mode."""
        net = copy.deepcopy(self.result.model)
        net.load_state_dict(self.selected[selection].state)
        return net.eval()


def train_selected(
    train: GroupDataset, val: GroupDataset, cfg: TrainConfig, *, device: torch.device | str = "cpu", **kwargs: Any
) -> SelectedRun:
    """:func:`core.training.train_model` from a new model, keeping the weights each of :data:`SELECTIONS` picks.

    The weights are bitwise those of ``train_model(None, train, cfg=cfg, val=val)``; ties keep the earlier
    epoch. ``kwargs`` go to ``train_model`` (``out_dir``, ``half``, ``progress``, ...).
    """
    net = _initial_model(None, cfg, train, copy_model=False).to(device)
    best: dict[str, Selected] = {}
    keys = {"val-mean": "mean_accuracy", "val-worst": "worst_group_accuracy"}
    outer = kwargs.pop("progress", None)

    def on_progress(p: TrainProgress) -> None:
        if p.kind == "epoch":
            report = p.metrics["val"]
            for selection, key in keys.items():
                if selection not in best or report[key] > best[selection].val[key]:
                    best[selection] = Selected(p.epoch, report, _copy_state(net))
        if outer is not None:
            outer(p)

    result = train_model(net, train, cfg=cfg, val=val, device=device, copy_model=False, progress=on_progress,
                         **kwargs)
    last = result.history[-1]
    best["last"] = Selected(last.epoch, last.val or {}, _copy_state(result.model))
    return SelectedRun(result, {name: best[name] for name in SELECTIONS if name in best})


def choose_epochs(
    train: GroupDataset,
    val: GroupDataset,
    *,
    cfg: TrainConfig | None = None,
    candidates: tuple[int, ...] = EPOCH_CANDIDATES,
    min_gain: float = MIN_GAIN,
    device: torch.device | str = "cpu",
) -> tuple[int, list[dict[str, float]]]:
    """The epochs after which ERM's validation mean accuracy stops improving, and the runs that decided it.

    Trains ``cfg`` (default ERM) for each of ``candidates`` in turn and returns the last
    count whose run beat the previous one by more than ``min_gain``.
    """
    cfg = cfg or TrainConfig(method="erm")
    trace: list[dict[str, float]] = []
    chosen = candidates[0]
    for epochs in candidates:
        result = train_model(None, train, cfg=replace(cfg, epochs=epochs), val=val, device=device)
        val_row = result.history[-1].val or {}
        trace.append({"epochs": epochs, "val_mean": val_row["mean_accuracy"],
                      "val_worst": val_row["worst_group_accuracy"], "seconds": round(result.seconds, 1)})
        if len(trace) > 1 and trace[-1]["val_mean"] <= trace[-2]["val_mean"] + min_gain:
            break
        chosen = epochs
    return chosen, trace


def _copy_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


__all__ = ["EPOCH_CANDIDATES", "MIN_GAIN", "SELECTIONS", "Selected", "SelectedRun", "choose_epochs", "train_selected"]
