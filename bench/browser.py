"""A real ``streamlit run`` server on loopback and Debian's headless chromium, for the browser test and benchmark.

Playwright drives the chromium that ``apt-get install chromium`` puts on PATH; it never
downloads a browser of its own.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
START_TIMEOUT = 120.0  # seconds for the server to answer its health check (importing torch on a busy machine)
LOADED_IMAGES = ("n => [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
                 ".filter(i => i.complete && i.naturalWidth > 0).length >= n")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, env: dict[str, str] | None = None, *, cwd: Path = ROOT) -> subprocess.Popen:
    """``streamlit run app.py`` in ``cwd`` on 127.0.0.1:port, headless, without usage statistics or file watching.

    Streamlit reads ``cwd/.streamlit/config.toml`` (the repository's, by default).
    """
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port),
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=cwd, env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = START_TIMEOUT) -> None:
    """Wait until the server answers its health check; raise if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen) -> str:
    """Stop the server; return everything it printed."""
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def launch(playwright):
    """Headless Debian chromium through Playwright."""
    return playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)


def wait_images(page, count: int, timeout_ms: float) -> None:
    """Wait until at least ``count`` Streamlit images of a Playwright page have loaded with a real size."""
    page.wait_for_function(LOADED_IMAGES, arg=count, timeout=timeout_ms)
