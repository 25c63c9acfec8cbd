"""The training loop, :func:`train_model`: one loop for every method (:mod:`core.training.methods`)."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.data import GroupDataset
from core.evaluation import predict
from core.fairness import group_accuracy
from core.fileio import check_writable
from core.measures import get_measure
from core.models import init_parameters, use_generator
from core.dro import group_sums
from core.training.blocks import build_classifier, lr_at
from core.training.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint, save_trained
from core.training.config import NO_GROUPS, EpochStats, TrainConfig, TrainProgress, TrainResult
from core.training.ddp import Dist
from core.training.methods import Batch, StepContext, make_method


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
    dist = Dist.current()
    x_all, y_all, g_all = train.tensors(device)  # (N, C, H, W) float in [0, 1]; (N,); (N,)
    n = x_all.shape[0]
    n_groups = len(train.groups)
    if cfg.method == "group-dro" and n_groups < 2:
        raise ValueError(NO_GROUPS.format(n=n_groups))
    if cfg.method in ("wdro", "wdro-naive"):
        get_measure(cfg.measure).check(x_all.shape)
    if out_dir is not None and dist.rank == 0:
        check_writable(out_dir)  # a read-only or missing folder fails now, not after the first epoch
    net = _initial_model(model, cfg, train, copy_model=copy_model).to(device)  # the plain module: attacks, saving
    train_net: nn.Module = net
    if dist.world > 1:
        train_net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=dist.world, rank=dist.rank,
                                                  shuffle=True, seed=cfg.seed, drop_last=False)
    steps = (len(sampler) + cfg.batch_size - 1) // cfg.batch_size
    total = cfg.epochs * steps
    method = make_method(cfg, x_all, n_groups)
    history: list[EpochStats] = []
    first_epoch = 0
    ckpt_path = Path(out_dir) / CHECKPOINT if out_dir is not None else None
    if resume and ckpt_path is not None and ckpt_path.is_file():
        first_epoch, history = load_checkpoint(ckpt_path, cfg, net, opt, method)
    if first_epoch == 0:
        method.prepare(train, device, should_stop)  # JTT's identification run; nothing for the others
    val_tensors = val.tensors(device) if val is not None else ()

    cancelled = False
    for epoch in range(first_epoch, cfg.epochs):
        epoch_start = time.perf_counter()
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler), dtype=torch.int64)
        tally, cancelled = _train_epoch(epoch, order, steps, cfg=cfg, data=(x_all, y_all, g_all), n_groups=n_groups,
                                        nets=(train_net, net), opt=opt, method=method, dist=dist, device=device,
                                        progress=progress, should_stop=should_stop)
        if cancelled:
            break
        method.end_epoch(tally.touched, dist)
        val_row = val_report(net, *val_tensors, val.groups) if val is not None else None  # type: ignore[misc]
        row = tally.row(dist, epoch=epoch + 1, lr_end=lr_at(min((epoch + 1) * steps, total) - 1, total, cfg.lr),
                        val=val_row, report=method.report(train.groups), groups=train.groups,
                        spends_cost=method.spends_cost, started=epoch_start)
        history.append(row)
        if ckpt_path is not None and dist.rank == 0:
            save_checkpoint(ckpt_path, cfg, epoch + 1, net, opt, method, history)
        if progress is not None:
            progress(TrainProgress("epoch", epoch + 1, cfg.epochs, steps, steps, (epoch + 1) * steps, total,
                                   row.loss, row.to_dict()))
    net.eval()
    result = TrainResult(
        model=net, config=cfg, history=history, epochs_done=len(history), cancelled=cancelled,
        seconds=time.perf_counter() - start_time, groups=tuple(train.groups),
    )
    if out_dir is not None and dist.rank == 0:
        save_trained(result, out_dir, half=half)
    return result


def _train_epoch(epoch: int, order: torch.Tensor, steps: int, *, cfg: TrainConfig, data, n_groups: int, nets, opt,
                 method, dist: Dist, device: torch.device, progress, should_stop) -> tuple[_Tally, bool]:
    """One epoch's steps over ``order`` (this rank's examples); returns the tally and whether it was cancelled."""
    train_net, net = nets
    total = cfg.epochs * steps
    # The run's own generators, one stream per (seed, epoch, rank): two runs in one process never share one.
    noise_gen = torch.Generator(device).manual_seed(run_seed(cfg.seed, epoch, dist.rank))  # dropout, random starts
    gen = torch.Generator().manual_seed(run_seed(cfg.seed, epoch, dist.rank, 1))  # flips, attack seeds
    tally = _Tally(data[0].shape[0], n_groups)
    for i in range(steps):
        if should_stop is not None and should_stop():
            return tally, True
        batch = _batch(order[i * cfg.batch_size : (i + 1) * cfg.batch_size], cfg, gen, data)
        for pg in opt.param_groups:
            pg["lr"] = lr_at(epoch * steps + i, total, cfg.lr)
        ctx = StepContext(train_net, net, opt, gen, noise_gen, dist, (epoch * steps + i) / total)
        with use_generator(net, noise_gen):
            stats = method.step(batch, ctx)
        tally.add(batch, stats)
        if progress is not None:
            progress(TrainProgress("step", epoch + 1, cfg.epochs, i + 1, steps, epoch * steps + i + 1, total,
                                   float(stats.loss), stats.extra))
    return tally, False


def _initial_model(model: nn.Module | None, cfg: TrainConfig, train: GroupDataset, *, copy_model: bool) -> nn.Module:
    """The model to train: a new classifier initialised from the run's own generator (never torch's
    process-wide one), or a deep copy of the given one (or the given one itself, ``copy_model=False``)."""
    if model is None:
        x = train.x
        model = build_classifier(cfg, channels=x.shape[1], n_classes=len(train.classes), size=x.shape[-1])
        return init_parameters(model, torch.Generator().manual_seed(cfg.seed))
    return copy.deepcopy(model) if copy_model else model


def _batch(idx: torch.Tensor, cfg: TrainConfig, gen: torch.Generator, data) -> Batch:
    """The examples ``idx`` of the training tensors ``data = (x, y, g)``, each mirrored with probability 1/2 (``cfg.flip``)."""
    x_all, y_all, g_all = data
    flip = (torch.rand(len(idx), generator=gen) < 0.5) if cfg.flip else torch.zeros(len(idx), dtype=torch.bool)
    dev_idx, flip_d = idx.to(x_all.device), flip.to(x_all.device).view(-1, 1, 1, 1)
    x = torch.where(flip_d, x_all[dev_idx].flip(-1), x_all[dev_idx])
    return Batch(x, y_all[dev_idx], g_all[dev_idx], idx, flip)


class _Tally:
    """What one epoch adds up on this rank: the loss, correct predictions, images, the cost spent per group."""

    def __init__(self, n: int, n_groups: int) -> None:
        self.touched = torch.zeros(n, dtype=torch.bool)  # the examples this rank trained on
        self.loss = self.correct = self.n = 0.0
        self.cost_sum = torch.zeros(n_groups, dtype=torch.float64)
        self.cost_n = torch.zeros(n_groups, dtype=torch.float64)
        self.loss_sum = torch.zeros(n_groups, dtype=torch.float64)  # cross-entropy on the trained points, per group
        self.group_n = torch.zeros(n_groups, dtype=torch.float64)

    def add(self, batch: Batch, stats) -> None:
        self.touched[batch.idx] = True
        b = float(len(batch.idx))
        self.loss += float(stats.loss) * b
        self.correct += float((stats.logits.argmax(1) == batch.y).sum())
        self.n += b
        g, k = batch.g.cpu(), len(self.loss_sum)
        losses = F.cross_entropy(stats.logits.float(), batch.y, reduction="none").double().cpu()
        sums, counts = group_sums(losses, g, k)
        self.loss_sum += sums
        self.group_n += counts
        if stats.cost is not None:
            sums, counts = group_sums(stats.cost.double().cpu(), g, k)
            self.cost_sum += sums
            self.cost_n += counts

    def row(self, dist: Dist, *, epoch: int, lr_end: float, val, report: dict, groups, spends_cost: bool,
            started: float) -> EpochStats:
        """The epoch's :class:`EpochStats`, summed over every rank."""
        totals = dist.sum(torch.tensor([self.loss, self.correct, self.n], dtype=torch.float64))
        cost_sum, cost_n = dist.sum(self.cost_sum), dist.sum(self.cost_n)
        loss_sum, group_n = dist.sum(self.loss_sum), dist.sum(self.group_n)
        return EpochStats(
            epoch=epoch, loss=float(totals[0] / totals[2]), train_acc=float(totals[1] / totals[2]), lr_end=lr_end,
            val=val, **report,
            loss_by_group={name: float(s / max(float(c), 1.0)) for name, s, c in
                           zip(groups, loss_sum.tolist(), group_n.tolist())},
            cost_mean=float(cost_sum.sum() / cost_n.sum().clamp_min(1)) if spends_cost else None,
            cost_by_group={name: float(s / max(float(c), 1.0)) for name, s, c in
                           zip(groups, cost_sum.tolist(), cost_n.tolist())} if spends_cost else None,
            seconds=round(time.perf_counter() - started, 3),
        )


def run_seed(*parts: int) -> int:
    h = 0
    for p in parts:
        h = (h * 1_000_003 + int(p) + 1) % (2**62)
    return h


def val_report(net: nn.Module, x, y, g, groups) -> dict[str, Any]:
    pred = predict(net, x)
    return group_accuracy(pred.cpu(), y.cpu(), g.cpu(), len(groups)).summary(groups)
