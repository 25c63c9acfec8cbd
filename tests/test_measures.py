"""Tests for core.measures: the perceptual-measure registry, the fast SSIM and its map.

Every registered measure is checked as a transport cost (zero at identity, non-negative,
growing with the perturbation, finite gradients, cached ``prepare`` equal to ``cost``) and
as a score (known answers, stated ranges, direction). The fast separable SSIM is compared
with ``piq.ssim`` on real photographs from ``skimage.data``, values and gradients.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

from core.compat import piq
from core.services.explore import measure_support
from core.measures import (
    MEASURES,
    PSNR_EPS,
    Measure,
    available_measures,
    evaluate_measures,
    get_measure,
    padded_ssim,
    register_measure,
    ssim,
    ssim_map,
)
from core.registry import UNKNOWN
from core.validation import NEEDS_RGB, OUT_OF_RANGE, SHAPE_MISMATCH, TOO_SMALL

ALL = list(MEASURES)
SIMILARITIES = ("ssim", "ssim-padded", "ms_ssim", "ms_ssim_small", "haarpsi", "fsim")  # score 1 = identical, range [0, 1]
PIQ_BACKED = ("ms_ssim", "ms_ssim_small", "haarpsi", "gmsd", "fsim", "vif")
SIZED = [name for name, m in MEASURES.items() if m.min_size > 1]
RGB_ONLY = [name for name, m in MEASURES.items() if m.needs_rgb]


# ---------------------------------------------------------------------------------------------
# Real photographs from skimage.data, as (1, C, H, W) float32 tensors in [0, 1].


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> torch.Tensor:
    a = getattr(skdata, name)()
    t = torch.from_numpy(np.ascontiguousarray(a).astype(np.float32) / 255.0)
    t = t.permute(2, 0, 1) if t.dim() == 3 else t[None]
    return t[None].contiguous()


def photo(name: str) -> torch.Tensor:
    return _photo(name).clone()


@functools.lru_cache(maxsize=None)
def _crops44() -> torch.Tensor:
    """Two RGB 44x44 crops (the astronaut's face, the cat), area-downsampled 88 -> 44."""
    crops = [photo("astronaut")[..., 30:118, 170:258], photo("chelsea")[..., 80:168, 150:238]]
    return F.avg_pool2d(torch.cat(crops), 2)


def clean_batch(name: str) -> torch.Tensor:
    """A clean batch that ``name`` accepts: 2x3x44x44 crops (VIF needs 41), or one 3x161x161 crop for MS-SSIM."""
    if name == "ms_ssim":
        return photo("astronaut")[..., 20:181, 150:311].contiguous()
    return _crops44().clone()


def perturbed(x: torch.Tensor, eps: float, seed: int = 1) -> torch.Tensor:
    """``x`` plus ``eps`` times a fixed Gaussian direction, clamped to [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    return (x + eps * torch.randn(x.shape, generator=g)).clamp(0.0, 1.0)


def random_start(x: torch.Tensor) -> torch.Tensor:
    """The attacks' starting point: ``x + U(-1e-3, 1e-3)``, clamped."""
    return (x + torch.empty_like(x).uniform_(-1e-3, 1e-3)).clamp(0.0, 1.0)


@functools.lru_cache(maxsize=None)
def _values(name: str, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cost, score)`` of ``name`` for ``clean_batch(name)`` against ``perturbed(x, eps)``, computed once."""
    m = MEASURES[name]
    x = clean_batch(name)
    x_adv = perturbed(x, eps) if eps > 0 else x.clone()
    return m.cost(x, x_adv), m.score(x, x_adv)


def values(name: str, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    cost, score = _values(name, eps)
    return cost.clone(), score.clone()


def cost_grad(m: Measure, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    x_adv = x_adv.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(m.cost(x, x_adv).sum(), x_adv)
    return g


# ---------------------------------------------------------------------------------------------
# 1. Cost: zero at identity, non-negative, growing with the perturbation.


IDENTITY_SCORE = {"ciede2000": 0.0, "gmsd": 0.0, "l2": 0.0, "l2-squared": 0.0, "linf": 0.0, "psnr": 80.0, "vif": 1.0, **{n: 1.0 for n in SIMILARITIES}}


@pytest.mark.parametrize("name", ALL)
def test_cost_is_zero_and_score_is_ideal_at_identity(name):
    cost, score = values(name, 0.0)
    n = clean_batch(name).shape[0]
    assert cost.shape == score.shape == (n,)
    assert cost.abs().max().item() <= 1e-5
    torch.testing.assert_close(score, torch.full((n,), IDENTITY_SCORE[name]), rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_cost_grows_with_perturbation_and_score_follows_direction(name):
    m = MEASURES[name]
    (c_small, s_small), (c_large, s_large) = values(name, 0.02), values(name, 0.1)  # same direction, 5x the size
    assert bool((c_small > 0).all()), c_small
    assert bool((c_large > c_small).all()), (c_small, c_large)
    assert c_large.mean().item() > 2 * c_small.mean().item()
    if m.higher_is_better:
        assert bool((s_small > s_large).all()), (s_small, s_large)
    else:
        assert bool((s_small < s_large).all()), (s_small, s_large)


def _cost_from_score(name: str, score: torch.Tensor) -> torch.Tensor:
    """What each entry's ``cost_formula`` says the cost is, given the score."""
    if name in SIMILARITIES:
        return (1 - score).clamp_min(0)
    if name == "vif":
        return (1 - score).abs()
    if name == "psnr":
        return 10 ** (-score / 10) - PSNR_EPS
    return score  # gmsd, l2, l2-squared, linf


def test_expectation_tables_cover_the_registry():
    assert set(IDENTITY_SCORE) == set(MEASURES)


@pytest.mark.parametrize("name", ALL)
def test_cost_follows_cost_formula(name):
    for eps in (0.02, 0.1):
        cost, score = values(name, eps)
        # GMSD's cost smooths its square roots (see core.measures.piq_measures.gmsd_cost): within 1e-5
        atol = 1e-5 if name == "gmsd" else 1e-7
        torch.testing.assert_close(cost, _cost_from_score(name, score), rtol=1e-4, atol=atol)


# ---------------------------------------------------------------------------------------------
# 2. Gradients: finite from the attacks' random start; degenerate at exact identity.


@pytest.mark.parametrize("name", ALL)
def test_cost_gradient_is_finite_and_nonzero_from_random_start(name):
    m = MEASURES[name]
    x = clean_batch(name)
    g = cost_grad(m, x, random_start(x))
    assert g.shape == x.shape
    assert bool(torch.isfinite(g).all())
    assert g.abs().max().item() > 0


def test_gmsd_cost_has_finite_gradients_where_piq_gives_nan():
    # piq's GMSD takes sqrt of the gradient magnitude and of the deviation; at x_adv == x, and
    # wherever an image is locally flat, their derivative is infinite and the gradient NaN.
    # The registered cost smooths both square roots (value within 1e-5 of piq's).
    x = clean_batch("gmsd")
    x_adv = random_start(x)
    x_adv[..., :12, :12] = 0.0  # a flat black patch, as on Fashion-MNIST backgrounds
    x = x.clone()
    x[..., :12, :12] = 0.0
    for point in (x, x_adv):
        piq_point = point.clone().requires_grad_(True)
        (g_piq,) = torch.autograd.grad(piq.gmsd(piq_point, x, data_range=1.0, reduction="none").sum(), piq_point)
        assert bool(torch.isnan(g_piq).any())
        assert bool(torch.isfinite(cost_grad(MEASURES["gmsd"], x, point)).all())
    torch.testing.assert_close(
        MEASURES["gmsd"].cost(x, x_adv), piq.gmsd(x_adv, x, data_range=1.0, reduction="none"), rtol=0, atol=1e-5
    )


def test_ssim_gradient_at_exact_identity_vanishes():
    # SSIM is maximal (= 1) at x_adv == x, so 1 - SSIM has a zero gradient there (rounding
    # leaves ~1e-9): a gradient attack starting at x would not move. From the random start the
    # gradient is orders of magnitude larger.
    x = clean_batch("ssim")
    g_identity = cost_grad(MEASURES["ssim"], x, x)
    g_start = cost_grad(MEASURES["ssim"], x, random_start(x))
    assert bool(torch.isfinite(g_identity).all())
    assert g_identity.abs().max().item() < 1e-7
    assert g_start.abs().max().item() > 100 * max(g_identity.abs().max().item(), 1e-9)


# ---------------------------------------------------------------------------------------------
# 3. prepare(x) is cost(x, .) with the clean image's work cached.


@pytest.mark.parametrize("name", ALL)
def test_prepare_matches_cost(name):
    m = MEASURES[name]
    x = clean_batch(name)
    prepared = m.prepare(x)
    for eps in (0.1, 0.02):  # two calls: the cache must not go stale
        torch.testing.assert_close(prepared(perturbed(x, eps)), values(name, eps)[0], rtol=0, atol=1e-6)


def test_prepared_ssim_is_differentiable_like_cost():
    x = clean_batch("ssim")
    x_adv = random_start(x).requires_grad_(True)
    (g_prepared,) = torch.autograd.grad(MEASURES["ssim"].prepare(x)(x_adv).sum(), x_adv)
    torch.testing.assert_close(g_prepared, cost_grad(MEASURES["ssim"], x, x_adv.detach()), rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# 4. The fast SSIM equals piq.ssim on real photographs, values and gradients.


def _blur(x: torch.Tensor) -> torch.Tensor:
    """JPEG-like blockiness: 4x4 average pooling, then nearest upsampling back."""
    return F.interpolate(F.avg_pool2d(x, 4), size=x.shape[-2:], mode="nearest")


PERTURBATIONS = {
    "noise": lambda x: perturbed(x, 0.05),
    "blur": _blur,
    "brightness": lambda x: (x + 0.08).clamp(0.0, 1.0),
}

# (photo, crop (rows, cols) or resize (H, W), perturbation, piq's factor max(1, round(min(H, W) / 256)))
PHOTO_CASES = [
    ("astronaut", None, "noise", 2),  # 512x512 RGB
    ("coffee", None, "blur", 2),  # 400x600 RGB
    ("camera", None, "brightness", 2),  # 512x512 grayscale
    ("coffee", (slice(0, 384), slice(100, 500)), "noise", 2),  # short side 384: round(1.5) == 2
    ("chelsea", None, "blur", 1),  # 300x451 RGB
    ("chelsea", (slice(60, 160), slice(150, 280)), "brightness", 1),
    ("camera", (slice(100, 300), slice(150, 450)), "noise", 1),
    ("astronaut", (96, 128), "blur", 1),  # area-resized
]


def _photo_case(name, window):
    x = photo(name)
    if isinstance(window, tuple) and isinstance(window[0], slice):
        x = x[..., window[0], window[1]].contiguous()
    elif window is not None:
        x = F.interpolate(x, size=window, mode="area")
    return x


@pytest.mark.parametrize(("name", "window", "kind", "factor"), PHOTO_CASES)
def test_fast_ssim_matches_piq_on_photos(name, window, kind, factor):
    x = _photo_case(name, window)
    assert max(1, round(min(x.shape[-2:]) / 256)) == factor
    y = PERTURBATIONS[kind](x)
    got = ssim(x, y)
    assert got.shape == (1,)
    assert 0.2 < got.item() < 0.999  # a real, non-trivial distortion
    # Exact arithmetic: float64 against float64 piq.
    x64, y64 = x.double(), y.double()
    reference = piq.ssim(y64, x64, data_range=1.0, reduction="none")
    torch.testing.assert_close(ssim(x64, y64), reference, rtol=0, atol=1e-9)
    # float32: the fast SSIM is within 1e-5 of the exact value. piq's own float32 result is not
    # always (E[x^2] - mu^2 cancels; up to ~3e-5 off on these photos), so against float32 piq the
    # tolerance is the sum of both rounding errors.
    torch.testing.assert_close(got, reference.float(), rtol=0, atol=1e-5)
    torch.testing.assert_close(got, piq.ssim(y, x, data_range=1.0, reduction="none"), rtol=0, atol=5e-5)
    if factor > 1:
        # the downsampling is what makes the large case agree
        assert abs(ssim(x64, y64, downsample=False).item() - reference.item()) > 1e-4


def test_fast_ssim_gradient_matches_piq():
    x = photo("chelsea")[..., 100:164, 180:244]  # 64x64 RGB: per-pixel gradients ~1e-4
    y0 = perturbed(x, 0.05)
    y_fast = y0.clone().requires_grad_(True)
    y_piq = y0.clone().requires_grad_(True)
    (g_fast,) = torch.autograd.grad(ssim(x, y_fast).sum(), y_fast)
    (g_piq,) = torch.autograd.grad(piq.ssim(y_piq, x, data_range=1.0, reduction="none").sum(), y_piq)
    assert g_piq.abs().max().item() > 1e-4  # the tolerance below is meaningful
    assert (g_fast - g_piq).abs().max().item() <= 1e-5
    assert torch.nn.functional.cosine_similarity(g_fast.flatten(), g_piq.flatten(), dim=0).item() > 0.9999


# ---------------------------------------------------------------------------------------------
# 5. ssim_map.


def test_ssim_map_shapes_and_padding():
    x = photo("chelsea")[..., 60:100, 100:152]  # 40x52
    x = torch.cat([x, photo("coffee")[..., 200:240, 300:352]])
    y = perturbed(x, 0.05)
    full = ssim_map(x, y, padded=False)
    valid = ssim_map(x, y, padded=False, full_size=False)
    assert full.shape == (2, 1, 40, 52)
    assert valid.shape == (2, 1, 30, 42)
    torch.testing.assert_close(full[..., 5:-5, 5:-5], valid, rtol=0, atol=0)
    # the border replicates the valid map's edge
    torch.testing.assert_close(full[..., :5, 5:-5], valid[..., :1, :].expand(-1, -1, 5, -1), rtol=0, atol=0)
    torch.testing.assert_close(full[..., 5:-5, -5:], valid[..., :, -1:].expand(-1, -1, -1, 5), rtol=0, atol=0)
    assert not full.requires_grad


def test_ssim_map_values_and_identity():
    x = photo("astronaut")[..., 100:164, 200:264]
    smap = ssim_map(x, _blur(x))
    assert smap.max().item() <= 1 + 1e-6
    assert smap.min().item() >= -1 - 1e-6
    assert smap.min().item() < 0.9  # the blur is visible somewhere
    torch.testing.assert_close(ssim_map(x, x.clone()), torch.ones(1, 1, 64, 64), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "window", "kind"),
    [
        ("camera", (slice(100, 200), slice(150, 270)), "noise"),  # grayscale
        ("chelsea", (slice(50, 170), slice(120, 280)), "blur"),  # RGB: the map is the channel mean
        ("coffee", (slice(0, 300), slice(0, 380)), "brightness"),  # RGB, short side < 384
    ],
)
def test_ssim_map_mean_equals_ssim(name, window, kind):
    x = photo(name)[..., window[0], window[1]].contiguous()
    assert min(x.shape[-2:]) < 384  # no downsampling in ssim either
    y = PERTURBATIONS[kind](x)
    smap = ssim_map(x, y, padded=False, full_size=False)
    assert smap.shape == (1, 1, x.shape[-2] - 10, x.shape[-1] - 10)
    torch.testing.assert_close(smap.mean(dim=(1, 2, 3)), ssim(x, y), rtol=0, atol=1e-5)
    padded = ssim_map(x, y)  # the default: the map of the default cost, at the image's size
    assert padded.shape == (1, 1, *x.shape[-2:])
    torch.testing.assert_close(padded.mean(dim=(1, 2, 3)), padded_ssim(x, y), rtol=0, atol=1e-5)


def test_padded_ssim_map_shows_a_border_change_where_it_is():
    """A change in the 5-pixel frame: the valid map barely sees it, the padded map puts it on those pixels."""
    x = torch.full((1, 1, 28, 28), 0.2)
    x[..., 8:20, 8:20] = 0.8
    y = x.clone()
    y[..., 0:3, 10:18] = 0.6  # a bar in the top frame
    padded = 1 - ssim_map(x, y)[0, 0]
    assert padded[0:3, 10:18].mean() > 10 * padded[14:, :].mean()
    assert padded.argmax() // 28 < 3  # the worst pixel is in the bar's rows
    valid = 1 - ssim_map(x, y, padded=False, full_size=False)[0, 0]  # rows 5.. of the image only
    assert valid.max() < padded.max()


def test_ssim_map_rejects_small_images():
    x = torch.rand(1, 1, 10, 30)
    with pytest.raises(ValueError, match=re.escape(TOO_SMALL.format(measure="SSIM", min_size=11, height=10, width=30))):
        ssim_map(x, x, padded=False)
    with pytest.raises(ValueError, match="at least 6x6"):
        ssim_map(torch.rand(1, 1, 5, 30), torch.rand(1, 1, 5, 30))


# ---------------------------------------------------------------------------------------------
# 6. Size and channel checks: ValueError before piq's AssertionError.


@pytest.mark.parametrize("name", SIZED)
def test_check_and_cost_reject_too_small_images(name):
    m = MEASURES[name]
    k = m.min_size
    for h, w in ((k - 1, k - 1), (k - 1, k + 20), (k + 20, k - 1)):
        msg = re.escape(TOO_SMALL.format(measure=m.label, min_size=k, height=h, width=w))
        with pytest.raises(ValueError, match=msg):
            m.check((2, 3, h, w))
        assert not m.applies_to((2, 3, h, w))
    x = torch.rand(1, 3, k - 1, k - 1)
    msg = re.escape(TOO_SMALL.format(measure=m.label, min_size=k, height=k - 1, width=k - 1))
    for call in (lambda: m.cost(x, x.clone()), lambda: m.score(x, x.clone()), lambda: m.prepare(x)):
        with pytest.raises(ValueError, match=msg):  # an AssertionError from piq would fail here
            call()


def test_some_measure_needs_rgb():
    assert "fsim" in RGB_ONLY


@pytest.mark.parametrize("name", RGB_ONLY)
def test_check_and_cost_reject_grayscale_where_rgb_is_needed(name):
    m = MEASURES[name]
    k = max(m.min_size, 16)
    msg = re.escape(NEEDS_RGB.format(measure=m.label, channels=1))
    with pytest.raises(ValueError, match=msg):
        m.check((1, 1, k, k))
    assert not m.applies_to((1, 1, k, k))
    assert m.applies_to((1, 3, k, k))
    x = torch.rand(1, 1, k, k)
    with pytest.raises(ValueError, match=msg):
        m.cost(x, perturbed(x, 0.05))
    with pytest.raises(ValueError, match=msg):
        m.score(x, perturbed(x, 0.05))


@pytest.mark.parametrize("name", ALL)
def test_cost_runs_at_exactly_min_size(name):
    m = MEASURES[name]
    k = max(m.min_size, 2)
    n = 1 if name == "ms_ssim" else 2
    channels = (3,) if m.needs_rgb or name == "ms_ssim" else (3, 1)
    for c in channels:
        m.check((n, c, k, k))
        assert m.applies_to((n, c, k, k)) and m.applies_to((c, k, k))
        x = 0.1 + 0.8 * torch.rand(n, c, k, k)
        c_val = m.cost(x, perturbed(x, 0.05))
        assert c_val.shape == (n,)
        assert bool(torch.isfinite(c_val).all())
        assert bool((c_val >= 0).all())


@pytest.mark.parametrize("name", ALL)
def test_applies_to_agrees_with_check(name):
    m = MEASURES[name]
    k = m.min_size
    for shape in [(1, 3, k, k), (1, 1, k, k), (3, k + 5, k), (1, 3, max(k - 1, 0), k + 9), (1, 1, k + 9, max(k - 1, 0))]:
        try:
            m.check(shape)
            ok = True
        except ValueError:
            ok = False
        assert m.applies_to(shape) == ok, shape


# ---------------------------------------------------------------------------------------------
# 7. available_measures.


def test_available_measures_for_small_grayscale():
    names = available_measures((1, 1, 28, 28))
    for name in ("ssim", "ssim-padded", "ms_ssim_small", "haarpsi", "gmsd", "psnr", "l2", "linf"):
        assert name in names
    for name in ("ms_ssim", "fsim", "vif"):
        assert name not in names
    assert names == [n for n in MEASURES if n in names]  # registry order
    assert available_measures((1, 28, 28)) == names  # (C, H, W) works too


def test_available_measures_for_imagenet_size_is_everything():
    assert available_measures((1, 3, 224, 224)) == list(MEASURES)
    assert available_measures((3, 224, 224)) == list(MEASURES)


# ---------------------------------------------------------------------------------------------
# 8. Known answers.


@pytest.fixture
def shifted_pair():
    x = 0.2 + 0.6 * torch.rand(2, 3, 16, 16)  # x + 0.1 stays inside [0, 1]: no clipping
    return x, x + 0.1


def test_psnr_known_answer(shifted_pair):
    x, x_adv = shifted_pair
    psnr = MEASURES["psnr"]
    torch.testing.assert_close(psnr.score(x, x_adv), torch.full((2,), 20.0), rtol=0, atol=1e-3)
    torch.testing.assert_close(psnr.cost(x, x_adv), torch.full((2,), 0.01), rtol=0, atol=1e-6)
    # cost_formula: MSE = 10^(-PSNR/10) (up to piq's epsilon)
    torch.testing.assert_close(
        psnr.cost(x, x_adv) + PSNR_EPS, 10 ** (-psnr.score(x, x_adv) / 10), rtol=1e-5, atol=0
    )
    torch.testing.assert_close(psnr.score(x, x.clone()), torch.full((2,), 80.0), rtol=0, atol=1e-4)
    assert psnr.higher_is_better


def test_l2_known_answer(shifted_pair):
    x, x_adv = shifted_pair
    l2, squared = MEASURES["l2"], MEASURES["l2-squared"]
    d = x[0].numel()  # 768
    # "l2" is the norm as cost and as score (what PGD-L2 and DDN report); "l2-squared" is WRM's cost
    torch.testing.assert_close(l2.score(x, x_adv), torch.full((2,), 0.1 * math.sqrt(d)), rtol=1e-5, atol=0)
    torch.testing.assert_close(l2.cost(x, x_adv), l2.score(x, x_adv), rtol=0, atol=0)
    torch.testing.assert_close(squared.cost(x, x_adv), torch.full((2,), 0.01 * d), rtol=1e-5, atol=0)
    torch.testing.assert_close(squared.cost(x, x_adv), l2.score(x, x_adv) ** 2, rtol=1e-6, atol=0)
    assert not l2.higher_is_better and not squared.higher_is_better


def test_linf_known_answer(shifted_pair):
    x, x_adv = shifted_pair
    linf = MEASURES["linf"]
    torch.testing.assert_close(linf.score(x, x_adv), torch.full((2,), 0.1), rtol=0, atol=1e-6)
    torch.testing.assert_close(linf.cost(x, x_adv), linf.score(x, x_adv), rtol=0, atol=0)
    x_adv = x.clone()
    x_adv[1, 2, 3, 4] += 0.05  # one pixel of one image
    torch.testing.assert_close(linf.score(x, x_adv), torch.tensor([0.0, 0.05]), rtol=0, atol=1e-6)


def test_ssim_of_a_constant_shift_on_flat_images():
    # flat images: sigma = 0, so SSIM is the luminance term (2ab + c1) / (a^2 + b^2 + c1)
    x = torch.full((1, 1, 20, 20), 0.4, dtype=torch.float64)
    y = torch.full((1, 1, 20, 20), 0.6, dtype=torch.float64)
    c1 = 0.01**2
    expected = torch.tensor([(2 * 0.4 * 0.6 + c1) / (0.4**2 + 0.6**2 + c1)], dtype=torch.float64)
    torch.testing.assert_close(ssim(x, y), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(MEASURES["ssim"].cost(x, y), 1 - expected, rtol=0, atol=1e-12)
    # float32: E[x^2] - mu^2 rounds to ~1e-8 against c2 = 9e-4, hence a looser tolerance
    torch.testing.assert_close(ssim(x.float(), y.float()), expected.float(), rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# 9. evaluate_measures, get_measure, register_measure.


def test_evaluate_measures_returns_the_applicable_scores():
    x = clean_batch("ssim")[:2]
    x_adv = perturbed(x, 0.05).requires_grad_(True)
    table = evaluate_measures(x, x_adv)
    assert list(table) == available_measures(x.shape)
    assert "ms_ssim" not in table and "vif" in table and "fsim" in table
    for name, value in table.items():
        assert value.shape == (2,), name
        assert not value.requires_grad, name
        torch.testing.assert_close(value, MEASURES[name].score(x, x_adv.detach()), rtol=0, atol=1e-6)


def test_evaluate_measures_on_small_grayscale_and_by_name():
    x = 0.1 + 0.8 * torch.rand(3, 1, 28, 28)
    x_adv = perturbed(x, 0.05)
    assert list(evaluate_measures(x, x_adv)) == ["ssim", "ssim-padded", "ms_ssim_small", "haarpsi", "gmsd", "ciede2000", "psnr", "l2",
                                             "l2-squared", "linf"]
    chosen = evaluate_measures(x, x_adv, names=["linf", "psnr"])
    assert list(chosen) == ["linf", "psnr"]
    assert chosen["psnr"].shape == chosen["linf"].shape == (3,)


def test_evaluate_measures_rejects_bad_inputs():
    x = 0.1 + 0.8 * torch.rand(2, 1, 28, 28)
    with pytest.raises(
        ValueError,
        match=re.escape(SHAPE_MISMATCH.format(name="x_adv", expected=(2, 1, 28, 28), other="x", actual=(2, 1, 28, 27))),
    ):
        evaluate_measures(x, x[..., :27].clone())
    with pytest.raises(ValueError, match=re.escape(OUT_OF_RANGE.split(",")[0].format(name="x_adv"))):
        evaluate_measures(x, x + 0.5)
    with pytest.raises(ValueError, match=re.escape(OUT_OF_RANGE.split(",")[0].format(name="x"))):
        evaluate_measures(x - 0.5, x)
    with pytest.raises(ValueError, match=re.escape(TOO_SMALL.format(measure="VIF", min_size=41, height=28, width=28))):
        evaluate_measures(x, x.clone(), names=["vif"])
    with pytest.raises(ValueError, match="unknown measure 'nope'"):
        evaluate_measures(x, x.clone(), names=["psnr", "nope"])


def test_get_measure():
    assert get_measure("ssim") is MEASURES["ssim"]
    with pytest.raises(ValueError) as info:
        get_measure("nope")
    assert str(info.value) == UNKNOWN.format(kind="measure", name="nope", known=", ".join(MEASURES))
    for name in MEASURES:
        assert name in str(info.value)


def test_register_measure_rejects_duplicates_and_adds_new_ones():
    before = dict(MEASURES)
    with pytest.raises(ValueError, match="'ssim' is already registered"):
        register_measure(MEASURES["ssim"])
    assert MEASURES == before
    l1 = Measure(
        name="test_l1", label="L1", cost_fn=lambda x, y: (y - x).abs().flatten(1).sum(1),
        score_fn=lambda x, y: (y - x).abs().flatten(1).sum(1), higher_is_better=False,
        score_range=(0.0, 100.0), cost_formula="||x' - x||_1", min_size=1,
    )
    try:
        assert register_measure(l1) is l1
        assert get_measure("test_l1") is l1
        assert available_measures((1, 1, 4, 4))[-1] == "test_l1"
        with pytest.raises(ValueError, match="already registered"):
            register_measure(l1)
    finally:
        MEASURES.pop("test_l1", None)
    assert MEASURES == before


# ---------------------------------------------------------------------------------------------
# 10. Scores lie in their stated ranges.


@pytest.mark.parametrize("name", ALL)
def test_scores_lie_in_stated_range(name):
    m = MEASURES[name]
    lo, hi = m.score_range
    for eps in (0.02, 0.1):
        _, s = values(name, eps)
        assert bool(((s >= lo) & (s <= hi)).all()), (eps, s, m.score_range)
    if name in SIMILARITIES:
        assert m.higher_is_better and m.score_range == (0.0, 1.0)
        assert 0.5 < values(name, 0.1)[1].min().item() < values(name, 0.02)[1].max().item() < 1


# ---------------------------------------------------------------------------------------------
# Both batches are checked: piq's AssertionError or a torch RuntimeError never reaches the user.


@pytest.mark.parametrize("name", ALL)
def test_cost_rejects_x_adv_of_another_shape_with_value_error(name):
    m = MEASURES[name]
    x = clean_batch(name)
    with pytest.raises(ValueError, match="expected shape"):
        m.cost(x, x[..., :-1, :-1].contiguous())


@pytest.mark.parametrize("name", ALL)
def test_cost_rejects_out_of_range_x_adv_with_value_error(name):
    m = MEASURES[name]
    x = clean_batch(name)
    with pytest.raises(ValueError, match=r"expected values in \[0, 1\]"):
        m.cost(x, x + 0.3)


# ---------------------------------------------------------------------------------------------
# 11. SSIM of reflect-padded images: the border counts.


def _fmnist_like() -> torch.Tensor:
    """Two 28x28 grayscale photos (camera, coins), area-downsampled, as (2, 1, 28, 28)."""
    crops = [photo("camera")[..., 100:356, 150:406], photo("coins")[..., :256, :256]]
    return torch.cat([F.interpolate(c, size=(28, 28), mode="area") for c in crops])


def _frame_mask(side: int = 28, width: int = 5) -> torch.Tensor:
    """True on the pixels fewer than ``width`` from the border: where no valid 11x11 window is centred."""
    mask = torch.ones(side, side, dtype=torch.bool)
    mask[width:-width, width:-width] = False
    return mask


def _reflect(t: torch.Tensor) -> torch.Tensor:
    return F.pad(t, (5, 5, 5, 5), mode="reflect")


def test_padded_ssim_identity_and_range():
    m = MEASURES["ssim-padded"]
    x = _fmnist_like()
    torch.testing.assert_close(m.score(x, x.clone()), torch.ones(2), rtol=0, atol=1e-5)
    torch.testing.assert_close(m.cost(x, x.clone()), torch.zeros(2), rtol=0, atol=1e-5)
    for eps in (0.02, 0.1, 0.5):
        x_adv = perturbed(x, eps)
        score, cost = m.score(x, x_adv), m.cost(x, x_adv)
        assert bool(((score >= 0) & (score <= 1)).all()), (eps, score)
        assert bool(((cost >= 0) & (cost <= 1)).all()), (eps, cost)
        assert bool((score < 1 - 1e-4).all())
    assert m.higher_is_better and m.label == "SSIM (padded)" and m.min_size == 6


def test_padded_ssim_sees_a_perturbation_in_the_border_frame():
    # The property the measure exists for: noise confined to the outer 5 pixels (59 % of a
    # 28x28 image) barely moves the valid-window SSIM, and clearly moves the padded one.
    x = _fmnist_like()
    frame = _frame_mask()
    assert frame.float().mean().item() == pytest.approx(1 - 18**2 / 28**2)  # 0.587
    noise = 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    in_frame = (x + noise * frame).clamp(0.0, 1.0)
    plain, padded = MEASURES["ssim"].cost(x, in_frame), MEASURES["ssim-padded"].cost(x, in_frame)
    assert bool((padded > 3 * plain).all()), (plain, padded)  # measured 5x and 8x
    assert padded.min().item() > 0.1
    # control: the same noise in the centre is charged by both, by plain SSIM even more
    in_centre = (x + noise * ~frame).clamp(0.0, 1.0)
    plain_c, padded_c = MEASURES["ssim"].cost(x, in_centre), MEASURES["ssim-padded"].cost(x, in_centre)
    assert bool((plain_c > padded_c).all()) and bool((padded_c > 0.05).all()), (plain_c, padded_c)


def test_padded_ssim_gradient_reaches_the_frame():
    # As an attack cost: finite gradients from the random start, and the frame gets a real share
    # of them (the valid-window SSIM's gradient there is much smaller).
    x = _fmnist_like()
    x_adv = random_start(x)
    g_padded, g_plain = cost_grad(MEASURES["ssim-padded"], x, x_adv), cost_grad(MEASURES["ssim"], x, x_adv)
    assert bool(torch.isfinite(g_padded).all()) and g_padded.abs().max().item() > 0
    frame = _frame_mask()

    def frame_share(g: torch.Tensor) -> float:
        return (g[..., frame].abs().sum() / g.abs().sum()).item()

    assert frame_share(g_padded) > 0.5  # measured 0.86 (the frame is 59 % of the pixels)
    assert frame_share(g_padded) > 3 * frame_share(g_plain), (frame_share(g_plain), frame_share(g_padded))  # 0.17
    # prepare(x) gives the same gradient as cost
    x_req = x_adv.clone().requires_grad_(True)
    (g_prepared,) = torch.autograd.grad(MEASURES["ssim-padded"].prepare(x)(x_req).sum(), x_req)
    torch.testing.assert_close(g_prepared, g_padded, rtol=0, atol=1e-9)


@pytest.mark.parametrize("shape", [(2, 1, 28, 28), (1, 3, 44, 60), (2, 3, 6, 9)])
def test_padded_ssim_equals_ssim_of_explicitly_padded_images(shape):
    # Known answer: SSIM (ours, and piq's as an independent implementation) of the images
    # reflect-padded by hand.
    g = torch.Generator().manual_seed(3)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0.0, 1.0)
    xp, yp = _reflect(x), _reflect(y)
    assert xp.shape[-2:] == (shape[-2] + 10, shape[-1] + 10)
    torch.testing.assert_close(xp[..., 5:-5, 5:-5], x, rtol=0, atol=0)
    torch.testing.assert_close(xp[..., 5 - 1, 5:-5], x[..., 1, :], rtol=0, atol=0)  # mirrored, edge not repeated
    expected = piq.ssim(yp, xp, data_range=1.0, reduction="none")
    got = MEASURES["ssim-padded"].score(x, y)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(padded_ssim(x, y), ssim(xp, yp, downsample=False), rtol=0, atol=1e-12)
    torch.testing.assert_close(MEASURES["ssim-padded"].cost(x, y), 1 - expected, rtol=0, atol=1e-9)
    # float32 within the fast SSIM's usual tolerance
    torch.testing.assert_close(padded_ssim(x.float(), y.float()), expected.float(), rtol=0, atol=1e-5)


def test_padded_ssim_of_flat_images_is_the_luminance_term():
    # flat images stay flat when padded: same closed form as for plain SSIM
    x = torch.full((1, 1, 8, 8), 0.4, dtype=torch.float64)
    y = torch.full((1, 1, 8, 8), 0.6, dtype=torch.float64)
    c1 = 0.01**2
    expected = torch.tensor([(2 * 0.4 * 0.6 + c1) / (0.4**2 + 0.6**2 + c1)], dtype=torch.float64)
    torch.testing.assert_close(padded_ssim(x, y), expected, rtol=0, atol=1e-12)


def test_padded_ssim_downsamples_large_images_like_ssim():
    # 512x512: average-pooled by 2 as in ssim, then padded
    x = photo("camera")[..., :512, :512].double()
    y = _blur(x)
    pooled = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    expected = piq.ssim(_reflect(pooled[1]), _reflect(pooled[0]), data_range=1.0, reduction="none")
    torch.testing.assert_close(padded_ssim(x, y), expected, rtol=0, atol=1e-9)
    assert abs(padded_ssim(x, y).item() - ssim(x, y).item()) < 0.02  # the frame is a small part here


def test_padded_ssim_rejects_too_small_images_with_a_clear_message():
    # reflect padding by 5 needs a side of at least 6; say so instead of torch's padding error
    m = MEASURES["ssim-padded"]
    x = torch.rand(1, 1, 5, 28)
    msg = TOO_SMALL.format(measure="SSIM (padded)", min_size=6, height=5, width=28)
    for call in (lambda: m.cost(x, x.clone()), lambda: m.score(x, x.clone()), lambda: m.prepare(x),
                 lambda: padded_ssim(x, x.clone())):
        with pytest.raises(ValueError, match=re.escape(msg)):
            call()
    assert "ssim-padded" not in available_measures((1, 1, 5, 28))
    assert "ssim-padded" in available_measures((1, 1, 6, 6))
    valid, skipped = measure_support((1, 1, 5, 5))
    assert "ssim-padded" not in valid and "SSIM (padded)" in skipped["ssim-padded"] and "6x6" in skipped["ssim-padded"]
    valid, _ = measure_support((1, 1, 10, 10))
    assert "ssim-padded" in valid and "ssim" not in valid  # works below plain SSIM's 11 px


def test_public_ssim_functions_validate_like_the_measures():
    from core.measures import padded_ssim, ssim, ssim_map

    x = torch.rand(2, 1, 28, 28)
    for fn in (ssim, padded_ssim, ssim_map):
        with pytest.raises(ValueError):
            fn(x, x[:1])  # a batch against another size: a message, not a broadcast
    with pytest.raises(ValueError, match="SSIM"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))  # smaller than the 11 px window
    torch.testing.assert_close(ssim(x, x), torch.ones(2))


def test_l2_means_the_norm_wherever_it_is_reported():
    """PGD-L2 and DDN report their cost in "l2": the registry's "l2" is the same number."""
    from core.attacks import DDN, PGDL2
    from core.models import load_model

    model = load_model("fmnist-cnn")
    x = torch.rand(4, 1, 28, 28)
    y = model(x).argmax(1)
    for attack in (PGDL2(model, eps=1.0, steps=5), DDN(model, steps=10)):
        result = attack(x, y)
        assert result.measure == "l2"
        torch.testing.assert_close(result.cost, result.measures["l2"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(result.measures["l2-squared"], result.measures["l2"] ** 2, rtol=1e-4, atol=1e-6)
