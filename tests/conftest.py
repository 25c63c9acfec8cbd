"""Shared fixtures: one torch thread, a fixed random seed, the CPU device, and a small trained classifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.data import load_fashion_mnist


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


@pytest.fixture(scope="module")
def trained():
    """A small CNN trained in the test on 1,600 bundled Fashion-MNIST images (about 1 s on CPU).

    Returns the model and 64 held-out images it classifies correctly (for the attack tests).
    """
    torch.manual_seed(0)
    x, y = load_fashion_mnist("test", source="bundled").tensors()
    model = nn.Sequential(
        nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv2d(16, 32, 5, stride=2, padding=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        for idx in torch.randperm(1600, generator=generator).split(64):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    x_test, y_test = x[1600:], y[1600:]
    with torch.no_grad():
        correct = model(x_test).argmax(1) == y_test
    assert correct.float().mean() > 0.75  # a real classifier, not noise
    return model, x_test[correct][:64], y_test[correct][:64]
