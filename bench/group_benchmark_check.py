"""Check that plain ERM leaves a worst-group gap on the default group benchmark (a check, not a test).

    python -m bench.group_benchmark_check [--seeds 0 1 2] [--epochs 6]

Trains the bundled architecture (``SmallCNN`` behind :class:`core.models.Normalized`) with
plain cross-entropy on ``load_group_dataset("fmnist-groups", "train", seed=s)`` (12,000
images, 5% with inverted contrast) and prints the per-group accuracy on the held-out
validation and test splits (half of each inverted) for each seed. The requirement is a
worst-group gap of at least 5 points on held-out data, with the minority still learned.

Hyper-parameters follow :mod:`core.zoo` (AdamW 2e-3, one-cycle, weight decay 5e-4, random
horizontal flips, batch 128), with fewer epochs because the training split is a fifth of
Fashion-MNIST.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from core.fairness import fairness_report
from core.groups import load_group_dataset
from core.models import Normalized, get_model_spec


def train_erm(x, y, *, epochs: int, seed: int, batch_size: int = 128, lr: float = 2e-3) -> torch.nn.Module:
    """Plain cross-entropy training of the bundled SmallCNN (seeded)."""
    torch.manual_seed(seed)
    spec = get_model_spec("fmnist-cnn")
    model = Normalized(spec.build(), spec.mean, spec.std)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps = (len(x) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.15)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(steps):
            idx = order[i * batch_size : (i + 1) * batch_size]
            xb, yb = x[idx], y[idx]
            flip = torch.rand(len(idx), generator=generator) < 0.5
            xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(-1), xb)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(xb).argmax(1) for xb in x.split(1000)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--source", default="auto")
    parser.add_argument("--minority-fraction", type=float, default=0.05)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = {"source": args.source, "minority_fraction": args.minority_fraction}
    gaps = {"val": [], "test": []}
    print(f"ERM, SmallCNN, {args.epochs} epochs, minority fraction {args.minority_fraction:.0%} in train\n")
    columns = ("seed", "split", "n", "standard", "inverted", "mean", "worst", "gap")
    print(" ".join(f"{c:>{w}}" for c, w in zip(columns, (4, 5, 6, 9, 9, 7, 7, 6))) + "   gap 95% CI  train s")
    for seed in args.seeds:
        train = load_group_dataset("fmnist-groups", "train", seed=seed, **options)
        x, y, _ = train.tensors()
        start = time.perf_counter()
        model = train_erm(x, y, epochs=args.epochs, seed=seed)
        seconds = time.perf_counter() - start
        for split in ("val", "test"):
            data = load_group_dataset("fmnist-groups", split, seed=seed, **options)
            xs, ys, gs = data.tensors()
            report = fairness_report(predict(model, xs), ys, gs, data.groups, bootstrap=1000, seed=seed)
            acc = {name: row["accuracy"] for name, row in report.by_group.items()}
            gaps[split].append(report.gap)
            print(
                f"{seed:>4} {split:>5} {len(ys):>6} {acc['standard']:>9.4f} {acc['inverted']:>9.4f} "
                f"{report.mean_accuracy:>7.4f} {report.worst_group_accuracy:>7.4f} {report.gap:>6.4f}"
                f"  [{report.ci['gap'][0]:.3f}, {report.ci['gap'][1]:.3f}]  {seconds:.0f}"
            )
    print()
    for split, values in gaps.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        mean = 100 * statistics.mean(values)
        print(f"{split}: gap {mean:.1f} +- {100 * spread:.1f} points (mean +- sd over {len(values)} seeds)")


if __name__ == "__main__":
    main()
