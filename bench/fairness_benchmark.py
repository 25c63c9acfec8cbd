"""Fairness benchmark of DRO training under the fair protocol, on four minority renderings; fast vs naive W-DRO.

    python -m bench.fairness_benchmark --out runs/fair                        # every rendering, seeds 0 1 2
    python -m bench.fairness_benchmark --out runs/fair --renderings fog blur  # a share (run two at once on two cores)
    python -m bench.fairness_benchmark --report runs/fair [--asset assets/fairness/map.json]
    python -m bench.fairness_benchmark --part mechanism --save-dir runs/demo  # cost and loss per group, other costs
    python -m bench.fairness_benchmark --part speed                           # fast vs naive, same epochs
    python -m bench.fairness_benchmark --out runs/fair --device cuda          # on a GPU

**Protocol** (:mod:`core.training.protocol`). Per rendering of the minority group of
``fmnist-groups`` (12,000 training images, 5% minority; validation 2,000 and test
10,000 images, half minority): ERM (seed 0) is trained for 6, 12, 18, ... epochs until
its validation mean accuracy stops improving (+0.5 points); every method is then
trained for that many epochs with the same optimiser, schedule, batch and seed, on
seeds 0, 1, 2. Each run is scored on the test split three ways: its last epoch, its
best validation mean accuracy (no group labels), its best validation worst-group
accuracy (reads group labels). The last-epoch model is also attacked (a seeded 1,000
test images): W-DRO with the default cost (budget 0.03) and PGD L-inf 0.1. Only Group DRO
reads group labels in training. The distance of a rendering is the mean default cost
between a validation image and its rendering.

Each (rendering, seed) writes ``OUT/<rendering>-seed<k>.json`` when it is done, and runs
that exist are skipped, so a killed run continues and shares can run in parallel;
``--report`` reads them all and prints the tables (and writes the page's figure data).
``--save-dir DIR`` keeps seed 0's inverted runs (``DIR/<method>/``: the bundled demo's models).

**Speed.** ``wdro`` (fast) and ``wdro-naive``, same budget and seed, on 2,000 training
images in one process, one after the other: seconds per epoch, the ratio, and the
worst-group test accuracy each reaches (no attack is scored in either).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from core.attacks import WDRO, PGDLinf
from core.data import load_group_dataset
from core.data.fmnist_groups import RENDERINGS
from core.device import default_device
from core.evaluation import evaluate_fairness
from core.fileio import atomic_write
from core.measures import DEFAULT_COST, get_measure
from core.training import METHOD_CLASSES, TRAIN_BUDGET, TrainConfig, train_model
from core.training.protocol import EPOCH_CANDIDATES, SELECTIONS, choose_epochs, train_selected

METHODS: dict[str, dict] = {
    "ERM": dict(method="erm"),
    "W-DRO": dict(method="wdro", budget=TRAIN_BUDGET),  # the default cost (SSIM of padded images)
    "W-DRO + CVaR 0.2": dict(method="wdro", budget=TRAIN_BUDGET, cvar=0.2),  # this project's extension, not the paper's
    "W-DRO 0.01": dict(method="wdro", budget=0.01),  # a smaller budget, judged on validation (seed 0)
    "PGD-AT": dict(method="pgd-at", eps=0.1, pgd_steps=3),
    "Group DRO": dict(method="group-dro"),
}
LABELS_USED = {k for k, v in METHODS.items() if METHOD_CLASSES[v["method"]].reads_groups}  # read g in training
SAVE = {"ERM": "erm", "W-DRO": "wdro", "Group DRO": "group-dro"}  # what --save-dir keeps: the demo's models
ATTACK_BUDGET, ATTACK_STEPS, PGD_EPS, PGD_STEPS = TRAIN_BUDGET, 50, 0.1, 10
MECHANISM = {  # the worst case on a trained model under other costs and budgets: does any price the groups evenly?
    "ssim-padded 0.03 (the default)": dict(measure="ssim-padded", budget=0.03),
    "ssim-padded 0.01": dict(measure="ssim-padded", budget=0.01),
    "ssim-padded 0.1": dict(measure="ssim-padded", budget=0.1),
    "ssim (valid window) 0.03": dict(measure="ssim", budget=0.03),
    "l2-squared 1.0": dict(measure="l2-squared", budget=1.0),
    "ssim-padded 0.03 pointwise": dict(measure="ssim-padded", budget=0.03, budget_mode="pointwise"),
}


def rendering_distance(rendering: str, n: int = 500) -> float:
    """Mean default cost between a validation image and the same image rendered as the minority."""
    plain = load_group_dataset("fmnist-groups", "val", seed=0, eval_minority_fraction=0.0, n_val=n)
    rendered = load_group_dataset("fmnist-groups", "val", seed=0, eval_minority_fraction=1.0, n_val=n,
                                  minority=rendering)
    x0, x1 = plain.tensors()[0], rendered.tensors()[0]
    return float(get_measure(DEFAULT_COST).cost(x0, x1).mean())


def scores(model, test, bootstrap: int = 1000) -> dict:
    x, y, g = test.tensors(next(model.parameters()).device)
    return evaluate_fairness(model, x, y, g.cpu(), test.groups, bootstrap=bootstrap).clean.to_dict()


def robust(model, test, n: int, seed: int) -> dict:
    """Both attacks on ``n`` test images drawn with ``seed``: ``{attack: RobustFairness.to_dict()}``."""
    x, y, g = test.tensors(next(model.parameters()).device)
    index = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n]
    attacks = {"wdro": WDRO(model, budget=ATTACK_BUDGET, steps=ATTACK_STEPS),
               "pgd-linf": PGDLinf(model, eps=PGD_EPS, steps=PGD_STEPS)}
    return evaluate_fairness(model, x, y, g.cpu(), test.groups, attacks=attacks, attacked=index,
                             seed=seed).to_dict()["under_attack"]


def data_options(args, rendering: str) -> dict:
    """Loader options of one setting: a rendering of fmnist-groups, or the given data set as it is."""
    if args.dataset == "fmnist-groups":
        return {"n_train": args.n_train, "minority": rendering}
    options = {"root": args.root, "max_images": args.max_images, "size": args.size}
    return {k: v for k, v in options.items() if v is not None}


def settings(args) -> list[str]:
    """The renderings of fmnist-groups, or the one data set given (named after it)."""
    return list(args.renderings) if args.dataset == "fmnist-groups" else [args.dataset]


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def run_one(rendering: str, seed: int, epochs: int, args, name: str) -> dict:
    """Train one method on one setting and seed; score its three selections; attack its last epoch."""
    options = data_options(args, rendering)
    train, val, test = (load_group_dataset(args.dataset, split, seed=seed, **options)
                        for split in ("train", "val", "test"))
    counts = train.group_counts()
    cfg = TrainConfig(**{"epochs": epochs, "seed": seed, "dataset": args.dataset, **METHODS[name]})
    save = args.save_dir and rendering == settings(args)[0] and seed == args.seeds[0] and name in SAVE
    start = time.perf_counter()
    run = train_selected(train, val, cfg, device=args.device,
                         out_dir=f"{args.save_dir}/{SAVE[name]}" if save else None, half=True)
    seconds = time.perf_counter() - start
    row = {"rendering": rendering, "dataset": args.dataset, "seed": seed, "epochs": epochs, "method": name,
           "groups": list(test.groups), "minority": min(counts, key=counts.get),
           "config": cfg.__dict__, "seconds": round(seconds, 1),
           "history": [h.to_dict() for h in run.result.history],
           "selected": {sel: {"epoch": s.epoch, "test": scores(run.model(sel), test)}
                        for sel, s in run.selected.items()}}
    if args.attacked:
        row["under_attack"] = robust(run.model("last"), test, args.attacked, seed)
    last = row["selected"]["last"]["test"]
    print(f"{rendering:<8} seed {seed} {name:<17} mean {last['mean_accuracy']:.4f} worst "
          f"{last['worst_group_accuracy']:.4f} gap {last['gap']:.4f} ({seconds:.0f} s)", flush=True)
    return row


def run_protocol(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = [name for name in METHODS if not args.only or name in args.only]
    for rendering in settings(args):
        epochs_file = out / f"{rendering}-epochs.json"
        if not epochs_file.is_file():
            options = data_options(args, rendering)
            train, val = (load_group_dataset(args.dataset, split, seed=args.seeds[0], **options)
                          for split in ("train", "val"))
            epochs, trace = choose_epochs(train, val, cfg=TrainConfig(method="erm", dataset=args.dataset),
                                          candidates=tuple(args.epoch_candidates), device=args.device)
            distance = rendering_distance(rendering) if args.dataset == "fmnist-groups" else None
            atomic_write(epochs_file, json.dumps({"epochs": epochs, "trace": trace, "distance": distance}, indent=2))
        chosen = json.loads(epochs_file.read_text())
        print(f"{rendering}: ERM's validation mean accuracy stops improving after {chosen['epochs']} epochs "
              f"({chosen['trace']}); distance {chosen['distance']}", flush=True)
        for seed in args.seeds:
            for name in methods:
                path = out / f"{rendering}-seed{seed}-{slug(name)}.json"
                if path.is_file():
                    continue
                row = run_one(rendering, seed, chosen["epochs"], args, name)
                atomic_write(path, json.dumps(row, indent=1))


def interval(values: list[float]) -> tuple[float, float | None]:
    """Mean and half-width of the 95% t-interval over seeds (points); no half-width from one seed."""
    t95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}
    m = statistics.mean(values)
    if len(values) < 2:
        return m, None
    return m, t95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))


def cell(values: list[float]) -> str:
    m, h = interval(values)
    return f"{m:.1f}" if h is None else f"{m:.1f} +- {h:.1f}"


def plus(pair: tuple[float, float | None]) -> str:
    return f"{pair[0]:.1f}" if pair[1] is None else f"{pair[0]:.1f} +- {pair[1]:.1f}"


def report(args) -> dict:
    folder = Path(args.report)
    runs: dict[tuple[str, int], dict] = {}
    for path in sorted(folder.glob("*-seed*-*.json")):
        row = json.loads(path.read_text())
        run = runs.setdefault((row["rendering"], row["seed"]), {k: row[k] for k in (
            "rendering", "dataset", "seed", "epochs", "groups", "minority")} | {"methods": {}})
        run["methods"][row["method"]] = row
    order = {name: i for i, name in enumerate(METHODS)}
    for run in runs.values():
        run["methods"] = dict(sorted(run["methods"].items(), key=lambda item: order.get(item[0], len(order))))
    runs = list(runs.values())  # type: ignore[assignment]
    renderings = list(dict.fromkeys(run["rendering"] for run in runs))
    renderings.sort(key=lambda r: list(RENDERINGS).index(r) if r in RENDERINGS else len(RENDERINGS))
    summary: dict = {"renderings": {}, "selections": SELECTIONS, "labels_used": sorted(LABELS_USED),
                     "command": "python -m bench.fairness_benchmark", "attacks": {
                         "wdro": {"measure": DEFAULT_COST, "budget": ATTACK_BUDGET, "steps": ATTACK_STEPS},
                         "pgd-linf": {"eps": PGD_EPS, "steps": PGD_STEPS}}}
    for rendering in renderings:
        mine = [run for run in runs if run["rendering"] == rendering]
        meta = json.loads((folder / f"{rendering}-epochs.json").read_text())
        minority = mine[0].get("minority", mine[0]["groups"][1])
        entry = {"epochs": meta["epochs"], "epoch_trace": meta["trace"], "distance": meta["distance"],
                 "seeds": [run["seed"] for run in mine], "methods": {}}
        names = sorted({name for run in mine for name in run["methods"]}, key=lambda n: list(METHODS).index(n))
        erm_by_seed = {run["seed"]: run["methods"]["ERM"] for run in mine if "ERM" in run["methods"]}
        distance = "" if meta["distance"] is None else f"distance {meta['distance']:.4f}, "
        print(f"\n## {rendering} ({distance}{meta['epochs']} epochs, seeds "
              f"{entry['seeds']}; mean +- 95% t-interval half-width over seeds, points, test split)\n")
        print("| method | selection | mean | worst group | gap | minority | labels | seeds |")
        print("|---|---|---|---|---|---|---|---|")
        for name in names:
            rows = [run["methods"][name] for run in mine if name in run["methods"]]
            m: dict = {"seconds": statistics.mean(r["seconds"] for r in rows), "selected": {}, "under_attack": {},
                       "seeds": [r["seed"] for r in rows]}
            for sel in SELECTIONS:
                tests = [r["selected"][sel]["test"] for r in rows]
                vals = {k: [100 * t[k] for t in tests] for k in ("mean_accuracy", "worst_group_accuracy", "gap")}
                vals["minority"] = [100 * t["by_group"][minority]["accuracy"] for t in tests]
                m["selected"][sel] = {k: interval(v) for k, v in vals.items()}
                m["selected"][sel]["epochs"] = [r["selected"][sel]["epoch"] for r in rows]
                labels = "yes" if name in LABELS_USED or sel == "val-worst" else "no"
                print(f"| {name} | {sel} | {cell(vals['mean_accuracy'])} | {cell(vals['worst_group_accuracy'])} | "
                      f"{cell(vals['gap'])} | {cell(vals['minority'])} | {labels} | {len(rows)} |")
            for attack in rows[0].get("under_attack", {}):
                groups = mine[0]["groups"]
                per = {grp: [100 * r["under_attack"][attack]["robust"]["by_group"][grp]["accuracy"] for r in rows]
                       for grp in groups}
                clean = {grp: [100 * r["under_attack"][attack]["clean"]["by_group"][grp]["accuracy"] for r in rows]
                         for grp in groups}
                worst = [100 * r["under_attack"][attack]["robust"]["worst_group_accuracy"] for r in rows]
                cost = {grp: statistics.mean(r["under_attack"][attack]["mean_cost"][grp] for r in rows)
                        for grp in groups}
                m["under_attack"][attack] = {"robust": {g_: interval(v) for g_, v in per.items()},
                                             "clean": {g_: interval(v) for g_, v in clean.items()},
                                             "worst": interval(worst), "mean_cost": cost}
            pairs = [(r, erm_by_seed[r["seed"]]) for r in rows if r["seed"] in erm_by_seed]
            if pairs and name != "ERM":  # paired by seed: the same data, order and start
                m["vs_erm"] = {sel: {k: interval([100 * (r["selected"][sel]["test"][k] - e["selected"][sel]["test"][k])
                                                  for r, e in pairs])
                                     for k in ("mean_accuracy", "worst_group_accuracy")} for sel in SELECTIONS}
            hist = [r["history"][-1] for r in rows]
            if hist[0].get("cost_by_group"):
                m["train_cost_by_group"] = {grp: statistics.mean(h["cost_by_group"][grp] for h in hist)
                                            for grp in mine[0]["groups"]}
                m["train_cost_trace"] = [[h["cost_by_group"][grp] for grp in mine[0]["groups"]]
                                         for h in rows[0]["history"]]  # first seed, per epoch
            m["train_loss_by_group"] = {grp: statistics.mean(h["loss_by_group"][grp] for h in hist)
                                        for grp in mine[0]["groups"]}
            entry["methods"][name] = m
        if any(m["under_attack"] for m in entry["methods"].values()):
            print("\nUnder attack (last epoch, 1,000 test images): accuracy per group, clean -> attacked")
            print("| method | attack | " + " | ".join(mine[0]["groups"]) + " | worst group attacked |")
            print("|---|---|" + "---|" * len(mine[0]["groups"]) + "---|")
            for name, m in entry["methods"].items():
                for attack, a in m["under_attack"].items():
                    cells = [f"{a['clean'][grp][0]:.1f} -> {plus(a['robust'][grp])}" for grp in mine[0]["groups"]]
                    print(f"| {name} | {attack} | " + " | ".join(cells) + f" | {plus(a['worst'])} |")
        summary["renderings"][rendering] = entry
    if args.asset:
        Path(args.asset).write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def run_mechanism(args) -> None:
    """Per group, on seed 0's inverted-rendering models (``--save-dir``): the worst case's cost, the clean and
    worst-case loss, and the loss it gains per unit of cost, under each of :data:`MECHANISM`."""
    from core.training import load_trained

    test = load_group_dataset("fmnist-groups", "test", seed=0)
    x, y, g = test.tensors(args.device)
    index = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[: args.attacked or 1000]
    x, y, g = x[index], y[index], g[index]
    groups = test.groups
    print(f"seed 0, inverted minority, {len(y)} test images (a seeded sample); per group: "
          + " / ".join(groups))
    print("| model | worst case | cost spent | L2 moved | clean loss | worst-case loss | loss gained per unit cost |")
    print("|---|---|---|---|---|---|---|")
    for model_name in ("erm", "wdro"):
        model, _ = load_trained(Path(args.save_dir) / model_name, device=args.device)
        for label, kw in MECHANISM.items():
            result = WDRO(model, steps=ATTACK_STEPS, **kw)(x, y, seed=0)
            with torch.no_grad():
                clean = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
                worst = torch.nn.functional.cross_entropy(model(result.x_adv), y, reduction="none")
            moved = (result.x_adv - x).flatten(1).norm(dim=1)  # L2 size of the perturbation, in pixels
            means = [[float(v[g == k].mean()) for k in range(len(groups))] for v in (result.cost, moved, clean, worst)]
            gained = [(w - c) / max(d, 1e-12) for d, c, w in zip(means[0], means[2], means[3])]  # ratio of the means
            cells = [" / ".join(f"{v:.3g}" for v in row) for row in (*means, gained)]
            print(f"| {model_name} | {label} | " + " | ".join(cells) + " |", flush=True)


def run_speed(args) -> dict:
    seed = args.seeds[0]
    train = load_group_dataset("fmnist-groups", "train", seed=seed, n_train=args.speed_n_train)
    test = load_group_dataset("fmnist-groups", "test", seed=seed)
    out = {}
    for method in ("wdro", "wdro-naive"):
        cfg = TrainConfig(method=method, epochs=args.speed_epochs, seed=seed, budget=TRAIN_BUDGET,
                          naive_steps=args.naive_steps, naive_rounds=args.naive_rounds)
        result = train_model(None, train, cfg=cfg, device=args.device)
        per_epoch = [h.seconds for h in result.history]
        row = scores(result.model, test, bootstrap=0)
        row.update(seconds_per_epoch=statistics.mean(per_epoch), epochs=per_epoch,
                   cost_mean=result.history[-1].cost_mean, cost_by_group=result.history[-1].cost_by_group)
        out[method] = row
        by_group = " / ".join(f"{v:.4f}" for v in row["cost_by_group"].values())
        print(f"{method:<11} {row['seconds_per_epoch']:7.2f} s/epoch  worst-group {row['worst_group_accuracy']:.4f}  "
              f"mean {row['mean_accuracy']:.4f}  gap {row['gap']:.4f}  last-epoch cost {row['cost_mean']:.4f} "
              f"({' / '.join(row['cost_by_group'])}: {by_group})", flush=True)
    ratio = out["wdro-naive"]["seconds_per_epoch"] / out["wdro"]["seconds_per_epoch"]
    diff = 100 * (out["wdro"]["worst_group_accuracy"] - out["wdro-naive"]["worst_group_accuracy"])
    print(f"fast is {ratio:.1f}x faster per epoch; worst-group accuracy fast - naive = {diff:+.1f} points "
          f"({args.speed_n_train} training images, {args.speed_epochs} epochs, naive = {args.naive_steps} steps x "
          f"{args.naive_rounds} bisection rounds per batch, fast = 1 step + 1 free step per batch)")
    out["ratio"] = ratio
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("protocol", "mechanism", "speed"), default="protocol")
    parser.add_argument("--out", default="runs/fair", help="protocol / mechanism: one JSON per run here")
    parser.add_argument("--report", help="print the tables of the runs in this folder (no training)")
    parser.add_argument("--asset", help="with --report: write the summary (the fairness page's figure) here")
    parser.add_argument("--dataset", default="fmnist-groups", help="a group data set (celeba, csv: give --root)")
    parser.add_argument("--root", help="the data set's folder (CelebA, CSV)")
    parser.add_argument("--max-images", type=int, help="CelebA: read at most this many images per split")
    parser.add_argument("--size", type=int, help="CelebA: image side in pixels (default 64)")
    parser.add_argument("--epoch-candidates", type=int, nargs="+", default=list(EPOCH_CANDIDATES),
                        help="the epoch counts ERM is trained for, in turn, to choose the epochs")
    parser.add_argument("--renderings", nargs="+", default=list(RENDERINGS), choices=list(RENDERINGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", choices=list(METHODS), help="protocol: only these methods")
    parser.add_argument("--n-train", type=int, default=12_000)
    parser.add_argument("--attacked", type=int, default=1000, help="test images attacked per model (0: none)")
    parser.add_argument("--save-dir", help="keep seed 0's inverted ERM, W-DRO and Group DRO runs here "
                                           "(mechanism: read them from here)")
    parser.add_argument("--speed-n-train", type=int, default=2_000)
    parser.add_argument("--speed-epochs", type=int, default=12)
    parser.add_argument("--naive-steps", type=int, default=20)
    parser.add_argument("--naive-rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default=None, help="cpu (default without CUDA) or cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.device = default_device(args.device)
    if args.report:
        report(args)
    elif args.part == "protocol":
        run_protocol(args)
    elif args.part == "mechanism":
        run_mechanism(args)
    else:
        run_speed(args)


if __name__ == "__main__":
    main()
