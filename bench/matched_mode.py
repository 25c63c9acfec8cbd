"""The compare page's W-DRO solver against the budget search it replaced (a benchmark, not a test).

    python -m bench.matched_mode [--model fmnist-cnn] [--n 64] [--threads 1]

On validation images (bundled test images 1500-1999, the images the solver's defaults were
chosen on), for PGD-L-inf radii 2, 4 and 8/255: the W-DRO worst case that fools as many
images as PGD, found two ways, side by side in one run:

* **search**: what the page did before: W-DRO with the margin loss and a distributional
  budget (online dual, 50 steps) swept over six budgets, then up to four bisection runs of
  the budget (:func:`core.services.compare.match_success`, ``at_least``), trimmed to exactly PGD's
  count by keeping the cheapest fooled images (the rest clean);
* **one pass**: :class:`core.attacks.CheapestFlips` (50 steps) and :func:`core.services.compare.keep_cheapest`.

Printed per radius: the DRO budget each needed (mean cost over the N images; lower is the
stronger worst case), HaarPSI and padded SSIM of the fooled images, runs and wall time.
"""

from __future__ import annotations

import argparse
import time

import torch

from core.attacks import WDRO, CheapestFlips, PGDLinf
from core.services.compare import correctly_classified, keep_cheapest, match_success
from core.data import load_fashion_mnist
from core.measures import DEFAULT_COST
from core.models import load_model

BUDGETS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)  # the sweep the page ran before


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fmnist-cnn")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = load_fashion_mnist("test", source="bundled").tensors()
    x, y = correctly_classified(model, x[1500:2000], y[1500:2000], args.n)
    n = len(x)
    print(f"{args.model}, {n} validation images, cost {DEFAULT_COST}, 50 steps, {args.threads} thread(s)")
    print(f"{'eps':>6} {'fooled':>7} | {'search: budget':>14} {'HaarPSI':>8} {'SSIM-p':>7} {'runs':>4} {'s':>5} "
          f"| {'one pass: budget':>16} {'HaarPSI':>8} {'SSIM-p':>7} {'s':>5} | ratio")

    def wdro(delta: float):
        return WDRO(model, budget=delta, steps=50, loss="margin")

    t = time.perf_counter()
    known = [(d, wdro(d)(x, y)) for d in BUDGETS]
    sweep_s = time.perf_counter() - t
    t = time.perf_counter()
    flips = CheapestFlips(model, steps=50)(x, y)
    pass_s = time.perf_counter() - t
    for eps in (2, 4, 8):
        k = int(PGDLinf(model, eps=eps / 255)(x, y).success.sum())
        t = time.perf_counter()
        match = match_success(wdro, k / n, x, y, known=known, at_least=True)
        search = keep_cheapest(match.result, k)
        search_s = sweep_s + time.perf_counter() - t
        one = keep_cheapest(flips, k)
        row = []
        for r in (search, one):
            fooled = r.success
            row += [float(r.cost.sum()) / n, float(r.measures["haarpsi"][fooled].mean()),
                    float(r.measures["ssim-padded"][fooled].mean())]
        print(f"{eps:>4}/255 {int(search.success.sum()):>3}/{int(one.success.sum()):<3} | {row[0]:>14.3g} {row[1]:>8.4f} "
              f"{row[2]:>7.4f} {len(BUDGETS) + match.runs:>4} {search_s:>5.1f} | {row[3]:>16.3g} {row[4]:>8.4f} "
              f"{row[5]:>7.4f} {pass_s:>5.1f} | budget {row[3] / row[0]:.2f}x, time {pass_s / search_s:.2f}x")


if __name__ == "__main__":
    main()
