"""The minimal-perturbation baselines against their reference implementation, adv_lib.

    pip install --no-deps adv-lib==0.2.8      # for this check only; not a dependency
    python -m bench.reference_check [--model fmnist-cnn] [--n 256] [--steps 20 100]

Same model, same images (the first ``--n`` bundled test images of the validation range
1500-1999 that the model classifies correctly), same steps and settings: DDN against
``adv_lib.attacks.ddn``, ALMA-SSIM against ``adv_lib.attacks.alma(distance="ssim")`` (with
this project's default start, ``lr_init`` 0.1, and with the paper's ``init_lr_distance``
1e-4), PerC-AL against ``adv_lib.attacks.perc_al``. Prints, per attack, the success rate and
the median distance of the fooled images, ours beside the reference's:

* DDN: the L2 norm of the perturbation;
* ALMA: ``1 - SSIM`` (this project's valid-window SSIM, the same formula as adv_lib's);
* PerC-AL: ``||Delta E_00||_2``, by the exact formula (:mod:`core.measures.ciede2000`) and by adv_lib's
  own. The reference attacks sRGB images, so both implementations get the greyscale image
  repeated three times and a model that reads the mean of the channels (both may spend
  colour). adv_lib's sRGB -> CIELAB uses the cube root down to 0, so black has L* = -16
  instead of 0 and any change of a black pixel costs it about 9-17 Delta E: its attack avoids
  black pixels, and judged by its own formula an attack on the exact one looks worse.

adv_lib imports ``visdom`` (its logger) and ``tqdm``; when they are missing, empty stand-in
modules are put in their place (neither is used by these attacks). torchvision is imported
through :mod:`core.compat` first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types

import torch
from torch import nn

from core.attacks import ALMA, DDN, PerCAL
from core.measures.ciede2000 import ciede2000_distance
from core.compat import torchvision  # noqa: F401  (adv_lib imports torchvision)
from core.services.compare import correctly_classified
from core.measures import get_measure

NEEDS = "adv_lib is not installed: pip install --no-deps adv-lib==0.2.8 (for this check only)"


def import_adv_lib():
    """adv_lib's three attacks and its CIEDE2000, with stand-ins for its unused logging imports."""
    for name in ("visdom", "tqdm"):
        try:
            __import__(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.Visdom = object  # visdom's class, named in adv_lib's type hints
            stub.tqdm = lambda iterable=None, **_: iterable
            sys.modules[name] = stub
    try:
        from adv_lib.attacks import alma, ddn, perc_al
        from adv_lib.attacks.perceptual_color_attacks.differential_color_functions import ciede2000_diff, rgb2lab_diff
    except ImportError:
        raise SystemExit(NEEDS) from None
    return alma, ddn, perc_al, ciede2000_diff, rgb2lab_diff


class ReadsGrey(nn.Module):
    """The greyscale model on three-channel images: it reads the mean of the channels."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.mean(1, keepdim=True))


def summary(fooled: torch.Tensor, distance: torch.Tensor) -> str:
    values = distance[fooled].tolist()
    median = statistics.median(values) if values else float("nan")
    return f"{float(fooled.float().mean()):6.1%} {median:10.5f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fmnist-cnn")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--only", choices=("ddn", "alma", "perc"), nargs="+", help="run only these attacks")
    args = parser.parse_args(argv)
    alma, ddn, perc_al, ciede2000_diff, rgb2lab_diff = import_adv_lib()

    from core.data import load_fashion_mnist
    from core.models import load_model

    model = load_model(args.model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = load_fashion_mnist("test", source="bundled").tensors()
    x, y = correctly_classified(model, x[1500:2000], y[1500:2000], args.n)
    rgb_model, x3 = ReadsGrey(model).eval(), x.expand(-1, 3, -1, -1).contiguous()

    def fooled(x_adv: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x_adv if x_adv.shape[1] == 1 else x_adv.mean(1, keepdim=True)).argmax(1) != y

    def l2(x_adv):
        return (x_adv - x).flatten(1).norm(dim=1)

    def one_minus_ssim(x_adv):
        return get_measure("ssim").cost(x, x_adv)

    def color(x_adv):  # ||Delta E_00||_2 by the exact formula (core.measures.ciede2000)
        return ciede2000_distance(x3, x_adv)

    def color_adv_lib(x_adv):  # adv_lib's ||Delta E_00||_2: its L* of black is -16, not 0
        with torch.no_grad():
            return ciede2000_diff(rgb2lab_diff(x3), rgb2lab_diff(x_adv)).flatten(1).norm(dim=1)

    print(f"{args.model}, {len(y)} correctly classified validation images (bundled test 1500-1999)")
    print(f"{'attack':<34} {'steps':>5}  {'ours: fooled':>12} {'median':>10}  {'adv_lib: fooled':>15} {'median':>10}"
          f"  {'time ours / ref':>16}")
    rows = []
    for steps in args.steps:
        rows += [
            ("DDN (L2)", steps, lambda s=steps: DDN(model, steps=s)(x, y, seed=0).x_adv,
             lambda s=steps: ddn(model, x, y, steps=s, levels=None), {"": l2}),
            ("ALMA-SSIM, lr_init 0.1 (default)", steps, lambda s=steps: ALMA(model, steps=s)(x, y, seed=0).x_adv,
             lambda s=steps: alma(model, x, y, distance="ssim", num_steps=s, α=0.5 if s <= 100 else 0.9),
             {"": one_minus_ssim}),
            ("ALMA-SSIM, init_lr_distance 1e-4", steps,
             lambda s=steps: ALMA(model, steps=s, init_lr_distance=1e-4)(x, y, seed=0).x_adv,
             lambda s=steps: alma(model, x, y, distance="ssim", num_steps=s, α=0.5 if s <= 100 else 0.9,
                                  init_lr_distance=1e-4), {"": one_minus_ssim}),
            ("PerC-AL, 8-bit", steps,
             lambda s=steps: PerCAL(rgb_model, steps=s, levels=256)(x3, y, seed=0).x_adv,
             lambda s=steps: perc_al(rgb_model, x3, y, num_classes=10, max_iterations=s),
             {", exact dE": color, ", adv_lib dE": color_adv_lib}),
        ]
    if args.only:
        rows = [r for r in rows if r[0].split("-")[0].split(" ")[0].lower() in args.only]
    for name, steps, ours, ref, distances in rows:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        ours_adv = ours()
        t1 = time.perf_counter()
        ref_adv = ref().detach()
        t2 = time.perf_counter()
        for judged, distance in distances.items():
            print(f"{name + judged:<34} {steps:>5}  {summary(fooled(ours_adv), distance(ours_adv)):>23}  "
                  f"{summary(fooled(ref_adv), distance(ref_adv)):>26}  {t1 - t0:6.1f} / {t2 - t1:5.1f} s",
                  flush=True)


if __name__ == "__main__":
    main()
