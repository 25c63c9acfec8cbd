"""Imperceptibility at matched damage: every attack tuned to the same attack success rate.

    python -m bench.matched_damage [--model fmnist-cnn ...] [--n 1000] [--targets 0.9 0.99] [--out DIR]

For each classifier, on the first ``--n`` bundled Fashion-MNIST test images it classifies
correctly (so every attack starts from 0 % success), each attack's budget is tuned until it
fools each target fraction of them, and every attack is then judged on the same perceptual
measures, including measures it did not optimise.

Matching, the same rule for every attack:

* **Budget attacks** (FGSM, PGD-L-inf, PGD-L2, W-DRO): a log-bisection of the budget
  (``core.services.compare.match_success``), first on a 200-image subset to find the bracket, then
  ``--rounds`` runs on all images, keeping the smallest budget that reaches the target.
* **Minimal attacks** (DDN, ALMA-SSIM, PerC-AL, and W-DRO's one-pass solver ``wdro-flips``,
  whose cheapest flips give the distributional worst case at every budget): one run without a budget; the budget that
  reaches the target is the target-quantile of the per-image minimal distances (running them
  with that ``max_cost`` records the same images: their trajectory does not depend on it).
* Then each attack keeps exactly ``ceil(target * n)`` fooled images, those with the lowest
  cost in its own measure, and returns the others clean (an attacker who needs only that
  success rate would do the same). The judging measures are averaged over these fooled
  images: the same number of images for every attack.

Writes ``DIR/results.json``, ``DIR/table.md``, ``DIR/frontier.html`` (+ ``.png`` when kaleido
is installed) and ``DIR/examples.png`` (clean images, each attack's image at the first target
and its difference x5). Prints the tables and each attack's wall time for one run on the
``--n`` images. ``--images DIR --model resnet18`` runs it on ImageNet photos (labels: the
model's own clean predictions) when the torchvision weights are present.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from core.attacks import ALMA, DDN, PGDL2, WDRO, Attack, AttackResult, CheapestFlips, PerCAL, PGDLinf
from core.attacks.cheapest_flips import HIGH_SUCCESS
from core.services.compare import benchmark_rows, cheapest_fooled, correctly_classified, match_success
from core.evaluation import predict
from core.measures import DEFAULT_COST, Measure, available_measures, evaluate_measures, get_measure

JUDGES = ("ssim", "ssim-padded", "ms_ssim_small", "haarpsi", "gmsd", "fsim", "ciede2000", "psnr", "l2", "linf")
# Disjoint ranges of the 2,000 bundled test images: "val" chooses defaults, "a" and "b" report results.
SPLITS = {"all": (0, 2000), "a": (0, 750), "b": (750, 1500), "val": (1500, 2000)}
SUBSET = 200  # images of the coarse bracket search
COARSE_ROUNDS = 5


@dataclass(frozen=True)
class Entry:
    """One attack of the benchmark.

    Attributes:
        key: Name in the tables.
        optimises: The measure the attack's cost or budget is in.
        make: ``(model, budget) -> Attack``; minimal attacks get ``None`` (no budget).
        bracket: Budget search range of a budget attack.
        minimal: One unbudgeted run, thresholded afterwards.
        note: Settings, for the table's footnote.
    """

    key: str
    optimises: str
    make: Callable[[nn.Module, float | None], Attack]
    bracket: tuple[float, float] = (1e-4, 1.0)
    minimal: bool = False
    note: str = ""


@dataclass
class Outcome:
    """An attack at one target: the chosen run, the kept images and what it cost."""

    entry: Entry
    target: float
    param: float
    result: AttackResult
    kept: torch.Tensor  # (N,) bool, the fooled images that count
    wall_s: float  # one run on all images
    search_s: float  # every run of the search together
    runs: int
    stats: dict[str, dict[str, float]] = field(default_factory=dict)


def entries(steps: int, linf_cap: float, investigate: bool) -> list[Entry]:
    """The attacks: the main comparison, then (``investigate``) W-DRO variants for the Target's questions."""
    wdro = dict(measure="ssim", steps=steps, loss="margin", kappa=0.0)
    default = {**wdro, "measure": DEFAULT_COST}
    main = [
        Entry("pgd-linf", "linf", lambda m, e: PGDLinf(m, eps=e, steps=10), (1e-3, 1.0),
              note="10 steps, step 2.5 eps / 10, random start, CE (Madry et al.)"),
        Entry("pgd-l2", "l2", lambda m, e: PGDL2(m, eps=e, steps=10), (1e-2, 20.0), note="10 steps, CE"),
        Entry("wdro-flips", DEFAULT_COST,
              lambda m, _: CheapestFlips(m, steps=steps, measure=DEFAULT_COST, **HIGH_SUCCESS),
              minimal=True, note=f"W-DRO with the default cost solved at every budget from one pass: each image's "
                                 f"cheapest flip (core.attacks.CheapestFlips, {steps} steps, step 0.1, dual_lr 0.1: "
                                 "the settings chosen for 90-99 % on the validation images, bench.flips_solver)"),
        Entry(f"wdro-{DEFAULT_COST}", DEFAULT_COST, lambda m, d: WDRO(m, budget=d, **default), (1e-5, 0.5),
              note=f"the same W-DRO by bisecting the distributional budget over whole runs (online dual, {steps} "
                   "Adam steps, margin loss), kept for comparison"),
        Entry("wdro-ssim", "ssim", lambda m, d: WDRO(m, budget=d, **wdro), (1e-5, 0.5),
              note="the old default cost, valid-window SSIM (blind 5-px frame); otherwise the same"),
        Entry("ddn", "l2", lambda m, _: DDN(m, steps=steps), minimal=True, note=f"{steps} steps (Rony et al. 2019)"),
        Entry("alma-ssim", "ssim", lambda m, _: ALMA(m, steps=steps), minimal=True,
              note=f"{steps} steps, alpha 0.5, lr_init 0.1 (Rony et al. 2021; adv_lib's start)"),
        Entry(f"alma-{DEFAULT_COST}", DEFAULT_COST, lambda m, _: ALMA(m, steps=steps, measure=DEFAULT_COST),
              minimal=True, note="ALMA with W-DRO's default cost as its distance"),
        Entry("perc-al", "ciede2000", lambda m, _: PerCAL(m, steps=steps), minimal=True,
              note=f"{steps} steps (Zhao et al. 2020)"),
    ]
    if not investigate:
        return main
    mix = ssim_haarpsi_measure()
    padded_mix = ssim_haarpsi_measure("ssim-padded")
    return main + [
        Entry(f"wdro-{DEFAULT_COST}-ce", DEFAULT_COST, lambda m, d: WDRO(m, budget=d, **{**default, "loss": "ce"}),
              (1e-5, 0.5), note="the default cost with the cross-entropy loss (the DRO objective) instead of the margin"),
        Entry("wdro-ssim-pointwise", "ssim", lambda m, d: WDRO(m, budget=d, budget_mode="pointwise", **wdro),
              (1e-5, 0.5), note="every image held to delta (budget allocation)"),
        Entry(f"wdro-ssim-linf{linf_cap:g}", "ssim",
              lambda m, d: WDRO(m, budget=d, linf_cap=linf_cap, **wdro), (1e-5, 0.5),
              note=f"distributional, ||x' - x||_inf <= {linf_cap:g}"),
        Entry("wdro-ssim+haarpsi", "ssim+haarpsi",
              lambda m, d: WDRO(m, budget=d, **{**wdro, "measure": mix}), (1e-5, 0.5),
              note="cost (1 - SSIM + 1 - HaarPSI) / 2"),
        Entry("wdro-padded+haarpsi", "padded+haarpsi",
              lambda m, d: WDRO(m, budget=d, **{**wdro, "measure": padded_mix}), (1e-5, 0.5),
              note="cost (1 - padded SSIM + 1 - HaarPSI) / 2"),
    ]


def ssim_haarpsi_measure(base: str = "ssim") -> Measure:
    """Transport cost ``((1 - SSIM) + (1 - HaarPSI)) / 2``: SSIM's structure plus HaarPSI's edges."""
    ssim, haarpsi = get_measure(base), get_measure("haarpsi")

    def cost(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        return 0.5 * (ssim.cost_fn(x, x_adv) + haarpsi.cost_fn(x, x_adv))

    def prepare(x: torch.Tensor):
        ssim_cost = ssim.prepare(x)
        return lambda x_adv: 0.5 * (ssim_cost(x_adv) + haarpsi.cost_fn(x, x_adv))

    return Measure(
        name=f"{base}+haarpsi".replace("ssim-padded", "padded"), label="SSIM+HaarPSI", cost_fn=cost, score_fn=lambda x, xa: 1 - cost(x, xa),
        higher_is_better=True, score_range=(0.0, 1.0), cost_formula="((1 - SSIM) + (1 - HaarPSI)) / 2",
        min_size=16, prepare_fn=prepare,
    )


# -- matching ------------------------------------------------------------------------------


def run_budget_attack(entry: Entry, model, x, y, targets, rounds: int, seed: int, log) -> list[Outcome]:
    """Log-bisection of the budget per target: a coarse bracket on a subset, then ``rounds`` full runs."""
    n = len(x)
    coarse = n > 2 * SUBSET
    outcomes = []
    t0 = time.perf_counter()
    for target in targets:
        lo, hi = entry.bracket
        if coarse:
            known = [(p, r) for p, r in _RUNS if r.success.numel() == SUBSET]
            first = match_success(lambda b: _Timed(entry.make(model, b), b), target, x[:SUBSET], y[:SUBSET],
                                  known=known, lo=lo, hi=hi, rounds=COARSE_ROUNDS, seed=seed, at_least=True,
                                  tolerance=0.02)
            lo, hi = max(lo, first.param / 3), min(hi, first.param * 3)
        known = [(p, r) for p, r in _RUNS if r.success.numel() == n]
        match = match_success(lambda b: _Timed(entry.make(model, b), b), target, x, y, known=known, lo=lo, hi=hi,
                              rounds=rounds if coarse else rounds + COARSE_ROUNDS, seed=seed, at_least=True,
                              tolerance=0.005)
        log(f"  {entry.key} @ {target:.0%}: budget {match.param:.4g} -> {match.achieved:.1%} "
            f"({match.runs} more full runs)")
        outcomes.append(Outcome(entry, target, match.param, match.result, torch.zeros(0, dtype=torch.bool),
                                wall_s=_WALL[id(match.result)], search_s=0.0,
                                runs=sum(r.success.numel() == n for _, r in _RUNS)))
    search = time.perf_counter() - t0
    for o in outcomes:
        o.search_s = search
    return outcomes


def run_minimal_attack(entry: Entry, model, x, y, targets, seed: int, log) -> list[Outcome]:
    t0 = time.perf_counter()
    result = entry.make(model, None)(x, y, seed=seed)
    wall = time.perf_counter() - t0
    outcomes = []
    for target in targets:
        k = math.ceil(target * len(x) - 1e-9)
        costs = torch.where(result.success, result.cost, torch.inf)
        param = float(costs.sort().values[k - 1]) if k <= int(result.success.sum()) else math.inf
        log(f"  {entry.key} @ {target:.0%}: max distance {param:.4g} ({result.success_rate:.1%} fooled unbudgeted)")
        outcomes.append(Outcome(entry, target, param, result, torch.zeros(0, dtype=torch.bool), wall, wall, 1))
    return outcomes


def keep_exactly(result: AttackResult, target: float) -> torch.Tensor:
    """(N,) bool: the ``ceil(target * N)`` fooled images of lowest own cost (all fooled ones if fewer)."""
    return cheapest_fooled(result, math.ceil(target * result.success.numel() - 1e-9))


def judge(outcome: Outcome, judges: list[str]) -> None:
    outcome.kept = keep_exactly(outcome.result, outcome.target)
    for name in judges:
        values = outcome.result.measures[name][outcome.kept].double()
        outcome.stats[name] = {"mean": float(values.mean()), "median": float(values.median())}


# -- frontier: success against perceptual cost ----------------------------------------------


def frontier_points(entry: Entry, runs: list[AttackResult], judges: list[str]) -> list[dict]:
    """(success rate, mean of each judge over the fooled images) for each run, or each threshold."""
    points = []
    if entry.minimal:
        result = runs[0]
        order = torch.where(result.success, result.cost, torch.inf).argsort(stable=True)
        fooled = int(result.success.sum())
        for k in sorted({max(1, round(fooled * q)) for q in torch.linspace(0.05, 1.0, 30).tolist()}):
            idx = order[:k]
            points.append({"success": k / result.success.numel(),
                           **{j: float(result.measures[j][idx].double().mean()) for j in judges}})
        return points
    for result in runs:
        if int(result.success.sum()) == 0:
            continue
        points.append({"success": result.success_rate,
                       **{j: float(result.measures[j][result.success].double().mean()) for j in judges}})
    return sorted(points, key=lambda p: p["success"])


def frontier_figure(curves: dict[str, list[dict]], optimises: dict[str, str], model: str, targets):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [j for j in ("ssim", "haarpsi", "psnr", "linf") if any(j in p for c in curves.values() for p in c)]
    titles = [f"{get_measure(j).label} ({'higher' if get_measure(j).higher_is_better else 'lower'} is better)"
              for j in panels]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=titles, shared_yaxes=True)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    for i, (key, points) in enumerate(curves.items()):
        for col, j in enumerate(panels, start=1):
            fig.add_trace(go.Scatter(
                x=[p[j] for p in points], y=[p["success"] for p in points], mode="lines+markers",
                name=key, legendgroup=key, showlegend=col == 1, marker=dict(size=5),
                line=dict(color=palette[i % len(palette)], width=3 if key == "wdro-flips" else 1.5,
                          dash="solid" if optimises[key] != j else "dot"),
            ), row=1, col=col)
    for t in targets:
        fig.add_hline(y=t, line=dict(color="grey", width=1, dash="dash"))
    fig.update_yaxes(title_text="attack success rate", row=1, col=1)
    fig.update_layout(title=f"Attack success against perceptual cost of the fooled images ({model}); "
                            "dotted: the measure the attack optimises", height=430, width=1400,
                      margin=dict(l=60, r=20, t=80, b=50))
    return fig


# -- examples grid --------------------------------------------------------------------------


def examples_grid(x: torch.Tensor, outcomes: list[Outcome], path: Path, *, columns: int = 6, scale: int = 2) -> None:
    """PNG: row 0 the clean images; then per attack its image and its |difference| x5, side by side."""
    from PIL import Image, ImageDraw

    if not outcomes:
        return
    common = torch.stack([o.kept for o in outcomes]).all(0).nonzero().squeeze(1)
    if common.numel() == 0:
        return
    idx = common[torch.linspace(0, common.numel() - 1, min(columns, common.numel())).round().long()]
    side = x.shape[-1] * scale
    label_w, gap = 150, 4
    rows = [("clean", x[idx], None)] + [(o.entry.key, o.result.x_adv[idx], x[idx]) for o in outcomes]
    width = label_w + len(idx) * (2 * side + 3 * gap)
    canvas = Image.new("RGB", (width, len(rows) * (side + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)

    def tile(t: torch.Tensor) -> Image.Image:
        arr = (t.clamp(0, 1) * 255).round().byte()
        arr = arr.permute(1, 2, 0).squeeze(-1).numpy() if arr.shape[0] == 1 else arr.permute(1, 2, 0).numpy()
        return Image.fromarray(arr).resize((side, side), Image.NEAREST)

    for r, (name, images, clean) in enumerate(rows):
        top = gap + r * (side + gap)
        draw.text((4, top + side // 2 - 6), name, fill="black")
        for c in range(len(idx)):
            left = label_w + c * (2 * side + 3 * gap)
            canvas.paste(tile(images[c]), (left, top))
            if clean is not None:
                canvas.paste(tile(((images[c] - clean[c]).abs() * 5).mean(0, keepdim=True)), (left + side + gap, top))
    canvas.save(path, optimize=True)


# -- tables ---------------------------------------------------------------------------------


def table(report: dict, target: float) -> str:
    """The markdown table of ``report`` at ``target`` (**bold**: the best of a column; °: the measure optimised)."""
    rows = benchmark_rows(report, target, best=lambda cell: f"**{cell}**")
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(row.values()) + " |" for row in rows])


# -- main -----------------------------------------------------------------------------------


def load_data(model_name: str, model: nn.Module, n: int, images: str | None, device, split: str = "all"):
    if images is None:
        from core.data import load_fashion_mnist

        x, y = load_fashion_mnist("test", source="bundled").tensors()
        start, stop = SPLITS[split]
        return correctly_classified(model, x[start:stop].to(device), y[start:stop].to(device), n)
    from core.imageio import load_tensor
    from core.models import get_model_spec

    spec = get_model_spec(model_name)
    files = sorted(p for p in Path(images).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:n]
    if not files:
        raise SystemExit(f"no PNG or JPEG images in {images}")
    x = torch.cat([load_tensor(str(p), channels=spec.channels, size=spec.input_size) for p in files]).to(device)
    y = predict(model, x, batch_size=32)
    return x, y  # labels: the model's own clean predictions


def benchmark(model_name: str, args, log) -> dict:
    from core.models import load_model

    device = torch.device(args.device)
    model = load_model(model_name, device=device)
    x, y = load_data(model_name, model, args.n, args.images, device, args.split)
    n = len(x)
    judges = [j for j in JUDGES if j in available_measures(x.shape)]
    log(f"{model_name}: {n} correctly classified images {tuple(x.shape[1:])}; judges: {', '.join(judges)}")
    t0 = time.perf_counter()
    evaluate_measures(x, x.flip(0))
    score_s = time.perf_counter() - t0
    targets = sorted(args.targets)
    all_outcomes: dict[float, list[Outcome]] = {t: [] for t in targets}
    curves, optimises, notes = {}, {}, {}
    for entry in entries(args.steps, args.linf_cap, args.investigate):
        if args.attacks and entry.key not in args.attacks:
            continue
        log(f"{entry.key} ...")
        _WALL.clear()
        _RUNS.clear()
        if entry.minimal:
            outcomes = run_minimal_attack(entry, model, x, y, targets, args.seed, log)
            runs = [outcomes[0].result]
        else:
            outcomes = run_budget_attack(entry, model, x, y, targets, args.rounds, args.seed, log)
            runs = [r for _, r in _RUNS if r.success.numel() == n]
        for o in outcomes:
            judge(o, judges)
            all_outcomes[o.target].append(o)
        curves[entry.key] = frontier_points(entry, runs, judges)
        optimises[entry.key] = entry.optimises
        notes[entry.key] = entry.note
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if model_name == "fmnist-cnn" else f"-{model_name}"
    fig = frontier_figure(curves, optimises, model_name, targets)
    fig.write_html(out / f"frontier{suffix}.html", include_plotlyjs="cdn")
    try:
        fig.write_image(out / f"frontier{suffix}.png", scale=1)
    except Exception as err:  # kaleido (and a Chrome) are optional: the HTML is the figure
        log(f"no PNG of the figure ({type(err).__name__}: {err}); pip install kaleido")
    main_keys = {e.key for e in entries(args.steps, args.linf_cap, False)}
    examples_grid(x.cpu(), [o for o in all_outcomes[targets[0]] if o.entry.key in main_keys],
                  out / f"examples{suffix}.png")
    report = {
        "model": model_name, "n": n, "judges": judges, "targets": targets, "score_s": score_s,
        "steps": args.steps, "rounds": args.rounds, "notes": notes,
        "results": {str(t): {o.entry.key: {
            "optimises": o.entry.optimises, "budget": o.param, "achieved": o.result.success_rate,
            "kept": int(o.kept.sum()), "wall_s": o.wall_s, "search_s": o.search_s, "runs": o.runs,
            "stats": o.stats} for o in all_outcomes[t]} for t in targets},
        "frontier": curves,
    }
    report["tables"] = {str(t): table(report, t) for t in targets}
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", nargs="+", default=["fmnist-cnn"], help="registry names (default fmnist-cnn)")
    parser.add_argument("--n", type=int, default=1000, help="images (default 1000)")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.9, 0.99], help="success rates to match")
    parser.add_argument("--out", default="assets/benchmark", help="output folder")
    parser.add_argument("--steps", type=int, default=20, help="steps of W-DRO and the minimal attacks")
    parser.add_argument("--rounds", type=int, default=2, help="bisection runs on all images per target")
    parser.add_argument("--linf-cap", type=float, default=0.1, help="L-inf cap of the capped W-DRO variant")
    parser.add_argument("--no-investigate", dest="investigate", action="store_false",
                        help="skip the W-DRO variants (pointwise, L-inf cap, padded SSIM, SSIM+HaarPSI cost)")
    parser.add_argument("--attacks", nargs="+", help="run only these (table names)")
    parser.add_argument("--images", help="folder of photos for an ImageNet model (labels: clean predictions)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=list(SPLITS), default="all",
                        help="bundled images: val (1500-1999, for choosing defaults), a (0-749), b (750-1499)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, flush=True)

    reports = []
    for name in args.model:
        report = benchmark(name, args, log)
        reports.append(report)
        suffix = "" if name == "fmnist-cnn" else f"-{name}"
        (out / f"results{suffix}.json").write_text(json.dumps(report, indent=1))
        text = [f"## {name}: {report['n']} images, mean / median over the fooled images",
                f"(scoring every measure once takes {report['score_s']:.1f} s, not counted in the wall times)"]
        for t in report["targets"]:
            text += ["", f"### matched success {t:.0%}", "", report["tables"][str(t)]]
        text += ["", "Settings: " + "; ".join(f"{k}: {v}" for k, v in report["notes"].items())]
        (out / f"table{suffix}.md").write_text("\n".join(text) + "\n")
        print("\n".join(text), flush=True)


# Every run of the current attack as (budget, result), for the search and the frontier, and wall times.
_RUNS: list[tuple[float, AttackResult]] = []
_WALL: dict[int, float] = {}


class _Timed:
    """Wraps an attack at one budget: records each result and its wall time."""

    def __init__(self, attack: Attack, param: float) -> None:
        self.attack = attack
        self.param = float(param)

    def __call__(self, x, y, **kwargs) -> AttackResult:
        t0 = time.perf_counter()
        result = self.attack(x, y, **kwargs)
        _WALL[id(result)] = time.perf_counter() - t0
        _RUNS.append((self.param, result))
        return result


if __name__ == "__main__":
    main()
