"""Pixel-space measures: MSE (PSNR's cost), PSNR, the L2 norm and its square, L-inf, and CIEDE2000's wrapper."""

from __future__ import annotations

import torch

from core.measures.base import PreparedCost

PSNR_EPS = 1e-8  # piq's constant: PSNR of identical images is 10*log10(1/1e-8) = 80 dB


def mse(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return (x_adv - x).pow(2).flatten(1).mean(1)


def psnr(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(1.0 / (mse(x, x_adv) + PSNR_EPS))


def l2(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return (x_adv - x).flatten(1).norm(dim=1)


def l2_squared(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return (x_adv - x).pow(2).flatten(1).sum(1)


def linf(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return (x_adv - x).abs().flatten(1).amax(1)


def ciede2000(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    from core.measures.ciede2000 import ciede2000_distance

    return ciede2000_distance(x, x_adv)


def ciede2000_prepare(x: torch.Tensor) -> PreparedCost:
    from core.measures.ciede2000 import prepared_distance, to_lab

    return prepared_distance(to_lab(x))
