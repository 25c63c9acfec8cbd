"""The bundled fairness demo: ERM, W-DRO and Group DRO classifiers on fmnist-groups, evaluated ahead of time.

The app shows "before / after" instantly and offline from these files::

    assets/fairness/erm/model.pt         float16 state dict of Normalized(SmallCNN(width=16)), ~440 KB
    assets/fairness/erm/train.json       the training run (core.training's train.json: config, curves)
    assets/fairness/wdro/...             the same for W-DRO (default cost, budget 0.03)
    assets/fairness/group-dro/...        and for Group DRO (reads group labels: the reference)
    assets/fairness/evaluation.json      the evaluation below
    assets/fairness/map.json             the 3-seed fair protocol on four minority renderings
                                         (python -m bench.fairness_benchmark --report DIR --asset ...)

Regenerate them (about 8 CPU minutes; the models are seed 0 of the benchmark's inverted rendering)::

    python -m bench.make_fairness_demo                 # trains all three, then evaluates
    python -m bench.make_fairness_demo --from DIR      # reuse runs of bench.fairness_benchmark --save-dir DIR

The models are trained by :func:`core.training.train_model` under the fair protocol
(:mod:`core.training.protocol`): the same :data:`EPOCHS` epochs for all three, the epochs
after which ERM's validation mean accuracy stopped improving; 12,000 training images,
seed 0, last epoch (no model selection). ERM and W-DRO never saw a group label.

``evaluation.json`` schema (all accuracies in [0, 1]; ``gap`` = best minus worst group)::

    {
      "format": 1,
      "dataset": "fmnist-groups", "split": "test", "source": "debian" | "bundled" | ...,
      "groups": ["standard", "inverted"],
      "n_clean": 10000,                 # test images of the clean evaluation
      "n_attacked": 2000,               # seeded random subset attacked (both attacks, both models)
      "attacks": {"wdro": {"measure": "ssim-padded", "budget": 0.03, "steps": 100},
                  "pgd-linf": {"eps": 0.1, "steps": 10}},
      "command": "python -m bench.make_fairness_demo",
      "models": {
        "<name>": {                     # "erm", "wdro", "group-dro"
          "label": "ERM" | "W-DRO" | "Group DRO",
          "path": "erm",                # folder under assets/fairness
          "config": {...},              # TrainConfig as a dict
          "history": [{"epoch", "loss", "train_acc", "seconds", "val": {"mean_accuracy",
                       "worst_group_accuracy", "worst_group", "gap", "by_group": {group: {"accuracy", "n"}}},
                       W-DRO only: "gamma", "cost_mean", "cost_by_group": {group: cost}}, ...],
          "transport_cost_by_group": {group: mean cost per example} | null,   # last epoch, W-DRO only
          **FairnessEvaluation          # "clean", "clean_images", "under_attack": {"wdro", "pgd-linf"}
        }
      }
    }

where ``FairnessEvaluation`` is :meth:`core.evaluation.FairnessEvaluation.to_dict` (read an entry
back with :meth:`~core.evaluation.FairnessEvaluation.from_dict`): the clean
:class:`core.fairness.FairnessReport` on ``n_clean`` images (95% percentile bootstrap, 1,000
resamples within groups) and one :class:`core.evaluation.RobustFairness` per attack on the
``n_attacked`` subset. The field lists are the classes' docstrings; a test reads the committed file
back through them.

Example::

    from core.services.fairness_demo import load_demo, load_demo_evaluation

    model, entry = load_demo("wdro")          # model in eval mode; entry = evaluation["models"]["wdro"]
    entry["clean"]["worst_group_accuracy"], entry["under_attack"]["wdro"]["robust"]["gap"]
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.attacks import WDRO, PGDLinf
from core.cancel import CANCELLED, Cancelled
from core.data import GroupDataset, bundled_notice, load_group_dataset
from core.evaluation import evaluate_fairness
from core.measures import DEFAULT_COST
from core.progress import Report
from core.training import INFO_FILE, MODEL_FILE, TRAIN_BUDGET, TrainConfig, TrainProgress, load_trained, train_model

DEMO_DIR = Path(__file__).resolve().parents[2] / "assets" / "fairness"
EVALUATION_FILE = "evaluation.json"
MAP_FILE = "map.json"
EPOCHS = 18  # the fair protocol's epochs on the inverted rendering (bench.fairness_benchmark: ERM stops improving)
DEMO_MODELS: dict[str, tuple[str, TrainConfig]] = {
    "erm": ("ERM", TrainConfig(method="erm", epochs=EPOCHS)),
    "wdro": ("W-DRO", TrainConfig(method="wdro", budget=TRAIN_BUDGET, epochs=EPOCHS)),
    "group-dro": ("Group DRO", TrainConfig(method="group-dro", epochs=EPOCHS)),
}
TRAIN_NOW_ATTACKED = 500  # test images each attack runs on after a "train now" run (tests shrink it)
ATTACKS = {"wdro": {"measure": DEFAULT_COST, "budget": TRAIN_BUDGET, "steps": 100}, "pgd-linf": {"eps": 0.1, "steps": 10}}
NO_DEMO = "no bundled fairness demo {name!r} under {folder}: regenerate it with `python -m bench.make_fairness_demo`"
UNKNOWN = "unknown demo model {name!r}; expected one of: {known}"


def load_demo_evaluation(folder: str | os.PathLike[str] = DEMO_DIR) -> dict[str, Any]:
    """The whole ``evaluation.json`` (schema in the module docstring)."""
    path = Path(folder) / EVALUATION_FILE
    if not path.is_file():
        raise ValueError(NO_DEMO.format(name=EVALUATION_FILE, folder=folder))
    return json.loads(path.read_text())


def load_fairness_map(folder: str | os.PathLike[str] = DEMO_DIR) -> dict[str, Any] | None:
    """The fair protocol's summary over the minority renderings (``map.json``), or ``None`` when it is absent."""
    path = Path(folder) / MAP_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def map_order(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The map's renderings as ``(name, entry)``, nearest to the majority first (by distance in the cost)."""
    return sorted(summary["renderings"].items(), key=lambda item: item[1]["distance"] or 0.0)


TARGET_WORST, TARGET_MEAN_LOSS, TARGET_FLOOR = 5.0, 1.0, -1.0  # issue targets, points against ERM
SHORTCUT_FILE = "shortcut.json"
SHORTCUT_WDRO = {"budget": 0.05, "inner_steps": 5}  # W-DRO on fmnist-shortcut, chosen on validation mean accuracy
# (bench.shortcut_benchmark --part select: budgets 0.03 / 0.05 / 0.08 by 1 or 5 inner steps, docs/fairness-training.md)
SHORTCUT_JTT = {"jtt_epochs": 4, "jtt_upweight": 20.0}  # JTT's identification epochs and weight, chosen alike
SHORTCUT_TARGET = 10.0  # W-DRO's worst group above ERM's on the mark, in points (3 seeds, interval above 0)


def load_shortcut_summary(folder: str | os.PathLike[str] = DEMO_DIR) -> dict[str, Any] | None:
    """The shortcut benchmark's summary (``shortcut.json``, ``bench.shortcut_benchmark --report DIR --asset``), or ``None``."""
    path = Path(folder) / SHORTCUT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def shortcut_verdict(summary: dict[str, Any], cue: str = "mark") -> dict[str, Any] | None:
    """What the shortcut runs say on one cue, computed from their numbers (points; ``None`` if W-DRO or ERM is missing).

    Returns a dict with ``worst`` and ``cue_free`` (W-DRO minus ERM, paired by seed: mean and 95%
    half-width), ``helps`` (the worst group at least :data:`SHORTCUT_TARGET` points up with its
    interval above 0, and cue-free accuracy not below ERM's), ``pgd`` (PGD-AT's worst group minus
    ERM's), ``jtt`` and ``group_dro`` (W-DRO's worst group minus theirs, from the means), and ``seeds``.
    """
    entry = summary.get("cues", {}).get(cue)
    if entry is None or "W-DRO" not in entry["rows"] or "ERM" not in entry["rows"]:
        return None
    rows = entry["rows"]
    wdro = rows["W-DRO"]
    worst, free = wdro["d_worst"], wdro["d_cue_free"]
    if worst is None:
        return None
    low = worst[0] - (worst[1] or float("inf"))

    def minus(name: str) -> float | None:
        return wdro["worst"][0] - rows[name]["worst"][0] if name in rows else None

    pgd = next((rows[n]["d_worst"] for n in rows if n.startswith("PGD-AT") and rows[n]["d_worst"]), None)
    return {
        "worst": worst, "cue_free": free, "seeds": len(wdro["seeds"]), "distance": entry["distance"],
        "helps": worst[0] >= SHORTCUT_TARGET and low > 0 and free is not None and free[0] >= 0,
        "pgd": pgd, "jtt": minus("JTT"), "group_dro": minus("Group DRO"),
    }


def cue_examples(cue: str, *, per_group: int = 2) -> list[tuple[torch.Tensor, str]]:
    """A few bundled validation images of ``fmnist-shortcut`` with their cue in red: ``per_group`` whose cue names
    their class, then ``per_group`` whose cue names another; each as ``(image (3, 28, 28) in [0, 1], caption)``."""
    from core.data.fmnist_shortcut import cue_assignment
    from core.data.splits import seeded_rng

    data = load_group_dataset("fmnist-shortcut", "val", source="bundled", cue=cue)
    bare = load_group_dataset("fmnist-shortcut", "val", source="bundled", cue="none")
    _, place = cue_assignment(data.y, 0.5, seeded_rng(0, "shortcut-val"))  # the loader's own draw (seed 0)
    x, y, g = data.tensors()
    cue_mask = (x != bare.tensors()[0])  # (N, 1, 28, 28): the pixels the cue changed
    red = torch.tensor([1.0, 0.15, 0.15]).view(3, 1, 1)
    names = data.classes
    picked = [*(g == 0).nonzero().flatten()[:per_group].tolist(), *(g == 1).nonzero().flatten()[:per_group].tolist()]
    shown = []
    for i in picked:
        grey = x[i].expand(3, -1, -1)
        image = torch.where(cue_mask[i], 0.35 * grey + 0.65 * red, grey)  # the cue's pixels tinted red
        shown.append((image, f"{names[int(y[i])]} · cue says {names[int(place[i])]}"))
    return shown


def shortcut_story(summary: dict[str, Any]) -> str:
    """Three sentences a speaker can say, with the numbers of the mark and the pattern filled in."""
    mark, pattern = shortcut_verdict(summary, "mark"), shortcut_verdict(summary, "pattern")
    if mark is None:
        return ""
    said = [f"When 99% of the training images carry a bright pixel whose place names the class, ERM learns the "
            f"pixel and fails on the images where it lies: its worst group is "
            f"{summary['cues']['mark']['rows']['ERM']['worst'][0]:.0f}%.",
            f"Moving that pixel costs only {mark['distance']['cost']:.3f} in the perceptual cost, inside W-DRO's "
            f"ball, so W-DRO training makes the shortcut worthless: {mark['worst'][0]:+.1f} worst-group points over "
            f"{mark['seeds']} seeds, without reading a group label"
            + (f", while PGD-AT, whose L-inf ball cannot move a white pixel, gets {mark['pgd'][0]:+.1f}." if mark["pgd"]
               else ".")]
    if pattern is not None:
        said.append(f"A faint pattern is the reverse: it costs {pattern['distance']['cost']:.2f} in the perceptual "
                    f"cost but only {pattern['distance']['linf']:.1f} in L-inf, and there W-DRO gets "
                    f"{pattern['worst'][0]:+.1f} points"
                    + (f" and PGD-AT {pattern['pgd'][0]:+.1f}." if pattern["pgd"] else "."))
    return " ".join(said)


def map_verdict(summary: dict[str, Any], method: str = "W-DRO", *, selection: str = "last") -> dict[str, dict]:
    """Per rendering of the fairness map, by distance: ``method``'s worst-group and mean accuracy minus ERM's (paired by seed,
    mean and 95% half-width, points) and whether it meets the target: at least +5 worst-group points losing at
    most 1 mean point (``helps``), and never more than 1 worst-group point below ERM (``harms`` when it is).
    Renderings where ``method`` was not run are left out."""
    out = {}
    for name, entry in map_order(summary):
        if "vs_erm" not in entry["methods"].get(method, {}):
            continue  # not run (or no ERM to pair with) on this rendering
        vs = entry["methods"][method]["vs_erm"][selection]
        worst, mean = vs["worst_group_accuracy"], vs["mean_accuracy"]
        out[name] = {"distance": entry["distance"], "worst": worst, "mean": mean,
                     "helps": worst[0] >= TARGET_WORST and mean[0] >= -TARGET_MEAN_LOSS,
                     "harms": worst[0] < TARGET_FLOOR, "epochs": entry["epochs"],
                     "seeds": len(entry["methods"][method].get("seeds", entry["seeds"]))}
    return out


def map_coverage(summary: dict[str, Any]) -> str:
    """One sentence on the map's methods that were not run on every rendering ("" when all were)."""
    renderings = map_order(summary)
    methods = dict.fromkeys(m for _, entry in renderings for m in entry["methods"] if m != "ERM")
    parts = []
    for method in methods:
        ran = list(map_verdict(summary, method))  # the renderings it was run (and paired with ERM) on
        if len(ran) < len(renderings):
            parts.append(f"{method} only on {', '.join(ran)}" if ran else f"{method} on none")
    return f"Run under this protocol: {'; '.join(parts)}. " if parts else ""


def load_demo(
    name: str, *, device: torch.device | str = "cpu", folder: str | os.PathLike[str] = DEMO_DIR
) -> tuple[nn.Module, dict[str, Any]]:
    """A bundled demo model (``"erm"``, ``"wdro"`` or ``"group-dro"``) in eval mode, and its entry of ``evaluation.json``.

    Raises:
        ValueError: Unknown name, or the files are missing (the message says how to regenerate them).
    """
    if name not in DEMO_MODELS:
        raise ValueError(UNKNOWN.format(name=name, known=", ".join(DEMO_MODELS)))
    model_dir = Path(folder) / name
    if not (model_dir / MODEL_FILE).is_file():
        raise ValueError(NO_DEMO.format(name=name, folder=folder))
    model, _ = load_trained(model_dir, device=device)
    return model, load_demo_evaluation(folder)["models"][name]


def evaluate_model(
    model: nn.Module,
    info: dict[str, Any],
    test: GroupDataset,
    subset: torch.Tensor,
    *,
    bootstrap: int = 1000,
    progress: Report | None = None,
    attacked: bool = True,
    clean_subset: torch.Tensor | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """One model's entry of ``evaluation.json`` (without ``label`` and ``path``).

    Args:
        model: The classifier, on the device it is evaluated on.
        info: Its ``train.json`` (config and history), or ``{}``.
        test: The test split; clean accuracy on all of it.
        subset: Indices of ``test`` attacked by each attack of :data:`ATTACKS`.
        bootstrap: Resamples of the confidence intervals.
        progress: Called as ``progress(fraction, text)`` between stages and attacked batches.
        attacked: ``False``: clean accuracy only (``under_attack`` is empty), as for a cancelled run.
        clean_subset: Indices of ``test`` the clean accuracy is measured on (default: all of it);
            ``entry["clean_images"]`` says how many.
        should_stop: Polled after every attacked batch; when it returns True,
            :class:`core.cancel.Cancelled` is raised (a job then ends with no result).
    """
    device = next(model.parameters()).device
    x, y, g = test.tensors(device)

    def said(fraction: float, text: str) -> None:
        if fraction > 0 and should_stop is not None and should_stop():
            raise Cancelled(CANCELLED)
        if progress is not None:
            progress(fraction, text)

    attacks = {
        "wdro": WDRO(model, measure=ATTACKS["wdro"]["measure"], budget=ATTACKS["wdro"]["budget"],
                     steps=ATTACKS["wdro"]["steps"]),
        "pgd-linf": PGDLinf(model, eps=ATTACKS["pgd-linf"]["eps"], steps=ATTACKS["pgd-linf"]["steps"]),
    }
    result = evaluate_fairness(model, x, y, g.cpu(), test.groups, attacks=attacks if attacked else None,
                               attacked=subset, clean=clean_subset, bootstrap=bootstrap, seed=0, progress=said)
    history = info.get("history", [])
    return {
        "config": info.get("config"),
        "history": history,
        "transport_cost_by_group": history[-1].get("cost_by_group") if history else None,
        **result.to_dict(),
    }


def attacked_subset(n: int, n_attacked: int) -> torch.Tensor:
    """The seeded random subset of ``n`` test images that the demo attacks (sorted indices)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:n_attacked].sort().values


def train_and_evaluate(
    cfg: TrainConfig,
    *,
    dataset: str = "fmnist-groups",
    root: str | os.PathLike[str] | None = None,
    data_options: dict | None = None,
    start: nn.Module | None = None,
    device: torch.device | str = "cpu",
    n_attacked: int | None = None,
    bootstrap: int = 200,
    cancelled_sample: int | None = 2000,
    report: Report | None = None,
    should_stop: Callable[[], bool] | None = None,
    abandoned: Callable[[], bool] | None = None,
) -> tuple[nn.Module, dict[str, Any]] | None:
    """Train one model on a group data set and evaluate it like the demo models (what the app's "train now" runs).

    Args:
        cfg: The training run (its ``dataset`` is replaced by ``dataset``).
        dataset: A key of :data:`core.data.GROUP_DATASETS`.
        root: The data set's folder (CelebA, CSV); ``None`` for the default.
        data_options: Loader options (e.g. ``{"n_train": 3000}`` for fmnist-groups).
        start: A model to fine-tune. It is deep-copied first and never modified, also when
            its parameters are frozen (the app's cached models are).
        device: Where to train and evaluate.
        n_attacked: Test images attacked by each attack of :data:`ATTACKS` (default
            :data:`TRAIN_NOW_ATTACKED`, read at call time).
        bootstrap: Resamples of the confidence intervals.
        cancelled_sample: Test images a cancelled run's clean accuracy is measured on (a seeded
            sample, so Cancel answers in about a second instead of classifying every test image);
            ``None``: a cancelled run is evaluated in full, as a finished one (every test image,
            both attacks).
        report: Called as ``report(fraction, text)``: training is the first 80%.
        should_stop: Polled between training steps; the run then stops after the step, and
            the model of the last step is evaluated on ``cancelled_sample`` clean images only
            (``entry["cancelled"]`` is True and ``entry["under_attack"]`` empty).
        abandoned: Polled after training: when it returns True (nobody is left to see the
            result, e.g. the app's session ended) nothing is evaluated and ``None`` is returned.

    Returns:
        ``(model, entry)`` with ``entry`` shaped as a model of ``evaluation.json`` plus
        ``"cancelled"`` and ``"dataset"``, or ``None`` when cancelled before the first step
        or abandoned.
    """
    say = report or (lambda fraction, text: None)
    options = dict(data_options or {})
    cfg = replace(cfg, dataset=dataset)
    say(0.0, f"loading {dataset}")
    train = load_group_dataset(dataset, "train", root=root, seed=cfg.seed, **options)
    val = load_group_dataset(dataset, "val", root=root, seed=cfg.seed, **options)
    test = load_group_dataset(dataset, "test", root=root, seed=cfg.seed, **options)
    model = None
    if start is not None:
        model = copy.deepcopy(start)
        for p in model.parameters():
            p.requires_grad_(True)

    steps_done = 0

    def step(p: TrainProgress) -> None:
        nonlocal steps_done
        steps_done = p.global_step
        say(0.8 * p.fraction, f"training: epoch {p.epoch} of {p.epochs}, step {p.step} of {p.steps}, "
                              f"loss {p.loss:.3f}")

    result = train_model(model, train, cfg=cfg, val=val, device=device, copy_model=False, progress=step,
                         should_stop=should_stop)
    if steps_done == 0 or (abandoned is not None and abandoned()):
        return None
    info = result.to_dict()
    n_attacked = TRAIN_NOW_ATTACKED if n_attacked is None else n_attacked
    subset = attacked_subset(len(test), min(n_attacked, len(test)))
    # A cancelled run is shown at once: clean accuracy only, no attacks (they took ~90 s in the app).
    short = result.cancelled and cancelled_sample is not None
    sample = attacked_subset(len(test), min(cancelled_sample, len(test))) if short else None
    entry = evaluate_model(result.model, info, test, subset, bootstrap=bootstrap, attacked=not short,
                           clean_subset=sample, progress=lambda f, text: say(0.8 + 0.2 * f, text),
                           should_stop=None if result.cancelled else should_stop)
    return result.model, {**entry, "cancelled": result.cancelled, "dataset": dataset, "groups": list(test.groups),
                          "notice": bundled_notice(train, options)}


def make_demo(
    out_dir: str | os.PathLike[str] = DEMO_DIR,
    *,
    from_dir: str | os.PathLike[str] | None = None,
    n_attacked: int = 2000,
    device: torch.device | str = "cpu",
    data_options: dict | None = None,
    epochs: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train (or copy from ``from_dir``) the demo models, evaluate them, write the files; return the evaluation.

    Args:
        out_dir: Where the demo files go.
        from_dir: A ``--save-dir`` of :mod:`bench.fairness_benchmark` holding ``erm/``, ``wdro/``
            and ``group-dro/`` runs with the same configs; ``None`` trains here.
        n_attacked: Test images attacked (a seeded random subset).
        device: Where to train and evaluate.
        data_options: Options of ``load_group_dataset("fmnist-groups", ...)`` (tests use the bundled subset).
        epochs: Override the epochs (tests).
        progress: Called with one line per stage.
    """
    say = progress or (lambda _: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = dict(data_options or {})
    test = load_group_dataset("fmnist-groups", "test", seed=0, **options)
    subset = attacked_subset(len(test), n_attacked)
    evaluation: dict[str, Any] = {
        "format": 1, "dataset": "fmnist-groups", "split": "test", "source": test.source,
        "groups": list(test.groups), "n_clean": len(test), "n_attacked": len(subset), "attacks": ATTACKS,
        "command": "python -m bench.make_fairness_demo", "models": {},
    }
    for name, (label, cfg) in DEMO_MODELS.items():
        target = out / name
        if from_dir is not None:
            target.mkdir(parents=True, exist_ok=True)
            for file in (MODEL_FILE, INFO_FILE):
                shutil.copyfile(Path(from_dir) / name / file, target / file)
        else:
            train = load_group_dataset("fmnist-groups", "train", seed=cfg.seed, **options)
            val = load_group_dataset("fmnist-groups", "val", seed=cfg.seed, **options)
            run_cfg = cfg if epochs is None else TrainConfig.from_dict({**cfg.__dict__, "epochs": epochs})
            say(f"training {label} ({run_cfg.epochs} epochs on {len(train)} images)")
            train_model(None, train, cfg=run_cfg, val=val, device=device, out_dir=target, half=True)
            (target / "checkpoint.pt").unlink(missing_ok=True)  # resumable state is not part of the demo
        model, info = load_trained(target, device=device)
        say(f"evaluating {label}")
        evaluation["models"][name] = {
            "label": label,
            "path": name,
            **evaluate_model(model, info, test, subset),
        }
    (out / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2) + "\n")
    return evaluation


__all__ = [
    "ATTACKS", "DEMO_DIR", "DEMO_MODELS", "EPOCHS", "attacked_subset", "evaluate_model", "load_demo",
    "load_demo_evaluation", "load_fairness_map", "make_demo", "map_verdict",
]
