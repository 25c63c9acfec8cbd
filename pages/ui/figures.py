"""Plotly figures of attacks, comparisons and group fairness (used by the app and by the benchmark scripts).

Each function takes plain results from :mod:`core.services.explore` or :mod:`core.services.compare`
and returns a ``plotly.graph_objects.Figure``; nothing here draws on screen.
"""

from __future__ import annotations

import io
import math

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.colors as pcolors
import plotly.graph_objects as go
import torch
from PIL import Image

from core.services.compare import SweepPoint
from core.services.fairness_demo import map_order
from core.measures import MEASURES

BEFORE, AFTER = "#4C78A8", "#E45756"
ATTACK_COLOURS = {"pgd-linf": "#F58518", "wdro": "#54A24B", "pgd-l2": "#B279A2", "fgsm": "#9D755D"}
CURVE_COLOURS = (*ATTACK_COLOURS.values(), "#4C78A8", "#E45756", "#72B7B2", "#000000")  # eight attacks
TYPE_PX = 14  # the smallest text of a chart (ticks, legends, bar labels): readable at 1024 x 768 and on a projector
_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), template="plotly_white", font=dict(size=TYPE_PX),
               uniformtext=dict(minsize=TYPE_PX - 2, mode="hide"))


def top_classes_figure(rows: Sequence[Mapping[str, float | str]], *, title: str = "Class probabilities") -> go.Figure:
    """Horizontal grouped bars of each class's probability before and after the attack."""
    classes = [str(r["class"]) for r in rows][::-1]
    fig = go.Figure([
        go.Bar(y=classes, x=[float(r["before"]) for r in rows][::-1], name="clean", orientation="h", marker_color=BEFORE),
        go.Bar(y=classes, x=[float(r["after"]) for r in rows][::-1], name="attacked", orientation="h", marker_color=AFTER),
    ])
    fig.update_layout(title=title, barmode="group", xaxis=dict(range=[0, 1], title="probability"),
                      height=80 + 40 * len(rows), legend=dict(orientation="h", y=-0.25), **_LAYOUT)
    return fig


def difference_figure(difference: torch.Tensor, *, title: str | None = None, height: int = 260) -> go.Figure:
    """Heat map of a per-pixel dissimilarity map (H, W), square, 0 (black) where the images agree.

    Sized to sit beside the images of the explorer: no title by default (the page puts a
    caption under it), the colour bar laid flat underneath.
    """
    z = difference.detach().float().cpu().numpy()
    fig = go.Figure(go.Heatmap(z=z[::-1], colorscale="Inferno", zmin=0.0, zmax=max(float(z.max()), 1e-6),
                               colorbar=dict(orientation="h", thickness=8, y=-0.02, yanchor="top", len=1.0)))
    layout = {**_LAYOUT, "margin": dict(l=0, r=0, t=30 if title else 0, b=30)}
    fig.update_layout(title=title, height=height, yaxis=dict(scaleanchor="x", constrain="domain", visible=False),
                      xaxis=dict(visible=False, constrain="domain"), **layout)
    return fig


def measure_distributions(
    results: Mapping[str, Mapping[str, torch.Tensor]], measures: Sequence[str]
) -> go.Figure:
    """Box plots of each measure's per-image scores, one box per attack, one panel per measure.

    Args:
        results: ``{attack display name: {measure name: (N,) scores}}``.
        measures: Which measures to show, in order.
    """
    from plotly.subplots import make_subplots

    # Two lines per title: side by side, one-line titles ran into each other.
    titles = [MEASURES[m].label + ("<br>(↑ = closer)" if MEASURES[m].higher_is_better else "<br>(↓ = closer)")
              for m in measures]
    fig = make_subplots(rows=1, cols=len(measures), subplot_titles=titles)
    for col, name in enumerate(measures, start=1):
        for i, (attack, scores) in enumerate(results.items()):
            values = scores[name].detach().float().cpu().numpy()
            fig.add_trace(go.Box(y=values, name=attack, marker_color=list(ATTACK_COLOURS.values())[i % 4],
                                 showlegend=col == 1, boxpoints="all", jitter=0.4, pointpos=0), row=1, col=col)
    fig.update_layout(height=380, **{**_LAYOUT, "margin": {**_LAYOUT["margin"], "t": 70}})
    fig.update_annotations(font_size=TYPE_PX)
    fig.update_xaxes(showticklabels=False)  # the legend names the boxes
    return fig


def frontier_figure(
    sweeps: Mapping[str, Sequence[SweepPoint]], measure: str, *, marks: Mapping[str, SweepPoint] | None = None,
    emphasis: str | None = None,
) -> go.Figure:
    """Attack success against mean perceptual score, one curve per attack over its budget sweep.

    Args:
        sweeps: ``{attack display name: points}`` (a point's ``param`` may be NaN: no budget to show).
        measure: The measure on the x axis.
        marks: Optional ``{attack display name: point}`` to highlight (the matched runs).
        emphasis: Optional attack display name drawn with a thicker line.
    """
    m = MEASURES[measure]

    def gap(score: float) -> float:  # distance from "identical": 1 - score for similarities, the score otherwise
        return max(1.0 - score if m.higher_is_better else score, 1e-6)

    fig = go.Figure()
    for i, (attack, points) in enumerate(sweeps.items()):
        points = sorted(points, key=lambda p: gap(p.measures[measure]))
        colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
        fig.add_trace(go.Scatter(
            x=[gap(p.measures[measure]) for p in points], y=[p.success_rate for p in points], mode="lines+markers",
            name=attack, marker_color=colour, line_width=4 if attack == emphasis else 2,
            text=[(f"budget {p.param:.3g}<br>" if math.isfinite(p.param) else "") + f"{m.label} {p.measures[measure]:.4f}"
                  for p in points],
            hovertemplate="%{text}<br>success %{y:.2f}<extra></extra>",
        ))
        if marks and attack in marks:
            p = marks[attack]
            fig.add_trace(go.Scatter(x=[gap(p.measures[measure])], y=[p.success_rate], mode="markers", showlegend=False,
                                     marker=dict(symbol="star", size=16, color=colour, line=dict(width=1)),
                                     hovertemplate=f"matched: budget {p.param:.3g}<extra></extra>"))
    # Scores crowd near 1 (SSIM 0.99 against 0.999): 1 - score on a log axis spreads them out.
    what = f"1 - {m.label}" if m.higher_is_better else m.label  # short: two charts side by side at 1024 px
    fig.update_layout(title=dict(text=f"Success vs {what}", x=0, xanchor="left", font=dict(size=TYPE_PX + 1)),
                      yaxis=dict(title="attack success", range=[0, 1.02]),
                      xaxis=dict(title="mean, log scale: left = closer", type="log", dtick=1),  # the title names the measure
                      height=360, legend=dict(orientation="h", y=-0.3), **_LAYOUT)
    return fig


def cost_histogram(cost: torch.Tensor, budget: float, *, label: str = "1 - SSIM", pointwise: torch.Tensor | None = None) -> go.Figure:
    """Histogram of the cost spent per image under a distributional budget, with the uniform budget marked.

    Args:
        cost: (N,) cost each image received.
        budget: The DRO budget delta (its mean); a uniform (pointwise) budget gives every image at most this.
        label: Name of the cost for the axis.
        pointwise: Optional (N,) cost of the pointwise attack at the same budget, drawn beside it.
    """
    fig = go.Figure(go.Histogram(x=cost.detach().float().cpu().numpy(), name="distributional", nbinsx=30,
                                 marker_color=ATTACK_COLOURS["wdro"], opacity=0.8))
    if pointwise is not None:
        fig.add_trace(go.Histogram(x=pointwise.detach().float().cpu().numpy(), name="pointwise (same delta per image)",
                                   nbinsx=30, marker_color="#999999", opacity=0.6))
    fig.add_vline(x=budget, line_dash="dash", annotation_text=f"delta = {budget:.3g}", annotation_position="top")
    fig.update_layout(title="Where the distributional budget went", barmode="overlay",
                      xaxis=dict(title=f"cost spent per image ({label})"), yaxis=dict(title="images"),
                      height=340, legend=dict(orientation="h", y=-0.3), **_LAYOUT)
    return fig


# ------------------------------------------------------------------------------------------ fairness
# ``entries`` below map a model's display name to its entry of the fairness demo's
# evaluation (schema in core.services.fairness_demo): "clean", "under_attack", "history".

CONDITIONS = {"clean": "clean", "wdro": "under W-DRO (padded SSIM)", "pgd-linf": "under PGD-L-inf"}
MODEL_COLOURS = ("#4C78A8", "#54A24B", "#F58518", "#B279A2", "#E45756", "#9D755D", "#72B7B2")
METHOD_COLOURS = {"ERM": MODEL_COLOURS[0], "W-DRO": MODEL_COLOURS[1], "W-DRO + CVaR 0.2": MODEL_COLOURS[3],
                  "W-DRO 0.01": MODEL_COLOURS[6], "PGD-AT": MODEL_COLOURS[5],
                  "Group DRO": MODEL_COLOURS[2]}  # as the demo's bars; the map's bars in this order


def report_of(entry: Mapping, condition: str) -> Mapping:
    """The FairnessReport dict of an entry: ``"clean"``, or robust under an attack of the entry."""
    return entry["clean"] if condition == "clean" else entry["under_attack"][condition]["robust"]


def group_accuracy_bars(entries: Mapping[str, Mapping], groups: Sequence[str], conditions: Sequence[str]) -> go.Figure:
    """Grouped bars of per-group accuracy: one panel per condition, one bar per model within each group."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(conditions), shared_yaxes=True,
                        subplot_titles=[CONDITIONS.get(c, c) for c in conditions])
    for col, condition in enumerate(conditions, start=1):
        for i, (name, entry) in enumerate(entries.items()):
            if condition != "clean" and condition not in entry.get("under_attack", {}):
                continue
            by_group = report_of(entry, condition)["by_group"]
            values = [by_group[gname]["accuracy"] for gname in groups]
            fig.add_trace(go.Bar(x=list(groups), y=values, name=name, legendgroup=name, showlegend=col == 1,
                                 marker_color=MODEL_COLOURS[i % len(MODEL_COLOURS)],
                                 text=[f"{v:.1%}" for v in values], textposition="outside"), row=1, col=col)
    fig.update_yaxes(range=[0, 1.08], tickformat=".0%", row=1, col=1, title="accuracy")
    fig.update_layout(barmode="group", height=380, legend=dict(orientation="h", y=-0.15), **_LAYOUT)
    return fig


def training_curves(entries: Mapping[str, Mapping]) -> go.Figure:
    """Per epoch: validation worst-group and mean accuracy (solid, dotted), and the training loss."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["validation accuracy: worst group (solid), mean (dotted)",
                                                        "training loss"])
    for i, (name, entry) in enumerate(entries.items()):
        history = entry.get("history") or []
        colour = MODEL_COLOURS[i % len(MODEL_COLOURS)]
        epochs = [h["epoch"] for h in history]
        with_val = [h for h in history if h.get("val")]
        if with_val:
            fig.add_trace(go.Scatter(x=[h["epoch"] for h in with_val], y=[h["val"]["worst_group_accuracy"] for h in with_val],
                                     name=name, legendgroup=name, mode="lines+markers", line=dict(color=colour)),
                          row=1, col=1)
            fig.add_trace(go.Scatter(x=[h["epoch"] for h in with_val], y=[h["val"]["mean_accuracy"] for h in with_val],
                                     name=f"{name} (mean)", legendgroup=name, showlegend=False, mode="lines",
                                     line=dict(color=colour, dash="dot")), row=1, col=1)
        fig.add_trace(go.Scatter(x=epochs, y=[h["loss"] for h in history], name=name, legendgroup=name,
                                 showlegend=not with_val, mode="lines+markers", line=dict(color=colour)), row=1, col=2)
    fig.update_xaxes(title="epoch", dtick=1)
    fig.update_yaxes(tickformat=".0%", row=1, col=1)
    fig.update_layout(height=340, legend=dict(orientation="h", y=-0.2), **_LAYOUT)
    return fig


def cost_by_group(entries: Mapping[str, Mapping], groups: Sequence[str], *, attack: str = "wdro") -> go.Figure:
    """Where the worst-case distribution spends its transport budget: mean cost per example of each group.

    Left: the W-DRO attack on each trained model (test images); right: during W-DRO
    training (last epoch), for the models trained with W-DRO.
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["attack on the trained model (test)",
                                                        "during W-DRO training (last epoch)"])
    for i, (name, entry) in enumerate(entries.items()):
        colour = MODEL_COLOURS[i % len(MODEL_COLOURS)]
        attacked = entry.get("under_attack", {}).get(attack)
        if attacked:
            values = [attacked["mean_cost"][gname] for gname in groups]
            fig.add_trace(go.Bar(x=list(groups), y=values, name=name, legendgroup=name, marker_color=colour,
                                 text=[f"{s:.0%} of it" for s in (attacked["cost_share"][gname] for gname in groups)],
                                 textposition="outside"), row=1, col=1)
        training = entry.get("transport_cost_by_group")
        if training:
            fig.add_trace(go.Bar(x=list(groups), y=[training[gname] for gname in groups], name=name, legendgroup=name,
                                 showlegend=not attacked, marker_color=colour), row=1, col=2)
    fig.update_yaxes(title="mean cost per example (1 - SSIM)", row=1, col=1)
    fig.update_layout(barmode="group", height=340, legend=dict(orientation="h", y=-0.15), **_LAYOUT)
    return fig


AXIS_FLOOR = -20.0  # the map's y-axis stops here; bars below it are labelled with their value


def fairness_map(summary: Mapping, *, selection: str = "last") -> go.Figure:
    """Where perceptual DRO helps and where it cannot: each method's accuracy minus ERM's, per minority rendering.

    ``summary`` is the fairness map (``assets/fairness/map.json``, written by
    ``python -m bench.fairness_benchmark --report DIR --asset ...``). The renderings are
    ordered by their distance (mean transport cost between an image and its rendering);
    bars are means over seeds of the paired difference to ERM with 95% t-intervals.
    Left: worst-group accuracy; right: mean accuracy (points). An axis with a bar below
    :data:`AXIS_FLOOR` is cut there, and each such bar is labelled with its value.
    """
    from plotly.subplots import make_subplots

    renderings = map_order(summary)
    labels = [f"{name} ({entry['distance']:.2f})" if entry["distance"] is not None else name
              for name, entry in renderings]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["worst group minus ERM (points)",
                                                        "mean accuracy minus ERM (points)"])
    methods = list(dict.fromkeys(m for _, entry in renderings for m in entry["methods"] if m != "ERM"))
    methods.sort(key=lambda m: list(METHOD_COLOURS).index(m) if m in METHOD_COLOURS else len(METHOD_COLOURS))
    for i, method in enumerate(methods):
        colour = METHOD_COLOURS.get(method, MODEL_COLOURS[(i + 4) % len(MODEL_COLOURS)])
        label = method + (" (group labels)" if method in summary.get("labels_used", ()) else "")
        for col, key in ((1, "worst_group_accuracy"), (2, "mean_accuracy")):
            pairs = [entry["methods"].get(method, {}).get("vs_erm", {}).get(selection, {}).get(key, (None, None))
                     for _, entry in renderings]
            seeds = [len(entry["methods"].get(method, {}).get("seeds", ())) for _, entry in renderings]
            fig.add_trace(go.Bar(x=labels, y=[p[0] for p in pairs], name=label, legendgroup=method,
                                 showlegend=col == 1, marker_color=colour,
                                 customdata=seeds, hovertemplate="%{y:+.1f} points (%{customdata} seeds)",
                                 error_y=dict(type="data", array=[p[1] or 0.0 for p in pairs], visible=True)),
                          row=1, col=col)
    for col in (1, 2):
        fig.add_hline(y=0, line_color="#444", line_width=1, row=1, col=col)
        # a collapse (PGD-AT on fog: -73 points) would flatten every other bar: cut the axis, label what is cut
        bars = [(x, y, e) for trace in fig.data if trace.xaxis == ("x" if col == 1 else "x2")
                for x, y, e in zip(trace.x, trace.y, trace.error_y.array) if y is not None]
        low = [(x, y) for x, y, _ in bars if y < AXIS_FLOOR]
        if low:
            top = max([7.0] + [y + e + 1.0 for _, y, e in bars])  # room for the target line, its label and every interval
            fig.update_yaxes(range=[AXIS_FLOOR, top], row=1, col=col)
            for x, y in low:
                fig.add_annotation(x=x, y=AXIS_FLOOR, text=f"{y:+.0f}", showarrow=False, yshift=8,
                                   font=dict(size=TYPE_PX, color="#222"), row=1, col=col)
    fig.add_hline(y=5, line_dash="dot", line_color="#888", row=1, col=1, annotation_text="target +5",
                  annotation_position="top left")
    fig.update_xaxes(title="minority rendering (distance)")
    fig.update_layout(barmode="group", height=440, legend=dict(orientation="h", y=-0.38), **_LAYOUT)
    return fig


def heatmap_image(values: torch.Tensor, *, vmax: float | None = None) -> Image.Image:
    """An (H, W) map as an Inferno-coloured RGB image, pixel for pixel (0 black, ``vmax`` pale yellow).

    Unlike a plotly heat map it has the image's own pixel grid, so enlarged like the images
    and shown beside them at the same width it lines up with them exactly.
    """
    z = values.detach().float().cpu().numpy()
    top = float(vmax) if vmax is not None else float(z.max())
    t = np.clip(z / max(top, 1e-12), 0.0, 1.0)
    anchors = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in pcolors.sequential.Inferno], dtype=float)
    grid = np.linspace(0.0, 1.0, len(anchors))
    rgb = np.stack([np.interp(t, grid, anchors[:, k]) for k in range(3)], axis=-1).round().astype(np.uint8)
    return Image.fromarray(rgb)  # (H, W, 3) uint8: RGB


SHORTCUT_PARTS = {"aligned": "cue agrees", "conflicting": "cue disagrees", "cue_free": "no cue"}


def shortcut_bars(summary: Mapping, cue: str, *, height: int = 380) -> go.Figure:
    """Per method on one cue of the shortcut runs: test accuracy where the cue agrees with the class, where it
    disagrees (ERM's worst group) and on the cue-free images; means over seeds with 95% t-intervals."""
    rows = summary["cues"][cue]["rows"]
    names = list(rows)
    fig = go.Figure()
    colours = (MODEL_COLOURS[0], MODEL_COLOURS[4], MODEL_COLOURS[6])
    for (key, label), colour in zip(SHORTCUT_PARTS.items(), colours):
        means = [rows[n][key][0] for n in names]
        halves = [rows[n][key][1] or 0.0 for n in names]
        fig.add_trace(go.Bar(x=names, y=means, name=label, marker_color=colour,
                             error_y=dict(type="data", array=halves, visible=True),
                             text=[f"{m:.0f}" for m in means], textposition="outside"))
    fig.update_layout(barmode="group", height=height, yaxis=dict(range=[0, 108], title="test accuracy (%)"),
                      legend=dict(orientation="h", y=-0.2), **_LAYOUT)
    return fig


def shortcut_map(summary: Mapping) -> go.Figure:
    """The dose-response map of the shortcut runs: worst-group accuracy minus ERM's (points) against the size of the
    ball over the cue's switch distance (W-DRO: budget / cost of the switch; PGD-AT: radius / its L-inf), per cue.
    A ratio above 1 means the ball holds the switch."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, subplot_titles=[
        "W-DRO: budget ÷ switch cost", "PGD-AT: radius ÷ switch L-inf"])
    dashes = {"mark": "solid", "pattern": "dot"}
    for cue, entry in summary["cues"].items():
        for col, kind in enumerate(("W-DRO", "PGD-AT"), start=1):
            points = entry.get("map", {}).get(kind, [])
            if not points:
                continue
            fig.add_trace(go.Scatter(
                x=[p["ratio"] for p in points], y=[p["d_worst"][0] for p in points], mode="lines+markers",
                name=f"{kind}, {cue}", line=dict(dash=dashes.get(cue, "solid"),
                                                 color=METHOD_COLOURS["W-DRO" if kind == "W-DRO" else "PGD-AT"]),
                hovertext=[f"{kind} {p['size']:g}: {p['d_worst'][0]:+.1f} points" for p in points],
            ), row=1, col=col)
    ticks = [0.03, 0.1, 0.25, 0.5, 1, 2, 4, 8]
    for col in (1, 2):
        fig.add_vline(x=1.0, line=dict(color="grey", dash="dash"), row=1, col=col)
        fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks], row=1, col=col)
    fig.add_hline(y=0, line=dict(color="black", width=1))
    fig.update_yaxes(title="worst group vs ERM (points)", row=1, col=1)
    fig.update_layout(height=400, legend=dict(orientation="h", y=-0.2), **_LAYOUT)
    return fig


CHART_EXPORT = {"toImageButtonOptions": {"format": "svg", "scale": 2}, "displaylogo": False}
"""plotly config of every chart: the camera button saves a vector SVG (scales to any projector, converts to PDF or PNG
without loss)."""


def image_row(panels: Sequence[tuple[Image.Image, str]], *, side: int = 448, label_px: int = 28) -> Image.Image:
    """Panels side by side for a slide: each image enlarged to ``side`` px without smoothing, its label above it.

    Args:
        panels: ``(image, label)`` pairs (RGB or greyscale PIL images).
        side: Side of each enlarged image in pixels (448: 28 px images x16).
        label_px: Height of the label text in pixels.

    Returns:
        One RGB image, white background.
    """
    from PIL import ImageDraw, ImageFont

    gap, top = side // 16, label_px * 2
    row = Image.new("RGB", (len(panels) * side + (len(panels) + 1) * gap, side + top + gap), "white")
    draw = ImageDraw.Draw(row)
    font = ImageFont.load_default(size=label_px)
    for k, (image, label) in enumerate(panels):
        x = gap + k * (side + gap)
        row.paste(image.convert("RGB").resize((side, side), Image.Resampling.NEAREST), (x, top))
        draw.text((x, label_px // 3), label, fill="black", font=font)
    return row


def png_and_pdf(image: Image.Image) -> tuple[bytes, bytes]:
    """The image as PNG bytes and as a one-page PDF (at 150 dpi) for slides."""
    png, pdf = io.BytesIO(), io.BytesIO()
    image.save(png, "PNG")
    image.save(pdf, "PDF", resolution=150.0)
    return png.getvalue(), pdf.getvalue()
