"""Norm balls: the norm-specific pieces of PGD (random start, ascent step, projection).

PGD-L-inf and PGD-L2 differ only here, so there is one PGD loop and no copy of it.
All tensors are (N, C, H, W) in [0, 1] pixel space.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.validation import check_positive


@dataclass(frozen=True)
class LinfBall:
    """``{x' : ||x' - x||_inf <= eps} ∩ [0, 1]^D``; ascent by the sign of the gradient."""

    eps: float
    measure = "linf"

    def __post_init__(self) -> None:
        check_positive(self.eps, name="eps")

    def init(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return self.project(x, x + (2 * noise - 1) * self.eps)

    def step(self, x_adv: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
        return x_adv + step_size * grad.sign()

    def project(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        return (x + (x_adv - x).clamp(-self.eps, self.eps)).clamp(0.0, 1.0)

    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        return delta.flatten(1).abs().amax(1)


@dataclass(frozen=True)
class L2Ball:
    """``{x' : ||x' - x||_2 <= eps} ∩ [0, 1]^D``; ascent along the normalised gradient.

    The projection rescales onto the ball, then clamps to [0, 1]; clamping moves every
    coordinate towards ``x``, so the norm stays within ``eps``.
    """

    eps: float
    measure = "l2"

    def __post_init__(self) -> None:
        check_positive(self.eps, name="eps")

    def init(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # Uniform in the ball: a Gaussian direction, radius eps * U^(1/D).
        direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        direction = direction / _l2(direction).clamp_min(1e-12)
        u = torch.rand((x.shape[0],), generator=generator, device=x.device, dtype=x.dtype)
        radius = self.eps * u.pow(1.0 / x[0].numel())
        return self.project(x, x + direction * radius.view(-1, 1, 1, 1))

    def step(self, x_adv: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
        return x_adv + step_size * grad / _l2(grad).clamp_min(1e-12)

    def project(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        delta = x_adv - x
        factor = (self.eps / _l2(delta).clamp_min(1e-12)).clamp(max=1.0)
        return (x + delta * factor).clamp(0.0, 1.0)

    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        return delta.flatten(1).norm(dim=1)


ThreatModel = LinfBall | L2Ball


def _l2(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
