"""The measures piq computes: MS-SSIM (standard and for small images), HaarPSI, GMSD, FSIM, VIF.

piq's convention is ``metric(distorted, reference)``; ours is ``measure(x, x_adv)``, so
every function here takes the clean image first and passes it second.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.compat import piq

# MS-SSIM for small images: 3-pixel window and the first three of the five standard scale
# weights (renormalised), so that 28-32 px images reach a 7-8 px coarsest scale.
SMALL_SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001)
_SQRT_EPS = 1e-12


def ms_ssim(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return piq.multi_scale_ssim(x_adv, x, data_range=1.0, reduction="none")


def ms_ssim_small(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(SMALL_SCALE_WEIGHTS, dtype=x.dtype, device=x.device)
    return piq.multi_scale_ssim(x_adv, x, kernel_size=3, scale_weights=weights, data_range=1.0, reduction="none")


def haarpsi(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return piq.haarpsi(x_adv, x, data_range=1.0, reduction="none")


def gmsd(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return piq.gmsd(x_adv, x, data_range=1.0, reduction="none")


def gmsd_cost(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """piq's GMSD with smoothed square roots: equal to within 1e-6, finite gradients everywhere.

    piq takes ``sqrt`` of the gradient magnitude, whose derivative is infinite wherever an
    image is locally flat (the black background of Fashion-MNIST), so every attack step
    would give NaN there; ``sqrt(v + eps) - sqrt(eps)`` does not.
    """
    if x.shape[1] == 3:
        x, x_adv = piq.functional.rgb2yiq(x)[:, :1], piq.functional.rgb2yiq(x_adv)[:, :1]
    pad = max(x.shape[2] % 2, x.shape[3] % 2)
    x, x_adv = (F.avg_pool2d(F.pad(t, [0, pad, 0, pad]), kernel_size=2) for t in (x, x_adv))
    prewitt = piq.functional.prewitt_filter(dtype=x.dtype, device=x.device)
    kernels = torch.stack([prewitt, prewitt.transpose(-1, -2)])  # (2, 1, 3, 3)

    def magnitude(t: torch.Tensor) -> torch.Tensor:
        return _smooth_sqrt(F.conv2d(t, kernels, padding=1).pow(2).sum(1, keepdim=True))

    gms = piq.functional.similarity_map(magnitude(x_adv), magnitude(x), constant=170 / 255**2)
    return _smooth_sqrt((gms - gms.mean(dim=(1, 2, 3), keepdim=True)).pow(2).mean(dim=(1, 2, 3)))


def _smooth_sqrt(v: torch.Tensor) -> torch.Tensor:
    return (v + _SQRT_EPS).sqrt() - _SQRT_EPS**0.5


def fsim(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return piq.fsim(x_adv, x, data_range=1.0, reduction="none")


def vif(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return piq.vif_p(x_adv, x, data_range=1.0, reduction="none")
