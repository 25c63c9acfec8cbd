"""The bundled galleries exist, are small, and load as model inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.imageio import load_image, load_tensor

PHOTOS = Path(__file__).resolve().parent.parent / "assets" / "gallery" / "photos"


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket"])
def test_photo_gallery_loads_for_imagenet_models(name):
    path = PHOTOS / f"{name}.jpg"
    assert path.stat().st_size < 150_000
    img = load_image(path)
    assert img.mode == "RGB" and min(img.size) == 256
    x = load_tensor(path, channels=3, size=224)
    assert x.shape == (1, 3, 224, 224)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.std()) > 0.05  # a real photo
    assert f"`{name}.jpg`" in (PHOTOS / "README.md").read_text()  # attribution present
