"""Attack step cost, side by side in one run (a benchmark, not a test).

    python -m bench.attack_speed [--batch 256] [--threads 2] [--repeats 3] [--measures ssim ssim-padded]

On the bundled small CNN and a batch of bundled Fashion-MNIST test images (28x28), prints:

1. the time of one ascent step of PGD-L-inf and of the W-DRO attack with each measure
   as its transport cost, each as a ratio to one forward+backward pass of the model
   (the floor), plus W-DRO with piq's own SSIM to show what the separable SSIM saves;
2. the budget form with the online dual against the fixed-gamma (penalty) form with the
   same steps, and the bisection reference: time ratios and where the mean cost landed.

Per-step times are differences of whole attacks with two step counts, so the fixed work
of an attack call (clean and final forward passes) cancels out; measures of a result are
computed only when read, so no call here pays for them.
Each number is the median of ``--repeats`` interleaved runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from core.attacks import WDRO, PGDLinf
from core.compat import piq
from core.data import load_fashion_mnist
from core.measures import DEFAULT_COST, Measure, available_measures
from core.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared machine)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=0.01, help="DRO budget (mean 1 - SSIM)")
    parser.add_argument("--measures", nargs="+", help="time W-DRO with only these costs (default: every valid one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = load_model("fmnist-cnn")
    x, y = load_fashion_mnist("test", source="bundled").tensors()
    x, y = x[: args.batch], y[: args.batch]
    print(f"model fmnist-cnn, batch {tuple(x.shape)}, {args.threads} threads, median of {args.repeats}\n")

    floor = _median(args.repeats, lambda: _forward_backward(model, x, y, n=20)) / 20
    attacks = {"PGD-Linf": lambda steps: PGDLinf(model, eps=8 / 255, steps=steps)}
    for name in dict.fromkeys([*(args.measures or available_measures(x.shape)), DEFAULT_COST]):
        attacks[f"W-DRO {name}"] = lambda steps, name=name: WDRO(model, measure=name, gamma=10.0, steps=steps)
    attacks["W-DRO ssim (piq)"] = lambda steps: WDRO(model, measure=_PIQ_SSIM, gamma=10.0, steps=steps)

    per_step = _per_step(attacks, x, y, args.repeats)
    pgd = per_step["PGD-Linf"]
    print(f"{'attack step':<24}{'ms/step':>9}{'x floor':>9}{'x PGD':>8}")
    print(f"{'forward+backward':<24}{floor * 1e3:>9.1f}{1.0:>9.2f}{floor / pgd:>8.2f}")
    for name, t in per_step.items():
        print(f"{name:<24}{t * 1e3:>9.1f}{t / floor:>9.2f}{t / pgd:>8.2f}")
    ratio = per_step[f"W-DRO {DEFAULT_COST}"] / pgd
    print(f"\ntarget W-DRO step with the default cost ({DEFAULT_COST}) <= 1.15x PGD step: {ratio:.2f}x -> "
          f"{'met' if ratio <= 1.15 else 'NOT met'}")

    steps, delta = 100, args.budget
    forms = {
        "penalty (fixed gamma)": WDRO(model, gamma=1.0 / delta, steps=steps),
        "budget, online dual": WDRO(model, budget=delta, steps=steps),
        "budget, bisection (8 rounds)": WDRO(model, budget=delta, steps=steps, dual="bisection", bisection_rounds=8),
    }
    times = {name: [] for name in forms}
    landed = {}
    for repeat in range(args.repeats):
        for name, attack in forms.items():
            if repeat > 0 and attack.dual == "bisection" and attack.budget is not None:
                continue  # the reference is 8 full passes: timed once
            start = time.perf_counter()
            result = attack(x, y)
            times[name].append(time.perf_counter() - start)
            landed[name] = (float(result.cost.mean()) / delta, result.success_rate)
    base = statistics.median(times["penalty (fixed gamma)"])
    print(f"\nbudget form, delta = {delta} (mean 1 - SSIM), {steps} steps")
    print(f"{'form':<32}{'seconds':>9}{'x penalty':>11}{'cost/delta':>12}{'success':>9}")
    for name in forms:
        t = statistics.median(times[name])
        cost_ratio, success = landed[name]
        shown = f"{cost_ratio:.3f}" if name != "penalty (fixed gamma)" else "-"
        print(f"{name:<32}{t:>9.2f}{t / base:>11.2f}{shown:>12}{success:>9.2f}")
    online_t = statistics.median(times["budget, online dual"]) / base
    online_land = landed["budget, online dual"][0]
    met = online_t <= 1.5 and abs(online_land - 1) <= 0.05
    print(f"\ntarget online dual within 5% of delta at <= 1.5x penalty time: "
          f"{online_land:.3f} of delta, {online_t:.2f}x -> {'met' if met else 'NOT met'}")


def _piq_ssim_cost(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return 1.0 - piq.ssim(x_adv, x, data_range=1.0, reduction="none")


_PIQ_SSIM = Measure(
    name="ssim_piq", label="SSIM (piq)", cost_fn=_piq_ssim_cost, score_fn=_piq_ssim_cost,
    higher_is_better=False, score_range=(0.0, 1.0), cost_formula="1 - piq.ssim", min_size=11,
)


def _forward_backward(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, n: int) -> None:
    for _ in range(n):
        x_req = x.detach().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x_req), y)
        torch.autograd.grad(loss, x_req)


def _per_step(attacks: dict, x: torch.Tensor, y: torch.Tensor, repeats: int, short: int = 5, long: int = 25) -> dict:
    """Seconds per ascent step of each attack: (T(long) - T(short)) / (long - short), interleaved."""

    def run(make, steps: int) -> float:
        attack = make(steps)
        start = time.perf_counter()
        attack(x, y)
        return time.perf_counter() - start

    for make in attacks.values():
        run(make, short)  # warm-up
    diffs: dict[str, list[float]] = {name: [] for name in attacks}
    for _ in range(repeats):
        for name, make in attacks.items():
            diffs[name].append(run(make, long) - run(make, short))
    return {name: statistics.median(d) / (long - short) for name, d in diffs.items()}


def _median(repeats: int, fn) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    main()
