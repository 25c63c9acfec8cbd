"""One class per training method: what it trains on, its loss, and what it carries across steps.

Every method answers :meth:`Method.step` with a :class:`StepStats` and checkpoints what it
carries through :meth:`Method.state_dict` / :meth:`Method.load_state_dict` (the layout
``{"log_gamma": ..., "delta": ..., "visited": ..., "q": ...}`` of earlier checkpoints).

* :class:`ERM`: cross-entropy on the batch.
* :class:`FastWDRO`: the fast W-DRO solver (warm-started ascent, online dual, the free
  ascent step of the training backward pass; module docstring of :mod:`core.training`).
* :class:`NaiveWDRO`: the reference: :class:`~core.attacks.WDRO` with bisection, every batch.
* :class:`PGDAT`: PGD-L-inf adversarial training.
* :class:`GroupDRO`: group losses weighted by ``q`` (exponentiated gradient), reads group labels.
* :class:`JTT`: Just Train Twice: ERM's misclassified training images upweighted (no group labels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from core.attacks import WDRO, PGDLinf
from core.dro import ascend, ascent_step, fit_budget, group_mean, training_dual_step, update_group_weights
from core.measures import get_measure
from core.training.config import FIT_ROUNDS, TrainConfig
from core.training.ddp import Dist


@dataclass(frozen=True)
class Option:
    """A :class:`TrainConfig` field that a method reads, as the command line offers it (``--field-name``).

    Attributes:
        field: The field's name.
        help: One line for people (the CLI prefixes the methods that read it).
        low, high: Bounds of a whole-number option (``None``: a real number).
    """

    field: str
    help: str
    low: int | None = None
    high: int | None = None


@dataclass(frozen=True)
class Batch:
    """One training batch.

    Attributes:
        x: Images, (B, C, H, W), already flipped where ``flip`` says.
        y: Labels, (B,).
        g: Group labels, (B,).
        idx: Their indices in the training set, (B,) on the CPU.
        flip: (B,) bool on the CPU: the images that were mirrored.
    """

    x: torch.Tensor
    y: torch.Tensor
    g: torch.Tensor
    idx: torch.Tensor
    flip: torch.Tensor


@dataclass(frozen=True)
class StepContext:
    """What a step works with besides its batch.

    Attributes:
        train_net: The module the loss is computed with (DDP-wrapped when distributed).
        net: The plain module (attacks, inner ascents).
        opt: The optimiser.
        gen: CPU generator of the epoch (flips, attack seeds).
        noise_gen: Generator on the device (random starts, dropout).
        dist: The process group (:class:`~core.training.ddp.Dist`).
        fraction: Fraction of the run done, in [0, 1].
    """

    train_net: nn.Module
    net: nn.Module
    opt: torch.optim.Optimizer
    gen: torch.Generator
    noise_gen: torch.Generator
    dist: Dist
    fraction: float


@dataclass(frozen=True)
class StepStats:
    """What one step reports: the training loss, the logits on the trained points, extra figures, the cost spent."""

    loss: torch.Tensor
    logits: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)
    cost: torch.Tensor | None = None  # (B,) transport cost per example (W-DRO)


class Method:
    """The shared step: train on :meth:`inputs` with :meth:`loss`. Subclasses change one or both."""

    name: ClassVar[str] = ""  # the key of METHOD_CLASSES and of TrainConfig.method
    label: ClassVar[str] = ""  # for people (the app's choices, reports)
    reads_groups: ClassVar[bool] = False  # whether training reads the group labels
    spends_cost: ClassVar[bool] = False  # whether the step reports a transport cost
    options: ClassVar[tuple[Option, ...]] = ()  # the method's own TrainConfig fields (the CLI's options)

    def __init__(self, cfg: TrainConfig, x_all: torch.Tensor, n_groups: int) -> None:
        self.cfg = cfg

    def inputs(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, Any], torch.Tensor | None]:
        """The points the model is trained on, extra figures, and the cost spent (default: the batch itself)."""
        return batch.x, {}, None

    def loss(self, logits: torch.Tensor, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, Any]]:
        """The loss to minimise and extra figures (default: mean cross-entropy)."""
        return F.cross_entropy(logits, batch.y), {}

    def step(self, batch: Batch, ctx: StepContext) -> StepStats:
        x_train, extra, cost = self.inputs(batch, ctx)
        ctx.train_net.train()
        logits = ctx.train_net(x_train)
        loss, more = self.loss(logits, batch, ctx)
        ctx.opt.zero_grad(set_to_none=True)
        loss.backward()
        ctx.opt.step()
        return StepStats(loss.detach(), logits.detach(), {**extra, **more}, cost)

    def prepare(self, train: Any, device: torch.device, should_stop: Any = None) -> None:
        """Called once before the first epoch of a run that does not resume (default: nothing)."""

    def end_epoch(self, touched: torch.Tensor, dist: Dist) -> None:
        """Called after each epoch with the examples this rank trained on."""

    def report(self, groups) -> dict[str, Any]:
        """Figures of the method for the epoch's history row."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"log_gamma": 0.0}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        pass


class ERM(Method):
    name = "erm"
    label = "ERM"


class PGDAT(Method):
    name = "pgd-at"
    label = "PGD adversarial training (L-inf)"
    options = (Option("eps", "L-inf radius"), Option("pgd_steps", "PGD steps", 1, 1000))

    def inputs(self, batch, ctx):
        attack = PGDLinf(ctx.net, eps=self.cfg.eps, steps=self.cfg.pgd_steps)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.gen))
        return attack(batch.x, batch.y, seed=seed).x_adv, {}, None


class NaiveWDRO(Method):
    """The reference inner solver: WDRO with many steps, bisection on log gamma (budget form)."""

    name = "wdro-naive"
    label = "W-DRO (perceptual cost, naive solver)"
    spends_cost = True
    options = (Option("naive_steps", "steps per round", 1, 1000),
               Option("naive_rounds", "bisection rounds on log gamma per batch", 1, 100))

    def inputs(self, batch, ctx):
        cfg = self.cfg
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.gen))
        if cfg.budget is not None:
            attack = WDRO(ctx.net, measure=cfg.measure, budget=cfg.budget, dual="bisection", steps=cfg.naive_steps,
                          bisection_rounds=cfg.naive_rounds, gamma_init=cfg.gamma_init)
        else:
            attack = WDRO(ctx.net, measure=cfg.measure, gamma=cfg.gamma, steps=cfg.naive_steps)
        result = attack(batch.x, batch.y, seed=seed)
        cost = result.cost.detach()
        return result.x_adv, {"gamma": float(result.final_gamma.mean()), "cost": float(cost.mean())}, cost


class GroupDRO(Method):
    name = "group-dro"
    label = "Group DRO (uses group labels)"
    reads_groups = True
    options = (Option("group_step", "step of q"),)

    def __init__(self, cfg, x_all, n_groups):
        super().__init__(cfg, x_all, n_groups)
        self.q = torch.full((n_groups,), 1.0 / n_groups)

    def loss(self, logits, batch, ctx):
        losses = F.cross_entropy(logits, batch.y, reduction="none")
        g, n_groups = batch.g, self.q.shape[0]
        # q follows the whole batch's (every rank's) group losses; the loss is this rank's group means
        everyone, _ = group_mean(losses.detach().double().cpu(), g.cpu(), n_groups, reduce=ctx.dist.sum)
        self.q = update_group_weights(self.q, everyone.float(), self.cfg.group_step)
        means, _ = group_mean(losses, g, n_groups)
        return (self.q.to(means.device) * means).sum(), {f"q{k}": float(v) for k, v in enumerate(self.q)}

    def report(self, groups):
        return {"q": {name: float(v) for name, v in zip(groups, self.q)}}

    def state_dict(self):
        return {"log_gamma": 0.0, "q": self.q}

    def load_state_dict(self, data):
        self.q = data["q"].clone()


class JTT(Method):
    """Just Train Twice (Liu et al., ICML 2021, https://arxiv.org/abs/2107.09044).

    Stage 1 (:meth:`prepare`): ERM for ``cfg.jtt_epochs`` epochs (same seed, optimiser and
    schedule); its misclassified training images are the error set. Stage 2 (this run): a new
    model trained on the loss with the error set weighted ``cfg.jtt_upweight`` times, the
    expectation of the paper's upsampling, ``mean_i(w_i l_i) / mean_all(w)``. Reads no group labels.
    """

    name = "jtt"
    label = "JTT (ERM's errors upweighted, no group labels)"
    options = (Option("jtt_epochs", "epochs of the ERM run whose errors are upweighted", 1, 1000),
               Option("jtt_upweight", "weight of the misclassified training images (lambda)"))

    def __init__(self, cfg, x_all, n_groups):
        super().__init__(cfg, x_all, n_groups)
        self.weights = torch.ones(x_all.shape[0])  # (N,) on the CPU: 1, or jtt_upweight for the error set

    def prepare(self, train, device, should_stop=None):
        from dataclasses import replace

        from core.evaluation import predict
        from core.training.loop import train_model  # the identification run is a plain ERM run

        first = train_model(None, train, cfg=replace(self.cfg, method="erm", epochs=self.cfg.jtt_epochs),
                            device=device, should_stop=should_stop)
        x, y, _ = train.tensors(device)
        errors = (predict(first.model, x).cpu() != y.cpu())
        self.weights = torch.where(errors, float(self.cfg.jtt_upweight), 1.0)

    def loss(self, logits, batch, ctx):
        w = self.weights[batch.idx].to(logits.device)
        losses = F.cross_entropy(logits, batch.y, reduction="none")
        return (w * losses).mean() / self.weights.mean(), {}

    def report(self, groups):
        return {}

    def state_dict(self):
        return {"log_gamma": 0.0, "jtt_weights": self.weights}

    def load_state_dict(self, data):
        self.weights = data["jtt_weights"].clone()


class FastWDRO(Method):
    """Fast W-DRO: a warm-started ascent per example, the online dual, and the free step of the backward pass.

    Carries, per training example, the perturbation of its last visit (``delta``, on the CPU,
    in the un-flipped frame) and whether it was visited; and the multiplier ``log gamma``.
    """

    name = "wdro"
    label = "W-DRO (perceptual cost, fast)"
    spends_cost = True
    options = (
        Option("inner_steps", "ascent steps per visit", 1, 100),
        Option("step_size", "ascent step (pixels)"),
        Option("clean_weight", "weight w of the clean loss in (1 - w) * worst-case + w * clean (default 0)"),
        Option("cvar", "this project's extension: train on the mean of the batch's highest CVAR fraction of "
                       "worst-case losses (default 1: all of them)"),
    )

    def __init__(self, cfg, x_all, n_groups):
        super().__init__(cfg, x_all, n_groups)
        self.measure = get_measure(cfg.measure)
        self.pointwise = cfg.budget_mode == "pointwise"
        gamma0 = cfg.gamma if cfg.gamma is not None else (cfg.gamma_init or 1.0 / cfg.budget)
        self.log_gamma = math.log(gamma0)
        self.delta = torch.zeros_like(x_all, device="cpu")  # (N, C, H, W)
        self.visited = torch.zeros(x_all.shape[0], dtype=torch.bool)  # (N,)
        self.cost_of: Any = None  # the prepared cost of the current batch
        self.current_step = 0.0  # the ascent step of the current batch

    @property
    def gamma(self) -> float:
        """The multiplier of the cost in the ascent (0 for the pointwise budget: the projection keeps it)."""
        return 0.0 if self.pointwise else math.exp(self.log_gamma)

    def step(self, batch, ctx):
        cfg, x, y = self.cfg, batch.x, batch.y
        x_train, cost = self.inner(batch, ctx)
        extra = {"gamma": self.gamma, "cost": float(cost.mean())}
        ctx.train_net.train()
        x_train = x_train.detach().requires_grad_(True)
        logits = ctx.train_net(x_train)
        loss = F.cross_entropy(logits, y)
        ctx.opt.zero_grad(set_to_none=True)
        # One backward pass: weight gradient of the mean loss and input gradient of the
        # penalised objective (the cost term does not depend on the weights).
        if cfg.cvar < 1.0:
            objective = self.cvar_objective(logits, y, x_train)
        else:
            penalty = self.gamma * self.cost_of(x_train).sum() / len(y) if self.cost_of is not None else 0.0
            objective = loss - penalty
        w = cfg.clean_weight
        if w:  # mixed: the clean term adds nothing to the input gradient at x_train, only scales it
            objective = (1 - w) * objective + w * F.cross_entropy(ctx.train_net(x), y)
        objective.backward()
        self.store_free_step(batch, x_train, x_train.grad)
        ctx.opt.step()
        return StepStats(loss.detach(), logits.detach(), extra, cost)

    def cvar_objective(self, logits: torch.Tensor, y: torch.Tensor, x_train: torch.Tensor) -> torch.Tensor:
        """CVaR of the worst-case losses: ``sum_i w_i (l_i - gamma c_i)`` with ``w_i = 1 / k`` on the batch's ``k =
        ceil(cvar * B)`` highest losses and 0 elsewhere (weights held fixed). Its weight gradient is the CVaR's;
        its input gradient is each kept example's own ascent direction (the others keep their point)."""
        losses = F.cross_entropy(logits, y, reduction="none")
        k = max(1, math.ceil(self.cfg.cvar * len(y)))
        weights = torch.zeros_like(losses).scatter(0, losses.detach().topk(k).indices, 1.0 / k)
        cost = self.cost_of(x_train) if self.cost_of is not None else torch.zeros_like(losses)
        return (weights * (losses - self.gamma * cost)).sum()

    def inner(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Warm-started ascent: ``inner_steps`` steps on ``l - gamma d``, then the dual update."""
        cfg, x, y, net = self.cfg, batch.x, batch.y, ctx.net
        self.current_step = ascent_step(cfg.step_size, ctx.fraction)
        flip_d = batch.flip.to(x.device).view(-1, 1, 1, 1)
        delta = self.delta[batch.idx].to(x.device)
        delta = torch.where(flip_d, delta.flip(-1), delta)  # stored in the un-flipped frame
        fresh = (~self.visited[batch.idx]).to(x.device).view(-1, 1, 1, 1)
        noise = cfg.init_noise * (2 * torch.rand(x.shape, device=x.device, generator=ctx.noise_gen) - 1)
        delta = torch.where(fresh, noise, delta)
        x_adv = (x + delta).clamp(0.0, 1.0)
        self.cost_of = self.measure.prepare(x)
        gamma = self.gamma
        was_training = net.training
        net.eval()
        for _ in range(cfg.inner_steps):
            x_adv = x_adv.detach().requires_grad_(True)
            loss = F.cross_entropy(net(x_adv), y, reduction="none")
            cost = self.cost_of(x_adv)
            (grad,) = torch.autograd.grad((loss - gamma * cost).sum(), x_adv)
            x_adv = ascend(x, x_adv.detach(), grad, self.current_step)
        net.train(was_training)
        with torch.no_grad():
            cost = self.cost_of(x_adv).nan_to_num(0.0)  # (N,) the cost of the ascent's points
        if self.pointwise:
            x_adv = fit_budget(x, x_adv.detach(), self.cost_of, cfg.budget, mode="pointwise", rounds=FIT_ROUNDS)
            with torch.no_grad():
                cost = self.cost_of(x_adv).nan_to_num(0.0)
        elif cfg.budget is not None:
            stats = ctx.dist.sum(torch.tensor([float(cost.sum()), float(len(cost))], dtype=torch.float64))
            mean_cost = float(stats[0] / stats[1])
            self.log_gamma = training_dual_step(self.log_gamma, mean_cost, cfg.budget, cfg.dual_lr)
            if cfg.fit_budget and mean_cost > cfg.budget:
                x_adv = fit_budget(x, x_adv.detach(), self.cost_of, cfg.budget, rounds=FIT_ROUNDS)
                with torch.no_grad():
                    cost = self.cost_of(x_adv).nan_to_num(0.0)
        return x_adv.detach(), cost

    def store_free_step(self, batch: Batch, x_train: torch.Tensor, grad: torch.Tensor | None) -> None:
        """The training step's input gradient is one more ascent step: keep its result for the next visit."""
        x = batch.x
        with torch.no_grad():
            if grad is None or not bool(torch.isfinite(grad).all()):
                x_next = x_train.detach()
            else:
                x_next = ascend(x, x_train.detach(), grad, self.current_step)
            delta = x_next - x
            delta = torch.where(batch.flip.to(x.device).view(-1, 1, 1, 1), delta.flip(-1), delta)
            self.delta[batch.idx] = delta.cpu()
            self.visited[batch.idx] = True

    def end_epoch(self, touched, dist):
        """Distributed: every rank gets the perturbations the other ranks stored this epoch."""
        if dist.world == 1:
            return
        mask = touched.to(self.delta.dtype).view(-1, 1, 1, 1)
        total = dist.sum(self.delta * mask)
        count = dist.sum(mask.clone())
        merged = total / count.clamp_min(1)
        self.delta = torch.where(count > 0, merged, self.delta)
        self.visited = self.visited | (dist.sum(touched.to(torch.float64)) > 0)

    def report(self, groups):
        return {} if self.pointwise else {"gamma": math.exp(self.log_gamma)}

    def state_dict(self):
        return {"log_gamma": self.log_gamma, "delta": self.delta, "visited": self.visited}

    def load_state_dict(self, data):
        self.log_gamma = float(data["log_gamma"])
        self.delta = data["delta"].clone()
        self.visited = data["visited"].clone()


METHOD_CLASSES: dict[str, type[Method]] = {m.name: m for m in (ERM, FastWDRO, NaiveWDRO, PGDAT, GroupDRO, JTT)}


def make_method(cfg: TrainConfig, x_all: torch.Tensor, n_groups: int) -> Method:
    """The method object of ``cfg.method``."""
    return METHOD_CLASSES[cfg.method](cfg, x_all, n_groups)
