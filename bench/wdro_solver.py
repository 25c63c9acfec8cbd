"""Does the W-DRO attack spend its budget where it buys damage? Solver settings on validation images.

    python -m bench.wdro_solver [--model fmnist-cnn] [--n 256] [--budgets 0.003 0.01]

Each variant of the solver (loss, steps, step size, random start, dual aim) attacks the same
validation images (the first ``--n`` bundled test images in 1500-1999 that the model
classifies correctly; the benchmark reports on 0-1499) with the default cost and the same
distributional budget. The budget holds for every variant (the final line search), so at
equal mean cost the better solver fools more images. Prints, per budget and variant, the
success rate, the mean cost spent, the share of the cost spent on the images it fooled, and
the wall time.
"""

from __future__ import annotations

import argparse
import time


from core.attacks import WDRO
from core.services.compare import correctly_classified
from core.measures import DEFAULT_COST

BASE = dict(steps=100, step_size=0.01, init_noise=1e-3, loss="ce", dual_aim=1.2)
VARIANTS = {
    "defaults (CE, 100 steps)": {},
    "margin loss": {"loss": "margin"},
    "50 steps": {"steps": 50},
    "200 steps": {"steps": 200},
    "step 0.005": {"step_size": 0.005},
    "step 0.02": {"step_size": 0.02},
    "random start 0.01": {"init_noise": 0.01},
    "aim 1.0": {"dual_aim": 1.0},
    "aim 1.5": {"dual_aim": 1.5},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fmnist-cnn")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.003, 0.01])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="run only these")
    args = parser.parse_args(argv)

    from core.data import load_fashion_mnist
    from core.models import load_model

    model = load_model(args.model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = load_fashion_mnist("test", source="bundled").tensors()
    x, y = correctly_classified(model, x[1500:2000], y[1500:2000], args.n)
    print(f"{args.model}, {len(y)} validation images, cost {DEFAULT_COST}, distributional budget")
    print(f"{'budget':>7}  {'variant':<26} {'fooled':>7} {'mean cost':>10} {'on fooled':>10} {'wall s':>7}")
    for budget in args.budgets:
        for name in args.variants or VARIANTS:
            settings = {**BASE, **VARIANTS[name]}
            t0 = time.perf_counter()
            result = WDRO(model, measure=DEFAULT_COST, budget=budget, **settings)(x, y, seed=0)
            wall = time.perf_counter() - t0
            cost = result.cost
            share = float(cost[result.success].sum() / cost.sum().clamp_min(1e-12))
            print(f"{budget:>7g}  {name:<26} {result.success_rate:>7.1%} {float(cost.mean()):>10.5f} {share:>10.1%} "
                  f"{wall:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
