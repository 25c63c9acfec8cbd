"""Group fairness: per-group accuracy of ERM, W-DRO and Group DRO, clean and under attack; the map of when W-DRO helps; train one now."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from core.data import GROUP_DATASETS
from core.measures import DEFAULT_COST, MEASURES, transport_costs
from core.services.fairness_demo import (
    ATTACKS, DEMO_MODELS, EPOCHS, SHORTCUT_JTT, SHORTCUT_TARGET, SHORTCUT_WDRO, TARGET_WORST, cue_examples, load_demo,
    load_demo_evaluation, load_fairness_map, load_shortcut_summary, map_coverage, map_verdict, shortcut_story,
    shortcut_verdict, train_and_evaluate,
)
from core.services.jobs import Job, JobsBusy
from core.training import METHOD_CLASSES, TrainConfig
from pages.ui.figures import (
    CHART_EXPORT, CONDITIONS, cost_by_group, fairness_map, group_accuracy_bars, report_of, shortcut_bars, shortcut_map,
    training_curves,
)
from pages.ui.resources import device, job_slots, session_jobs
from pages.ui.state import keep, keep_choices
from pages.ui.widgets import DataChoice, data_source_ui, display_image, presentation_layout, show_error

JOB, TRAINED = "fair.job", "fair.trained"
DEFAULT = "fmnist-groups"
SHORTCUT = "fmnist-shortcut"
OFFLINE = tuple(name for name, spec in GROUP_DATASETS.items() if spec.offline)  # need no folder or upload
DATASET_LABELS = {
    "fmnist-groups": "Fashion-MNIST, 5% inverted (demo)",
    SHORTCUT: "Fashion-MNIST with a shortcut cue",
    "celeba": "CelebA: Blond_Hair by Male (your folder)",
    "csv": "Image folder + CSV of path,label,group (yours)",
}
# the naive W-DRO solver is the benchmark's reference, too slow for a room
METHODS = {name: METHOD_CLASSES[name].label for name in ("wdro", "erm", "jtt", "pgd-at", "group-dro")}
BUDGETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1)
CUE_LABELS = {"mark": "a bright pixel (cheap in SSIM)", "pattern": "a faint pattern (cheap in L-inf)"}


@st.cache_data(show_spinner=False)
def demo_evaluation() -> dict:
    return load_demo_evaluation()


@st.cache_data(show_spinner=False)
def protocol_map() -> dict | None:
    return load_fairness_map()


@st.cache_data(show_spinner=False)
def shortcut_summary() -> dict | None:
    return load_shortcut_summary()


@st.cache_data(show_spinner=False)
def examples_of(cue: str) -> list:
    return cue_examples(cue)


def cue_ui(summary: dict) -> str:
    """The cue whose runs are shown."""
    cues = [c for c in ("mark", "pattern") if c in summary["cues"]]
    return st.radio("Cue", cues, horizontal=True, key=keep("keep.fair_cue", cues[0]), format_func=CUE_LABELS.get)


def cue_pictures(cue: str, columns: int) -> None:
    """Two images whose cue names their class, two whose cue names another; the cue in red."""
    for k, (image, caption) in enumerate(examples_of(cue)):
        if k % columns == 0:
            row = st.columns(columns)
        row[k % columns].image(display_image(image, side=168), caption=caption, width="stretch")


def verdict_text(summary: dict, cue: str) -> str:
    """What the runs on ``cue`` say, from their numbers."""
    v = shortcut_verdict(summary, cue)
    if v is None:
        return ""
    dist = v["distance"]
    parts = [f"Switching this cue costs {dist['cost']:.3f} in the perceptual cost and {dist['linf']:.2f} in L-inf. "
             f"W-DRO's worst group: {v['worst'][0]:+.1f} ± {v['worst'][1] or 0:.1f} points against ERM's over "
             f"{v['seeds']} seeds; on images without the cue {v['cue_free'][0]:+.1f}."]
    if v["jtt"] is not None:
        parts.append(f"Against JTT (no group labels either): {v['jtt']:+.1f} points.")
    if v["group_dro"] is not None:
        parts.append(f"Against Group DRO (reads the group labels): {v['group_dro']:+.1f} points.")
    parts.append(f"The target (+{SHORTCUT_TARGET:g} points, interval above 0, no loss without the cue) is "
                 + ("met." if v["helps"] else "not met."))
    return " ".join(parts)


def shortcut_section(summary: dict) -> None:
    """The case where perceptual DRO helps: a label-correlated cue that its ball can switch (and one it cannot)."""
    st.subheader("Where W-DRO helps: a shortcut inside the perceptual ball")
    story = shortcut_story(summary)
    if story:
        st.markdown(story)
    cue = cue_ui(summary)
    cue_pictures(cue, 4)
    st.caption("The cue in red, enlarged 6x. Left two: the cue names the image's class (99% of training images); "
               "right two: another class (1%, ERM's worst group).")
    st.plotly_chart(shortcut_bars(summary, cue), width="stretch", config=CHART_EXPORT, theme=None, key="fair.shortcut")
    said = verdict_text(summary, cue)
    if said:
        st.caption(said + f" Each method trained {summary['epochs']} epochs on 6,000 images, 99% with their own "
                   "class's cue; test images half and half. 'Random cue' is ERM with every cue drawn at random: the "
                   "shortcut removed, the ceiling.")
    if any(entry.get("map", {}).get("W-DRO") for entry in summary["cues"].values()):
        st.plotly_chart(shortcut_map(summary), width="stretch", config=CHART_EXPORT, theme=None, key="fair.shortcut_map")
        seeds = (shortcut_verdict(summary, cue) or {}).get("seeds")
        st.caption("How big the ball must be: each method's worst group minus ERM's against the size of its ball "
                   "over what switching the cue costs in the ball's own measure (right of the dashed line, the "
                   "ball holds the switch). Seed 0 throughout" + (f"; the bars above have {seeds} seeds." if seeds
                                                                  else "."))


def shortcut_presentation(summary: dict) -> None:
    """One screen for a room: the cue switch and its pictures beside the per-group bars and the verdict."""
    left, right = st.columns([1, 2])
    with left:
        cue = cue_ui(summary)
        cue_pictures(cue, 2)
    with right:
        st.plotly_chart(shortcut_bars(summary, cue, height=340), width="stretch", config=CHART_EXPORT, theme=None, key="fair.shortcut_present")
        said = verdict_text(summary, cue)
        if said:
            st.markdown(f"<div style='font-size:1.1rem'>{said}</div>", unsafe_allow_html=True)


@st.cache_resource(show_spinner="Loading the demo model ...")
def demo_model(name: str):
    """A bundled demo model on the app's device, frozen and shared (training works on a copy)."""
    model, _ = load_demo(name, device=device())
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def percent(report: dict, key: str) -> str:
    """``"81.2% [79.9, 82.5]"``: a rate with its bootstrap interval when there is one."""
    value = f"{report[key]:.1%}"
    ci = (report.get("ci") or {}).get(key)
    return f"{value} [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else value


def verdict_line(summary: dict, rendering: str = "inverted") -> str:
    """What the 3-seed protocol says about W-DRO against ERM on one rendering, from the map's numbers."""
    v = map_verdict(summary).get(rendering)
    if v is None:
        return ""
    worst, mean = v["worst"], v["mean"]
    said = (f"Over {v['seeds']} seeds on this minority, W-DRO's worst-group accuracy is {worst[0]:+.1f} "
            f"± {worst[1] or 0:.1f} points against ERM's (mean accuracy {mean[0]:+.1f} ± {mean[1] or 0:.1f}).")
    if v["helps"]:
        return said + f" That meets the +{TARGET_WORST:g}-point target."
    return said + f" The +{TARGET_WORST:g}-point target is not met."



# -- sections ------------------------------------------------------------------------------------------


def intro_ui(shortcut: dict | None) -> bool:
    """The shortcut case first (or alone, in the presentation view); True when the page ends there."""
    if shortcut is not None:
        present = st.toggle("Presentation view", key=keep("keep.fair_present", False),
                            help="The shortcut case on one screen for a projector (the sidebar and the rest of the "
                                 "page are hidden until you switch this off).")
        if present:
            presentation_layout()
            shortcut_presentation(shortcut)
            return True
        st.caption("W-DRO training with a perceptual transport cost trains on the worst case in a Wasserstein ball "
                   "around the data, without reading a group label. It helps a group exactly when what sets the "
                   "group apart lies inside that ball; JTT (no labels either) and Group DRO (reads the labels) are "
                   "the references.")
        shortcut_section(shortcut)
        st.subheader("Minorities far outside the ball: the bundled demo")
    st.caption("Here the minority is rendered differently (inverted contrast by default), far outside the ball. "
               f"All three demo models were trained alike for {EPOCHS} epochs, the point where ERM's validation "
               "accuracy stopped improving (docs/fairness-training.md).")
    return False


def dataset_ui() -> tuple[str, DataChoice]:
    """The data set, and where its files are when it is not bundled."""
    c1, c2 = st.columns([1, 2])
    dataset = c1.selectbox("Data set", list(DATASET_LABELS), format_func=DATASET_LABELS.get,
                           key=keep("keep.fair_dataset"))
    if dataset in OFFLINE:
        return dataset, DataChoice()
    with c2:
        return dataset, data_source_ui(dataset)


def models_of(dataset: str) -> tuple[dict[str, dict], list[str]]:
    """The evaluated models of ``dataset``: the bundled demo's and this session's, and the group names."""
    entries: dict[str, dict] = {}
    groups: list[str] = []
    if dataset == DEFAULT:
        try:
            evaluation = demo_evaluation()
        except ValueError as err:
            show_error(err, what="The bundled fairness demo is missing")
        else:
            groups = list(evaluation["groups"])
            entries = {evaluation["models"][name]["label"]: evaluation["models"][name] for name in DEMO_MODELS
                       if name in evaluation["models"]}
    for label, item in st.session_state.get(TRAINED, {}).items():
        if item["dataset"] == dataset:
            entries[label] = item["entry"]
            groups = groups or item["entry"]["groups"]
    return entries, groups


def collect_job(entries: dict[str, dict]) -> Job | None:
    """A finished training job becomes a model of this page (added to ``entries`` and chosen); else the running job."""
    job: Job | None = st.session_state.get(JOB)
    if job is None or not job.done:
        return job
    del st.session_state[JOB]
    try:
        out = job.result()
    except (ValueError, RuntimeError, OSError) as err:
        show_error(err, what="Training failed")
        return None
    if out is None:
        st.warning("Training was cancelled before its first step; there is nothing to show.")
        return None
    model, entry = out
    if entry.get("notice"):
        st.warning(entry["notice"], icon=":material/warning:")
    trained = st.session_state.setdefault(TRAINED, {})
    label = f"#{len(trained) + 1} {job.label}" + (" (cancelled)" if entry["cancelled"] else "")
    trained[label] = {"dataset": entry["dataset"], "entry": entry, "model": model}
    entries[label] = entry
    st.session_state["keep.fair_models"] = [*st.session_state.get("keep.fair_models", []), label]
    st.toast(f"Trained {label}", icon=":material/check:")
    return None


def chosen_ui(entries: dict[str, dict]) -> dict[str, dict]:
    """The models to show (all of them at first)."""
    if not entries:
        return {}
    keep("keep.fair_models", list(entries))
    st.session_state["keep.fair_models"] = [m for m in st.session_state["keep.fair_models"] if m in entries]
    shown = st.multiselect("Models", list(entries), key="keep.fair_models")
    return {name: entries[name] for name in shown}


def results_ui(chosen: dict[str, dict], groups: list[str], headline: str) -> None:
    """Worst-group metrics, per-group bars and table, training curves, and where the budget goes."""
    # A condition is shown when any chosen model was measured under it (a cancelled run has clean accuracy only:
    # it must not take the attacked panels away from the others).
    conditions = ["clean", *[c for c in CONDITIONS if c != "clean" and any(c in e["under_attack"] for e in chosen.values())]]
    rows = [{"model": name, "inputs": CONDITIONS[condition],
             "mean accuracy": percent(report, "mean_accuracy"),
             "worst-group accuracy": percent(report, "worst_group_accuracy"),
             "worst group": report["worst_group"], "gap": percent(report, "gap")}
            for name, entry in chosen.items() for condition in conditions
            if condition == "clean" or condition in entry["under_attack"]
            for report in [report_of(entry, condition)]]
    st.markdown("**Worst-group accuracy**, clean test images")  # once, not in every label: they were cut at 1024 px
    first_name, first = next(iter(chosen)), next(iter(chosen.values()))["clean"]
    for column, (name, entry) in zip(st.columns(len(chosen)), chosen.items()):
        clean = entry["clean"]
        delta = clean["worst_group_accuracy"] - first["worst_group_accuracy"]
        column.metric(name, f"{clean['worst_group_accuracy']:.1%}",
                      delta=f"{delta * 100:+.1f} points" if name != first_name else None)
        on = f"{entry['clean_images']:,} clean test images" if entry.get("clean_images") else "clean test images"
        column.caption(f"gap {clean['gap'] * 100:.1f} points, mean {clean['mean_accuracy']:.1%} ({on})")
    if headline:
        st.caption(headline)
    st.plotly_chart(group_accuracy_bars(chosen, groups, conditions), width="stretch", config=CHART_EXPORT, theme=None,
                    key="fair.bars")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    attacks = "; ".join(f"{k}: " + ", ".join(f"{p} {v}" for p, v in a.items()) for k, a in ATTACKS.items())
    st.caption(f"95% bootstrap intervals in brackets. Under attack ({attacks}): an example counts when it is "
               "classified correctly both clean and attacked.")
    st.subheader("Training curves")
    st.plotly_chart(training_curves(chosen), width="stretch", config=CHART_EXPORT, theme=None, key="fair.curves")
    st.subheader("Where the transport budget goes")
    st.plotly_chart(cost_by_group(chosen, groups), width="stretch", config=CHART_EXPORT, theme=None, key="fair.cost")
    st.caption("Mean transport cost (1 - padded SSIM) that the worst-case distribution spends per example of each "
               "group, under one budget shared by all the images: left, the W-DRO attack on each model; right, "
               "during W-DRO training.")


def map_ui(summary: dict) -> None:
    """The renderings' map: W-DRO against ERM by how far each rendering lies from the original."""
    st.subheader("Where perceptual DRO helps and where it cannot")
    selection = st.radio("Model selection", list(summary["selections"]), horizontal=True,
                         format_func=summary["selections"].get, key=keep("keep.fair_selection", "last"))
    st.plotly_chart(fairness_map(summary, selection=selection), width="stretch", config=CHART_EXPORT, theme=None,
                    key="fair.map")
    verdict = map_verdict(summary, selection=selection)
    st.dataframe(pd.DataFrame([
        {"minority rendering": name, "distance": f"{v['distance']:.3f}", "epochs": v["epochs"], "seeds": v["seeds"],
         "W-DRO worst group vs ERM": f"{v['worst'][0]:+.1f} ± {v['worst'][1] or 0:.1f}",
         "W-DRO mean vs ERM": f"{v['mean'][0]:+.1f} ± {v['mean'][1] or 0:.1f}",
         "target met": "yes" if v["helps"] else "no"} for name, v in verdict.items()]),
        hide_index=True, width="stretch")
    helped = [name for name, v in verdict.items() if v["helps"]]
    harmed = [name for name, v in verdict.items() if v["harms"]]
    st.caption("The same minority (5% of 12,000 training images) rendered four ways, ordered by how far a "
               "rendering is from the original in the transport cost (mean 1 - padded SSIM between an image and "
               "its rendering). Bars: each method's accuracy on the test split minus ERM's, paired by seed, mean "
               "and 95% interval over the seeds run (hover a bar for their number). " + map_coverage(summary)
               + (f"W-DRO meets the target (+{TARGET_WORST:g} worst-group points, at most 1 mean point lost) on: "
                  f"{', '.join(helped)}. " if helped else
                  f"W-DRO meets the target (+{TARGET_WORST:g} worst-group points) on no rendering. ")
               + (f"It is more than 1 point below ERM on: {', '.join(harmed)}." if harmed else
                  "It is never more than 1 worst-group point below ERM."))


# -- train now -----------------------------------------------------------------------------------------------


def train_settings_ui(dataset: str, has_demo: bool) -> tuple[TrainConfig, dict, str, bool]:
    """The run a person asks for: its :class:`TrainConfig`, the data options, the start, and the full-evaluation box."""
    f1, f2, f3 = st.columns(3)
    method = f1.selectbox("Method", list(METHODS), format_func=METHODS.get, key=keep("keep.fair_method"))
    epochs = f2.slider("Epochs", 1, 10, key=keep("keep.fair_epochs", 2))
    seed = f3.number_input("Seed", 0, 2**31 - 1, key=keep("keep.fair_seed", 0))
    cfg = TrainConfig(method=method, epochs=int(epochs), seed=int(seed))
    options: dict = {}
    if dataset in OFFLINE:
        options["n_train"] = int(f1.select_slider("Training images", (1000, 2000, 3000, 6000, 12000),
                                                  key=keep("keep.fair_n", 3000)))
    if not GROUP_DATASETS[dataset].mirror_safe:
        cfg = replace(cfg, flip=False)
    if dataset == SHORTCUT:  # the inner solver needs its steps to find the cue's switch
        options["cue"] = f2.radio("Cue", ("mark", "pattern"), horizontal=True, key=keep("keep.fair_train_cue", "mark"))
        cfg = replace(cfg, inner_steps=SHORTCUT_WDRO["inner_steps"], **SHORTCUT_JTT)
    if method == "wdro":
        costs = transport_costs((1, *GROUP_DATASETS[dataset].shape))
        measure = f2.selectbox("Transport cost", costs, format_func=lambda m: MEASURES[m].label,
                               key=keep("keep.fair_measure", DEFAULT_COST if DEFAULT_COST in costs else costs[0]))
        default_budget = SHORTCUT_WDRO["budget"] if dataset == SHORTCUT else DEMO_MODELS["wdro"][1].budget
        budget = f3.select_slider("DRO budget delta", BUDGETS, key=keep(f"keep.fair_budget.{dataset}", default_budget))
        cfg = replace(cfg, measure=measure, budget=float(budget))
    starts = ["scratch", *DEMO_MODELS] if dataset == DEFAULT and has_demo else ["scratch"]
    start = f3.selectbox("Start from", starts, key=keep("keep.fair_start"),
                         format_func=lambda s: "random weights" if s == "scratch" else f"a copy of {s}")
    full = st.checkbox("After Cancel, evaluate in full (every test image and both attacks: about a minute)",
                       key=keep("keep.fair_full", False))
    return cfg, options, start, full


def expectation_caption(dataset: str) -> None:
    """What a short run will show, measured, before a person starts one."""
    if dataset == SHORTCUT:
        st.caption("Before you start: a short run does not show the shortcut's effect. Measured on one CPU "
                   "thread with the mark, 3,000 images: after 2 epochs ERM has not yet taken the shortcut "
                   "(74% aligned, 73% conflicting; 42 s with the attacks) and W-DRO is no better (71% / 70%, "
                   "58 s); after 6 epochs ERM 85% / 78%, W-DRO 91% / 75% (94 s). The effect in the bars above "
                   "needs 6,000 images and 6 epochs (ERM about 1 minute, W-DRO 3 to 4 minutes with its five "
                   "inner steps). Cancel skips the attacks and measures clean accuracy on 2,000 test images.")
    else:
        st.caption(f"Before you start: a short run will not match the bundled models ({EPOCHS} epochs on 12,000 "
                   "images; docs/fairness-training.md has 3 seeds). Measured on one CPU thread, W-DRO from random "
                   "weights for 2 epochs on 3,000 images took 48 s (12 s training, 36 s attacking 500 test images) "
                   "and reached 39% mean and 10% worst-group accuracy. Use it to watch training move the groups, "
                   "not to compare with them. Cancel skips the attacks and measures clean accuracy on 2,000 test "
                   "images, in about a second (unless the box below asks for the full evaluation).")


def start_training(cfg: TrainConfig, options: dict, start: str, full: bool, dataset: str, data: DataChoice) -> None:
    """Start the run as a background job of this session (bounded per server) and rerun to show its progress."""
    try:
        base = demo_model(start) if start != "scratch" else None
    except ValueError as err:
        show_error(err, what="Cannot start from that model")
        return
    label = METHODS[cfg.method].split(" (")[0] + (f" {MEASURES[cfg.measure].label} {cfg.budget:g}"
                                                  if cfg.method == "wdro" else "")
    work_device = device()
    holder = session_jobs()

    def work(report, should_stop):
        with data.folder() as root:
            return train_and_evaluate(cfg, dataset=dataset, root=root, data_options=options, start=base,
                                      device=work_device, report=report, should_stop=should_stop,
                                      abandoned=lambda: holder.ended, cancelled_sample=None if full else 2000)

    try:
        job = Job(work, label=f"{label}, {cfg.epochs} epoch{'s' * (cfg.epochs > 1)}", slots=job_slots()).start()
    except JobsBusy as err:
        show_error(err, what="Cannot train now")
        return
    holder.job = job
    st.session_state[JOB] = job
    st.rerun()


def progress_ui(job: Job) -> None:
    """The running job's progress, polled once a second, with its Cancel button."""
    @st.fragment(run_every=1.0)
    def progress() -> None:
        status = job.status
        st.progress(status.fraction, text=f"{job.label}: {status.text} ({status.seconds:.0f} s)")
        if st.button("Cancel", key="fair.cancel", disabled=status.cancelled):
            job.cancel()
            st.caption("Cancelling after the current step ...")
        if status.done:
            st.rerun()

    progress()
    st.caption("Training runs in the background on a copy; the page stays usable, and the result appears "
               "here when it ends. Cancel keeps what was trained so far.")


def train_ui(dataset: str, data: DataChoice, has_demo: bool, job: Job | None, expanded: bool) -> None:
    with st.expander("Train a model now", expanded=expanded):
        if job is not None:
            progress_ui(job)
            return
        cfg, options, start, full = train_settings_ui(dataset, has_demo)
        expectation_caption(dataset)
        slots = job_slots()
        if slots.running:
            st.caption(f"{slots.running} of {slots.limit} training runs are going on this server.")
        ready = dataset in OFFLINE or data.ready
        if st.button("Train", type="primary", key="fair.train", disabled=not ready):
            start_training(cfg, options, start, full, dataset, data)


def main() -> None:
    keep_choices()  # first, before any widget: see pages.ui.state.keep
    st.title("Group fairness before and after DRO training")
    if intro_ui(shortcut_summary()):
        return
    summary = protocol_map()
    dataset, data = dataset_ui()
    entries, groups = models_of(dataset)
    job = collect_job(entries)
    groups = groups or next((e["groups"] for e in entries.values()), [])
    chosen = chosen_ui(entries)
    if chosen:
        results_ui(chosen, groups, verdict_line(summary) if dataset == DEFAULT and summary is not None else "")
    elif dataset in OFFLINE or data.ready:
        st.info("No model for this data set yet: train one below.", icon=":material/model_training:")
    if dataset == DEFAULT and summary is not None:
        map_ui(summary)
    train_ui(dataset, data, bool(entries), job, expanded=job is not None or not chosen)


main()
