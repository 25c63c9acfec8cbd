"""``"fmnist-shortcut"``: Fashion-MNIST with a label-correlated cue, the case where robust training can help the worst group.

A *cue* is drawn on every image at one of ten class-specific places. On most training
images the cue names the image's own class (group ``"aligned"``), on the rest another
class, drawn uniformly (group ``"conflicting"``). ERM takes the shortcut: it learns the
cue and fails on the conflicting images. Robust training undoes the shortcut only when
switching the cue to another class lies *inside* the attack's ball (docs/fairness-training.md,
"Shortcut cues"), and a perceptual ball and an L-inf ball hold different cues:

* ``cue="mark"``: one bright pixel (``strength`` 1.0 = white). Moving it costs little in
  SSIM (a few windows change) but 1.0 in L-inf: inside the perceptual ball, outside any
  L-inf ball.
* ``cue="pattern"``: a faint pattern over the image's border: 12 of the 24 border cells
  (4x4 pixels each) of the 7x7 grid brightened by ``strength`` (0.1 = +10% of the range),
  the cells a fixed code per class (:data:`PATTERN_CODES`, any two codes differ in at least
  6 cells). Switching it is 0.1 in L-inf (inside PGD-AT's ball of 0.1) but expensive in
  SSIM, which sees any change of a flat background, over much of the image.
* ``cue="none"``: the same images without a cue (the cue-free test: what the model knows of
  the garment alone). Groups still say which cue the image would carry.

:func:`cue_distance` measures both distances on a split (the default cost and L-inf of moving
each image's cue to another class's place).

The mark's ten places lie on the background (the corners and the top row, where fewer than
5% of Fashion-MNIST's images have ink), each in its own 4x4 cell, so the bundled CNN's two
2x2 poolings keep them apart. Mirroring moves a cue to another class's or to none, so train
on this data set **without flips** (``TrainConfig(flip=False)``, :data:`MIRROR_SAFE`).

Measured with :func:`cue_distance` (validation split, 512 images; default cost = padded SSIM):
mark 1.0: cost 0.047, L-inf 1.0; pattern 0.1: cost 0.183, L-inf 0.1; pattern 0.05: cost
0.127, L-inf 0.05 (valid SSIM, which leaves the border nearly free, charges 0.0005 and 0.022).
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np

from core.data.fashion_mnist import FASHION_MNIST_CLASSES
from core.data.fmnist_groups import fashion_pool
from core.data.groups import GroupDataset, Split, check_fraction, check_split
from core.data.splits import seeded_rng
from core.validation import check_positive_int

SHORTCUT_GROUPS: tuple[str, ...] = ("aligned", "conflicting")
CUES: tuple[str, ...] = ("mark", "pattern", "none")
DEFAULT_STRENGTH = {"mark": 1.0, "pattern": 0.1}  # the mark's brightness; the pattern's amplitude (0-1 scale)
CUE_PLACES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 5), (0, 22), (0, 26),  # top row
    (4, 0), (8, 0), (4, 27), (8, 27),  # left and right edges of the top half
    (27, 0), (27, 27),  # bottom corners
)
"""(row, column) of each class's mark."""
BORDER_CELLS: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(7) for j in range(7) if i in (0, 6) or j in (0, 6))
"""The 24 cells (row, column of the 7x7 grid of 4x4-pixel cells) on the image's border."""
PATTERN_CODES: np.ndarray = np.zeros((len(CUE_PLACES), len(BORDER_CELLS)), dtype=bool)
for _c, _cells in enumerate(np.random.default_rng(12345).permuted(np.tile(np.arange(24), (10, 1)), axis=1)[:, :12]):
    PATTERN_CODES[_c, _cells] = True

MIRROR_SAFE = False  # a horizontal flip moves a cue to a place that names no class or another class

BAD_CUE = "cue: expected one of {known}, got {value!r}"
BAD_STRENGTH = "strength: expected a number in (0, 1], got {value!r}"
SHORTCUT_NO_TRAIN = (
    "fmnist-shortcut: source {source!r} has no Fashion-MNIST training split; "
    "use source='auto' or 'bundled', or install the full data (apt-get install dataset-fashion-mnist)"
)


def load_fmnist_shortcut(
    split: Split = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    source: Literal["auto", "torchvision", "debian", "bundled"] = "auto",
    cue: str = "mark",
    strength: float | None = None,
    aligned_fraction: float = 0.99,
    eval_aligned_fraction: float = 0.5,
    n_train: int = 6_000,
    n_val: int = 2_000,
    n_test: int | None = None,
) -> GroupDataset:
    """Fashion-MNIST whose images carry a cue that names the class on most training images.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: Data root of torchvision's layout (see :func:`core.data.load_fashion_mnist`).
        seed: Seed of the subsets, the groups and the conflicting cues.
        source: Where to read Fashion-MNIST (as for ``"fmnist-groups"``; the bundled 2,000
            images are split 1,200 / 300 / 500 when the full data is missing).
        cue: ``"mark"``, ``"pattern"`` or ``"none"`` (module docstring).
        strength: The mark's brightness or the pattern's amplitude, in (0, 1]; ``None`` for
            :data:`DEFAULT_STRENGTH`.
        aligned_fraction: Share of training images whose cue names their own class (per
            class, exactly). 0.1 draws every cue at random: the cue says nothing of the class
            (the augmentation that removes the shortcut, the ceiling of the comparison).
        eval_aligned_fraction: The same share in ``"val"`` and ``"test"`` (half and half).
        n_train, n_val, n_test: Split sizes (as for ``"fmnist-groups"``).

    Returns:
        The split; images uint8 (N, 1, 28, 28), groups :data:`SHORTCUT_GROUPS`.

    Raises:
        ValueError: Bad split, cue, strength, fraction or size, or the data cannot be read.
    """
    check_split(split)
    if cue not in CUES:
        raise ValueError(BAD_CUE.format(known=", ".join(CUES), value=cue))
    if strength is None:
        strength = DEFAULT_STRENGTH.get(cue, 0.0)
    elif isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1:
        raise ValueError(BAD_STRENGTH.format(value=strength))
    check_fraction("aligned_fraction", aligned_fraction)
    check_fraction("eval_aligned_fraction", eval_aligned_fraction)
    for count_name, count in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if count is not None:
            check_positive_int(count, name=count_name)

    images, labels, index, origin = fashion_pool(split, root=root, seed=seed, source=source, n_train=n_train,
                                                 n_val=n_val, n_test=n_test, no_train=SHORTCUT_NO_TRAIN)
    x = np.asarray(images)[index][:, None, :, :].copy()  # (N, 1, 28, 28) uint8
    y = np.asarray(labels, dtype=np.int64)[index].copy()
    share = aligned_fraction if split == "train" else eval_aligned_fraction
    g, place = cue_assignment(y, share, seeded_rng(seed, f"shortcut-{split}"))
    if cue != "none":
        x = draw_cue(x, place, cue, strength)
    n_conf = int((g == 1).sum())
    what = {"mark": f"a bright mark ({strength:g}) at one of ten places",
            "pattern": f"a faint border pattern (+{strength:g}), one of ten",
            "none": "no cue (the cue-free images)"}[cue]
    description = (
        f"Fashion-MNIST ({origin}), {split} split: {len(y)} images with {what}. The place names the class on "
        f"{len(y) - n_conf} images ('aligned') and another class on {n_conf} ({n_conf / max(len(y), 1):.1%}, "
        "'conflicting'): a shortcut that ERM learns."
    )
    return GroupDataset(name="fmnist-shortcut", split=split, x=x, y=y, g=g, classes=FASHION_MNIST_CLASSES,
                        groups=SHORTCUT_GROUPS, description=description, source=origin)


def cue_assignment(y: np.ndarray, aligned_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Groups and cue places: ``round((1 - aligned_fraction) * n_c)`` images of each class ``c`` are
    conflicting (group 1) and carry the place of another class drawn uniformly; the rest their own.

    Returns:
        ``(g, place)``, both int64 (N,); ``place`` indexes :data:`CUE_PLACES` (the class it names).
    """
    n_classes = len(CUE_PLACES)
    g = np.zeros(len(y), dtype=np.int64)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        k = int(round((1 - aligned_fraction) * len(members)))
        g[rng.choice(members, size=k, replace=False)] = 1
    shift = rng.integers(1, n_classes, size=len(y))  # another class: y + 1..9 (mod 10), uniform
    place = np.where(g == 1, (y + shift) % n_classes, y).astype(np.int64)
    return g, place


def draw_cue(x: np.ndarray, place: np.ndarray, cue: str, strength: float) -> np.ndarray:
    """``x`` (uint8 (N, 1, 28, 28)) with each image's cue drawn at ``CUE_PLACES[place]``; a new array."""
    out = x.astype(np.float64)
    for k, (r, c) in enumerate(CUE_PLACES):
        rows = np.flatnonzero(place == k)
        if not len(rows):
            continue
        if cue == "mark":
            out[rows, :, r, c] = np.maximum(out[rows, :, r, c], strength * 255)
            continue
        for (i, j), lit in zip(BORDER_CELLS, PATTERN_CODES[k]):
            if lit:
                out[rows, :, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4] += strength * 255
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def cue_distance(*, cue: str, strength: float | None = None, split: Split = "val", seed: int = 0, n: int = 512,
                 measure: str | None = None, **options) -> dict[str, float]:
    """What it costs to switch the cue: ``n`` images of a split with their cue, against the same images
    with the cue at another class's place (drawn uniformly).

    Args:
        cue, strength: The cue (``"mark"`` or ``"pattern"``) and its strength (``None``: the default).
        split, seed, options: The split as :func:`load_fmnist_shortcut` loads it.
        n: Images to measure (the first ``n``).
        measure: The transport cost (default: :data:`core.measures.DEFAULT_COST`).

    Returns:
        ``{"cost": mean cost, "linf": mean L-inf}`` of the switch, on the [0, 1] scale.
    """
    import torch

    from core.measures import DEFAULT_COST, get_measure

    if cue not in DEFAULT_STRENGTH:
        raise ValueError(BAD_CUE.format(known=", ".join(DEFAULT_STRENGTH), value=cue))
    strength = DEFAULT_STRENGTH[cue] if strength is None else strength
    bare = load_fmnist_shortcut(split, seed=seed, cue="none", **options)
    share = options.get("aligned_fraction", 0.99) if split == "train" else options.get("eval_aligned_fraction", 0.5)
    _, place = cue_assignment(bare.y, share, seeded_rng(seed, f"shortcut-{split}"))  # the loader's own draw
    x0, place = np.asarray(bare.x[:n]), place[:n]
    other = (place + seeded_rng(seed, "cue-distance").integers(1, len(CUE_PLACES), size=len(place))) % len(CUE_PLACES)
    x = torch.from_numpy(draw_cue(x0, place, cue, strength)).float().div(255)
    x_sw = torch.from_numpy(draw_cue(x0, other, cue, strength)).float().div(255)
    cost = get_measure(measure or DEFAULT_COST).cost(x, x_sw)
    linf = (x - x_sw).flatten(1).abs().amax(1)
    return {"cost": float(cost.mean()), "linf": float(linf.mean())}
