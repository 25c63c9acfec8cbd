"""Fairness benchmark of DRO training on fmnist-groups, and fast vs naive W-DRO side by side.

    python -m bench.fairness_benchmark [--seeds 0 1 2] [--epochs 6] [--n-train 12000] [--json results.json]
    python -m bench.fairness_benchmark --part speed      # only fast vs naive
    python -m bench.fairness_benchmark --part table      # only the 3-seed table
    python -m bench.fairness_benchmark --part table --seeds 0 --epochs 12 --only ERM \
        --config 'W-DRO-SSIM mixed={"method": "wdro", "clean_weight": 0.5}'   # other settings

**Table.** For each seed, trains ERM, PGD-AT (L-inf 0.1), Group DRO, W-DRO-SSIM and W-DRO
with MS-SSIM (3 px window, 3 scales) as the cost on ``fmnist-groups`` train (``n_train``
images, 5% inverted), each for ``epochs`` epochs with the same optimiser and seed, and
reports mean accuracy, worst-group accuracy and the gap on the **test** split (10,000
images, half inverted, or the bundled 500). Only Group DRO reads group labels; every
method returns its last-epoch model (no model selection).

**Speed.** Trains ``wdro`` (fast) and ``wdro-naive`` with the same budget and seed on a
smaller training set (``--speed-n-train``, default 2,000) in one process, one after the
other, and prints the seconds per epoch of each, the ratio, and the worst-group test
accuracy each reaches.

Hyper-parameters are those of :class:`core.training.TrainConfig` unless given here; they
are printed with the results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from core.data import load_group_dataset
from core.evaluation import predict
from core.fairness import group_accuracy
from core.training import TrainConfig, train_model

METHODS = {
    "ERM": dict(method="erm"),
    "PGD-AT (Linf 0.1)": dict(method="pgd-at", eps=0.1, pgd_steps=3),
    "Group DRO": dict(method="group-dro"),
    "W-DRO-SSIM": dict(method="wdro", metric="ssim", budget=0.03),
    "W-DRO-MS-SSIM": dict(method="wdro", metric="ms_ssim_small", budget=0.03),
}

SAVE = {"ERM": "erm", "W-DRO-SSIM": "wdro-ssim"}  # what --save-dir keeps (first seed): the bundled demo's models


def test_scores(model, test) -> dict:
    x, y, g = test.tensors()
    pred = predict(model, x)
    acc = group_accuracy(pred, y, g, len(test.groups))
    return {"mean": acc.mean_accuracy, "worst": acc.worst_group_accuracy, "gap": acc.gap,
            "by_group": dict(zip(test.groups, acc.accuracy))}


def run_table(args) -> dict:
    methods = {name: kw for name, kw in METHODS.items() if args.only is None or name in args.only}
    for item in args.config:
        name, _, spec = item.partition("=")
        methods[name.strip()] = json.loads(spec)
    results: dict = {name: [] for name in methods}
    for seed in args.seeds:
        options = {"n_train": args.n_train}
        train = load_group_dataset("fmnist-groups", "train", seed=seed, **options)
        test = load_group_dataset("fmnist-groups", "test", seed=seed)
        for name, kw in methods.items():
            cfg = TrainConfig(**{"epochs": args.epochs, "seed": seed, **kw})
            start = time.perf_counter()
            save = args.save_dir and seed == args.seeds[0] and name in SAVE
            out_dir = f"{args.save_dir}/{SAVE[name]}" if save else None
            result = train_model(None, train, cfg=cfg, out_dir=out_dir, half=True)
            row = test_scores(result.model, test)
            row.update(seed=seed, seconds=round(time.perf_counter() - start, 1))
            if result.history[-1].cost_by_group is not None:
                row["cost_by_group"] = result.history[-1].cost_by_group
            results[name].append(row)
            print(f"seed {seed} {name:<18} mean {row['mean']:.4f} worst {row['worst']:.4f} gap {row['gap']:.4f} "
                  f"({row['seconds']:.0f} s, train source {train.source}, {len(train)} images)", flush=True)
    print(f"\nfmnist-groups test, {args.epochs} epochs, {args.n_train} training images, seeds {args.seeds} "
          "(mean +- sd over seeds, points)")
    print(f"| {'method':<18} | mean acc | worst-group acc | gap |")
    print("|---|---|---|---|")
    for name, rows in results.items():
        cells = []
        for key in ("mean", "worst", "gap"):
            values = [100 * r[key] for r in rows]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.1f} +- {sd:.1f}")
        print(f"| {name:<18} | " + " | ".join(cells) + " |")
    return results


def run_speed(args) -> dict:
    seed = args.seeds[0]
    train = load_group_dataset("fmnist-groups", "train", seed=seed, n_train=args.speed_n_train)
    test = load_group_dataset("fmnist-groups", "test", seed=seed)
    out = {}
    for method in ("wdro", "wdro-naive"):
        cfg = TrainConfig(method=method, epochs=args.speed_epochs, seed=seed, budget=0.03,
                          naive_steps=args.naive_steps, naive_rounds=args.naive_rounds)
        result = train_model(None, train, cfg=cfg)
        per_epoch = [h.seconds for h in result.history]
        row = test_scores(result.model, test)
        row.update(seconds_per_epoch=statistics.mean(per_epoch), epochs=per_epoch,
                   cost_mean=result.history[-1].cost_mean)
        out[method] = row
        print(f"{method:<11} {row['seconds_per_epoch']:7.1f} s/epoch  worst-group {row['worst']:.4f}  "
              f"mean {row['mean']:.4f}  gap {row['gap']:.4f}  last-epoch cost {row['cost_mean']:.4f}", flush=True)
    ratio = out["wdro-naive"]["seconds_per_epoch"] / out["wdro"]["seconds_per_epoch"]
    diff = 100 * (out["wdro"]["worst"] - out["wdro-naive"]["worst"])
    print(f"fast is {ratio:.1f}x faster per epoch; worst-group accuracy fast - naive = {diff:+.1f} points "
          f"({args.speed_n_train} training images, {args.speed_epochs} epochs, naive = {args.naive_steps} steps x "
          f"{args.naive_rounds} bisection rounds per batch, fast = 1 step + 1 free step per batch)")
    out["ratio"] = ratio
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--n-train", type=int, default=12_000)
    parser.add_argument("--part", choices=("all", "table", "speed"), default="all")
    parser.add_argument("--speed-n-train", type=int, default=2_000)
    parser.add_argument("--speed-epochs", type=int, default=8)
    parser.add_argument("--naive-steps", type=int, default=20)
    parser.add_argument("--naive-rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", choices=list(METHODS),
                        help="table: only these of the built-in methods (none: only the --config rows)")
    parser.add_argument("--config", action="append", default=[], metavar="NAME=JSON",
                        help='table: one more row, TrainConfig fields as JSON, e.g. \'mixed={"method": "wdro", '
                             '"clean_weight": 0.5}\' (repeatable)')
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--save-dir", help="keep the first seed's ERM and W-DRO-SSIM runs here (erm/, wdro-ssim/)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"args": vars(args)}
    if args.part in ("all", "table"):
        results["table"] = run_table(args)
    if args.part in ("all", "speed"):
        results["speed"] = run_speed(args)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
