"""Time to load each bundled model and to classify the bundled subset, on CPU (a benchmark, not a test).

    python -m bench.model_load [--repeats 5]

Also the resident memory of a fresh process that has imported the app's stack
(streamlit, torch, piq through core) and loaded the default model, measured in a
subprocess so this benchmark's own allocations do not count.
Target: the default model (fmnist-cnn) loads in under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch

from core.data import load_fashion_mnist
from core.evaluation import predict
from core.models import MODELS, load_model

DEFAULT_MODEL = "fmnist-cnn"
_RSS_PROBE = (
    "import resource, streamlit, core.models as m; m.load_model('{name}');"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = load_fashion_mnist("test", source="bundled").tensors()
    bundled = [name for name, spec in MODELS.items() if spec.weights and spec.available_offline()]
    print(f"CPU, {args.threads} torch thread(s), median of {args.repeats}; subset of {len(x)} images\n")
    print(f"{'model':<16}{'load (s)':>10}{'classify (s)':>14}{'images/s':>10}{'accuracy':>10}")
    for name in bundled:
        loads, runs = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model = load_model(name)
            loads.append(time.perf_counter() - start)
            start = time.perf_counter()
            pred = predict(model, x, batch_size=500)
            runs.append(time.perf_counter() - start)
        load, run = statistics.median(loads), statistics.median(runs)
        accuracy = float((pred == y).float().mean())
        print(f"{name:<16}{load:>10.3f}{run:>14.2f}{len(x) / run:>10.0f}{accuracy:>10.4f}")
        if name == DEFAULT_MODEL:
            default_load = load
    rss_kb = int(subprocess.run([sys.executable, "-c", _RSS_PROBE.format(name=DEFAULT_MODEL)],
                                capture_output=True, text=True, check=True).stdout.split()[-1])
    print(f"\nprocess memory with streamlit, torch, piq and {DEFAULT_MODEL} loaded: {rss_kb / 1024:.0f} MiB (max RSS)")
    print(f"target: {DEFAULT_MODEL} loads in under 1 s: {default_load:.3f} s -> "
          f"{'met' if default_load < 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
