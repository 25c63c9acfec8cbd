"""Checkpoints (every epoch, for exact resuming) and the trained output (``model.pt`` and ``train.json``)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import torch

from core.fileio import atomic_save, atomic_write
from core.models import Normalized, load_state_dict
from core.training.blocks import build_classifier
from core.training.config import (
    CHECKPOINT,
    EpochStats,
    FORMAT,
    INFO_FILE,
    MISMATCH,
    MODEL_FILE,
    NOT_TRAINED,
    TrainConfig,
    TrainResult,
)
from core.training.methods import Method


def save_trained(result: TrainResult, out_dir: str | os.PathLike[str], *, half: bool = False) -> Path:
    """Write ``model.pt`` (state dict of the Normalized wrapper) and ``train.json`` atomically; return the folder."""
    out = Path(out_dir)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in result.model.state_dict().items()}
    atomic_save(state, out / MODEL_FILE)
    info = result.to_dict()
    info.update(model_file=MODEL_FILE, half=half, shape=architecture_of(result.model, state))
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
        ckpt = read_checkpoint(p)
        cfg = TrainConfig.from_dict(ckpt["config"])
        model = model_for(cfg, ckpt["shape"])
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
    model = model_for(cfg, info.get("shape") or shape_from_state(state))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{weights}: weights do not match the configured architecture ({str(err).splitlines()[0]})") from None
    return model.to(device).eval(), info


def save_checkpoint(path: Path, cfg: TrainConfig, epoch: int, net, opt, method: Method, history) -> None:
    shape = architecture_of(net, net.state_dict())
    data = {
        "format": FORMAT,
        "config": asdict(cfg),
        "epoch": epoch,
        "shape": shape,
        "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "optimizer": opt.state_dict(),
        "method_state": method.state_dict(),
        "history": [row.to_dict() for row in history],
    }
    atomic_save(data, path)


def read_checkpoint(path: Path) -> dict:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, foreign or pickled objects
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "config" not in data:
        raise ValueError(f"{path}: not a checkpoint of core.training (format {FORMAT})")
    return data


def load_checkpoint(path: Path, cfg: TrainConfig, net, opt, method: Method) -> tuple[int, list]:
    data = read_checkpoint(path)
    theirs = TrainConfig.from_dict(data["config"])
    for key in ("method", "dataset", "seed", "batch_size", "lr", "measure", "budget", "gamma", "width", "budget_mode",
                "clean_weight"):
        if getattr(theirs, key) != getattr(cfg, key):
            raise ValueError(MISMATCH.format(path=path, key=key, theirs=getattr(theirs, key), ours=getattr(cfg, key)))
    net.load_state_dict(data["model"])
    opt.load_state_dict(data["optimizer"])
    method.load_state_dict(data["method_state"])
    return int(data["epoch"]), [EpochStats.from_dict(row) for row in data["history"]]


def architecture_of(net, state: dict) -> dict[str, int | str]:
    """The architecture's arguments, as the model was built (``SmallCNN.args``, ``SmallResNet.args``), for rebuilding it.

    Files written before the models kept their arguments are read by :func:`shape_from_state`.
    """
    inner = getattr(net, "model", None)
    args = getattr(inner, "args", None)
    if not isinstance(args, dict):
        return shape_from_state(state)
    arch = type(inner).__name__
    return {"arch": arch, "channels": int(args["in_channels"]), "width": int(args["width"]),
            "n_classes": int(args["n_classes"]), "size": 28 if arch == "SmallCNN" else 0}


def shape_from_state(state: dict) -> dict[str, int]:
    """Architecture facts recoverable from a state dict of a Normalized(SmallCNN | SmallResNet) (older files)."""
    if "model.features.0.weight" in state:
        w = state["model.features.0.weight"]
        return {"arch": "SmallCNN", "channels": int(w.shape[1]), "width": int(w.shape[0]),
                "n_classes": int(state["model.classifier.4.weight"].shape[0]), "size": 28}
    w = state["model.stem.0.weight"]
    return {"arch": "SmallResNet", "channels": int(w.shape[1]), "width": int(w.shape[0]),
            "n_classes": int(state["model.head.2.weight"].shape[0]), "size": 0}


def model_for(cfg: TrainConfig, shape: dict) -> Normalized:
    cfg = replace(cfg, width=int(shape["width"]))
    size = 28 if shape["arch"] == "SmallCNN" else 64
    return build_classifier(cfg, channels=int(shape["channels"]), n_classes=int(shape["n_classes"]), size=size)
