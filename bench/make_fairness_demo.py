"""Regenerate the bundled fairness demo under assets/fairness (see core.services.fairness_demo for the files and schema).

    python -m bench.make_fairness_demo [--from DIR] [--n-attacked 2000] [--device cuda]

Trains ERM, W-DRO (the default cost, budget 0.03) and Group DRO on fmnist-groups under the
fair protocol (seed 0, the same 18 epochs, 12,000 images; the full Fashion-MNIST must be
installed: Debian's ``dataset-fashion-mnist`` or torchvision's download), or copies them
from a ``bench.fairness_benchmark --save-dir DIR`` run with the same configs, then
evaluates each clean and under W-DRO and PGD-L-inf.
"""

from __future__ import annotations

import argparse

import torch

from core.device import default_device
from core.services.fairness_demo import DEMO_DIR, make_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="from_dir", help="reuse runs of bench.fairness_benchmark --save-dir DIR")
    parser.add_argument("--n-attacked", type=int, default=2000)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    evaluation = make_demo(DEMO_DIR, from_dir=args.from_dir, n_attacked=args.n_attacked,
                           device=default_device(args.device), progress=lambda m: print(m, flush=True))
    for name, entry in evaluation["models"].items():
        c = entry["clean"]
        line = f"{entry['label']:<11} clean: mean {c['mean_accuracy']:.4f} worst {c['worst_group_accuracy']:.4f} gap {c['gap']:.4f}"
        for attack, r in entry["under_attack"].items():
            line += f" | {attack}: worst {r['robust']['worst_group_accuracy']:.4f} gap {r['robust']['gap']:.4f}"
        print(line)


if __name__ == "__main__":
    main()
