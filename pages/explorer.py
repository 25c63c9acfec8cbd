"""Attack explorer: one model, one image, one attack; clean and attacked side by side."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import streamlit as st
import torch
from PIL import Image

from core.attacks import get_attack
from core.attacks.options import DEFAULT_BUDGET, DEFAULT_EPS
from core.imageio import load_tensor, png_bytes, tensor_to_image
from core.measures import DEFAULT_COST, MEASURES, transport_costs
from core.models import MODELS, ModelSpec, get_model_spec, resolve_weights
from core.services.explore import (
    ATTACK_CHOICES, ATTACK_LABELS, AttackSettings, Exploration, gallery_for, label_index, measure_support, run_attack,
    suggested_factor,
)
from pages.ui.figures import CHART_EXPORT, heatmap_image, image_row, png_and_pdf, top_classes_figure
from pages.ui.resources import cached_model, device, has_test_set, model_label, test_set, weights_digest, weights_upload_mb
from pages.ui.state import keep, keep_choices
from pages.ui.widgets import DISPLAY_SIDE, MAX_IMAGE_MB, display_image, presentation_layout, show_error, upload_bytes

UNSURE = 0.5  # a clean top-class probability below this gets a warning
DEFAULT_FACTOR = 10  # the amplification of the change, one for every run until a person moves it
HEAT_RANGES = (0.05, 0.1, 0.2, 0.5, 1.0)
DEFAULT_HEAT_TOP = 0.2
BUDGETS = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
SOURCES = ("Gallery", "Upload", "Random test image")
IMAGE_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp"]
RESULT = "explore.result"


@dataclass(frozen=True)
class Picked:
    """The image a person chose: (1, C, H, W) or ``None``, its true class if known, and how to name it."""

    x: torch.Tensor | None = None
    label: int | None = None
    note: str = ""


@dataclass(frozen=True)
class View:
    """How the result is drawn: the amplification of the change and the heat map's top."""

    factor: int
    heat_top: float


# -- settings ----------------------------------------------------------------------------------------


def model_ui() -> tuple[str, ModelSpec, torch.nn.Module | None]:
    """The classifier: a registry model, its weights downloaded or uploaded when not on this machine."""
    name = st.selectbox("Model", list(MODELS), format_func=model_label, key=keep("keep.model"))
    spec = get_model_spec(name)
    weights, digest = None, None
    if not spec.available_offline():
        st.info(f"The weights of **{name}** are not on this machine. Download them (needs internet), "
                "or upload a state-dict file of this architecture.", icon=":material/download:")
        uploaded = st.file_uploader("State dict (.pt, .pth)", type=["pt", "pth"], key="explore.weights",
                                    max_upload_size=weights_upload_mb(name))
        weights = upload_bytes(uploaded, weights_upload_mb(name)) if uploaded is not None else None
        if weights is not None:  # kept in memory, never written to the server's disk
            digest = weights_digest(weights)
        elif st.button("Download the weights", key="explore.download"):
            download_ui(name, spec)
    try:
        model = cached_model(name, digest, weights) if spec.available_offline() or weights else None
    except ValueError as err:
        show_error(err, what="Could not load the model")
        model = None
    return name, spec, model


def download_ui(name: str, spec: ModelSpec) -> None:
    with st.spinner(f"Downloading the weights of {name} ..."):
        try:
            resolve_weights(spec)
            st.rerun()
        except ValueError:  # the library's message names the server's folders: not for visitors
            file = spec.weights_path.name if spec.weights_path is not None else "the weights file"
            st.error(f"Download failed: this server could not fetch the weights of {name}. Upload a state "
                     f"dict of this architecture above, or ask whoever runs the server to put {file} in "
                     "torch hub's cache.", icon=":material/error:")


def image_ui(name: str, spec: ModelSpec) -> Picked:
    """The image: from the gallery, an upload, or a random labelled test image."""
    source = st.radio("Image", SOURCES, horizontal=True, key=keep("keep.source"))
    if source == "Gallery":
        items = gallery_for(spec)
        pick = st.selectbox("Gallery image", range(len(items)), format_func=lambda i: items[i].name,
                            key=keep(f"keep.gallery.{spec.channels}"))
        x = load_tensor(items[pick].path, channels=spec.channels, size=spec.input_size)
        return Picked(x, label_index(spec, items[pick].label), items[pick].name)
    if source == "Upload":
        return upload_ui(name, spec)
    if not has_test_set(name):
        st.info(f"No labelled test images of {name} are available offline; use the gallery or an upload.")
        return Picked()
    x_test, y_test, data_source = test_set()
    st.session_state.setdefault("keep.test_index", 0)
    if st.button("Draw another test image", key="explore.draw"):
        st.session_state["keep.test_index"] = int(torch.randint(len(y_test), ()).item())
    index = st.session_state["keep.test_index"] % len(y_test)
    return Picked(x_test[index: index + 1], int(y_test[index]), f"Fashion-MNIST test image #{index} ({data_source})")


def upload_ui(name: str, spec: ModelSpec) -> Picked:
    """An uploaded image as the model sees it (size, channels, optionally inverted); no true class."""
    upload = st.file_uploader("Image file", type=IMAGE_TYPES, key="explore.upload", max_upload_size=MAX_IMAGE_MB)
    data = upload_bytes(upload, MAX_IMAGE_MB) if upload is not None else None
    if upload is None or data is None:
        return Picked()
    try:
        x = load_tensor(data, channels=spec.channels, size=spec.input_size)
    except (ValueError, OSError) as err:
        show_error(err, what=f"Cannot use {upload.name}")
        return Picked()
    note = upload.name
    side = min(Image.open(io.BytesIO(data)).size)
    if side < spec.input_size:
        st.warning(f"{upload.name} is {side} px on its short side; it was enlarged to {spec.input_size} px for "
                   f"{name}.", icon=":material/zoom_in:")
    if spec.channels == 1 and st.checkbox(
            "Invert", key=keep("keep.invert", False),
            help="Swap light and dark: Fashion-MNIST images are light garments on black, a shop photo is "
                 "dark on white."):
        x, note = 1.0 - x, note + " (inverted)"
    u1, u2 = st.columns([1, 3], vertical_alignment="center")
    u1.image(display_image(x, 112), width="stretch")
    u2.caption(f"What {name} sees: {spec.channels} x {spec.input_size} x {spec.input_size}"
               + (" greyscale" if spec.channels == 1 else " RGB") + ", the shorter side resized and the centre "
               "cropped. No true class is known, so the page says whether the prediction changed, not whether "
               "the attack succeeded.")
    return Picked(x, None, note)


def attack_ui(spec: ModelSpec) -> AttackSettings:
    """The attack and its budget; what each attack takes comes from its class (:mod:`core.attacks`)."""
    attack = st.selectbox("Attack", ATTACK_CHOICES, format_func=ATTACK_LABELS.get, key=keep("keep.attack"))
    cls = get_attack(attack)
    shape = (1, spec.channels, spec.input_size, spec.input_size)
    settings = AttackSettings(attack=attack)
    if cls.takes_measure:
        costs = transport_costs(shape)
        measure = st.selectbox("Perceptual measure (transport cost)", costs, format_func=lambda m: MEASURES[m].label,
                               key=keep(f"keep.measure.{spec.channels}x{spec.input_size}",
                                        DEFAULT_COST if DEFAULT_COST in costs else costs[0]),
                               help="Only the measures valid at this model's input size and channels are listed.")
        settings = replace(settings, measure=measure)
    if settings.wdro:
        budget = st.select_slider(f"DRO budget delta (mean {MEASURES[settings.measure].cost_formula})", BUDGETS,
                                  key=keep(f"keep.budget.{settings.measure}", DEFAULT_BUDGET),
                                  format_func=lambda v: f"{v:g}")
        settings = replace(settings, budget=budget)
    elif cls.minimal:  # no budget: the smallest change that fools, in the attack's own distance
        own = MEASURES[settings.measure if cls.takes_measure else cls.measure]
        cap = st.number_input(f"Largest {own.label} allowed (0: no cap)", 0.0, 1e4, format="%g",
                              key=keep(f"keep.cap.{attack}", 0.0),
                              help=f"A minimal attack looks for the fooling image closest in {own.label} "
                                   f"({own.cost_formula}); a cap makes it give up beyond that distance.")
        settings = replace(settings, eps=cap if cap > 0 else None)
    elif attack == "pgd-l2":
        eps = st.slider("L2 radius eps", 0.1, 5.0, step=0.1, key=keep("keep.eps_l2", DEFAULT_EPS["pgd-l2"]))
        settings = replace(settings, eps=eps)
    else:
        eps255 = st.slider("L-inf radius eps (in 1/255)", 1, 32, key=keep("keep.eps_linf",
                                                                          round(DEFAULT_EPS[attack] * 255)))
        settings = replace(settings, eps=eps255 / 255)
    with st.expander("Advanced"):
        settings = advanced_ui(settings)
    skipped = measure_support(shape)[1]
    if skipped:
        st.caption("Not available at this size: " + "; ".join(MEASURES[m].label for m in skipped)
                   + " (why: under the table of measures).")
    return settings


def advanced_ui(settings: AttackSettings) -> AttackSettings:
    """The penalty form (W-DRO), steps, step size, loss and seed, each shown only where the attack takes it."""
    attack = settings.attack
    cls = get_attack(attack)
    if settings.wdro and st.checkbox("Penalty form: fix gamma instead of the budget", key=keep("keep.penalty")):
        gamma = st.number_input("gamma", min_value=1e-3, max_value=1e6, format="%g", key=keep("keep.gamma", 100.0),
                                help="Larger gamma: a milder, cheaper-looking attack.")
        settings = replace(settings, gamma=gamma, budget=None)  # the penalty form replaces the budget
    if cls.takes_steps:
        steps = st.number_input("Steps", 1, 1000, key=keep(f"keep.steps.{attack}", cls.default("steps")))
        settings = replace(settings, steps=int(steps))
    if cls.takes_step_size:
        default = cls.default("step_size")  # None: the attack derives it (PGD: 2.5 eps / steps)
        step = st.number_input("Step size" if default is not None else "Step size (0: the attack's default)",
                               0.0, 1.0, format="%g", key=keep(f"keep.step.{attack}", default or 0.0))
        settings = replace(settings, step_size=step if step > 0 else None)
    if cls.takes_loss:  # the minimal attacks have their own constraint
        loss = st.radio("Loss", ("margin", "ce"), horizontal=True, key=keep("keep.loss"),
                        format_func={"margin": "margin (stop once fooled)", "ce": "cross-entropy"}.get,
                        help="On one confident image the cross-entropy saturates (its gradient underflows), "
                             "so the margin loss is the default.")
        settings = replace(settings, loss=loss)
    seed = st.number_input("Seed", 0, 2**31 - 1, key=keep("keep.seed", 0))
    return replace(settings, seed=int(seed))


# -- running -----------------------------------------------------------------------------------------


def run_ui(model, spec: ModelSpec, name: str, picked: Picked, settings: AttackSettings, results) -> None:
    """Run the attack with a progress bar in ``results``; keep the result in the session, or say why it failed."""
    bar = results.progress(0.0, text=f"Running {settings.describe()} ...")
    label = ATTACK_LABELS[settings.attack]
    try:
        out = run_attack(model, picked.x.to(device()), settings, labels=spec.labels, label=picked.label,
                         progress=lambda t, n: bar.progress(t / n, text=f"{label}: step {t} of {n}"))
    except (ValueError, RuntimeError) as err:
        bar.empty()
        show_error(err, what="The attack could not run")
        return
    bar.empty()
    st.session_state[RESULT] = {"out": out, "model": name, "image": picked.note}
    if st.session_state.get("keep.auto_scale", False):  # per run, on request only: scales must compare
        st.session_state["keep.factor"] = int(suggested_factor(out.x, out.x_adv))


# -- the result --------------------------------------------------------------------------------------


def judged(out: Exploration) -> tuple[str, str]:
    """A measure the attack did not optimise (L-inf, or padded SSIM for an L-inf attack) and its value as shown."""
    judge = "linf" if out.result.measure != "linf" else "ssim-padded"
    value = out.measures.get(judge)
    return judge, "n/a" if value is None else f"{value * 255:.1f}/255" if judge == "linf" else f"{value:.4f}"


def summary_ui(shown: dict, stale: bool) -> View:
    """The result's heading, four metrics, and the display controls (amplification, heat range)."""
    out: Exploration = shown["out"]
    if stale:
        st.caption(":material/info: The settings changed since this result; press **Run** to update it.")
    st.subheader(f"{shown['model']} · {shown['image']} · {out.settings.describe()}")
    m1, m2 = st.columns(2)  # two by two: four across clip the values at 1024 px
    m3, m4 = st.columns(2)
    m1.metric("Attack succeeded" if out.labelled else "Prediction changed",  # unlabelled: the clean one may be wrong
              "yes" if out.success else "no")
    confidence = float(out.result.prob_clean[0].max())
    if confidence < UNSURE:
        st.warning(f"The model is unsure of the clean image (its top class has {confidence:.0%}): the image may be "
                   "far from what it was trained on, so read the attack's effect with care.", icon=":material/help:")
    m2.metric("Prediction", out.pred_adv, delta=f"was {out.pred_clean}", delta_color="off", delta_arrow="off")
    spent = MEASURES.get(out.result.measure)
    value = float(out.result.cost[0])
    m3.metric("Cost spent", f"{value * 255:.1f}/255" if out.result.measure == "linf" else f"{value:.4g}",
              help=f"in the attack's own measure, {spent.label}: {spent.cost_formula}" if spent else None)
    judge, shown_value = judged(out)
    m4.metric(f"{MEASURES[judge].label} (not optimised)", shown_value)
    s1, s2 = st.columns(2, vertical_alignment="bottom")
    factor = s1.slider("Amplification of the change", 1, 100, key=keep("keep.factor", DEFAULT_FACTOR),
                       help="The same for every run until you move it, so two attacks compare by eye; the display "
                            "only, the attack is not run again.")
    heat_top = s2.select_slider("Heat map range: 0 to", HEAT_RANGES, key=keep("keep.heat_top", DEFAULT_HEAT_TOP),
                                help="1 - local SSIM; fixed across runs so that two maps compare.")
    st.checkbox("Choose the amplification anew for each run", key=keep("keep.auto_scale", False),
                help="Choose the amplification anew for each run (the largest change at half the grey range).")
    return View(factor, heat_top)


def images_ui(shown: dict, view: View, present: bool) -> None:
    """Clean, attacked, the change and the SSIM map; a figure of the four; both images at 1:1."""
    out: Exploration = shown["out"]
    verdict = "fooled" if out.success else "not fooled"
    side = 448 if present else DISPLAY_SIDE
    if present:  # one line a room can read
        spent = MEASURES.get(out.result.measure)
        judge, judge_value = judged(out)
        st.subheader(f"{out.pred_clean} → {out.pred_adv} ({verdict}) · {spent.label + ' cost' if spent else 'cost'}: "
                     f"{float(out.result.cost[0]):.3g} · {MEASURES[judge].label}: {judge_value}")
    change = out.perturbation(view.factor)
    heat = heatmap_image(out.difference, vmax=view.heat_top)
    c1, c2, c3, c4 = st.columns(4)
    c1.image(display_image(out.x, side), caption=f"clean: {out.pred_clean}", width="stretch")
    c2.image(display_image(out.x_adv, side), caption=f"attacked: {out.pred_adv} ({verdict})", width="stretch")
    c3.image(display_image(change, side), caption=f"|change| x{view.factor} (grey = 0)", width="stretch")
    c4.image(display_image(heat, side), width="stretch",
             caption=f"1 - local SSIM, 0 to {view.heat_top:g} (max {float(out.difference.max()):.2f})")
    png, pdf = png_and_pdf(image_row([
        (display_image(out.x, 28), f"clean: {out.pred_clean}"), (display_image(out.x_adv, 28), f"attacked: {out.pred_adv}"),
        (display_image(change, 28), f"|change| x{view.factor}"), (heat, f"1 - local SSIM, 0 to {view.heat_top:g}")]))
    stem = f"{shown['model']}_{out.settings.attack}"
    f1, f2 = st.columns(2)
    f1.download_button("Figure (PNG)", png, f"{stem}_row.png", "image/png", key="explore.fig_png",
                       on_click="ignore", width="stretch")
    f2.download_button("Figure (PDF)", pdf, f"{stem}_row.pdf", "application/pdf", key="explore.fig_pdf",
                       on_click="ignore", width="stretch")
    n1, n2, n3 = st.columns([1, 1, 5], vertical_alignment="center")  # judged at the size people see
    for col, image in ((n1, out.x[0]), (n2, out.x_adv[0])):
        natural = tensor_to_image(image)
        col.image(natural, width=natural.width)
    n3.caption("clean and attacked at their natural size (1:1)")


def details_ui(shown: dict, view: View) -> None:
    """The top classes, every measure, the multiplier, and the downloads."""
    out: Exploration = shown["out"]
    # one above the other: side by side, both were cut off at 1024 px
    title = f"Top classes (true: {out.label})" if out.labelled else "Top classes (true class unknown)"
    st.plotly_chart(top_classes_figure(out.top_classes(5), title=title), width="stretch", config=CHART_EXPORT,
                    theme=None, key="explore.top5")
    rows = [{
        "measure": MEASURES[m].label + (" (x255)" if m == "linf" else ""),  # in the unit of the sliders and metric
        "score": v * 255 if m == "linf" else v,
        "better": "higher" if MEASURES[m].higher_is_better else "lower",
        "attack's cost": "yes" if m == out.result.measure else "",
    } for m, v in out.measures.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height=35 * (len(rows) + 1) + 3,  # no scroll
                 column_config={"score": st.column_config.NumberColumn(format="%.5g")})
    if out.skipped:
        st.caption("Not defined at this image size: " + "; ".join(
            f"{MEASURES[m].label} ({why})" for m, why in out.skipped.items()) + ".")
    gamma = float(out.result.final_gamma[0])
    if gamma == gamma:  # W-DRO: the multiplier it ended with
        st.caption(f"Final gamma = {gamma:.4g}; transport cost spent = {float(out.result.cost[0]):.4g}.")
    stem = f"{shown['model']}_{out.settings.attack}"
    d1, d2 = st.columns(2)  # two a row, short labels: three a row were cut at 1024 px
    d3, _ = st.columns(2)
    d1.download_button("Image (PNG)", png_bytes(out.x_adv[0]), f"{stem}_attacked.png", "image/png",
                       key="explore.dl_adv", on_click="ignore")
    buffer = io.BytesIO()
    np.save(buffer, out.raw_perturbation().numpy())
    d2.download_button("Change (.npy)", buffer.getvalue(), f"{stem}_perturbation.npy",
                       "application/octet-stream", key="explore.dl_delta", on_click="ignore")
    d3.download_button(f"Change x{view.factor} (PNG)", png_bytes(out.perturbation(view.factor)),
                       f"{stem}_perturbation_x{view.factor}.png", "image/png", key="explore.dl_delta_png",
                       on_click="ignore")


def main() -> None:
    keep_choices()  # first, before any widget: see pages.ui.state.keep
    st.title("Attack explorer")
    st.caption("Pick a classifier, an image and an attack; press **Run**. The W-DRO attack spends a perceptual "
               f"budget ({MEASURES[DEFAULT_COST].label} by default) instead of an L-inf or L2 radius.")
    wide = st.container()  # above both columns: the presentation view's images
    controls, results = st.columns([1, 2.4], gap="large")
    with controls:
        name, spec, model = model_ui()
        if model is None:
            return
        picked = image_ui(name, spec)
        settings = attack_ui(spec)
        run = st.button("Run", type="primary", disabled=picked.x is None, key="explore.run", width="stretch")
    with results:  # here, not among the settings: the narrow column cut its label off at 1024 px
        present = st.toggle("Presentation view", key=keep("keep.present", False),
                            help="The images across the whole window, for a projector (28 px images enlarged 16x, "
                                 "never smoothed); the sidebar is hidden until you switch this off.")
    if present:
        presentation_layout()
        # the button beside the pictures it changes: no scrolling down to the settings and back for a new attack
        run = wide.button(f"Run: {settings.describe()}", type="primary", disabled=picked.x is None,
                          key="explore.run_top") or run
    if run and picked.x is not None:
        run_ui(model, spec, name, picked, settings, results)
    shown = st.session_state.get(RESULT)
    if shown is None:
        results.info("Choose the settings on the left and press **Run**.", icon=":material/play_arrow:")
        return
    stale = shown["out"].settings != settings or shown["model"] != name or shown["image"] != picked.note
    with results:
        view = summary_ui(shown, stale)
    # beside the settings, or (presentation view) across the whole page above them, larger
    with wide if present else results:
        images_ui(shown, view, present)
    with results:
        details_ui(shown, view)


main()
