"""CIEDE2000 colour difference: sRGB -> CIELAB (D65) and Delta E_00, differentiable.

Written after Sharma, Wu, Dalal (2005) and checked against their published test pairs. For
greyscale images the colour is neutral: ``a* = b* = 0`` and CIEDE2000 reduces to the
lightness term ``|Delta L*| / S_L``. :func:`ciede2000_distance` (the L2 norm over pixels of
the Delta E_00 map) is PerC-AL's distance and the registered measure ``"ciede2000"``.

References:
    Sharma, Wu, Dalal, "The CIEDE2000 color-difference formula: Implementation notes,
    supplementary test data, and mathematical observations", Color Res. Appl. 30(1), 2005.
    https://doi.org/10.1002/col.20070
    Zhao, Liu, Larson, "Towards Large yet Imperceptible Adversarial Image Perturbations with
    Perceptual Color Distance", CVPR 2020. https://arxiv.org/abs/1911.02466
"""

from __future__ import annotations

import math

import torch

__all__ = ["BAD_CHANNELS", "ciede2000", "ciede2000_distance", "ciede2000_squared", "gray_to_lab",
           "prepared_distance", "srgb_to_lab", "to_lab"]

# sRGB (linear) -> XYZ, D65 (IEC 61966-2-1). The white point is taken as the row sums, so that
# every neutral grey (r = g = b) lands exactly on a* = b* = 0 (it agrees with D65's
# (0.95047, 1, 1.08883) to 1e-7).
_RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_DELTA = 6 / 29  # CIELAB's linear-segment threshold on the cube root
_TINY = 1e-30  # floor under square roots, so that their gradients stay finite

BAD_CHANNELS = "CIEDE2000 needs RGB (3 channels) or greyscale (1 channel) images, got {channels} channels"


def srgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """CIELAB (D65) of sRGB images.

    Args:
        x: sRGB images, (N, 3, H, W), float in [0, 1].

    Returns:
        (N, 3, H, W): ``L*`` in [0, 100], ``a*``, ``b*`` roughly in [-128, 128].
    """
    linear = torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)
    matrix = torch.tensor(_RGB_TO_XYZ, dtype=x.dtype, device=x.device)  # (3, 3)
    xyz = torch.einsum("mc,nchw->nmhw", matrix, linear) / matrix.sum(1).view(1, 3, 1, 1)
    fx, fy, fz = _lab_f(xyz).unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def gray_to_lab(x: torch.Tensor) -> torch.Tensor:
    """CIELAB of greyscale images read as neutral sRGB (r = g = b): ``(L*, 0, 0)``.

    Args:
        x: Greyscale images, (N, 1, H, W), float in [0, 1].

    Returns:
        (N, 3, H, W) with ``a* = b* = 0``.
    """
    linear = torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)
    lightness = 116 * _lab_f(linear) - 16
    zeros = torch.zeros_like(lightness)
    return torch.cat([lightness, zeros, zeros], dim=1)


def to_lab(x: torch.Tensor) -> torch.Tensor:
    """CIELAB of (N, 3, H, W) sRGB or (N, 1, H, W) greyscale images; see :func:`srgb_to_lab`."""
    if x.shape[1] == 3:
        return srgb_to_lab(x)
    if x.shape[1] == 1:
        return gray_to_lab(x)
    raise ValueError(BAD_CHANNELS.format(channels=x.shape[1]))


def ciede2000_squared(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """Squared CIEDE2000 colour difference per pixel (``k_L = k_C = k_H = 1``).

    Follows Sharma, Wu, Dalal (2005) step by step, including their conventions for hue
    wrap-around and for zero chroma; gradients stay finite everywhere (greys included).

    Args:
        lab1: Reference colours, (N, 3, ...) in CIELAB.
        lab2: Compared colours, same shape.

    Returns:
        (N, ...) squared ``Delta E_00``, >= 0.
    """
    l1, a1, b1 = lab1.unbind(1)
    l2, a2, b2 = lab2.unbind(1)
    c_mean = (_sqrt(a1**2 + b1**2) + _sqrt(a2**2 + b2**2)) / 2
    g = 0.5 * (1 - _seventh_ratio(c_mean))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = _sqrt(a1p**2 + b1**2), _sqrt(a2p**2 + b2**2)
    h1p, h2p = _hue(a1p, b1), _hue(a2p, b2)
    neutral = (c1p * c2p) == 0  # either colour without chroma: hue terms vanish

    dl = l2 - l1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = torch.where(dh > math.pi, dh - 2 * math.pi, torch.where(dh < -math.pi, dh + 2 * math.pi, dh))
    dh = torch.where(neutral, torch.zeros_like(dh), dh)
    d_big_h = 2 * _sqrt(c1p * c2p) * torch.sin(dh / 2)

    l_mean = (l1 + l2) / 2
    cp_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = torch.where(
        (h1p - h2p).abs() <= math.pi,
        h_sum / 2,
        torch.where(h_sum < 2 * math.pi, (h_sum + 2 * math.pi) / 2, (h_sum - 2 * math.pi) / 2),
    )
    h_mean = torch.where(neutral, h_sum, h_mean)
    t = (
        1
        - 0.17 * torch.cos(h_mean - math.radians(30))
        + 0.24 * torch.cos(2 * h_mean)
        + 0.32 * torch.cos(3 * h_mean + math.radians(6))
        - 0.20 * torch.cos(4 * h_mean - math.radians(63))
    )
    d_theta = math.radians(30) * torch.exp(-(((torch.rad2deg(h_mean) - 275) / 25) ** 2))
    r_c = 2 * _seventh_ratio(cp_mean)
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / torch.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -torch.sin(2 * d_theta) * r_c
    term_c, term_h = dc / s_c, d_big_h / s_h
    return ((dl / s_l) ** 2 + term_c**2 + term_h**2 + r_t * term_c * term_h).clamp_min(0.0)


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 colour difference ``Delta E_00`` per pixel, (N, ...); see :func:`ciede2000_squared`."""
    return _sqrt(ciede2000_squared(lab1, lab2))


def ciede2000_distance(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """PerC's perceptual colour distance: the L2 norm over pixels of the CIEDE2000 map.

    Args:
        x: Clean images, (N, 3, H, W) sRGB or (N, 1, H, W) greyscale, float in [0, 1].
        x_adv: Perturbed images, same shape.

    Returns:
        (N,) ``||Delta E_00(x, x_adv)||_2``; 0 for identical images.
    """
    return prepared_distance(to_lab(x))(x_adv)


def prepared_distance(lab: torch.Tensor):
    """``x_adv -> ||Delta E_00(lab, Lab(x_adv))||_2`` per image, with the clean colours converted once."""
    lab = lab.detach()

    def distance(x_adv: torch.Tensor) -> torch.Tensor:
        return _sqrt(ciede2000_squared(lab, to_lab(x_adv)).flatten(1).sum(1))

    return distance


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    # the clamp keeps the unused cube-root branch's gradient finite at 0
    return torch.where(t > _DELTA**3, t.clamp_min(_DELTA**3) ** (1 / 3), t / (3 * _DELTA**2) + 4 / 29)


def _sqrt(v: torch.Tensor) -> torch.Tensor:
    """``sqrt(v)`` for ``v >= 0``, exactly 0 at 0, with a zero (not infinite) gradient there."""
    positive = v > 0
    return torch.where(positive, v.clamp_min(_TINY).sqrt(), torch.zeros_like(v))


def _seventh_ratio(c: torch.Tensor) -> torch.Tensor:
    """``sqrt(c^7 / (c^7 + 25^7))`` written as ``c^3.5 / sqrt(c^7 + 25^7)``: smooth at ``c = 0``."""
    return c.clamp_min(0.0) ** 3.5 / torch.sqrt(c**7 + 25.0**7)


def _hue(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hue angle in [0, 2 pi), 0 where ``a = b = 0`` (with a zero gradient there, not NaN)."""
    zero = (a == 0) & (b == 0)
    h = torch.atan2(torch.where(zero, torch.zeros_like(b), b), torch.where(zero, torch.ones_like(a), a))
    return torch.where(h < 0, h + 2 * math.pi, h)
