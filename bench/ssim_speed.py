"""SSIM forward + backward against pytorch_msssim and piq, side by side in one run (a benchmark, not a test).

    pip install pytorch_msssim   # the reference, not a dependency of the project
    python -m bench.ssim_speed [--repeats 7] [--threads 1] [--device cuda]

For each shape (28 px grey, 32 px RGB, 224 px RGB) it times the gradient of the mean SSIM
with respect to the attacked batch, with the clean image's statistics prepared once as an
attack does (ours; the references recompute them, which is what they offer): our valid SSIM,
our padded SSIM (the default cost), pytorch_msssim's ``ssim`` (valid windows, win 11, sigma
1.5) and piq's ``ssim``. Medians of ``--repeats`` interleaved runs; ratios to pytorch_msssim.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from core.compat import piq
from core.measures import get_measure

SHAPES = ((256, 1, 28, 28), (64, 3, 32, 32), (16, 3, 224, 224))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    try:
        import pytorch_msssim
    except ImportError:
        pytorch_msssim = None
    print("| shape | ours, valid | ours, padded (default cost) | pytorch_msssim | piq | valid / msssim | padded / msssim | padded / valid |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in SHAPES:
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(shape, generator=gen).to(device)
        x_adv = (x + 0.05 * torch.randn(shape, generator=gen).to(device)).clamp(0, 1)
        valid, padded = get_measure("ssim").prepare(x), get_measure("ssim-padded").prepare(x)
        fns = {"valid": valid, "padded": padded,
               "piq": lambda y: piq.ssim(x, y, data_range=1.0, reduction="none")}
        if pytorch_msssim is not None:
            fns["msssim"] = lambda y: pytorch_msssim.ssim(x, y, data_range=1.0, size_average=False)
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(args.repeats):
            for name, fn in fns.items():
                times[name].append(_grad_time(fn, x_adv, device))
        ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
        ref = ms.get("msssim", float("nan"))
        print(f"| {' x '.join(map(str, shape))} | {ms['valid']:.1f} ms | {ms['padded']:.1f} ms | "
              f"{ref:.1f} ms | {ms['piq']:.1f} ms | {ms['valid'] / ref:.2f} | {ms['padded'] / ref:.2f} | "
              f"{ms['padded'] / ms['valid']:.2f} |", flush=True)


def _grad_time(fn, x_adv: torch.Tensor, device: torch.device) -> float:
    y = x_adv.clone().requires_grad_(True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    (grad,) = torch.autograd.grad(fn(y).sum(), y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
