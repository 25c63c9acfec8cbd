"""The measure contract and its registry: :class:`Measure`, :data:`MEASURES`, and the helpers around them.

Every measure gives two views of the same comparison between a clean image ``x`` and a
perturbed image ``x_adv``: ``cost(x, x_adv)``, the transport cost ``d(x, x_adv)`` of the
W-DRO attack (per image, non-negative, zero when ``x_adv == x``, differentiable in
``x_adv``), and ``score(x, x_adv)``, the number people quote (SSIM 0.98, PSNR 41 dB,
L-inf 8/255), with its direction in ``higher_is_better``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from core.registry import Registry
from core.validation import NEEDS_RGB, TOO_SMALL, check_pair

CostFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PreparedCost = Callable[[torch.Tensor], torch.Tensor]

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
        transport_cost: Whether it can be W-DRO's transport cost (L-inf cannot: its gradient is
            one pixel's, and a ball in it is PGD's job).
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
    transport_cost: bool = True

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


def transport_costs(shape: Iterable[int]) -> list[str]:
    """Names of the measures that can be W-DRO's transport cost for images of ``shape``."""
    return [name for name in available_measures(shape) if MEASURES[name].transport_cost]


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



def one_minus(similarity: Callable[..., torch.Tensor], *, absolute: bool = False) -> Callable[..., torch.Tensor]:
    """The cost ``1 - similarity`` of a similarity (clamped at 0: rounding can put one a hair above 1).

    Works for ``(x, x_adv) -> (N,)`` functions and prepared ``x_adv -> (N,)`` ones alike.
    ``absolute=True`` gives ``|1 - similarity|`` (VIF, which can exceed 1).
    """

    def cost(*args: torch.Tensor) -> torch.Tensor:
        gap = 1.0 - similarity(*args)
        return gap.abs() if absolute else gap.clamp_min(0.0)

    cost.__name__ = f"one_minus_{getattr(similarity, '__name__', 'similarity').lstrip('_')}"
    return cost
