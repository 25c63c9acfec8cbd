"""The held-out imperceptibility benchmark in one command: both bundled models, both held-out subsets.

    python -m bench.heldout [--device cuda] [--n 150] [--steps 100] [--out assets/benchmark/heldout]

Runs :mod:`bench.matched_damage` (90 % and 99 % matched success, the main attacks) on the first
``--n`` correctly classified images of subset **a** (bundled test images 0-749) and **b**
(750-1499) for fmnist-cnn and fmnist-resnet, one after the other, into ``OUT/<model>-<subset>/``.
Nothing here was tuned on these images: the defaults and the cheapest-flips solver's settings
were chosen on 1500-1999 (``bench.flips_solver``, ``docs/default-cost.md``).

Expected time (2026-12, measured): on this project's 2-core CPU machine, one thread per run and
two runs side by side, 150 images at 100 steps take 10-15 minutes per fmnist-cnn subset and 25-35
per fmnist-resnet subset. On a GPU (``--device cuda``, the default when CUDA is present) the
runs are bounded by Python overhead rather than arithmetic; ``--n 750`` (every correctly
classified image of a subset) is the run to make there. No GPU time was available to measure it.
"""

from __future__ import annotations

import argparse

import torch

from bench import matched_damage

MODELS = ("fmnist-cnn", "fmnist-resnet")
SUBSETS = ("a", "b")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--split", nargs="+", default=list(SUBSETS), choices=SUBSETS)
    parser.add_argument("--n", type=int, default=150, help="images per subset (at most 750)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="assets/benchmark/heldout")
    args = parser.parse_args(argv)
    for model in args.model:
        for split in args.split:
            matched_damage.main([
                "--model", model, "--split", split, "--n", str(args.n), "--targets", "0.9", "0.99",
                "--steps", str(args.steps), "--no-investigate", "--threads", str(args.threads),
                "--device", args.device, "--out", f"{args.out}/{model}-{split}",
            ])


if __name__ == "__main__":
    main()
