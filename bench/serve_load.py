"""Many visitors uploading the worst accepted image at once: the server's peak memory and every session's answer.

    python -m bench.serve_load [--sessions 16] [--side 6300]

Starts ``streamlit run app.py`` on loopback, opens ``--sessions`` browser contexts (headless
Debian chromium), and in each one uploads the same ``side x side`` RGB PNG (6300: the largest
accepted image) to the attack explorer at the same moment. A thread samples the resident
memory of the server's process every 0.2 s. Prints the server's memory before and at its
peak, and for each session whether it answered (the page shows what the model sees and enables
Run, or a one-line error) and in how many seconds since the
uploads began. Loopback only; the run ends by itself.
"""

from __future__ import annotations

import argparse
import io
import threading
import time

import numpy as np
from PIL import Image

from bench.browser import free_port, launch, start_server, stop_server, wait_healthy

ANSWER_TIMEOUT = 600_000  # milliseconds a session may take to answer


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--side", type=int, default=6300)
    args = parser.parse_args()
    ramp = np.add.outer(np.arange(args.side), np.arange(args.side)) % 256
    buffer = io.BytesIO()
    Image.fromarray(np.stack([ramp, ramp.T, 255 - ramp], axis=-1).astype(np.uint8)).save(buffer, "PNG")
    png = buffer.getvalue()

    port = free_port()
    proc = start_server(port)
    url = f"http://127.0.0.1:{port}"
    samples: list[float] = []
    done = threading.Event()
    try:
        wait_healthy(url, proc)

        def sample() -> None:
            while not done.is_set():
                samples.append(rss_mb(proc.pid))
                time.sleep(0.2)

        with sync_playwright() as p:
            browser = launch(p)
            pages = []
            for _ in range(args.sessions):
                page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
                page.goto(f"{url}/explorer")
                page.get_by_role("button", name="Run", exact=True).wait_for(timeout=ANSWER_TIMEOUT)
                page.get_by_test_id("stRadio").filter(has_text="Image").get_by_text("Upload", exact=True).click()
                page.locator("input[type=file]").last.wait_for(state="attached", timeout=ANSWER_TIMEOUT)
                pages.append(page)
            before = rss_mb(proc.pid)
            threading.Thread(target=sample, daemon=True).start()
            start = time.monotonic()
            for page in pages:  # as close to together as one driver allows: each upload returns at once
                page.locator("input[type=file]").last.set_input_files(
                    files=[{"name": "big.png", "mimeType": "image/png", "buffer": png}])
            answers = []
            for k, page in enumerate(pages):
                run = page.get_by_role("button", name="Run", exact=True)
                error = page.get_by_test_id("stAlertContentError")
                seen = page.get_by_text("What fmnist-cnn sees", exact=False)  # drawn once the upload is decoded
                try:
                    seen.or_(error).first.wait_for(timeout=ANSWER_TIMEOUT)
                    if error.count():
                        state = "error: " + error.first.inner_text()[:80]
                    else:  # the caption comes first in the page's run; Run is enabled further down the same run
                        page.wait_for_function("() => [...document.querySelectorAll('button')].some(b => "
                                               "b.innerText.trim() == 'Run' && !b.disabled)", timeout=ANSWER_TIMEOUT)
                        state = "ready"
                except Exception as err:  # noqa: BLE001 - a session that never answers is what we measure
                    state = f"no answer ({type(err).__name__})"
                answers.append((k, state, time.monotonic() - start))
            browser.close()
        done.set()
        print(f"{args.sessions} sessions uploading a {args.side} x {args.side} RGB PNG ({len(png) / 1e6:.1f} MB) at once")
        print(f"server memory: {before:.0f} MB before, {max(samples or [before]):.0f} MB at its peak")
        for k, state, seconds in answers:
            print(f"  session {k + 1:2d}: {state} after {seconds:.1f} s")
    finally:
        done.set()
        log = stop_server(proc)
        if "Traceback" in log:
            print("the server's log holds a traceback:", log[-2000:])


if __name__ == "__main__":
    main()
