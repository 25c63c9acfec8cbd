"""Build the bundled Fashion-MNIST subset and its small gallery.

Reads the full Fashion-MNIST test split from the Debian package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``) and writes:

* ``assets/fashion_mnist/t10k-images-idx3-ubyte.gz`` and
  ``assets/fashion_mnist/t10k-labels-idx1-ubyte.gz``: 2,000 test images, 200
  per class, drawn without replacement with ``numpy.random.default_rng(0)``
  (class by class, labels 0..9) and sorted by their original test-set index;
* ``assets/fashion_mnist/indices.txt``: those original indices, one per line;
* ``assets/fashion_mnist/README.md``: what the files are, licence, how to rebuild;
* ``assets/gallery/fashion_mnist/<index>_<class-slug>.png``: the first 3
  images of each class in the subset (28x28 grayscale), ``<index>`` being the
  5-digit original test-set index.

The output is byte-for-byte deterministic. Run from anywhere::

    python bench/make_assets.py
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from core.data import (  # noqa: E402  (needs the repository on sys.path)
    DEBIAN_DIR,
    DEBIAN_PACKAGE,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_URL,
    load_fashion_mnist,
    split_filenames,
    write_idx,
)

PER_CLASS = 200
SEED = 0
GALLERY_PER_CLASS = 3
COMMAND = "python bench/make_assets.py"


def slug(name: str) -> str:
    """File-name slug of a class name: ``"T-shirt/top"`` -> ``"t-shirt-top"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def select_indices(labels: np.ndarray, per_class: int = PER_CLASS, seed: int = SEED) -> np.ndarray:
    """Balanced, deterministic choice of indices: ``per_class`` of each label, sorted.

    Args:
        labels: Labels of the full split, values 0..9.
        per_class: How many indices to take from each class.
        seed: Seed of the numpy Generator.

    Returns:
        Sorted int64 indices into ``labels``.
    """
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False)
        for c in range(len(FASHION_MNIST_CLASSES))
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def gallery_picks(labels: np.ndarray, per_class: int = GALLERY_PER_CLASS) -> list[int]:
    """Positions in the subset of the first ``per_class`` images of each class, in order."""
    picks: list[int] = []
    for c in range(len(FASHION_MNIST_CLASSES)):
        picks.extend(int(i) for i in np.flatnonzero(labels == c)[:per_class])
    return sorted(picks)


def readme_text(
    n: int, per_class: int, images_name: str, labels_name: str, sizes: dict[str, int]
) -> str:
    """Text of ``assets/fashion_mnist/README.md``."""
    classes = "\n".join(f"| {i} | {name} |" for i, name in enumerate(FASHION_MNIST_CLASSES))
    return f"""# Bundled Fashion-MNIST test subset

A small, offline subset of the Fashion-MNIST **test** split so that the
library, its tests and its demos work without the full data set or a network.
`core.data.load_fashion_mnist("test", source="bundled")` reads it, and
`source="auto"` falls back to it when neither torchvision's download layout
nor the Debian package `{DEBIAN_PACKAGE}` is present.

| file | content | bytes |
| --- | --- | --- |
| `{images_name}` | idx3, uint8, shape ({n}, 28, 28), gzip | {sizes[images_name]} |
| `{labels_name}` | idx1, uint8, shape ({n},), labels 0..9, gzip | {sizes[labels_name]} |
| `indices.txt` | the {n} original test-set indices (0..9999), one per line | {sizes["indices.txt"]} |

Selection: {per_class} images per class ({n} in all), drawn without replacement
with `numpy.random.default_rng({SEED})`, class by class (labels 0 to 9), then
sorted by their original index in `t10k-images-idx3-ubyte`. Image `i` of the
subset is image `indices.txt[i]` of the full test split.

The gallery `assets/gallery/fashion_mnist/<index>_<class-slug>.png` holds the
first {GALLERY_PER_CLASS} images of each class in this subset as 28x28 grayscale PNGs
(`<index>` is the original test-set index).

| label | class |
| --- | --- |
{classes}

## Licence

Fashion-MNIST, Copyright (c) 2017 Zalando SE, by Zalando Research,
{FASHION_MNIST_URL}, released under the MIT licence. These files are an
unmodified subset of its test split.

## Regenerate

With the Debian package `{DEBIAN_PACKAGE}` installed (files in `{DEBIAN_DIR}`):

    {COMMAND}

The output is deterministic, byte for byte.
"""


def main(argv: list[str] | None = None) -> int:
    """Build the assets; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--assets", type=Path, default=REPO / "assets", help="assets folder to write"
    )
    args = parser.parse_args(argv)

    try:
        full = load_fashion_mnist("test", source="debian")
    except ValueError as err:
        parser.error(f"the full test split is needed: {err}")

    indices = select_indices(full.y)
    x, y = full.x[indices], full.y[indices].astype(np.uint8)

    out = args.assets / "fashion_mnist"
    out.mkdir(parents=True, exist_ok=True)
    images_name, labels_name = (f"{name}.gz" for name in split_filenames("test"))
    write_idx(out / images_name, x)
    write_idx(out / labels_name, y)
    (out / "indices.txt").write_text("".join(f"{i}\n" for i in indices.tolist()))
    names = (images_name, labels_name, "indices.txt")
    sizes = {name: (out / name).stat().st_size for name in names}
    readme = readme_text(len(indices), PER_CLASS, images_name, labels_name, sizes)
    (out / "README.md").write_text(readme)

    gallery = args.assets / "gallery" / "fashion_mnist"
    gallery.mkdir(parents=True, exist_ok=True)
    for old in gallery.glob("*.png"):
        old.unlink()
    for pos in gallery_picks(y):
        name = f"{int(indices[pos]):05d}_{slug(FASHION_MNIST_CLASSES[int(y[pos])])}.png"
        Image.fromarray(np.ascontiguousarray(x[pos])).save(gallery / name, optimize=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
