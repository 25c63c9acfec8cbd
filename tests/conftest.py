"""Shared fixtures: a fixed random seed for every test and the CPU device."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Run torch on one thread: on 2 shared cores, intra-op threads on these small tensors were
    measured up to 100x slower under load, and never faster when the machine was quiet."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def seed() -> None:
    """Seed torch's global generator so every test draws the same numbers."""
    torch.manual_seed(0)


@pytest.fixture
def device() -> torch.device:
    """The device the tests run on."""
    return torch.device("cpu")
