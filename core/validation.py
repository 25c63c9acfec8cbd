"""Input checks shared by every public function.

Each check raises ``TypeError`` or ``ValueError`` stating what was expected and
what was found. Messages are module constants so tests can match them.
"""

from __future__ import annotations

import numbers

import torch

NOT_A_TENSOR = "{name}: expected a torch.Tensor, got {actual}"
NOT_FLOAT = "{name}: expected a floating-point tensor, got dtype {dtype}"
BAD_NDIM = "{name}: expected shape (N, C, H, W), got {shape}"
BAD_CHANNELS = "{name}: expected 1 or 3 channels, got {channels}"
EMPTY_BATCH = "{name}: expected at least one image, got an empty batch"
NOT_FINITE = "{name}: expected finite values, found {count} NaN or infinite entries"
OUT_OF_RANGE = "{name}: expected values in [0, 1], got min={lo:.4g}, max={hi:.4g}"
SHAPE_MISMATCH = "{name}: expected shape {expected} (the shape of {other}), got {actual}"
BAD_LABELS = "{name}: expected int64 labels of shape ({n},), got dtype {dtype} and shape {shape}"
LABEL_RANGE = "{name}: expected labels in [0, {n_classes}), got min={lo}, max={hi}"
NOT_POSITIVE = "{name}: expected a positive number, got {value!r}"
NOT_POSITIVE_INT = "{name}: expected a positive integer, got {value!r}"
TOO_SMALL = "{measure} needs images of at least {min_size}x{min_size} pixels, got {height}x{width}"
NEEDS_RGB = "{measure} needs RGB images (3 channels), got {channels} channel(s)"

RANGE_TOLERANCE = 1e-6


def check_images(x: object, *, name: str = "x") -> torch.Tensor:
    """Check a batch of images: float tensor, (N, C, H, W) with C in {1, 3}, finite, in [0, 1].

    Args:
        x: The value to check.
        name: How the value is called in error messages.

    Returns:
        ``x`` itself, so the call can be used inline.

    Raises:
        TypeError: not a floating-point tensor.
        ValueError: wrong shape, NaN or infinite values, values outside [0, 1] by more than 1e-6.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(NOT_A_TENSOR.format(name=name, actual=type(x).__name__))
    if not x.is_floating_point():
        raise TypeError(NOT_FLOAT.format(name=name, dtype=x.dtype))
    if x.dim() != 4:
        raise ValueError(BAD_NDIM.format(name=name, shape=tuple(x.shape)))
    if x.shape[0] == 0:
        raise ValueError(EMPTY_BATCH.format(name=name))
    if x.shape[1] not in (1, 3):
        raise ValueError(BAD_CHANNELS.format(name=name, channels=x.shape[1]))
    values = x.detach()
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        raise ValueError(NOT_FINITE.format(name=name, count=int((~finite).sum())))
    lo, hi = float(values.min()), float(values.max())
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise ValueError(OUT_OF_RANGE.format(name=name, lo=lo, hi=hi))
    return x


def check_pair(x: torch.Tensor, x_adv: torch.Tensor) -> None:
    """Check two batches of images of the same shape (see :func:`check_images`)."""
    check_images(x, name="x")
    check_images(x_adv, name="x_adv")
    if x.shape != x_adv.shape:
        raise ValueError(
            SHAPE_MISMATCH.format(name="x_adv", expected=tuple(x.shape), other="x", actual=tuple(x_adv.shape))
        )


def check_labels(y: object, n: int, *, n_classes: int | None = None, name: str = "y") -> torch.Tensor:
    """Check class labels: an int64 tensor of shape (n,), in [0, n_classes) when given."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(NOT_A_TENSOR.format(name=name, actual=type(y).__name__))
    if y.dtype != torch.int64 or tuple(y.shape) != (n,):
        raise ValueError(BAD_LABELS.format(name=name, n=n, dtype=y.dtype, shape=tuple(y.shape)))
    if n_classes is not None and n > 0:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= n_classes:
            raise ValueError(LABEL_RANGE.format(name=name, n_classes=n_classes, lo=lo, hi=hi))
    return y


def check_positive(value: object, *, name: str) -> float:
    """Check a strictly positive finite number and return it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(NOT_POSITIVE.format(name=name, value=value))
    value = float(value)
    if not value > 0 or value == float("inf"):
        raise ValueError(NOT_POSITIVE.format(name=name, value=value))
    return value


def check_positive_int(value: object, *, name: str) -> int:
    """``value`` if it is an integer >= 1 (not a bool: ``True`` is not a count); else ValueError.

    The one check of counts (steps, rounds, batch sizes, limits) in the project: ``2.5``,
    ``"3"``, ``0`` and ``True`` are all refused with :data:`NOT_POSITIVE_INT`; NumPy integers
    are counts too (returned as ``int``).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(NOT_POSITIVE_INT.format(name=name, value=value))
    return int(value)
