"""SSIM-shaped vs L-inf: PGD-L-inf and W-DRO (default cost) at matched damage on a batch of test images; the benchmark of every attack."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.compare import Comparison, compare_ssim_linf, correctly_classified, paired_difference
from core.figures import cost_histogram, frontier_figure, measure_distributions
from core.measures import DEFAULT_COST, MEASURES
from core.models import MODELS
from pages.common import cached_model, device, display_image, has_test_set, keep, keep_choices, model_label, show_error, test_set

keep_choices()  # first, before any widget: see pages.common.keep

RESULT = "compare.result"
GRID = 8  # images in the gallery grid
JUDGES = ("ssim", "ssim-padded", "haarpsi", "psnr", "linf")  # measures whose distributions are shown
COST = MEASURES[DEFAULT_COST]  # W-DRO's transport cost here: the project's default
WDRO_NAME = f"W-DRO ({COST.label})"

st.title("SSIM-shaped vs L-inf perturbations")
st.caption(f"PGD-L-inf at a chosen radius, and {WDRO_NAME} with its DRO budget tuned until it fools the same "
           "fraction of images (matched damage). Both attack the same correctly classified test images.")

BENCHMARK = Path(__file__).resolve().parent.parent / "assets" / "benchmark" / "heldout" / "fmnist-cnn-a"


def show_benchmark() -> None:
    """The matched-damage benchmark of every attack, as ``bench.matched_damage`` last wrote it."""
    table, frontier, examples = (BENCHMARK / f for f in ("table.md", "frontier.png", "examples.png"))
    if not table.is_file():
        st.info("No benchmark results in assets/benchmark/heldout/fmnist-cnn-a: run `python -m bench.matched_damage "
                "--split a --n 150 --steps 100 --no-investigate --out assets/benchmark/heldout/fmnist-cnn-a`.",
                icon=":material/info:")
        return
    st.caption("fmnist-cnn. Every attack tuned to the same attack success rate on the same 150 correctly classified "
               "held-out test images (subset a: bundled test images 0-749; defaults were chosen on 1500-1999), "
               "W-DRO and the minimal attacks at 100 steps, judged on measures it did not optimise (° marks the "
               "one it does). Bold: the best of the column. docs/imperceptibility-benchmark.md reads the result, "
               "subset b and the other model.")
    st.markdown(table.read_text())
    if frontier.is_file():
        st.image(str(frontier), caption="attack success against the mean perceptual cost of the fooled images")
    if examples.is_file():
        st.image(str(examples), caption="examples at matched damage: each attack's image and its |difference| x5")


live, benchmark = st.tabs([f"Run it: PGD-L-inf vs {WDRO_NAME}", "Benchmark: all attacks at matched damage"])
with benchmark:
    show_benchmark()
with live:
    names = [n for n in MODELS if has_test_set(n)]
    c1, c2, c3, c4 = st.columns(4)
    name = c1.selectbox("Model", names, format_func=model_label, key=keep("keep.cmp_model"))
    n = c2.slider("Test images", 16, 256, step=16, key=keep("keep.cmp_n", 32))
    eps255 = c3.slider("PGD L-inf radius (in 1/255)", 1, 16, key=keep("keep.cmp_eps", 4))
    steps = c4.number_input("W-DRO steps", 10, 300, step=10, key=keep("keep.cmp_steps", 50))
    settings = (name, n, eps255, int(steps))
    run = st.button("Run the comparison", type="primary", key="compare.run")

    if run:
        try:
            model = cached_model(name)
            x_test, y_test, source = test_set()
            x, y = correctly_classified(model, x_test.to(device()), y_test.to(device()), n)
            bar = st.progress(0.0, text="Starting ...")
            result = compare_ssim_linf(model, x, y, eps=eps255 / 255, steps=int(steps),
                                       progress=lambda f, msg: bar.progress(min(f, 1.0), text=msg))
            bar.empty()
            st.session_state[RESULT] = {"settings": settings, "cmp": result, "source": source}
        except ValueError as err:
            show_error(err, what="The comparison could not run")

    shown = st.session_state.get(RESULT)
    if shown is None:
        st.info("Choose a model, the number of images and PGD's radius, then press **Run the comparison** "
                "(about 10-30 s on a CPU).", icon=":material/play_arrow:")
        st.stop()
    if shown["settings"] != settings:
        st.caption(":material/info: The settings changed since this result; press **Run the comparison** to update it.")
    cmp: Comparison = shown["cmp"]
    mean = {key: {m: float(r.measures[m].float().mean()) for m in r.measures}
            for key, r in (("pgd", cmp.pgd), ("wdro", cmp.wdro), ("pointwise", cmp.pointwise))}
    name_run, n_run, eps_run, _ = shown["settings"]


    def _notice() -> str:
        """The sentence that tells the viewer what to look at, from the numbers of this run."""
        match = ("fool the same share" if cmp.matched else "come as close as the search allowed to the same share")
        text = (f"Both attacks {match} of the {n_run} images ({cmp.pgd.success_rate:.0%} and "
                f"{cmp.wdro.success_rate:.0%}). On the measures neither attack optimised, {WDRO_NAME} ")
        judged = [m for m in JUDGES if m not in (DEFAULT_COST, "linf") and m in mean["wdro"]]
        better = [MEASURES[m].label for m in judged
                  if (mean["wdro"][m] > mean["pgd"][m]) == MEASURES[m].higher_is_better]
        worse = [MEASURES[m].label for m in judged if MEASURES[m].label not in better]
        text += f"is better on {', '.join(better)}" if better else "is better on none"
        text += f" and worse on {', '.join(worse)}" if worse else ""
        return text + " (means over these images): compare the rows below with your own eyes."


    st.info(_notice(), icon=":material/visibility:")
    k1, k2, k3, k4 = st.columns(4)
    k1.metric("PGD-L-inf success", f"{cmp.pgd.success_rate:.0%}", help=f"eps = {eps_run}/255")
    k2.metric("W-DRO success", f"{cmp.wdro.success_rate:.0%}", help="matched" if cmp.matched else "closest found")
    k3.metric("Matched budget delta", f"{cmp.budget:.3g}", help=f"mean {COST.cost_formula} the W-DRO attack may spend")
    k4.metric("Mean HaarPSI (PGD / W-DRO)", f"{mean['pgd']['haarpsi']:.3f} / {mean['wdro']['haarpsi']:.3f}",
              help="a measure neither attack optimised")

    st.subheader("Examples")
    rows = (("clean", cmp.x, None), (f"PGD-L-inf {eps_run}/255", cmp.pgd.x_adv, cmp.pgd),
            (f"{WDRO_NAME} delta {cmp.budget:.2g}", cmp.wdro.x_adv, cmp.wdro))
    for label, images, result in rows:
        st.caption(label)
        cols = st.columns(GRID)
        for i, col in enumerate(cols[: images.shape[0]]):
            if result is None:
                caption = "clean"
            else:
                fooled = "fooled" if bool(result.success[i]) else "held"
                caption = f"{fooled} · HaarPSI {float(result.measures['haarpsi'][i]):.3f}"
            col.image(display_image(images[i], side=112), caption=caption, width="stretch")

    st.subheader("Perceptual measures per image")
    judges = [m for m in JUDGES if m in cmp.pgd.measures]
    st.plotly_chart(measure_distributions({"PGD-L-inf": cmp.pgd.measures, WDRO_NAME: cmp.wdro.measures}, judges),
                    key="compare.dist")

    st.subheader("Attack success against perceptual cost")
    sweeps = {"PGD-L-inf": cmp.pgd_sweep, WDRO_NAME: cmp.wdro_sweep}
    marks = {"PGD-L-inf": next(p for p in cmp.pgd_sweep if p.param == cmp.eps),
             WDRO_NAME: next(p for p in cmp.wdro_sweep if p.param == cmp.budget)}
    f1, f2 = st.columns(2)
    with f1:
        st.plotly_chart(frontier_figure(sweeps, "ssim-padded", marks=marks), key="compare.frontier_ssim")
    with f2:
        st.plotly_chart(frontier_figure(sweeps, "haarpsi", marks=marks), key="compare.frontier_haarpsi")
    st.caption("Stars: the matched runs. Each curve sweeps its attack's budget (eps for PGD, delta for W-DRO).")

    st.subheader("The distributional budget at work")
    h1, h2 = st.columns([2, 1])
    with h1:
        st.plotly_chart(cost_histogram(cmp.wdro.cost, cmp.budget, pointwise=cmp.pointwise.cost), key="compare.hist")
    with h2:
        spent = cmp.wdro.cost
        st.metric("Images given more than delta", f"{float((spent > cmp.budget).float().mean()):.0%}")
        st.metric("Images given < delta / 10", f"{float((spent < cmp.budget / 10).float().mean()):.0%}")
        gap = paired_difference(cmp.wdro.success, cmp.pointwise.success)
        st.metric("Success: distrib. / per image",
                  f"{cmp.wdro.success_rate:.0%} / {cmp.pointwise.success_rate:.0%}",
                  delta=f"{gap.difference:+.0%} (95% interval {gap.low:+.0%} to {gap.high:+.0%})", delta_color="off")
        verdict = ("the distributional budget fools more of these images" if gap.clear and gap.difference > 0 else
                   "the per-image budget fools more of these images" if gap.clear else
                   f"no clear difference on {gap.n} images: the interval holds 0 (run more images)")
        st.caption(f"Measured on these {gap.n} images: {verdict}. The distributional budget bounds only the "
                   f"mean cost (spent: {float(cmp.wdro.cost.mean()):.3g}); the worst case spends it on the images "
                   f"that are cheap to flip and little on the hopeless ones. The pointwise one gives every image at "
                   f"most delta (mean spent: {float(cmp.pointwise.cost.mean()):.3g}).")
