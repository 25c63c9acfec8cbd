"""The cheapest-flips solver against ALMA with the same cost, on validation images: which settings, and at what time.

    python -m bench.flips_solver [--model fmnist-cnn fmnist-resnet] [--n 150] [--steps 100] [--variants ...]

Each variant of :class:`core.attacks.CheapestFlips` and ALMA with the default cost attack the
same validation images (the first ``--n`` bundled test images in 1500-1999 that the model
classifies correctly; ``bench.matched_damage`` reports on 0-1499). Both are minimal attacks:
at a target success rate each keeps its cheapest ``ceil(target * n)`` flips (as the
matched-damage benchmark does), and the structural judges neither optimises are averaged
over them. Prints, per model, variant and target, the judges, the number of judges on which
the variant beats ALMA, and the wall time of one run. Nothing here is tuned on the images the
benchmark reports.

    python -m bench.flips_solver --part time [--model ...] [--n 150] [--steps 100] [--repeats 3]

times the minimal perceptual attacks of the matched-damage benchmark side by side in one process
(W-DRO's cheapest flips, ALMA with the same cost, DDN, PerC-AL; each at ``--steps`` on the same
images, and the flips at 80 % of the steps), the median of ``--repeats`` interleaved runs, as
ratios to the cheapest flips.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from core.attacks import ALMA, CheapestFlips
from core.attacks.cheapest_flips import HIGH_SUCCESS
from core.measures import DEFAULT_COST, get_measure
from core.services.compare import cheapest_fooled, correctly_classified

JUDGES = ("ssim", "ms_ssim_small", "haarpsi", "gmsd")  # structural, and optimised by neither attack
BASE: dict = {}  # the class's defaults; steps: --steps unless a variant sets them
VARIANTS = {
    "defaults (gamma 1000, lr 0.2, step 0.01)": {},
    "high success (step 0.1, lr 0.1)": HIGH_SUCCESS,
    "high success, 80 steps": {**HIGH_SUCCESS, "steps": 80},
    "step 1e-3 x steps, lr 10 / steps": {"scaled": True},
    "gamma 10": {"dual_lr": 0.2, "step_size": 0.01, **{"gamma": 10.0}},
    "gamma 100": {"dual_lr": 0.2, "step_size": 0.01, **{"gamma": 100.0}},
    "dual lr 0.1": {"dual_lr": 0.2, "step_size": 0.01, **{"dual_lr": 0.1}},
    "dual lr 0.05": {"dual_lr": 0.2, "step_size": 0.01, **{"dual_lr": 0.05}},
    "step 0.02": {"dual_lr": 0.2, "step_size": 0.01, **{"step_size": 0.02}},
    "step 0.05": {"dual_lr": 0.2, "step_size": 0.01, **{"step_size": 0.05}},
    "gamma 10, step 0.02": {"dual_lr": 0.2, "gamma": 10.0, "step_size": 0.02},
    "gamma 10, lr 0.1, step 0.02": {"gamma": 10.0, "dual_lr": 0.1, "step_size": 0.02},
    "step 0.1": {"dual_lr": 0.2, "step_size": 0.01, **{"step_size": 0.1}},
    "step 0.2": {"dual_lr": 0.2, "step_size": 0.01, **{"step_size": 0.2}},
    "step 0.05, gamma 1e4": {"dual_lr": 0.2, "step_size": 0.05, "gamma": 1e4},
    "step 0.1, gamma 1e4": {"dual_lr": 0.2, "step_size": 0.1, "gamma": 1e4},
    "step 0.05, lr 0.1": {"step_size": 0.05, "dual_lr": 0.1},
    "step 0.1, lr 0.1": {"step_size": 0.1, "dual_lr": 0.1},
    "step 0.05, lr 0.3": {"step_size": 0.05, "dual_lr": 0.3},
    "50 steps, step 0.1": {"dual_lr": 0.2, "steps": 50, "step_size": 0.1},
    "50 steps, step 0.1, lr 0.1": {"steps": 50, "step_size": 0.1, "dual_lr": 0.1},
    "50 steps, step 0.2, lr 0.1": {"steps": 50, "step_size": 0.2, "dual_lr": 0.1},
    "30 steps, step 0.1, lr 0.1": {"steps": 30, "step_size": 0.1, "dual_lr": 0.1},
    "step 0.2, lr 0.1": {"step_size": 0.2, "dual_lr": 0.1},
    "step 0.1, lr 0.05": {"step_size": 0.1, "dual_lr": 0.05},
}


def judged(result, target: float) -> dict[str, float] | None:
    k = math.ceil(target * result.success.numel() - 1e-9)
    if int(result.success.sum()) < k:
        return None
    kept = cheapest_fooled(result, k)
    return {j: float(result.score(j)[kept].double().mean()) for j in JUDGES}


def wins(ours: dict | None, theirs: dict | None) -> str:
    if ours is None:
        return "target not reached"
    if theirs is None:
        return f"{len(JUDGES)}/{len(JUDGES)} (ALMA misses the target)"
    better = sum((ours[j] > theirs[j]) if get_measure(j).higher_is_better else (ours[j] < theirs[j]) for j in JUDGES)
    return f"{better}/{len(JUDGES)}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["fmnist-cnn", "fmnist-resnet"])
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.9, 0.99])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="run only these")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--part", choices=("solver", "time"), default="solver")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from core.data import load_fashion_mnist
    from core.models import load_model

    x_all, y_all = load_fashion_mnist("test", source="bundled").tensors()
    for name in args.model:
        model = load_model(name).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        x, y = correctly_classified(model, x_all[1500:2000], y_all[1500:2000], args.n)
        if args.part == "time":
            timing(name, model, x, y, args.steps, args.repeats)
            continue
        print(f"\n{name}: {len(y)} validation images, cost {DEFAULT_COST}, {args.steps} steps; "
              f"judges {', '.join(JUDGES)} (mean over the kept flips)", flush=True)
        t0 = time.perf_counter()
        alma = ALMA(model, steps=args.steps, measure=DEFAULT_COST)(x, y)
        alma_s = time.perf_counter() - t0
        reference = {t: judged(alma, t) for t in args.targets}
        show("ALMA (same cost)", alma, alma_s, reference, args.targets)
        for label in args.variants or VARIANTS:
            settings = {**BASE, "steps": args.steps, **VARIANTS[label]}
            if settings.pop("scaled", False):  # a rule tried: both scaled with the number of steps
                settings.update(step_size=min(1e-3 * settings["steps"], 0.1), dual_lr=10 / settings["steps"])
            t0 = time.perf_counter()
            result = CheapestFlips(model, measure=DEFAULT_COST, **settings)(x, y)
            show(label, result, time.perf_counter() - t0, reference, args.targets)


def timing(name: str, model, x, y, steps: int, repeats: int) -> None:
    """Wall time of one run of each minimal perceptual attack, interleaved, median of ``repeats``."""
    from core.attacks import DDN, PerCAL

    attacks = {"wdro-flips": CheapestFlips(model, measure=DEFAULT_COST, steps=steps, **HIGH_SUCCESS),
               f"wdro-flips, {round(0.8 * steps)} st.": CheapestFlips(model, measure=DEFAULT_COST,
                                                                   steps=round(0.8 * steps), **HIGH_SUCCESS),
               f"alma-{DEFAULT_COST}": ALMA(model, steps=steps, measure=DEFAULT_COST),
               "ddn": DDN(model, steps=steps), "perc-al": PerCAL(model, steps=steps)}
    times: dict[str, list[float]] = {k: [] for k in attacks}
    for _ in range(repeats):
        for key, attack in attacks.items():
            t0 = time.perf_counter()
            attack(x, y)
            times[key].append(time.perf_counter() - t0)
    base = statistics.median(times["wdro-flips"])
    print(f"{name}: {len(y)} validation images, {steps} steps, {torch.get_num_threads()} thread(s), "
          f"median of {repeats} interleaved runs", flush=True)
    for key, values in times.items():
        median = statistics.median(values)
        print(f"  {key:<18} {median:7.2f} s   {median / base:5.2f}x the cheapest flips", flush=True)


def show(label: str, result, wall: float, reference: dict, targets) -> None:
    cells = []
    for t in targets:
        j = judged(result, t)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in j.items()) if j else "-"
        cells.append(f"{t:.0%}: {shown} [beats ALMA on {wins(j, reference[t]) if label[:4] != 'ALMA' else '-'}]")
    print(f"{label:<40} fooled {result.success_rate:6.1%}  {wall:5.1f} s | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
