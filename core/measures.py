"""Perceptual measures: a registry of per-image dissimilarities over ``piq``.

Every entry gives two views of the same comparison between a clean image ``x``
and a perturbed image ``x_adv``:

* ``cost(x, x_adv)`` is the transport cost ``d(x, x_adv)`` of the W-DRO attack:
  per image, non-negative, zero when ``x_adv == x``, differentiable in ``x_adv``;
* ``score(x, x_adv)`` is the number people quote (SSIM 0.98, PSNR 41 dB,
  L-inf 8/255), with its direction in ``higher_is_better``.

Each entry knows the smallest image side it accepts and whether it needs RGB;
:meth:`Measure.check` raises a clear ``ValueError`` before piq would fail with
an ``AssertionError``.

SSIM is computed here with two separable 1-D Gaussian convolutions over the
stacked statistics, and the statistics of the clean image are computed once per
attack (:meth:`Measure.prepare`). In float32 it is within 1e-5 of the exact
(float64) SSIM, closer than piq's own float32 result (up to 3e-5 off); and
makes a W-DRO-SSIM step cost about as much as a PGD step. ``"ssim-padded"``
(:func:`padded_ssim`) is the same SSIM of reflect-padded images: plain SSIM barely
weighs the outer 5 pixels, and an attack minimising it hides its change there.

Example:
    >>> from core.measures import MEASURES, evaluate_measures
    >>> cost = MEASURES["ssim"].cost(x, x_adv)        # (N,), 1 - SSIM
    >>> table = evaluate_measures(x, x_adv)           # {"ssim": (N,), "psnr": (N,), ...}
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.compat import piq
from core.registry import Registry
from core.validation import NEEDS_RGB, TOO_SMALL, check_pair

CostFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PreparedCost = Callable[[torch.Tensor], torch.Tensor]

DEFAULT_COST = "ssim-padded"
"""The transport cost wherever none is named (W-DRO attack, training, command line, app).

SSIM of reflect-padded images: every pixel is charged, the border too. Chosen on the
validation images (bundled test images 1500-1999) against the valid-window SSIM and the
SSIM+HaarPSI mixtures by how W-DRO judged on the measures it does not optimise at matched
success; README, "Choosing the default transport cost".
"""

PSNR_EPS = 1e-8  # piq's constant: PSNR of identical images is 10*log10(1/1e-8) = 80 dB


@dataclass(frozen=True)
class Measure:
    """A perceptual measure as a transport cost and as a familiar score.

    Attributes:
        name: Registry key, e.g. ``"ssim"``.
        label: Display name, e.g. ``"SSIM"``.
        cost_fn: ``d(x, x_adv) -> (N,)``; >= 0, zero at ``x_adv == x``, differentiable.
        score_fn: ``(x, x_adv) -> (N,)``; the value people quote.
        higher_is_better: Direction of ``score`` (True for similarities such as SSIM).
        score_range: Range of ``score`` for plots.
        cost_formula: How ``cost`` derives from ``score``, for documentation and the app.
        min_size: Smallest image side (pixels) the measure accepts.
        needs_rgb: Whether the measure needs 3 channels.
        reference: Paper the measure comes from.
        prepare_fn: Optional ``x -> (x_adv -> cost)`` that caches work on the clean image.
        note: What a user must know before choosing it (a blind spot, a caveat), or "".
    """

    name: str
    label: str
    cost_fn: CostFn
    score_fn: CostFn
    higher_is_better: bool
    score_range: tuple[float, float]
    cost_formula: str
    min_size: int
    needs_rgb: bool = False
    reference: str = ""
    prepare_fn: Callable[[torch.Tensor], PreparedCost] | None = None
    note: str = ""

    def applies_to(self, shape: Iterable[int]) -> bool:
        """Whether images of ``shape`` (N, C, H, W) or (C, H, W) are valid for this measure."""
        *_, c, h, w = tuple(shape)
        return min(h, w) >= self.min_size and (c == 3 or not self.needs_rgb)

    def check(self, shape: Iterable[int]) -> None:
        """Raise ``ValueError`` when images of ``shape`` are too small or have the wrong channels."""
        *_, c, h, w = tuple(shape)
        if min(h, w) < self.min_size:
            raise ValueError(TOO_SMALL.format(measure=self.label, min_size=self.min_size, height=h, width=w))
        if self.needs_rgb and c != 3:
            raise ValueError(NEEDS_RGB.format(measure=self.label, channels=c))

    def cost(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Transport cost ``d(x, x_adv)`` per image, (N,), after checking both batches."""
        check_pair(x, x_adv)
        self.check(x.shape)
        return self.cost_fn(x, x_adv)

    def score(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """The familiar value per image, (N,), after checking both batches."""
        check_pair(x, x_adv)
        self.check(x.shape)
        return self.score_fn(x, x_adv)

    def prepare(self, x: torch.Tensor) -> PreparedCost:
        """Return ``x_adv -> cost(x, x_adv)``, reusing work on the fixed clean batch ``x``."""
        self.check(x.shape)
        if self.prepare_fn is not None:
            return self.prepare_fn(x)
        return functools.partial(self.cost_fn, x)


MEASURES: Registry[Measure] = Registry("measure")


def register_measure(measure: Measure) -> Measure:
    """Add a measure to :data:`MEASURES` (its name must be new)."""
    return MEASURES.add(measure.name, measure)


def get_measure(name: str) -> Measure:
    """Look a measure up by name, with a clear error listing the known names."""
    return MEASURES.lookup(name)


def available_measures(shape: Iterable[int]) -> list[str]:
    """Names of the measures valid for images of ``shape`` (N, C, H, W) or (C, H, W)."""
    shape = tuple(shape)
    return [name for name, m in MEASURES.items() if m.applies_to(shape)]


@torch.no_grad()
def evaluate_measures(
    x: torch.Tensor, x_adv: torch.Tensor, *, names: Iterable[str] | None = None
) -> dict[str, torch.Tensor]:
    """Score ``x_adv`` against ``x`` under every applicable registered measure.

    Args:
        x: Clean images, (N, C, H, W), float in [0, 1].
        x_adv: Perturbed images, same shape, float in [0, 1].
        names: Measures to compute; default every registered measure valid for the shape.

    Returns:
        ``{name: (N,) tensor of scores}`` on the inputs' device, in registry order.
    """
    check_pair(x, x_adv)
    names = available_measures(x.shape) if names is None else list(names)
    out: dict[str, torch.Tensor] = {}
    for name in names:
        out[name] = get_measure(name).score(x, x_adv)
    return out


# ---------------------------------------------------------------------------------------------
# SSIM with separable Gaussian filters (matches piq.ssim; see the module docstring).


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    kernel_size: int = 11,
    kernel_sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    downsample: bool = True,
) -> torch.Tensor:
    """Structural similarity per image, as ``piq.ssim(x, y, data_range=1.0, reduction="none")``.

    Args:
        x: Images, (N, C, H, W), float in [0, 1].
        y: Images, same shape.
        kernel_size: Side of the Gaussian window (odd).
        kernel_sigma: Standard deviation of the window.
        k1: Constant of the luminance term.
        k2: Constant of the contrast-structure term.
        downsample: Average-pool by ``round(min(H, W) / 256)`` first, as piq and skimage do.

    Returns:
        (N,) SSIM; 1 means identical.

    References:
        Wang, Bovik, Sheikh, Simoncelli, "Image Quality Assessment: From Error Visibility to
        Structural Similarity", IEEE TIP 13(4), 2004. https://doi.org/10.1109/TIP.2003.819861
    """
    return _ssim_prepared(x, kernel_size, kernel_sigma, k1, k2, downsample)(y)


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
    MEASURES["ssim-padded" if padded else "ssim"].check(x.shape)
    with torch.no_grad():
        if padded:
            pad = functools.partial(F.pad, pad=(SSIM_PAD,) * 4, mode="reflect")
            return _ssim_prepared(pad(x), 11, 1.5, 0.01, 0.03, False, return_map=True)(pad(y)).mean(1, keepdim=True)
        smap = _ssim_prepared(x, 11, 1.5, 0.01, 0.03, False, return_map=True)(y).mean(1, keepdim=True)
    if full_size:
        pad_h, pad_w = x.shape[-2] - smap.shape[-2], x.shape[-1] - smap.shape[-1]
        pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        smap = F.pad(smap, pads, mode="replicate")
    return smap


def _gaussian_1d(size: int, sigma: float, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()  # the outer product of this with itself equals piq's normalised 2-D window


def _separable_blur(maps: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    # maps: (N, K, H, W) -> (N, K, H - k + 1, W - k + 1), valid convolution as piq.
    k = maps.shape[1]
    maps = F.conv2d(maps, g.view(1, 1, 1, -1).expand(k, 1, 1, -1), groups=k)
    return F.conv2d(maps, g.view(1, 1, -1, 1).expand(k, 1, -1, 1), groups=k)


def _ssim_prepared(
    x: torch.Tensor,
    kernel_size: int,
    kernel_sigma: float,
    k1: float,
    k2: float,
    downsample: bool,
    *,
    return_map: bool = False,
) -> PreparedCost:
    """Precompute the clean image's local statistics; return ``y -> SSIM(x, y)`` per image."""
    f = max(1, round(min(x.shape[-2:]) / 256))
    pool = f > 1 and downsample
    if pool:
        x = F.avg_pool2d(x, kernel_size=f)
    n, c = x.shape[:2]
    g = _gaussian_1d(kernel_size, kernel_sigma, dtype=x.dtype, device=x.device)
    mu_x, ex2 = _separable_blur(torch.cat([x, x * x], dim=1), g).split(c, dim=1)
    mu_xx = mu_x * mu_x
    sigma_xx = ex2 - mu_xx
    c1, c2 = k1**2, k2**2

    def prepared(y: torch.Tensor) -> torch.Tensor:
        if pool:
            y = F.avg_pool2d(y, kernel_size=f)
        mu_y, ey2, exy = _separable_blur(torch.cat([y, y * y, x * y], dim=1), g).split(c, dim=1)
        mu_yy, mu_xy = mu_y * mu_y, mu_x * mu_y
        cs = (2 * (exy - mu_xy) + c2) / (sigma_xx + (ey2 - mu_yy) + c2)
        smap = (2 * mu_xy + c1) / (mu_xx + mu_yy + c1) * cs  # (N, C, H', W')
        return smap if return_map else smap.mean(dim=(-1, -2)).mean(dim=1)

    return prepared


# ---------------------------------------------------------------------------------------------
# The registry. piq's convention is metric(distorted, reference); ours is measure(x, x_adv).


def _ssim_cost(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return (1.0 - ssim(x, x_adv)).clamp_min(0.0)


def _ssim_prepare(x: torch.Tensor) -> PreparedCost:
    similarity = _ssim_prepared(x.detach(), 11, 1.5, 0.01, 0.03, True)
    return lambda x_adv: (1.0 - similarity(x_adv)).clamp_min(0.0)


SSIM_PAD = 5  # window radius of the 11x11 SSIM window


def _reflect_pad(t: torch.Tensor, factor: int) -> torch.Tensor:
    if factor > 1:
        t = F.avg_pool2d(t, kernel_size=factor)
    return F.pad(t, (SSIM_PAD,) * 4, mode="reflect")


def _padded_ssim_prepared(x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``y -> SSIM(pad(x), pad(y))`` with the padded clean image's statistics cached."""
    factor = max(1, round(min(x.shape[-2:]) / 256))  # the same downsampling as ``ssim``, before padding
    similarity = _ssim_prepared(_reflect_pad(x, factor), 11, 1.5, 0.01, 0.03, False)
    return lambda y: similarity(_reflect_pad(y, factor))


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
    MEASURES["ssim-padded"].check(x.shape)
    return _padded_ssim_prepared(x)(y)


def _padded_ssim_cost(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return (1.0 - _padded_ssim_prepared(x)(x_adv)).clamp_min(0.0)


def _padded_ssim_prepare(x: torch.Tensor) -> PreparedCost:
    similarity = _padded_ssim_prepared(x.detach())
    return lambda x_adv: (1.0 - similarity(x_adv)).clamp_min(0.0)


# MS-SSIM for small images: 3-pixel window and the first three of the five standard scale
# weights (renormalised), so that 28-32 px images reach a 7-8 px coarsest scale.
_SMALL_SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001)


def _ms_ssim(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return piq.multi_scale_ssim(x_adv, x, data_range=1.0, reduction="none")


def _ms_ssim_small(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_SMALL_SCALE_WEIGHTS, dtype=x.dtype, device=x.device)
    return piq.multi_scale_ssim(x_adv, x, kernel_size=3, scale_weights=weights, data_range=1.0, reduction="none")


def _haarpsi(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return piq.haarpsi(x_adv, x, data_range=1.0, reduction="none")


def _gmsd(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return piq.gmsd(x_adv, x, data_range=1.0, reduction="none")


_SQRT_EPS = 1e-12


def _gmsd_cost(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
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


def _fsim(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return piq.fsim(x_adv, x, data_range=1.0, reduction="none")


def _vif(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return piq.vif_p(x_adv, x, data_range=1.0, reduction="none")


def _ciede2000(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    from core.ciede2000 import ciede2000_distance

    return ciede2000_distance(x, x_adv)


def _ciede2000_prepare(x: torch.Tensor) -> PreparedCost:
    from core.ciede2000 import prepared_distance, to_lab

    return prepared_distance(to_lab(x))


def _mse(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return (x_adv - x).pow(2).flatten(1).mean(1)


def _psnr(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(1.0 / (_mse(x, x_adv) + PSNR_EPS))


def _l2(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return (x_adv - x).flatten(1).norm(dim=1)


def _l2_squared(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return (x_adv - x).pow(2).flatten(1).sum(1)


def _linf(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return (x_adv - x).abs().flatten(1).amax(1)


def _one_minus(fn: CostFn) -> CostFn:
    def cost(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        return (1.0 - fn(x, x_adv)).clamp_min(0.0)  # rounding can put a similarity a hair above 1

    cost.__name__ = f"one_minus_{fn.__name__.lstrip('_')}"
    return cost


def _abs_one_minus(fn: CostFn) -> CostFn:
    def cost(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        return (1.0 - fn(x, x_adv)).abs()

    cost.__name__ = f"abs_one_minus_{fn.__name__.lstrip('_')}"
    return cost


_SSIM_REF = "Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 2004"
_MS_SSIM_REF = "Wang, Simoncelli, Bovik, Asilomar 2003"

register_measure(Measure(
    name="ssim", label="SSIM", cost_fn=_ssim_cost, score_fn=lambda x, x_adv: ssim(x, x_adv),
    higher_is_better=True, score_range=(0.0, 1.0), cost_formula="1 - SSIM (valid windows)", min_size=11,
    note="blind spot: the outer 5-px frame barely counts (59% of a 28x28 image); an attack minimising it hides there",
    reference=_SSIM_REF, prepare_fn=_ssim_prepare,
))
register_measure(Measure(
    name="ssim-padded", label="SSIM (padded)", cost_fn=_padded_ssim_cost,
    score_fn=lambda x, x_adv: _padded_ssim_prepared(x)(x_adv), higher_is_better=True, score_range=(0.0, 1.0),
    cost_formula="1 - SSIM of 5-px reflect-padded images", min_size=SSIM_PAD + 1,
    reference=_SSIM_REF + "; padding: this project (SSIM's 5-px blind frame)", prepare_fn=_padded_ssim_prepare,
    note="the default transport cost: every pixel is charged, the border too",
))
register_measure(Measure(
    name="ms_ssim", label="MS-SSIM", cost_fn=_one_minus(_ms_ssim), score_fn=_ms_ssim,
    higher_is_better=True, score_range=(0.0, 1.0), cost_formula="1 - MS-SSIM (11 px window, 5 scales)",
    min_size=161, reference=_MS_SSIM_REF,
))
register_measure(Measure(
    name="ms_ssim_small", label="MS-SSIM (small)", cost_fn=_one_minus(_ms_ssim_small), score_fn=_ms_ssim_small,
    higher_is_better=True, score_range=(0.0, 1.0), cost_formula="1 - MS-SSIM (3 px window, 3 scales)",
    min_size=9, reference=_MS_SSIM_REF,
))
register_measure(Measure(
    name="haarpsi", label="HaarPSI", cost_fn=_one_minus(_haarpsi), score_fn=_haarpsi,
    higher_is_better=True, score_range=(0.0, 1.0), cost_formula="1 - HaarPSI", min_size=16,
    reference="Reisenhofer, Bosse, Kutyniok, Wiegand, Signal Process. Image Commun. 2018",
))
register_measure(Measure(
    name="gmsd", label="GMSD", cost_fn=_gmsd_cost, score_fn=_gmsd,
    higher_is_better=False, score_range=(0.0, 0.35), cost_formula="GMSD (square roots smoothed by 1e-12)", min_size=6,
    reference="Xue, Zhang, Mou, Bovik, IEEE TIP 2014",
))
register_measure(Measure(
    name="fsim", label="FSIM", cost_fn=_one_minus(_fsim), score_fn=_fsim,
    higher_is_better=True, score_range=(0.0, 1.0), cost_formula="1 - FSIMc", min_size=8, needs_rgb=True,
    reference="Zhang, Zhang, Mou, Zhang, IEEE TIP 2011",
))
register_measure(Measure(
    name="vif", label="VIF", cost_fn=_abs_one_minus(_vif), score_fn=_vif,
    higher_is_better=True, score_range=(0.0, 1.0), cost_formula="|1 - VIFp|", min_size=41,
    reference="Sheikh, Bovik, IEEE TIP 2006",
))
register_measure(Measure(
    name="ciede2000", label="CIEDE2000", cost_fn=_ciede2000, score_fn=_ciede2000,
    higher_is_better=False, score_range=(0.0, 1e4), cost_formula="||Delta E_00||_2 over pixels (PerC's distance)",
    min_size=1, reference="Sharma, Wu, Dalal, Color Res. Appl. 2005; as a distance: Zhao, Liu, Larson, CVPR 2020",
    prepare_fn=_ciede2000_prepare,
))
register_measure(Measure(
    name="psnr", label="PSNR (dB)", cost_fn=_mse, score_fn=_psnr,
    higher_is_better=True, score_range=(0.0, 80.0), cost_formula="MSE = 10^(-PSNR/10)", min_size=1,
    reference="peak signal-to-noise ratio",
))
register_measure(Measure(
    name="l2", label="L2", cost_fn=_l2_squared, score_fn=_l2,
    higher_is_better=False, score_range=(0.0, 10.0), cost_formula="||x' - x||_2^2 (WRM's cost)", min_size=1,
    reference="Sinha, Namkoong, Duchi, ICLR 2018",
))
register_measure(Measure(
    name="linf", label="L-inf", cost_fn=_linf, score_fn=_linf,
    higher_is_better=False, score_range=(0.0, 1.0), cost_formula="||x' - x||_inf", min_size=1,
    reference="Madry et al., ICLR 2018",
))

__all__ = [
    "DEFAULT_COST",
    "MEASURES",
    "Measure",
    "available_measures",
    "evaluate_measures",
    "get_measure",
    "padded_ssim",
    "register_measure",
    "ssim",
    "ssim_map",
]
