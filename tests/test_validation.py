"""core.validation: the one set of input checks, and their messages."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from core.validation import (
    BAD_CHANNELS,
    BAD_LABELS,
    BAD_NDIM,
    EMPTY_BATCH,
    LABEL_RANGE,
    NOT_FINITE,
    NOT_FLOAT,
    NOT_POSITIVE,
    NOT_POSITIVE_INT,
    OUT_OF_RANGE,
    RANGE_TOLERANCE,
    SHAPE_MISMATCH,
    check_images,
    check_labels,
    check_pair,
    check_positive,
    check_positive_int,
)


def _says(template: str, **fields) -> str:
    return re.escape(template.format(**fields))


def test_check_images_accepts_a_valid_batch_and_returns_it():
    x = torch.rand(2, 3, 8, 8)
    assert check_images(x) is x
    edge = torch.full((1, 1, 4, 4), 1 + RANGE_TOLERANCE / 2)  # rounding above 1 is tolerated
    assert check_images(edge) is edge


@pytest.mark.parametrize("bad,error,message", [
    (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), TypeError, NOT_FLOAT.format(name="x", dtype=torch.uint8)),
    (torch.zeros(1, 4, 4), ValueError, BAD_NDIM.format(name="x", shape=(1, 4, 4))),
    (torch.zeros(0, 1, 4, 4), ValueError, EMPTY_BATCH.format(name="x")),
    (torch.zeros(1, 2, 4, 4), ValueError, BAD_CHANNELS.format(name="x", channels=2)),
])
def test_check_images_refuses_each_wrong_shape_and_type(bad, error, message):
    with pytest.raises(error, match=re.escape(message)):
        check_images(bad)


def test_check_images_counts_non_finite_values_and_reports_the_range():
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, :2] = float("nan")
    x[0, 0, 1, 0] = float("inf")
    with pytest.raises(ValueError, match=_says(NOT_FINITE, name="img", count=3)):
        check_images(x, name="img")
    with pytest.raises(ValueError, match=_says(OUT_OF_RANGE, name="x", lo=-0.5, hi=2.0)):
        check_images(torch.tensor([-0.5, 2.0]).view(1, 1, 1, 2).expand(1, 1, 2, 2).contiguous())


def test_check_pair_names_the_mismatch():
    x = torch.rand(2, 1, 8, 8)
    check_pair(x, x.clone())
    with pytest.raises(ValueError, match=_says(SHAPE_MISMATCH, name="x_adv", expected=(2, 1, 8, 8), other="x",
                                                actual=(1, 1, 8, 8))):
        check_pair(x, x[:1])


def test_check_labels():
    y = torch.tensor([0, 2, 1])
    assert check_labels(y, 3, n_classes=3) is y
    with pytest.raises(ValueError, match=_says(BAD_LABELS, name="y", n=3, dtype=torch.int32, shape=(3,))):
        check_labels(y.int(), 3)
    with pytest.raises(ValueError, match=_says(LABEL_RANGE, name="y", n_classes=2, lo=0, hi=2)):
        check_labels(y, 3, n_classes=2)


@pytest.mark.parametrize("value", [0, -1, 2.5, "3", True, None])
def test_check_positive_int_refuses_everything_but_a_count(value):
    with pytest.raises(ValueError, match=_says(NOT_POSITIVE_INT, name="steps", value=value)):
        check_positive_int(value, name="steps")


def test_check_positive_int_takes_numpy_integers_as_counts():
    assert check_positive_int(np.int64(7), name="n") == 7 and type(check_positive_int(np.int64(7), name="n")) is int
    assert check_positive_int(1, name="n") == 1


def test_check_positive():
    assert check_positive(2, name="eps") == 2.0
    for value in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=re.escape("eps: expected a positive number")):
            check_positive(value, name="eps")
    with pytest.raises(TypeError, match=_says(NOT_POSITIVE, name="eps", value="1")):
        check_positive("1", name="eps")
