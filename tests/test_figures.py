"""pages.ui.figures: the plotly figures and images of the pages."""

from __future__ import annotations

import pytest
import torch


def test_frontier_spreads_scores_that_crowd_near_one_on_a_log_axis():
    from core.services.compare import SweepPoint
    from pages.ui.figures import frontier_figure

    wdro = [SweepPoint("wdro", d, s, {"ssim-padded": q, "gmsd": g})
            for d, s, q, g in ((1e-3, 0.2, 0.999, 0.001), (1e-2, 0.9, 0.99, 0.01))]
    fig = frontier_figure({"W-DRO": wdro}, "ssim-padded", marks={"W-DRO": wdro[1]})
    assert fig.layout.xaxis.type == "log"
    assert list(fig.data[0].x) == pytest.approx([0.001, 0.01])  # 1 - SSIM: not a vertical line at x = 1
    assert fig.data[1].x[0] == pytest.approx(0.01)  # the matched star
    assert list(frontier_figure({"W-DRO": wdro}, "gmsd").data[0].x) == pytest.approx([0.001, 0.01])  # lower is better: as is


def test_heatmap_image_has_the_map_own_pixel_grid():
    from pages.ui.figures import heatmap_image

    values = torch.zeros(30, 28)
    values[3, 5] = 2.0  # clipped at vmax
    values[10, 7] = 0.5
    img = heatmap_image(values, vmax=1.0)
    assert img.size == (28, 30) and img.mode == "RGB"  # (width, height): one pixel per map entry
    assert img.getpixel((0, 0)) == (0, 0, 4)  # 0: Inferno's black
    assert img.getpixel((5, 3)) == (252, 255, 164)  # vmax and above: its pale yellow
    assert img.getpixel((7, 10))[0] > 100  # in between


def test_a_figure_row_for_slides_as_png_and_pdf():
    from PIL import Image

    from pages.ui.figures import CHART_EXPORT, image_row, png_and_pdf

    small = Image.new("L", (28, 28), 200)
    row = image_row([(small, "clean"), (small.convert("RGB"), "attacked")], side=448)
    gap = 448 // 16
    assert row.size == (2 * 448 + 3 * gap, 448 + 2 * 28 + gap) and row.mode == "RGB"
    assert row.getpixel((gap + 10, 2 * 28 + 10)) == (200, 200, 200)  # enlarged without smoothing
    png, pdf = png_and_pdf(row)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and pdf[:5] == b"%PDF-"
    assert Image.open(__import__("io").BytesIO(png)).size == row.size
    assert CHART_EXPORT["toImageButtonOptions"]["format"] == "svg"  # the charts' camera saves a vector image
