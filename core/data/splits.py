"""Seeded random choices shared by the group data sets: one generator per purpose, subsets, stratified splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""The splits every group data set has."""

TOO_FEW = "{name}: asked for {asked} images but the pool holds only {available}"


def seeded_rng(seed: int, purpose: str) -> np.random.Generator:
    """A generator for one purpose, independent of the others and of the call order."""
    salt = int.from_bytes(purpose.encode("utf-8"), "little") % (2**63)
    return np.random.default_rng(np.random.SeedSequence([int(seed), salt]))


def assign_per_class(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Group 1 for exactly ``round(fraction * n_c)`` random images of each class ``c``, else 0."""
    g = np.zeros(len(y), dtype=np.int64)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        k = int(round(fraction * len(members)))
        g[rng.choice(members, size=k, replace=False)] = 1
    return g


def subset(n: int, k: int, name: str, seed: int) -> np.ndarray:
    """``k`` of ``range(n)``, sorted, drawn by the generator of ``name``; ValueError when ``k > n``."""
    if k > n:
        raise ValueError(TOO_FEW.format(name=name, asked=k, available=n))
    return np.sort(seeded_rng(seed, name).choice(n, size=k, replace=False))


def stratified_split(strata: np.ndarray, split: str, fractions: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Indices of ``split``: each stratum's members (in the order of ``np.unique``) permuted by ``rng``
    and cut by ``fractions`` (train, val, test shares), so every stratum keeps its share in every split."""
    picked = []
    end = SPLITS.index(split)
    for value in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == value))
        bounds = np.round(np.cumsum(fractions) * len(members)).astype(int)
        start = 0 if end == 0 else bounds[end - 1]
        picked.append(members[start : bounds[end]])
    return np.sort(np.concatenate(picked)).astype(np.int64) if picked else np.zeros(0, dtype=np.int64)
