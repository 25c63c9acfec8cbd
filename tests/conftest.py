"""Shared fixtures: a fixed random seed for every test and the CPU device."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def seed() -> None:
    """Seed torch's global generator so every test draws the same numbers."""
    torch.manual_seed(0)


@pytest.fixture
def device() -> torch.device:
    """The device the tests run on."""
    return torch.device("cpu")
