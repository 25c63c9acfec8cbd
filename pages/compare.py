"""SSIM-shaped vs L-inf: PGD-L-inf and W-DRO (default cost) at matched damage on a batch of test images; the benchmark of every attack."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import streamlit as st

import torch

from core.services.compare import (
    PGD_EPS, Comparison, SweepPoint, benchmark_rows, compare_ssim_linf, correctly_classified, frontier_points,
    paired_difference, run_pgd,
)
from core.services.explore import perturbation_image, suggested_factor
from pages.ui.figures import (
    CHART_EXPORT,
    cost_histogram,
    frontier_figure,
    image_row,
    measure_distributions,
    png_and_pdf,
)
from core.measures import DEFAULT_COST, MEASURES
from core.models import MODELS
from pages.ui.resources import cached_model, device, has_test_set, model_label, test_set
from pages.ui.state import keep, keep_choices
from pages.ui.widgets import display_image, presentation_layout, show_error

RESULT = "compare.result"
GRID = 8  # images in the gallery grid
JUDGES = ("ssim", "ssim-padded", "haarpsi", "psnr", "linf")  # measures whose distributions are shown
COST = MEASURES[DEFAULT_COST]  # W-DRO's transport cost here: the project's default
WDRO_NAME = f"W-DRO, {COST.label} cost"  # "W-DRO, SSIM (padded) cost": no nested brackets

BENCHMARK = Path(__file__).resolve().parent.parent / "assets" / "benchmark" / "heldout" / "fmnist-cnn-a"


def benchmark_frames(report: dict) -> list[tuple[str, pd.DataFrame]]:
    """The tables of ``bench.matched_damage``'s results.json, one per matched success: ``[(target, frame), ...]``;
    ★ marks the best of a column (:func:`core.services.compare.benchmark_rows`)."""
    return [(f"{t:.0%}", pd.DataFrame(benchmark_rows(report, t, best=lambda cell: f"{cell} ★")))
            for t in report["targets"]]


def show_benchmark() -> None:
    """The matched-damage benchmark of every attack, as ``bench.matched_damage`` last wrote it."""
    results, examples = BENCHMARK / "results.json", BENCHMARK / "examples.png"
    if not results.is_file():
        st.info("No benchmark results in assets/benchmark/heldout/fmnist-cnn-a: run `python -m bench.heldout "
                "--model fmnist-cnn --split a`.",
                icon=":material/info:")
        return
    st.caption("fmnist-cnn. Every attack tuned to the same attack success rate on the same 150 correctly classified "
               "held-out test images (subset a: bundled test images 0-749; defaults were chosen on 1500-1999), "
               "W-DRO and the minimal attacks at 100 steps, judged on measures it did not optimise (° marks the "
               "one it does), ★ the best of the column; mean / median over the fooled images. W-DRO's row is "
               "its one-pass solver (wdro-flips); wdro-ssim-padded is the budget search it replaced. "
               "docs/imperceptibility-benchmark.md reads the result, subset b and the other model.")
    report = json.loads(results.read_text())
    for target, frame in benchmark_frames(report):
        st.markdown(f"**Matched success {target}**")
        st.dataframe(frame, hide_index=True, width="stretch")  # scrolls sideways: 14 columns wrapped at 1024 px
    if report.get("frontier"):
        curves = report["frontier"]
        sweeps = {key: [SweepPoint(key, math.nan, p["success"], p) for p in points] for key, points in curves.items()}
        f1, f2 = st.columns(2)
        for col, measure in ((f1, "haarpsi"), (f2, "gmsd")):
            with col:
                st.plotly_chart(frontier_figure(sweeps, measure, emphasis="wdro-flips"),
                                config=CHART_EXPORT, theme=None, key=f"compare.bench_{measure}")
        st.caption("Attack success against the mean perceptual cost of the fooled images, every attack over its "
                   "budget; thick: W-DRO with the default cost (wdro-flips, its one-pass solver). Two measures none of them "
                   "optimises.")
    if examples.is_file():
        st.image(str(examples), caption="examples at matched damage: each attack's image and its |difference| x5")


PRESENT_DRAWN = "cmp.present_drawn"  # the presentation state the page's layout was last drawn with


@st.fragment  # the presentation toggle redraws the examples only, not the page's charts
def show_examples(cmp: Comparison, eps255: int, labels: tuple[str, ...] | None) -> None:
    """Images fooled by both attacks: clean, each attack's image, and its change amplified by one shared factor."""
    head, toggle = st.columns([2, 1], vertical_alignment="bottom")
    present = toggle.toggle("Presentation view", key=keep("keep.cmp_present", False),
                            help="Four examples across the whole window, enlarged for a projector (never smoothed); "
                                 "the sidebar is hidden until you switch this off.")
    drawn = st.session_state.get(PRESENT_DRAWN, False)
    if present:  # on: this fragment's rerun adds the layout's style (fast: the page's charts stay)
        presentation_layout()
        st.session_state[PRESENT_DRAWN] = True
    elif drawn and not present:
        # off: a fragment's rerun leaves the style element it drew in place (the sidebar stayed hidden), so
        # switching off redraws the whole page, which drops it
        st.session_state[PRESENT_DRAWN] = False
        st.rerun()
    both = (cmp.pgd.success & cmp.wdro.success).nonzero().squeeze(1).tolist()
    either = (cmp.pgd.success | cmp.wdro.success).nonzero().squeeze(1).tolist()
    order = both + [i for i in either if i not in both]
    if not order:
        head.subheader("Examples")
        st.caption("Neither attack fooled any of these images.")
        return
    idx = torch.tensor(order[:GRID])
    factor = min(suggested_factor(cmp.x[idx], r.x_adv[idx]) for r in (cmp.pgd, cmp.wdro))  # one for all shown
    head.subheader(f"Examples · changes x{factor:g} (grey = 0)")

    def name(c: int) -> str:
        return labels[c] if labels and c < len(labels) else str(c)

    def cell(i: int, result, change: bool) -> tuple[torch.Tensor, str]:
        if result is None:
            return cmp.x[i], name(int(cmp.y[i]))
        if change:
            return perturbation_image(cmp.x[i], result.x_adv[i], factor), "its change"
        if bool(result.success[i]):
            return result.x_adv[i], f"→ {name(int(result.pred_adv[i]))} · HaarPSI {float(result.measures['haarpsi'][i]):.3f}"
        return result.x_adv[i], "not fooled"

    rows = [("clean", None, False), (f"PGD-L-inf {eps255}/255", cmp.pgd, False), ("PGD's change", cmp.pgd, True),
            (WDRO_NAME, cmp.wdro, False), ("W-DRO's change", cmp.wdro, True)]
    if present:  # one example at a time, its five pictures side by side, large labels; a stepper for the next
        short = ("clean", f"PGD {eps255}/255", "its change", "W-DRO", "its change")  # one line each at 1024 px
        k = st.columns([1, 3])[0].number_input(f"Example (of {min(len(order), GRID)})", 1, min(len(order), GRID),
                                               key="cmp.example")
        i = order[int(k) - 1]
        row = image_row([(display_image(cell(i, result, change)[0], side=28), label)
                         for label, (_, result, change) in zip(short, rows)])
        png, pdf = png_and_pdf(row)
        e1, e2, _ = st.columns([1, 1, 3])
        e1.download_button("This example (PNG)", png, f"example-{int(k)}.png", "image/png", key="cmp.fig_png",
                           on_click="ignore", width="stretch")
        e2.download_button("This example (PDF)", pdf, f"example-{int(k)}.pdf", "application/pdf", key="cmp.fig_pdf",
                           on_click="ignore", width="stretch")
        for col, label, (_, result, change) in zip(st.columns(len(rows)), short, rows):
            image, caption = cell(i, result, change)
            col.markdown(f"<div style='font-size:1.5rem;font-weight:600;white-space:nowrap'>{label}</div>",
                         unsafe_allow_html=True)
            col.image(display_image(image, side=448), width="stretch")
            col.markdown(f"<div style='font-size:1.25rem'>{caption.replace(' · ', '<br>')}</div>",
                         unsafe_allow_html=True)
        return
    for label, result, change in rows:
        st.caption(label)
        for col, i in zip(st.columns(GRID), order[:GRID]):
            image, caption = cell(i, result, change)
            col.image(display_image(image, side=112), caption=None if change else caption.split(" · ")[-1],
                      width="stretch")


def settings_ui() -> tuple[tuple[str, int, int, int], bool]:
    """The comparison's settings ``(model, images, eps in 1/255, W-DRO steps)`` and whether Run was pressed."""
    names = [n for n in MODELS if has_test_set(n)]
    c1, c2, c3, c4 = st.columns(4)
    name = c1.selectbox("Model", names, format_func=model_label, key=keep("keep.cmp_model"))
    n = c2.slider("Test images", 16, 256, step=16, key=keep("keep.cmp_n", 32))
    eps255 = c3.slider("PGD L-inf radius (in 1/255)", 1, 16, key=keep("keep.cmp_eps", 4))
    steps = c4.number_input("W-DRO steps", 10, 300, step=10, key=keep("keep.cmp_steps", 50))
    run = st.button("Run the comparison", type="primary", key="compare.run")
    return (name, n, eps255, int(steps)), run


def run_comparison(settings: tuple[str, int, int, int]) -> None:
    """Attack ``settings``' correctly classified test images with both attacks; keep the result in the session."""
    name, n, eps255, steps = settings
    try:
        model = cached_model(name)
        x_test, y_test, source = test_set()
        x, y = correctly_classified(model, x_test.to(device()), y_test.to(device()), n)
        bar = st.progress(0.0, text="Starting ...")
        # PGD's other radii (the frontier only) run after the results are on screen: see show_frontier
        result = compare_ssim_linf(model, x, y, eps=eps255 / 255, steps=steps, pgd_eps=(),
                                   progress=lambda f, msg: bar.progress(f, text=msg))
        bar.empty()
        st.session_state[RESULT] = {"settings": settings, "cmp": result, "source": source}
    except ValueError as err:
        show_error(err, what="The comparison could not run")


def fooled_means(cmp: Comparison) -> dict[str, dict[str, float]]:
    """Per attack (``"pgd"``, ``"wdro"``), each measure's mean over the images it fooled (empty if none)."""
    return {key: {m: float(v[r.success].double().mean()) for m, v in r.measures.items()} if bool(r.success.any())
            else {} for key, r in (("pgd", cmp.pgd), ("wdro", cmp.wdro))}


def notice(cmp: Comparison, mean: dict, eps255: int, n: int) -> str:
    """The sentence that tells the viewer what to look at, from the numbers of this run."""
    if not int(cmp.pgd.success.sum()):
        return f"PGD-L-inf at {eps255}/255 fooled none of the {n} images: raise its radius to have damage to match."
    match = "fool the same" if cmp.matched else "could not be matched: W-DRO fools"
    text = (f"Both attacks {match} {int(cmp.wdro.success.sum())} of the {n} images. On the fooled images, "
            f"judged on the measures neither attack optimised, {WDRO_NAME} ")
    judged = [m for m in JUDGES if m not in (DEFAULT_COST, "linf") and m in mean["wdro"]]
    better = [MEASURES[m].label for m in judged if (mean["wdro"][m] > mean["pgd"][m]) == MEASURES[m].higher_is_better]
    worse = [MEASURES[m].label for m in judged if MEASURES[m].label not in better]
    text += f"is better on {', '.join(better)}" if better else "is better on none"
    text += f" and worse on {', '.join(worse)}" if worse else ""
    return text + " (means): compare the rows below with your own eyes."


def show_summary(cmp: Comparison, mean: dict, eps255: int, n: int) -> None:
    """The sentence to notice and the four metrics."""
    st.info(notice(cmp, mean, eps255, n), icon=":material/visibility:")
    k1, k2 = st.columns(2)  # two by two: four across cut "0.956 / 0.992" off at 1024 px
    k3, k4 = st.columns(2)
    k1.metric("PGD-L-inf success", f"{cmp.pgd.success_rate:.0%}", help=f"eps = {eps255}/255")
    k2.metric("W-DRO success", f"{cmp.wdro.success_rate:.0%}", help="matched" if cmp.matched else "as many as it found")
    k3.metric("Matched budget delta", f"{cmp.budget:.2g}", help=f"mean {COST.cost_formula} over the {n} images")
    if mean["pgd"] and mean["wdro"]:
        k4.metric("HaarPSI, PGD / W-DRO", f"{mean['pgd']['haarpsi']:.3f} / {mean['wdro']['haarpsi']:.3f}",
                  help="mean over the fooled images; a measure neither attack optimised (1 = identical)")


def show_measures(cmp: Comparison, mean: dict) -> None:
    """The distribution of each judge over each attack's fooled images."""
    st.subheader("Perceptual measures of the fooled images")
    judges = [m for m in JUDGES if m in cmp.pgd.measures]
    if mean["pgd"] and mean["wdro"]:
        st.plotly_chart(measure_distributions({"PGD-L-inf": {m: v[cmp.pgd.success] for m, v in cmp.pgd.measures.items()},
                                               WDRO_NAME: {m: v[cmp.wdro.success] for m, v in cmp.wdro.measures.items()}},
                                              judges), config=CHART_EXPORT, theme=None, key="compare.dist")


def show_budget(cmp: Comparison) -> None:
    """Where the distributional budget went, against the same delta per image."""
    st.subheader("The distributional budget at work")
    h1, h2 = st.columns([2, 1])
    with h1:
        st.plotly_chart(cost_histogram(cmp.wdro.cost, cmp.budget, label=COST.cost_formula,
                                       pointwise=cmp.pointwise.cost), config=CHART_EXPORT, theme=None, key="compare.hist")
    with h2:
        spent = cmp.wdro.cost
        st.metric("Images given more than delta", f"{float((spent > cmp.budget).float().mean()):.0%}")
        st.metric("Images given nothing", f"{float((spent == 0).float().mean()):.0%}")
        gap = paired_difference(cmp.wdro.success, cmp.pointwise.success)
        st.metric("Success rate", f"{cmp.wdro.success_rate:.0%} / {cmp.pointwise.success_rate:.0%}",
                  delta=f"{gap.difference:+.0%} ({gap.low:+.0%} to {gap.high:+.0%})", delta_color="off",
                  help="With the distributional budget / with the same delta per image; below, their difference "
                       "with its 95% interval.")
        st.caption(f"Same delta = {cmp.budget:.2g}, on these {gap.n} images. The distributional budget bounds only "
                   "the mean cost, so the worst case spends it on the images cheapest to flip and nothing on the "
                   "others; the per-image budget fools only the images whose cheapest flip costs at most delta "
                   f"(mean spent {float(cmp.pointwise.cost.mean()):.2g}). Both from the same flips, so the "
                   "distributional one never fools fewer.")


def show_frontier(shown: dict) -> None:
    """Success against cost for both attacks; PGD's other radii run here, once per result."""
    cmp: Comparison = shown["cmp"]
    name_run = shown["settings"][0]
    st.subheader("Attack success against perceptual cost")
    radii = sorted({*PGD_EPS, cmp.eps})
    if len(cmp.pgd_sweep) < len(radii) and not shown.get("swept"):  # once per result: PGD's other radii
        bar = st.progress(0.0, text="Tracing the frontier ...")
        runs = run_pgd(cached_model(name_run), cmp.x, cmp.y, [r for r in radii if r != cmp.eps],
                       progress=lambda f, msg: bar.progress(f, text=f"Frontier: {msg}"))
        cmp = replace(cmp, pgd_sweep=frontier_points([(cmp.eps, cmp.pgd), *runs]))
        shown.update(cmp=cmp, swept=True)
        bar.empty()
    sweeps = {"PGD-L-inf": cmp.pgd_sweep, WDRO_NAME: cmp.wdro_sweep}
    marks = {label: point for label, points, param in (("PGD-L-inf", cmp.pgd_sweep, cmp.eps),
                                                       (WDRO_NAME, cmp.wdro_sweep, cmp.budget))
             for point in points if point.param == param}
    f1, f2 = st.columns(2)
    with f1:
        st.plotly_chart(frontier_figure(sweeps, "ssim-padded", marks=marks), config=CHART_EXPORT, theme=None,
                        key="compare.frontier_ssim")
    with f2:
        st.plotly_chart(frontier_figure(sweeps, "haarpsi", marks=marks), config=CHART_EXPORT, theme=None,
                        key="compare.frontier_haarpsi")
    st.caption("Stars: the matched runs. PGD's curve sweeps its radius (one run each); W-DRO's sweeps its budget "
               "delta, every point from one pass (the worst case at delta fools the images cheapest to flip). "
               "Means over the fooled images.")


def main() -> None:
    keep_choices()  # first, before any widget: see pages.ui.state.keep
    st.title("SSIM-shaped vs L-inf perturbations")
    st.caption(f"PGD-L-inf at a chosen radius, and {WDRO_NAME} at the DRO budget at which it fools the same "
               "fraction of images (matched damage). Both attack the same correctly classified test images.")
    live, benchmark = st.tabs([f"Run it: PGD-L-inf vs {WDRO_NAME}", "Benchmark: all attacks at matched damage"])
    with benchmark:
        show_benchmark()
    with live:
        settings, run = settings_ui()
        if run:
            run_comparison(settings)
        shown = st.session_state.get(RESULT)
        if shown is None:
            st.info("Choose a model, the number of images and PGD's radius, then press **Run the comparison** "
                    "(about 5 s for 32 images on one CPU thread).", icon=":material/play_arrow:")
            return
        if shown["settings"] != settings:
            st.caption(":material/info: The settings changed since this result; press **Run the comparison** to "
                       "update it.")
        cmp: Comparison = shown["cmp"]
        name_run, n_run, eps_run, _ = shown["settings"]
        mean = fooled_means(cmp)
        show_summary(cmp, mean, eps_run, n_run)
        if st.session_state.get("keep.cmp_present", False):
            presentation_layout()  # a full run of the page draws it here (a fragment's run, in show_examples)
        st.session_state[PRESENT_DRAWN] = st.session_state.get("keep.cmp_present", False)
        show_examples(cmp, eps_run, MODELS[name_run].labels)
        show_measures(cmp, mean)
        show_budget(cmp)
        show_frontier(shown)


main()
