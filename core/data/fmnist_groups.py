"""``"fmnist-groups"``: Fashion-MNIST with a minority shown in inverted contrast (the default group data set, offline)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal

import numpy as np

from core.data.fashion_mnist import (
    BUNDLED_SIZE,
    FASHION_MNIST_CLASSES,
    fashion_mnist_sources,
    load_fashion_mnist,
)
from core.data.groups import GroupDataset, Split, check_fraction, check_split
from core.data.splits import (
    SPLITS,
    TOO_FEW,
    assign_per_class,
    seeded_rng,
    stratified_split,
    subset,
)
from core.validation import check_positive_int

FMNIST_GROUPS: tuple[str, ...] = ("standard", "inverted")
"""Group names of ``"fmnist-groups"`` (the default rendering): group 1 is shown with inverted contrast (255 - pixel)."""

BLUR_KERNEL = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0  # 5x5 binomial, sums to 1
NOISE_SD = 0.2  # of the "noise" rendering, on the [0, 1] scale
FOG = (0.45, 0.45)  # the "fog" rendering: 0.45 x + 0.45 on the [0, 1] scale


def _inverted(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return 255 - x


def _fog(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    scale, offset = FOG
    return np.rint(scale * x.astype(np.float64) + offset * 255).astype(np.uint8)


def _blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (2, 2), (2, 2)))  # zero padding: the background is black
    h, w = x.shape[-2:]
    out = sum(BLUR_KERNEL[i, j] * v[..., i : i + h, j : j + w] for i in range(5) for j in range(5))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = x.astype(np.float64) + rng.normal(0.0, NOISE_SD * 255, size=x.shape)  # fixed per image: drawn once
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


RENDERINGS: dict[str, tuple[Callable[[np.ndarray, np.random.Generator], np.ndarray], str]] = {
    "inverted": (_inverted, "shown with inverted contrast (dark garment on a white background)"),
    "fog": (_fog, f"shown in fog, {FOG[0]} x + {FOG[1]} (low contrast on a grey background)"),
    "blur": (_blur, "blurred by a 5x5 binomial filter"),
    "noise": (_noise, f"with Gaussian noise of sd {NOISE_SD} drawn once per image"),
}
"""How the minority group of ``"fmnist-groups"`` is rendered (``minority=``): name -> (function on uint8
(N, 1, 28, 28) images, description). ``"inverted"`` is the default; the others are the graded renderings
of the fairness map (docs/fairness-training.md)."""

BAD_RENDERING = "minority: expected one of {known}, got {value!r}"

BUNDLED_SPLIT_SIZES: dict[str, int] = {"train": 1200, "val": 300, "test": 500}
"""Split sizes of ``"fmnist-groups"`` when only the bundled 2,000-image subset is available
(per class: 120 / 30 / 50 of its 200 images)."""

BUNDLED_SHARES = tuple(BUNDLED_SPLIT_SIZES[s] / BUNDLED_SIZE for s in SPLITS)  # per class: 60 / 15 / 25 %

FMNIST_NO_TRAIN = (
    "fmnist-groups: source {source!r} has no Fashion-MNIST training split; "
    "use source='auto' or 'bundled' (the bundled subset is split into train/val/test), "
    "or install the full data (see core.data)"
)

BUNDLED_NOTICE = ("NOTE: the full Fashion-MNIST training set was not found, so this trains on the {n} bundled "
                  "images (far lower accuracy). Get it with: python -c \"from core.data import "
                  "download_fashion_mnist; download_fashion_mnist()\" (online) or apt-get install dataset-fashion-mnist")


def bundled_notice(data: GroupDataset, options: dict) -> str | None:
    """:data:`BUNDLED_NOTICE` when ``data`` fell back to the bundled images without being asked to, else ``None``."""
    if data.source == "bundled" and options.get("source") != "bundled":
        return BUNDLED_NOTICE.format(n=len(data))
    return None


def load_fmnist_groups(
    split: Split = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    source: Literal["auto", "torchvision", "debian", "bundled"] = "auto",
    minority_fraction: float = 0.05,
    eval_minority_fraction: float = 0.5,
    n_train: int = 12_000,
    n_val: int = 2_000,
    n_test: int | None = None,
    minority: str = "inverted",
) -> GroupDataset:
    """Fashion-MNIST with an under-represented, visibly different group: inverted contrast.

    **Construction.** Group 0 (``"standard"``) is Fashion-MNIST as it is: a light
    garment on a black background. Group 1 (``"inverted"``) shows the same kind of
    images with inverted contrast, ``255 - pixel``: a dark garment on a white
    background, which anyone sees at a glance. Within every split the inverted
    images are drawn *per class* (exactly ``round(fraction * n_c)`` of class ``c``),
    so the group carries no information about the class: the only thing that
    differs between the groups is how well the model learned to see each rendering.

    * ``"train"``: ``n_train`` images drawn at random from the 60,000 training
      images, ``minority_fraction`` (default 5%) of them inverted.
    * ``"val"``: the next ``n_val`` images of the same random order (disjoint from
      ``"train"``), ``eval_minority_fraction`` (default 50%) inverted, for model
      selection on worst-group accuracy.
    * ``"test"``: the 10,000 test images (or a random ``n_test`` of them),
      ``eval_minority_fraction`` inverted, so each group is measured on ~5,000 images.

    **Why inverted contrast.** It is a property of the *rendering*, not of the
    garment, so a person sees the group and the class at the same time, and the
    group is equally hard for every class. Dimming or a frame were the other
    candidates: a ReLU network with small biases is nearly scale-invariant, so
    dimmed images are classified almost as well as the originals (no gap), and a
    frame is a few pixels a network can learn to ignore from few examples. Inverted
    images share no low-level features with the majority (every edge flips sign),
    so plain ERM learns them from the 5% minority alone and stays worse on them:
    a gap that Group DRO closes (docs/fairness-training.md). Measured with
    ``python -m bench.group_benchmark_check`` (ERM, 6 epochs on 12,000 images, CPU):
    its output is in that script's docstring.

    **Bundled fallback.** When the full data is not on the machine (``source``
    ``"auto"`` finds no training split, or ``source="bundled"``), the 2,000 bundled
    test images are split per class into train / val / test of 1,200 / 300 / 500
    images (:data:`BUNDLED_SPLIT_SIZES`), with the same group construction;
    ``n_train``, ``n_val`` and ``n_test`` are then ignored. ``result.source`` says
    which happened.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: Data root of torchvision's layout (see :func:`core.data.load_fashion_mnist`).
        seed: Seed of the subsets and of the group assignment.
        source: Where to read Fashion-MNIST: ``"auto"``, ``"torchvision"``, ``"debian"``
            or ``"bundled"``.
        minority_fraction: Share of inverted images in ``"train"``, in [0, 1].
        eval_minority_fraction: Share of inverted images in ``"val"`` and ``"test"``.
        n_train: Training images (at most 60,000 minus ``n_val``).
        n_val: Validation images, carved from the training split.
        n_test: Test images; ``None`` for all 10,000.
        minority: How group 1 is rendered, a key of :data:`RENDERINGS`: ``"inverted"`` (the
            default), ``"fog"``, ``"blur"`` or ``"noise"``; the group is named after it.

    Returns:
        The split; images are uint8 (N, 1, 28, 28), groups :data:`FMNIST_GROUPS`.

    Raises:
        ValueError: Bad split, fraction or size, or the data cannot be read.
    """
    check_split(split)
    if minority not in RENDERINGS:
        raise ValueError(BAD_RENDERING.format(known=", ".join(RENDERINGS), value=minority))
    check_fraction("minority_fraction", minority_fraction)
    check_fraction("eval_minority_fraction", eval_minority_fraction)
    for count_name, count in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if count is not None:
            check_positive_int(count, name=count_name)
    fraction = minority_fraction if split == "train" else eval_minority_fraction

    images, labels, index, origin = fashion_pool(split, root=root, seed=seed, source=source, n_train=n_train,
                                                 n_val=n_val, n_test=n_test, no_train=FMNIST_NO_TRAIN)
    x = np.asarray(images)[index][:, None, :, :].copy()  # (N, 1, 28, 28) uint8
    y = np.asarray(labels, dtype=np.int64)[index].copy()
    g = assign_per_class(y, fraction, seeded_rng(seed, f"groups-{split}"))
    render, how = RENDERINGS[minority]
    x[g == 1] = render(x[g == 1], seeded_rng(seed, f"render-{split}"))
    description = (
        f"Fashion-MNIST ({origin}), {split} split: {len(y)} images, "
        f"{int((g == 1).sum())} ({(g == 1).mean():.1%}) {how} as the {minority!r} group, drawn per class so the "
        "group says nothing about the class."
    )
    return GroupDataset(
        name="fmnist-groups",
        split=split,
        x=x,
        y=y,
        g=g,
        classes=FASHION_MNIST_CLASSES,
        groups=("standard", minority),
        description=description,
        source=origin,
    )


def fashion_pool(split: Split, *, root, seed: int, source: str, n_train: int, n_val: int, n_test: int | None,
                 no_train: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The images of one split of a Fashion-MNIST group data set, before any group is drawn.

    Returns ``(images, labels, index, origin)``: the chosen images are ``images[index]``.
    ``"train"`` and ``"val"`` are disjoint draws from the 60,000 training images (``n_train``
    and ``n_val``), ``"test"`` the 10,000 test images or ``n_test`` of them; with only the
    bundled 2,000 images (or ``source="bundled"``) they are split per class by
    :data:`BUNDLED_SPLIT_SIZES` and the sizes are ignored. ``no_train`` is the message when a
    named source lacks the training split.
    """
    if source == "bundled" or not _has_fmnist_train(root, source):
        if source not in ("auto", "bundled"):
            raise ValueError(no_train.format(source=source))
        bundled = load_fashion_mnist("test", source="bundled")
        index = stratified_split(bundled.y, split, BUNDLED_SHARES, seeded_rng(seed, "bundled-pool"))
        return bundled.x, bundled.y, index, "bundled"
    data = load_fashion_mnist("train" if split != "test" else "test", root=root, source=source)
    labels = data.y
    if split == "test":
        index = np.arange(len(labels)) if n_test is None else subset(len(labels), n_test, "n_test", seed)
    else:
        if n_train + n_val > len(labels):
            raise ValueError(TOO_FEW.format(name="n_train + n_val", asked=n_train + n_val, available=len(labels)))
        order = seeded_rng(seed, "pool").permutation(len(labels))
        index = np.sort(order[:n_train] if split == "train" else order[n_train : n_train + n_val])
    return data.x, labels, index, data.source


def _has_fmnist_train(root: str | os.PathLike[str] | None, source: str) -> bool:
    """Whether a full Fashion-MNIST training split is on disk (without reading it)."""
    return any(s.has("train") for s in fashion_mnist_sources(root) if source in ("auto", s.name))
