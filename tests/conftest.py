"""Shared fixtures: one torch thread, a fixed random seed, the CPU device, a small trained classifier; a fake CelebA folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
import torch.nn.functional as F
from torch import nn

from core.data import load_fashion_mnist


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "slow: a test of several seconds (a real browser, processes, training runs, "
                                       "subprocesses); `pytest -m 'not slow'` runs the fast ones alone")


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


CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def write_fake_celeba(root: Path, n: int = 12, *, kaggle: bool = False) -> np.ndarray:
    """Write a tiny CelebA in torchvision's layout (or Kaggle's); returns the (n, 40) attribute table."""
    folder = root / "celeba"
    images = folder / "img_align_celeba"
    if kaggle:
        images = images / "img_align_celeba"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    table = rng.choice([-1, 1], size=(n, len(CELEBA_ATTRIBUTES)))
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        pixels = np.full((48, 40, 3), (20 * i) % 256, dtype=np.uint8)  # taller than wide, like CelebA's 218x178
        Image.fromarray(pixels).save(images / name, quality=95)
    partition = [i % 3 for i in range(n)]  # 0 train, 1 val, 2 test
    if kaggle:
        (folder / "list_attr_celeba.csv").write_text(
            "image_id," + ",".join(CELEBA_ATTRIBUTES) + "\n"
            + "".join(f"{name}," + ",".join(map(str, row)) + "\n" for name, row in zip(names, table))
        )
        (folder / "list_eval_partition.csv").write_text(
            "image_id,partition\n" + "".join(f"{name},{p}\n" for name, p in zip(names, partition))
        )
    else:
        rows = "".join(f"{name} " + " ".join(f"{v:2d}" for v in row) + "\n" for name, row in zip(names, table))
        (folder / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(CELEBA_ATTRIBUTES) + " \n" + rows)
        (folder / "list_eval_partition.txt").write_text("".join(f"{name} {p}\n" for name, p in zip(names, partition)))
    return table


@pytest.fixture
def no_full_data(tmp_path, monkeypatch):
    """No Debian package and an empty default data root: only the bundled subset is left."""
    from core.data import fashion_mnist

    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("PDRO_DATA", str(tmp_path / "empty-root"))
    return tmp_path
