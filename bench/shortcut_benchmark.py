"""Shortcut fairness: when W-DRO training with the perceptual cost helps the worst group, and when it cannot.

    python -m bench.shortcut_benchmark --out runs/shortcut                          # the verdict cells, seeds 0 1 2
    python -m bench.shortcut_benchmark --out runs/shortcut --part map --seeds 0     # the budget sweep (one seed)
    python -m bench.shortcut_benchmark --out runs/shortcut --part select --seeds 0  # W-DRO and JTT settings on val
    python -m bench.shortcut_benchmark --out runs/shortcut --part speed             # seconds per epoch, side by side
    python -m bench.shortcut_benchmark --report runs/shortcut [--asset assets/fairness/shortcut.json]
    python -m bench.shortcut_benchmark --out runs/shortcut --device cuda            # on a GPU

**Data**: ``fmnist-shortcut`` (:mod:`core.data.fmnist_shortcut`): 6,000 training images of
the full Fashion-MNIST, 99% of them with the cue of their own class and 1% with another's
(``conflicting``, the worst group); validation 2,000 and test 10,000 images, half and half;
and the cue-free test images. Two cues: the *mark* (one white pixel: 0.047 in the default
cost, 1.0 in L-inf) and the *pattern* (a faint border code of +0.1: 0.18 in the default
cost, 0.1 in L-inf).

**Protocol**: every method trains the same epochs with the same optimiser, schedule, batch,
seed and no flips (a flip moves the cue); the model of the last epoch is scored (no
selection on group labels). ``--part select`` chooses W-DRO's budget and inner steps and
JTT's identification epochs and weight on the *validation mean accuracy* (no group labels:
the validation split is half conflicting, which is stated). Only Group DRO reads group labels;
"Random cue" is ERM on the same images with every cue drawn at random (the augmentation that
removes the shortcut: the ceiling).

Each run writes ``OUT/<cue>-<method>-seed<k>.json`` (accuracies, seconds, seconds per
epoch) and is skipped when it exists, so a killed run resumes and shares run in parallel.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch

from bench.fairness_benchmark import interval  # the fair protocol's 95% t-interval over seeds
from core.data import cue_distance, load_group_dataset
from core.device import default_device
from core.evaluation import predict
from core.fairness import group_accuracy
from core.fileio import atomic_write
from core.services.fairness_demo import SHORTCUT_JTT, SHORTCUT_WDRO
from core.training import METHOD_CLASSES, TrainConfig, train_model

EPOCHS = 6  # chosen on validation mean accuracy of ERM (docs/fairness-training.md, "Shortcut cues")
N_TRAIN = 6_000
VERDICT: dict[str, dict] = {  # the cells the verdict rests on (3 seeds), in the order they are shown
    "ERM": dict(method="erm"),
    "W-DRO": dict(method="wdro", **SHORTCUT_WDRO),  # chosen by --part select (validation mean accuracy)
    "JTT": dict(method="jtt", **SHORTCUT_JTT),  # chosen by --part select (validation mean accuracy)
    "Group DRO": dict(method="group-dro"),
    "PGD-AT 0.1": dict(method="pgd-at", eps=0.1, pgd_steps=3),
    "Random cue": dict(method="erm", data=dict(aligned_fraction=0.1)),
}
SELECT: dict[str, dict] = {  # candidates judged on validation mean accuracy, seed 0
    **{f"W-DRO {b} x{k}": dict(method="wdro", budget=b, inner_steps=k) for b in (0.03, 0.05, 0.08) for k in (1, 5)},
    **{f"JTT T{t} l{u:g}": dict(method="jtt", jtt_epochs=t, jtt_upweight=u) for t in (1, 2, 3, 4, 5)
       for u in (5.0, 20.0, 50.0)},
}
MAP_BUDGETS = (0.0125, 0.025, 0.1, 0.2)  # W-DRO budgets swept against each cue (one seed; + the verdict's)
MAP_EPS = (0.025, 0.05, 0.2)  # PGD-AT radii swept against each cue (one seed; + the verdict's 0.1)
CUES = ("mark", "pattern")


def plan(part: str) -> dict[str, dict]:
    """The runs of a part: name -> settings."""
    if part == "verdict":
        return VERDICT
    if part == "select":
        return SELECT
    if part == "map":
        steps = VERDICT["W-DRO"]["inner_steps"]
        runs = {f"W-DRO {b}": dict(method="wdro", budget=b, inner_steps=steps) for b in MAP_BUDGETS}
        runs.update({f"PGD-AT {e}": dict(method="pgd-at", eps=e, pgd_steps=3) for e in MAP_EPS})
        return runs
    raise ValueError(part)


def scores(model, split) -> dict:
    x, y, g = split.tensors()
    pred = predict(model, x).cpu()
    return group_accuracy(pred, y, g, len(split.groups)).summary(split.groups)


def run_one(cue: str, name: str, settings: dict, seed: int, args) -> dict:
    """Train one method on one cue and seed; score it on validation, test and the cue-free test images."""
    settings = dict(settings)
    data_opts = dict(cue=cue, n_train=args.n_train, **settings.pop("data", {}))
    train = load_group_dataset("fmnist-shortcut", "train", seed=seed, **data_opts)
    common = {k: v for k, v in data_opts.items() if k != "aligned_fraction"}
    val = load_group_dataset("fmnist-shortcut", "val", seed=seed, **common)
    test = load_group_dataset("fmnist-shortcut", "test", seed=seed, **common)
    bare = load_group_dataset("fmnist-shortcut", "test", seed=seed, **{**common, "cue": "none"})
    cfg = TrainConfig(epochs=args.epochs, seed=seed, flip=False, dataset="fmnist-shortcut", **settings)
    start = time.perf_counter()
    result = train_model(None, train, cfg=cfg, device=args.device)
    seconds = time.perf_counter() - start
    return {
        "cue": cue, "method": name, "seed": seed, "labels_used": METHOD_CLASSES[cfg.method].reads_groups,
        "config": asdict(cfg), "data": data_opts,
        "seconds": round(seconds, 1),
        "seconds_per_epoch": round(statistics.mean(r.seconds for r in result.history), 2),
        "val": scores(result.model, val), "test": scores(result.model, test),
        "cue_free": scores(result.model, bare)["mean_accuracy"],
    }


def selected(folder: Path) -> dict[str, dict]:
    """The W-DRO and JTT settings of ``--part select`` with the best validation mean accuracy (no group labels)."""
    best: dict[str, tuple[float, dict]] = {}
    for row in load_runs(folder):
        kind = "W-DRO" if row["method"].startswith("W-DRO") else "JTT"
        score = row["val"]["mean_accuracy"]
        if kind not in best or score > best[kind][0]:
            keys = ("budget", "inner_steps") if kind == "W-DRO" else ("jtt_epochs", "jtt_upweight")
            best[kind] = (score, {"method": row["config"]["method"], **{k: row["config"][k] for k in keys}})
    return {kind: settings for kind, (_, settings) in best.items()}


def run_all(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = plan(args.part)
    if args.part != "select" and args.selected_from:
        choice = selected(Path(args.selected_from))
        print(f"chosen on validation mean accuracy: {choice}", flush=True)
        runs = {**runs, **{k: v for k, v in choice.items() if k in runs}}
        if args.part == "map" and "W-DRO" in choice:
            runs = {n: ({**r, "inner_steps": choice["W-DRO"]["inner_steps"]} if r["method"] == "wdro" else r)
                    for n, r in runs.items()}
    names = [n for n in runs if not args.only or n in args.only]
    for cue in args.cues:
        for seed in args.seeds:
            for name in names:
                path = out / f"{cue}-{slug(name)}-seed{seed}.json"
                if path.exists():
                    continue
                row = run_one(cue, name, runs[name], seed, args)
                atomic_write(path, json.dumps(row, indent=1).encode())
                t = row["test"]
                print(f"{cue:8s} {name:18s} seed {seed}: worst {t['worst_group_accuracy']:.3f} "
                      f"mean {t['mean_accuracy']:.3f} cue-free {row['cue_free']:.3f} "
                      f"val mean {row['val']['mean_accuracy']:.3f} ({row['seconds']:.0f} s, "
                      f"{row['seconds_per_epoch']:.1f} s/epoch)", flush=True)


def run_speed(args) -> None:
    """Seconds per epoch of ERM, fast W-DRO (1 and 5 inner steps) and naive W-DRO, one after the other."""
    train = load_group_dataset("fmnist-shortcut", "train", seed=0, cue="mark", n_train=args.speed_n_train)
    rows = {}
    for name, settings in (("ERM", dict(method="erm")),
                           ("W-DRO x1", dict(method="wdro", budget=0.08, inner_steps=1)),
                           ("W-DRO x5", dict(method="wdro", budget=0.08, inner_steps=5)),
                           ("W-DRO naive", dict(method="wdro-naive", budget=0.08, naive_steps=20, naive_rounds=5))):
        cfg = TrainConfig(epochs=args.speed_epochs, flip=False, **settings)
        result = train_model(None, train, cfg=cfg, device=args.device)
        rows[name] = statistics.mean(r.seconds for r in result.history)
    for name, s in rows.items():
        print(f"{name:12s} {s:7.2f} s/epoch  {s / rows['ERM']:6.2f}x ERM")


def fmt(pair: tuple[float, float | None], sign: bool = False) -> str:
    mean, half = pair
    text = f"{mean:+.1f}" if sign else f"{mean:.1f}"
    return text if half is None else f"{text} ± {half:.1f}"


def load_runs(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if p.name != "shortcut.json"]


def report(args) -> dict:
    """Tables of every run in the folder: absolute accuracies, and differences to ERM paired by seed."""
    runs = load_runs(Path(args.report))
    summary: dict = {"cues": {}, "epochs": None}
    for cue in CUES:
        mine = [r for r in runs if r["cue"] == cue]
        if not mine:
            continue
        dist = cue_distance(cue=cue, source="bundled")  # the 300 bundled validation images: the same on every machine
        erm = {r["seed"]: r for r in mine if r["method"] == "ERM"}
        print(f"\n## {cue}: switching it costs {dist['cost']:.3f} in the default cost and {dist['linf']:.2f} in L-inf "
              f"(test split, {len(erm)} ERM seeds; mean ± 95% t-interval half-width over seeds, points; differences "
              "paired by seed)\n")
        print("| method | seeds | aligned | conflicting | worst group | cue-free | worst vs ERM | cue-free vs ERM | "
              "s/epoch |")
        print("|---|---|---|---|---|---|---|---|---|")
        rows = {}
        names = dict.fromkeys(r["method"] for r in mine)
        order = {name: k for k, name in enumerate(VERDICT)}  # the verdict's methods first, in its order; then the sweeps
        for name in sorted(names, key=lambda n: (order.get(n, len(order)), n)):
            rs = sorted((r for r in mine if r["method"] == name), key=lambda r: r["seed"])
            acc = lambda r, grp: 100 * r["test"]["by_group"][grp]["accuracy"]  # noqa: E731
            aligned = interval([acc(r, "aligned") for r in rs])
            conflicting = interval([acc(r, "conflicting") for r in rs])
            worst = interval([100 * r["test"]["worst_group_accuracy"] for r in rs])
            free = interval([100 * r["cue_free"] for r in rs])
            paired = [r for r in rs if r["seed"] in erm]
            d_worst = interval([100 * (r["test"]["worst_group_accuracy"] - erm[r["seed"]]["test"]["worst_group_accuracy"])
                                for r in paired]) if paired else None
            d_free = interval([100 * (r["cue_free"] - erm[r["seed"]]["cue_free"]) for r in paired]) if paired else None
            spe = statistics.mean(r["seconds_per_epoch"] for r in rs)
            print(f"| {name} | {len(rs)} | {fmt(aligned)} | {fmt(conflicting)} | {fmt(worst)} | {fmt(free)} | "
                  f"{fmt(d_worst, True) if d_worst else '-'} | {fmt(d_free, True) if d_free else '-'} | {spe:.1f} |")
            rows[name] = {"seeds": [r["seed"] for r in rs], "aligned": aligned, "conflicting": conflicting,
                          "worst": worst, "cue_free": free,
                          "d_worst": d_worst, "d_cue_free": d_free, "seconds_per_epoch": spe,
                          "labels_used": rs[0]["labels_used"], "config": rs[0]["config"]}
            summary["epochs"] = rs[0]["config"]["epochs"]
        summary["cues"][cue] = {"distance": dist, "rows": {n: r for n, r in rows.items() if n in VERDICT},
                                "map": dose_response(mine, dist)}
    if args.asset:
        atomic_write(Path(args.asset), json.dumps(summary, indent=1).encode())
    return summary


def dose_response(runs: list[dict], dist: dict, seed: int = 0) -> dict:
    """The sweeps of one cue on one seed: W-DRO by budget over the switch's cost, PGD-AT by radius over its L-inf;
    each point the worst group and the cue-free accuracy minus ERM's on the same seed (points)."""
    erm = next((r for r in runs if r["method"] == "ERM" and r["seed"] == seed), None)
    sweeps: dict = {"W-DRO": [], "PGD-AT": []}
    if erm is None:
        return sweeps
    for run in runs:
        kind = run["config"]["method"]
        if run["seed"] != seed or kind not in ("wdro", "pgd-at") or run["data"].get("aligned_fraction"):
            continue
        kind, size = ("W-DRO", run["config"]["budget"]) if kind == "wdro" else ("PGD-AT", run["config"]["eps"])
        scale = dist["cost"] if kind == "W-DRO" else dist["linf"]
        sweeps[kind].append({
            "size": float(size), "ratio": float(size) / scale, "seeds": 1,
            "d_worst": [100 * (run["test"]["worst_group_accuracy"] - erm["test"]["worst_group_accuracy"]), None],
            "d_cue_free": [100 * (run["cue_free"] - erm["cue_free"]), None],
        })
    return {k: sorted(v, key=lambda point: point["size"]) for k, v in sweeps.items()}


def slug(name: str) -> str:
    return name.lower().replace(" ", "-").replace("/", "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("verdict", "select", "map", "speed"), default="verdict")
    parser.add_argument("--out", default="runs/shortcut")
    parser.add_argument("--report", help="print the tables of the runs in this folder (no training)")
    parser.add_argument("--asset", help="with --report: write the summary here (the fairness page reads it)")
    parser.add_argument("--cues", nargs="+", default=list(CUES), choices=list(CUES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", help="only these methods of the part")
    parser.add_argument("--selected-from", help="take W-DRO's and JTT's settings from the --part select runs here "
                        "(best validation mean accuracy) instead of the defaults above")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--n-train", type=int, default=N_TRAIN)
    parser.add_argument("--speed-n-train", type=int, default=2_000)
    parser.add_argument("--speed-epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default=None, help="cpu (default without CUDA) or cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.device = torch.device(args.device) if args.device else default_device()
    if args.report:
        report(args)
    elif args.part == "speed":
        run_speed(args)
    else:
        run_all(args)


if __name__ == "__main__":
    main()
