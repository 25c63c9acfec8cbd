"""Write the natural-photo gallery for the ImageNet models: ``python -m bench.make_photos``.

The photos come from scikit-image's bundled sample data (public domain or CC0, see
``assets/gallery/photos/README.md``), resized so the shorter side is 256 px (the
ImageNet models then center-crop 224) and saved as high-quality JPEG to stay small.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from skimage import data

OUT = Path(__file__).resolve().parent.parent / "assets" / "gallery" / "photos"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SHORT_SIDE = 256


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        scale = SHORT_SIDE / min(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
        img.save(OUT / f"{name}.jpg", quality=95, optimize=True)
        print(f"{name}.jpg {img.size[0]}x{img.size[1]}")


if __name__ == "__main__":
    main()
