"""SSIM with separable Gaussian filters: the valid-window SSIM (piq's), the padded SSIM (the default cost) and their maps.

SSIM is computed with two separable 1-D Gaussian convolutions over the stacked
statistics, and the statistics of the clean image are computed once per attack
(:meth:`~core.measures.Measure.prepare`). In float32 it is within 1e-5 of the exact
(float64) SSIM, closer than piq's own float32 result (up to 3e-5 off), and makes a
W-DRO-SSIM step cost about as much as a PGD step. :func:`padded_ssim` is the same SSIM
of reflect-padded images: plain SSIM barely weighs the outer 5 pixels, and an attack
minimising it hides its change there.

The window and constants are Wang et al.'s (and piq's), stated once here:
:data:`WINDOW` 11, :data:`SIGMA` 1.5, :data:`K1` 0.01, :data:`K2` 0.03.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from core.measures.base import MEASURES, PreparedCost
from core.validation import check_pair

WINDOW = 11  # side of the Gaussian window
SIGMA = 1.5  # its standard deviation
K1, K2 = 0.01, 0.03  # constants of the luminance and contrast-structure terms
SSIM_PAD = WINDOW // 2  # the window radius: the frame valid-window SSIM barely weighs, and the padding that fixes it


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    kernel_size: int = WINDOW,
    kernel_sigma: float = SIGMA,
    k1: float = K1,
    k2: float = K2,
    downsample: bool = True,
) -> torch.Tensor:
    """Structural similarity per image, as ``piq.ssim(x, y, data_range=1.0, reduction="none")``.

    Args:
        x: Images, (N, C, H, W), float in [0, 1], at least ``kernel_size`` a side.
        y: Images, same shape.
        kernel_size: Side of the Gaussian window (odd).
        kernel_sigma: Standard deviation of the window.
        k1: Constant of the luminance term.
        k2: Constant of the contrast-structure term.
        downsample: Average-pool by ``round(min(H, W) / 256)`` first, as piq and skimage do.

    Returns:
        (N,) SSIM; 1 means identical.

    Raises:
        ValueError: As every measure does: mismatched or non-image batches, images smaller than the window.

    References:
        Wang, Bovik, Sheikh, Simoncelli, "Image Quality Assessment: From Error Visibility to
        Structural Similarity", IEEE TIP 13(4), 2004. https://doi.org/10.1109/TIP.2003.819861
    """
    check_pair(x, y)
    MEASURES["ssim"].check(x.shape)
    return ssim_prepared(x, kernel_size=kernel_size, kernel_sigma=kernel_sigma, k1=k1, k2=k2, downsample=downsample)(y)


def ssim_map(x: torch.Tensor, y: torch.Tensor, *, padded: bool = True, full_size: bool = True) -> torch.Tensor:
    """Per-pixel SSIM map averaged over channels, for display, the same size as the images.

    Args:
        x: Images, (N, C, H, W), float in [0, 1].
        y: Images, same shape.
        padded: The map of the default cost, :func:`padded_ssim`: both images reflect-padded
            by the window radius, so every pixel has its own 11x11 window centred on it and a
            change at the border shows where it is (default). ``False``: the classic valid map,
            (H - 10, W - 10), blind to the 5-pixel frame.
        full_size: With ``padded=False``, pad the valid map back to (H, W) by replicating its
            border (it then only lines up with the images; the frame shows its neighbours' values).

    Returns:
        (N, 1, H, W) (or the valid size), 1 where the images agree locally.
    """
    check_pair(x, y)
    MEASURES["ssim-padded" if padded else "ssim"].check(x.shape)
    with torch.no_grad():
        if padded:
            return ssim_prepared(_pad(x), downsample=False, return_map=True)(_pad(y)).mean(1, keepdim=True)
        smap = ssim_prepared(x, downsample=False, return_map=True)(y).mean(1, keepdim=True)
    if full_size:
        pad_h, pad_w = x.shape[-2] - smap.shape[-2], x.shape[-1] - smap.shape[-1]
        pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        smap = F.pad(smap, pads, mode="replicate")
    return smap


def padded_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM per image of ``x`` and ``y`` reflect-padded by the window radius (5 pixels).

    Why: the standard SSIM (piq's, skimage's, :func:`ssim` here) averages its map over the
    windows that fit inside the image, so it centres the 11x11 window only on pixels at least
    5 from the border. The outer 5-pixel frame is weighted only by the tails of the Gaussian
    windows centred further in: on 28x28 images that frame is 59 % of the pixels, and an
    attack minimising ``1 - SSIM`` learns to hide its perturbation there (
    docs/imperceptibility-benchmark.md): with this measure as its cost, W-DRO's
    HaarPSI at 90 % success rises from 0.75 to 0.86). Reflect-padding both images by 5 pixels
    puts every pixel at the centre of a window, so a change anywhere is charged.

    Cost: one SSIM of (H + 10) x (W + 10) images, whose map has H x W windows instead of
    (H - 10) x (W - 10): 2.4x the windows at 28x28, 10 % more at 224x224. Measured, cost and
    gradient of 1,000 28x28 images with the clean statistics cached (``prepare``): 0.34 s
    against 0.09 s for plain SSIM (one CPU thread). Large images are average-pooled first
    exactly as in :func:`ssim`, then padded. Semantics: the 5 pixels next to each edge enter
    their windows twice (once mirrored), and the value is not the published SSIM; compare it
    between attacks, not with SSIM numbers from papers.

    Args:
        x: Images, (N, C, H, W), float in [0, 1], H and W at least 6 (reflect padding by 5).
        y: Images, same shape.

    Returns:
        (N,) SSIM of the padded images; 1 means identical.
    """
    check_pair(x, y)
    MEASURES["ssim-padded"].check(x.shape)
    return padded_ssim_prepared(x)(y)


def ssim_prepared(
    x: torch.Tensor,
    *,
    kernel_size: int = WINDOW,
    kernel_sigma: float = SIGMA,
    k1: float = K1,
    k2: float = K2,
    downsample: bool = True,
    return_map: bool = False,
) -> PreparedCost:
    """Precompute the clean image's local statistics; return ``y -> SSIM(x, y)`` per image (or its map)."""
    f = max(1, round(min(x.shape[-2:]) / 256))
    pool = f > 1 and downsample
    if pool:
        x = F.avg_pool2d(x, kernel_size=f)
    c = x.shape[1]
    g = _gaussian_1d(kernel_size, kernel_sigma, dtype=x.dtype, device=x.device)
    bands = (_band(x.shape[-2], g), _band(x.shape[-1], g))  # built once per prepared image, not per call
    mu_x, ex2 = _separable_blur(torch.cat([x, x * x], dim=1), bands).split(c, dim=1)
    mu_xx = mu_x * mu_x
    sigma_xx = ex2 - mu_xx
    c1, c2 = k1**2, k2**2

    def prepared(y: torch.Tensor) -> torch.Tensor:
        if pool:
            y = F.avg_pool2d(y, kernel_size=f)
        mu_y, ey2, exy = _separable_blur(torch.cat([y, y * y, x * y], dim=1), bands).split(c, dim=1)
        mu_yy, mu_xy = mu_y * mu_y, mu_x * mu_y
        cs = (2 * (exy - mu_xy) + c2) / (sigma_xx + (ey2 - mu_yy) + c2)
        smap = (2 * mu_xy + c1) / (mu_xx + mu_yy + c1) * cs  # (N, C, H', W')
        return smap if return_map else smap.mean(dim=(-1, -2)).mean(dim=1)

    return prepared


def padded_ssim_prepared(x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``y -> SSIM(pad(x), pad(y))`` with the padded clean image's statistics cached."""
    factor = max(1, round(min(x.shape[-2:]) / 256))  # the same downsampling as ``ssim``, before padding
    similarity = ssim_prepared(_pad(x, factor), downsample=False)
    return lambda y: similarity(_pad(y, factor))


def _pad(t: torch.Tensor, factor: int = 1) -> torch.Tensor:
    """Average-pool by ``factor`` (as :func:`ssim` downsamples), then reflect-pad by the window radius."""
    if factor > 1:
        t = F.avg_pool2d(t, kernel_size=factor)
    return F.pad(t, (SSIM_PAD,) * 4, mode="reflect")


def _gaussian_1d(size: int, sigma: float, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()  # the outer product of this with itself equals piq's normalised 2-D window


def _separable_blur(maps: torch.Tensor, bands: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Valid Gaussian blur as piq's, (N, K, H, W) -> (N, K, H - k + 1, W - k + 1), as two matrix products.

    ``bands`` are :func:`_band` of the height and of the width. Each 1-D pass is a product with a
    banded matrix holding the Gaussian on its diagonals: BLAS runs it 2-7x faster on a CPU than the
    depthwise (grouped) convolution it replaces, forward and backward (``python -m bench.ssim_speed``),
    and the result agrees to 1e-6.
    """
    band_h, band_w = bands
    rows = maps @ band_w  # (N, K, H, W'): the pass along the width
    return band_h.transpose(0, 1) @ rows  # (N, K, H', W')


def _band(size: int, g: torch.Tensor) -> torch.Tensor:
    """The (size, size - k + 1) matrix whose column j holds ``g`` in rows j .. j + k - 1."""
    k, out = g.shape[0], size - g.shape[0] + 1
    band = torch.zeros(size, out, dtype=g.dtype, device=g.device)
    cols = torch.arange(out, device=g.device)
    band[cols[:, None] + torch.arange(k, device=g.device)[None, :], cols[:, None]] = g
    return band
