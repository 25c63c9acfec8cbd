"""Published baselines (DDN, ALMA-SSIM, PerC-AL): the attack properties, plus known answers.

Every attack: outputs in [0, 1], result complete, same seed -> same result, budgets hold,
real damage on a small trained model. Known answers: DDN's flip of a linear classifier is the
distance to its boundary; DDN needs no more L2 than PGD-L2 at the same success; ALMA-SSIM
fools more images than PGD-L-inf at 8/255 and looks better in SSIM; ALMA's penalty P2; the
CIEDE2000 colour difference against Sharma, Wu, Dalal's published test pairs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.attacks import ALMA, ATTACKS, DDN, PGDL2, PerCAL, PGDLinf, get_attack
from core.attacks.alma import penalty_p2, penalty_p2_grad
from core.measures.ciede2000 import ciede2000, ciede2000_distance, gray_to_lab, srgb_to_lab
from core.measures import available_measures

BASELINES = {"ddn": DDN, "alma-ssim": ALMA, "perc-al": PerCAL}
METRICS = {"ddn": "l2", "alma-ssim": "ssim", "perc-al": "ciede2000"}


@pytest.fixture(scope="module")
def results(trained):
    """Each baseline at its default settings on the 64 images, run once for several tests."""
    model, x, y = trained
    return {name: cls(model)(x, y) for name, cls in BASELINES.items()}


def test_baselines_are_registered():
    for name, cls in BASELINES.items():
        assert ATTACKS[name] is cls and get_attack(name) is cls
        assert cls.name == name and cls.measure == METRICS[name]
        assert "arxiv.org/abs/" in (cls.__doc__ or "")  # the class cites its paper


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_trained_model_is_fooled_and_result_complete(trained, results, name):
    model, x, y = trained
    result = results[name]
    assert result.attack == name and result.measure == METRICS[name]
    assert result.success_rate > 0.95  # minimal attacks without a budget flip nearly everything
    assert bool((result.pred_clean == y).all())
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == x.dtype
    assert float(result.x_adv.min()) >= 0.0 and float(result.x_adv.max()) <= 1.0
    assert torch.equal(result.success, result.pred_adv != y)
    assert set(result.measures) == set(available_measures(x.shape))
    for values in result.measures.values():
        assert values.shape == (len(x),) and bool(torch.isfinite(values).all())
    assert result.cost.shape == (len(x),) and bool(torch.isfinite(result.cost).all())
    assert float(result.cost[result.success].min()) > 0.0
    # images never flipped come back unchanged
    assert torch.equal(result.x_adv[~result.success], x[~result.success])
    assert result.steps == 100 and result.gamma.shape == (0, len(x))


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_same_seed_same_result(trained, name):
    model, x, y = trained
    attack = get_attack(name)(model, steps=20)
    first, second = attack(x[:16], y[:16], seed=3), attack(x[:16], y[:16], seed=3)
    assert torch.equal(first.x_adv, second.x_adv)


@pytest.mark.parametrize(
    "name, kwargs, budget",
    [("ddn", dict(max_cost=0.75), 0.75), ("alma-ssim", dict(max_cost=0.02), 0.02),
     ("perc-al", dict(max_cost=40.0), 40.0)],
)
def test_budget_holds_and_binds(trained, results, name, kwargs, budget):
    model, x, y = trained
    result = get_attack(name)(model, **kwargs)(x, y)
    assert float(result.cost.max()) <= budget * (1 + 1e-5)
    assert float(result.x_adv.min()) >= 0.0 and float(result.x_adv.max()) <= 1.0
    # the budget bites (fewer successes than unbudgeted) but is not empty
    assert 0.1 < result.success_rate < results[name].success_rate
    # images that fit the unbudgeted minimal flip are mostly found again within the budget
    fits = results[name].success & (results[name].cost <= 0.8 * budget)
    assert float((result.success & fits).sum()) >= 0.9 * float(fits.sum())


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_already_misclassified_images_come_back_unchanged(trained, name):
    """With a wrong label, the clean image already 'succeeds': the minimal flip is no change at all."""
    model, x, y = trained
    wrong = (y[:8] + 1) % 10
    result = get_attack(name)(model, steps=5)(x[:8], wrong)
    assert bool(result.success.all())
    assert torch.equal(result.x_adv, x[:8])
    assert torch.allclose(result.cost, torch.zeros(8), atol=1e-6)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_targeted_attack_reaches_the_target(trained, name):
    model, x, y = trained
    target = (y[:16] + 1) % 10
    result = get_attack(name)(model)(x[:16], y[:16], target=target)
    assert torch.equal(result.success, result.pred_adv == target)
    assert result.success_rate > 0.8


def test_quantised_output_lies_on_the_8_bit_grid(trained):
    model, x, y = trained
    for attack in (DDN(model, steps=20, levels=256), ALMA(model, steps=20, levels=256),
                   PerCAL(model, steps=20, levels=256)):
        result = attack(x[:8], y[:8])
        scaled = result.x_adv * 255
        assert torch.allclose(scaled, scaled.round(), atol=1e-3), attack.name


# -- DDN: known answers ------------------------------------------------------------------------


class _Linear2(nn.Module):
    """f(x) = W x + b with two classes on (N, 1, 16, 16) images; the boundary passes through x = 0.5."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        weight = torch.randn(2, 256, generator=generator)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(-0.5 * weight.sum(1))  # both logits are 0 at the grey image 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


def test_ddn_finds_the_distance_to_a_linear_boundary():
    """For a linear two-class model the smallest L2 flip of x is |w . x + b| / ||w||, w = w_0 - w_1.

    The images are 0.5 + noise orthogonal to w + a known distance d along w, on either side,
    and every pixel stays inside (0, 1) on the way to the boundary, so the box never binds and d
    is the answer. DDN's radius moves in factors 0.95 / 1.05 around it; as 0.95 * 1.05 < 1 the
    radii it visits sweep slowly past d, and the best lands within 3 % (measured: 0.5 %).
    """
    model = _Linear2()
    with torch.no_grad():
        w = (model.weight[0] - model.weight[1]).view(1, -1)
        w_hat = w / w.norm()
    generator = torch.Generator().manual_seed(2)
    d = torch.tensor([0.3, 0.5, 0.8, 1.0, 1.3, 1.5])
    side = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    noise = 0.1 * (2 * torch.rand(6, 256, generator=generator) - 1)
    noise = noise - (noise @ w_hat.T) * w_hat  # orthogonal to w: stays on the boundary's level
    x = (0.5 + noise + (side * d)[:, None] * w_hat).view(6, 1, 16, 16)
    assert float(x.min()) > 0 and float(x.max()) < 1
    with torch.no_grad():
        margin = (x.flatten(1) @ w.T).squeeze(1) + model.bias[0] - model.bias[1]
        y = model(x).argmax(1)
    assert torch.allclose(margin.abs() / w.norm(), d, rtol=1e-4)  # the construction is right
    result = DDN(model, steps=100)(x, y)
    assert bool(result.success.all())
    assert bool((result.cost >= d * (1 - 1e-4)).all())  # nothing beats the analytic minimum
    assert bool((result.cost <= d * 1.03).all()), result.cost / d
    direction = (result.x_adv - x).flatten(1)
    cosine = F.cosine_similarity(direction, -side[:, None] * w, dim=1)
    assert bool((cosine > 0.999).all())  # straight across the boundary


def test_ddn_needs_no_more_l2_than_pgd_l2(trained, results):
    """A minimal attack's success at radius eps (its flips with norm <= eps) is at least PGD-L2's at eps."""
    model, x, y = trained
    ddn = results["ddn"]
    for eps in (0.5, 1.0, 1.5):
        pgd = PGDL2(model, eps=eps, steps=20)(x, y)
        within = float((ddn.success & (ddn.cost <= eps)).float().mean())
        assert within >= pgd.success_rate - 0.05, (eps, within, pgd.success_rate)


# -- ALMA: penalty and quality ----------------------------------------------------------------


def test_penalty_p2_known_values():
    y = torch.tensor([-1e6, -2.0, -0.5, 0.0, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
    rho = torch.full_like(y, 2.0)
    mu = torch.full_like(y, 3.0)
    p = penalty_p2(y, rho, mu)
    # by hand: y = -2: 3 * -2 / (1 + 4) = -1.2; y = 0.5: 1.5 + 3 * 2 * 0.25 + 4 * 0.125 / 6 = 3.0 + 1/12
    assert torch.allclose(p[1:], torch.tensor([-1.2, -0.75, 0.0, 3.0 + 1 / 12, 6 + 24 + 32 / 6], dtype=torch.float64))
    assert abs(float(p[0].detach()) - (-3.0 / 2.0)) < 1e-5  # -mu / rho deep in the feasible side
    (grad,) = torch.autograd.grad(p.sum(), y)
    assert torch.allclose(penalty_p2_grad(y.detach(), rho, mu), grad)
    assert float(penalty_p2_grad(torch.zeros(1), torch.ones(1) * 2, torch.ones(1) * 3)) == 3.0  # mu at 0


def test_alma_ssim_fools_more_and_looks_better_than_pgd_linf(trained, results):
    model, x, y = trained
    alma = results["alma-ssim"]
    pgd = PGDLinf(model, eps=8 / 255, steps=10)(x, y)
    assert alma.success_rate >= pgd.success_rate
    assert float(alma.measures["ssim"].mean()) > float(pgd.measures["ssim"].mean()) + 0.02
    assert torch.allclose(alma.cost, 1 - alma.measures["ssim"], atol=1e-5)  # cost is 1 - SSIM


# -- PerC: colour science ---------------------------------------------------------------------

# Sharma, Wu, Dalal (2005), Table 1 (www2.ece.rochester.edu/~gsharma/ciede2000/): L1 a1 b1, L2 a2 b2,
# Delta E_00 to 4 decimals. Rows 1, 4, 7, 9, 11, 13, 15 and 16 probe the hue wrap-around and zero
# chroma; 17-20 large differences; 25-34 the remaining pairs of the table.
SHARMA = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


def test_ciede2000_matches_sharma_test_data():
    table = torch.tensor(SHARMA, dtype=torch.float64)
    lab1, lab2, expected = table[:, :3], table[:, 3:6], table[:, 6]
    assert torch.allclose(ciede2000(lab1, lab2), expected, atol=1e-4)
    assert torch.allclose(ciede2000(lab2, lab1), expected, atol=1e-4)  # symmetric
    # float32 too, away from the hue discontinuity of rows 13-15 (a* = +-0.001 at b* = -+2.49)
    smooth = torch.tensor([0, 1, 2, 3, 4, 7] + list(range(8, 22)))
    assert torch.allclose(ciede2000(lab1.float(), lab2.float())[smooth], expected.float()[smooth], atol=1e-3)


def test_srgb_to_lab_known_values():
    # sRGB primaries and white under D65 (IEC 61966-2-1; e.g. Lindbloom's calculator, 2 decimals)
    rgb = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    expected = torch.tensor([[100.0, 0.0, 0.0], [53.24, 80.09, 67.20], [87.73, -86.18, 83.18],
                             [32.30, 79.19, -107.86], [0.0, 0.0, 0.0]])
    lab = srgb_to_lab(rgb.view(5, 3, 1, 1)).view(5, 3)
    assert torch.allclose(lab, expected, atol=0.02)


def test_gray_images_use_lightness_only():
    """A grey is a neutral colour: a* = b* = 0, and CIEDE2000 reduces to |Delta L*| / S_L."""
    generator = torch.Generator().manual_seed(0)
    g1, g2 = torch.rand(2, 4, 1, 6, 6, generator=generator)
    lab1, lab2 = gray_to_lab(g1), gray_to_lab(g2)
    assert torch.allclose(srgb_to_lab(g1.expand(-1, 3, -1, -1)), lab1, atol=1e-3)
    assert bool((lab1[:, 1:] == 0).all())
    l1, l2 = lab1[:, 0], lab2[:, 0]
    s_l = 1 + 0.015 * ((l1 + l2) / 2 - 50) ** 2 / torch.sqrt(20 + ((l1 + l2) / 2 - 50) ** 2)
    assert torch.allclose(ciede2000(lab1, lab2), (l2 - l1).abs() / s_l, atol=1e-4)
    # the distance is 0 at no change, with finite gradients there and at greys in RGB
    for x in (g1, g1.expand(-1, 3, -1, -1).contiguous()):
        x_adv = x.clone().requires_grad_(True)
        d = ciede2000_distance(x, x_adv)
        (grad,) = torch.autograd.grad(d.sum(), x_adv)
        assert torch.equal(d, torch.zeros(4)) and bool(torch.isfinite(grad).all())
        x_adv = (x + 0.01).clamp(0, 1).requires_grad_(True)
        (grad,) = torch.autograd.grad(ciede2000_distance(x, x_adv).sum(), x_adv)
        assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


def test_perc_al_on_rgb_images():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16 * 16, 4))
    x = torch.rand(8, 3, 16, 16)
    with torch.no_grad():
        y = model(x).argmax(1)
    result = PerCAL(model, steps=50)(x, y)
    assert result.success_rate > 0.9
    assert bool(torch.isfinite(result.x_adv).all())
    assert torch.allclose(result.cost, ciede2000_distance(x, result.x_adv))
    # the colour steps pull the found adversarials back: the best is closer than the first flip
    first_flip = PerCAL(model, steps=50, alpha_c=1e-6)(x, y)
    assert float(result.cost.mean()) < float(first_flip.cost.mean())


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (DDN, dict(steps=0), "steps"),
        (DDN, dict(gamma=1.5), "gamma"),
        (DDN, dict(max_cost=-1.0), "positive"),
        (ALMA, dict(alpha=1.0), "alpha"),
        (ALMA, dict(levels=1), "levels"),
        (ALMA, dict(max_cost=0.0), "positive"),
        (PerCAL, dict(alpha_c=0.0), "positive"),
        (PerCAL, dict(steps=2.5), "steps"),
    ],
)
def test_baselines_reject_bad_arguments(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(nn.Identity(), **kwargs)


def test_alma_needs_images_ssim_can_score(trained):
    model, _, _ = trained
    with pytest.raises(ValueError, match="needs images of at least 11x11"):
        ALMA(model)(torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64))


@pytest.mark.parametrize("name", ["ddn", "alma-ssim", "perc-al"])
def test_cli_builds_the_baselines_with_eps_as_their_cap(name):
    from core.cli import _build_attack, build_parser

    def build(*extra: str):
        argv = ["attack", "--model", "fmnist-cnn", "--image", "x.png", "--out", "o.png", "--attack", name, *extra]
        return _build_attack(build_parser().parse_args(argv), nn.Identity())

    capped = build("--eps", "0.25", "--steps", "7")
    assert capped.max_cost == 0.25 and capped.steps == 7
    assert build().max_cost is None  # no cap by default: the minimal flip
    with pytest.raises(ValueError, match="takes eps, not a budget"):
        build("--budget", "0.1")
