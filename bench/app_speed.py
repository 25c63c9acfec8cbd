"""How fast the app answers in a real browser (a benchmark, not a test).

    python -m bench.app_speed [--repeats 5]

Starts ``streamlit run app.py`` on loopback and drives it with Debian's headless chromium
(Playwright), as a person would, and prints three wall times:

* **cold start**: from launching the server process to the home page's heading rendered
  (the browser is already open). Target <= 8 s.
* **default run**: on the attack explorer, from clicking Run to the results rendered
  (metrics, the four images loaded, the plotly chart drawn) for the default model
  (fmnist-cnn), image and attack (W-DRO-SSIM, 100 steps). Target <= 1.5 s.
* **resnet18 run**: the same for resnet18 on the 224 x 224 gallery photo with 50 steps.
  Its weights come from a local file: a state dict written into a temporary torch hub
  cache (random weights of the right shape: the timing does not depend on their values,
  and nothing is downloaded). Target <= 8 s.
* **compare 32** and **compare 64**: on the comparison page, from clicking Run the
  comparison to its results rendered (the metrics, the example images, the distributions
  and the budget histogram) at the defaults (fmnist-cnn, 4/255, 50 W-DRO steps) with 32
  and 64 test images. Targets 5 s and 15 s. **... frontier** adds PGD's other radii, which
  the page runs after those results are on screen, to the two frontier charts drawn.
* **presentation toggle**: on the comparison page with a result shown, from switching the
  presentation view on to the enlarged example rendered (its five pictures; no attack runs again; the
  toggle reruns the page, which restores the sidebar correctly when it is switched off). Target 0.3 s.

Each run is measured in a fresh browser session (a new page load), after the model has been
loaded once by an untimed visit, and the median of ``--repeats`` is reported.
"""

from __future__ import annotations

import argparse
import re
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from playwright.sync_api import expect, sync_playwright

from bench.browser import free_port, launch, start_server, stop_server, wait_healthy, wait_images
from core.compat import torchvision
from core.models import MODELS, hub_weights_path

TIMEOUT = 300_000  # ms
DRAWN_CHARTS = "c => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelector('.main-svg')).length >= c"
TARGETS = {"cold start": 8.0, "default run": 1.5, "resnet18 run": 8.0, "compare 32": 5.0, "compare 32 frontier": 5.0,
           "compare 64": 15.0, "compare 64 frontier": 15.0, "presentation toggle": 0.3}


def write_local_resnet18(hub: Path) -> None:
    """A resnet18 state dict where torch hub's cache expects the ImageNet weights."""
    os.environ["TORCH_HOME"] = str(hub)
    path = hub_weights_path(MODELS["resnet18"].torchvision_weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)


def results_rendered(page, images: int = 4, charts: int = 1) -> None:
    verdict = re.compile("Attack succeeded|Prediction changed")  # the second for an image with no true class
    page.get_by_test_id("stMetric").filter(has_text=verdict).wait_for(timeout=TIMEOUT)
    wait_images(page, images, TIMEOUT)
    page.wait_for_function(DRAWN_CHARTS, arg=charts, timeout=TIMEOUT)


def idle(page) -> None:
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT)


def explorer(page, url: str, model: str | None = None, steps: int | None = None):
    """Open the explorer in a fresh session, pick the model and steps; return the Run button."""
    page.goto(f"{url}/explorer")
    run = page.get_by_role("button", name="Run", exact=True)
    run.wait_for(timeout=TIMEOUT)
    if model:
        page.get_by_test_id("stSelectbox").filter(has_text="Model").first.click()
        page.get_by_role("option", name=model, exact=True).click()
        expect(page.get_by_role("combobox", name="Gallery image")).to_have_value("astronaut", timeout=TIMEOUT)
    if steps:
        page.get_by_text("Advanced").click()
        box = page.get_by_label("Steps", exact=True)
        box.fill(str(steps))
        box.press("Enter")
        page.wait_for_timeout(500)  # let the rerun start, then wait for it to end below
    idle(page)
    return run


def time_run(page, url: str, model: str | None = None, steps: int | None = None) -> float:
    run = explorer(page, url, model, steps)
    start = time.perf_counter()
    run.click()
    results_rendered(page)
    return time.perf_counter() - start


def time_compare(page, url: str, n: int) -> tuple[float, float, float]:
    """Click to results and to the frontier of the comparison with ``n`` images, then the presentation toggle, in s."""
    page.goto(f"{url}/compare")
    run = page.get_by_role("button", name="Run the comparison")
    run.wait_for(timeout=TIMEOUT)
    slider = page.get_by_role("slider", name="Test images")
    slider.focus()
    for _ in range((n - 32) // 16):  # from the default 32, one step of 16 per key
        slider.press("ArrowRight")
        page.wait_for_timeout(300)
    idle(page)
    start = time.perf_counter()
    run.click()
    page.get_by_test_id("stMetric").filter(has_text="Images given nothing").wait_for(timeout=TIMEOUT)
    wait_images(page, 5 * 8, TIMEOUT)
    page.wait_for_function(DRAWN_CHARTS, arg=4, timeout=TIMEOUT)  # two of the benchmark tab, two of the result
    ran = time.perf_counter() - start
    page.wait_for_function(DRAWN_CHARTS, arg=6, timeout=TIMEOUT)  # and the two frontiers
    idle(page)
    swept = time.perf_counter() - start
    start = time.perf_counter()
    page.get_by_text("Presentation view").click()
    page.wait_for_timeout(50)
    idle(page)
    page.wait_for_function("c => [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
                           ".filter(i => i.complete && i.naturalWidth == 448).length >= c", arg=5, timeout=TIMEOUT)
    return ran, swept, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=("explorer", "compare"), help="time one page only (and the cold start)")
    args = parser.parse_args()

    times: dict[str, list[float]] = {k: [] for k in TARGETS}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        write_local_resnet18(Path(tmp))
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        start = time.perf_counter()
        proc = start_server(port, env={"TORCH_HOME": tmp})
        try:
            wait_healthy(url, proc)
            page.goto(url)
            page.get_by_role("heading", name="Human-imperceptible attacks").wait_for(timeout=TIMEOUT)
            times["cold start"].append(time.perf_counter() - start)
            explorer_runs = (("default run", None, None), ("resnet18 run", "resnet18", 50))
            for key, model, steps in explorer_runs if args.only != "compare" else ():
                time_run(page, url, model, steps)  # untimed: loads and caches the model
                for _ in range(args.repeats):
                    times[key].append(time_run(page, url, model, steps))
            for n in (32, 64) if args.only != "explorer" else ():
                time_compare(page, url, n)  # untimed: the first one loads the model and the test set
                for _ in range(args.repeats):
                    ran, swept, toggled = time_compare(page, url, n)
                    times[f"compare {n}"].append(ran)
                    times[f"compare {n} frontier"].append(swept)
                    times["presentation toggle"].append(toggled)
        finally:
            log = stop_server(proc)
            if "Traceback" in log:
                print(log[-3000:])
        browser.close()

    print(f"app speed in headless chromium, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"median of {args.repeats} (cold start: 1)")
    print(f"{'':<20}{'median s':>9}{'min s':>8}{'max s':>8}{'target s':>10}  met")
    for key, values in times.items():
        if not values:
            continue
        median = statistics.median(values)
        print(f"{key:<20}{median:>9.2f}{min(values):>8.2f}{max(values):>8.2f}{TARGETS[key]:>10.1f}  "
              f"{'yes' if median <= TARGETS[key] else 'NO'}")


if __name__ == "__main__":
    main()
