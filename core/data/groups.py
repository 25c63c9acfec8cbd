"""The group data set contract: :class:`GroupDataset` ``(x, y, g)``, the registry :data:`GROUP_DATASETS`, :func:`load_group_dataset`.

The loaders live beside this file, one per data set (``fmnist_groups``, ``celeba``,
``csv_groups``); :mod:`core.data` registers them. Messages shared by the loaders are here.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from core.data.splits import SPLITS
from core.registry import Registry

if TYPE_CHECKING:
    import torch

Split = Literal["train", "val", "test"]

# --- error messages (format strings) -------------------------------------------------
BAD_SPLIT = "split must be one of 'train', 'val', 'test', got {split!r}"
BAD_FRACTION = "{name} must be a number in [0, 1], got {value!r}"
BAD_CHANNELS = "channels must be 1 or 3, got {value!r}"
BAD_OPTION = "{dataset}: unexpected option(s) {names}; expected some of: {known}"
BAD_ARRAY = "{name}: expected {expected}, got {actual}"
@dataclass(frozen=True, eq=False)
class GroupDataset:
    """One split of an image data set with class labels and group labels.

    Arrays are stored as read-only numpy views; :meth:`tensors` converts them.

    Attributes:
        name: Registry name of the data set (``"fmnist-groups"``, ``"celeba"``, ``"csv"``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        x: Images, (N, C, H, W), uint8 in 0..255 (storage) or float in [0, 1].
        y: Class labels, (N,), int64 in [0, len(classes)).
        g: Group labels, (N,), int64 in [0, len(groups)).
        classes: Class names, indexed by label.
        groups: Group names, indexed by group label.
        description: One paragraph for people: what the groups are and how they were made.
        source: Where the images came from (``"debian"``, ``"torchvision"``, ``"bundled"``,
            ``"celeba"``, or the CSV file).
    """

    name: str
    split: str
    x: np.ndarray
    y: np.ndarray
    g: np.ndarray
    classes: tuple[str, ...]
    groups: tuple[str, ...]
    description: str
    source: str

    def __post_init__(self) -> None:
        x, y, g = np.asarray(self.x), np.asarray(self.y), np.asarray(self.g)
        if x.ndim != 4 or not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)):
            raise ValueError(BAD_ARRAY.format(name="x", expected="uint8 or float (N, C, H, W)",
                                              actual=f"{x.dtype} of shape {x.shape}"))
        n = x.shape[0]
        for name, labels, names in (("y", y, self.classes), ("g", g, self.groups)):
            if labels.dtype != np.int64 or labels.shape != (n,):
                raise ValueError(BAD_ARRAY.format(name=name, expected=f"int64 of shape ({n},)",
                                                  actual=f"{labels.dtype} of shape {labels.shape}"))
            if n and (labels.min() < 0 or labels.max() >= len(names)):
                raise ValueError(BAD_ARRAY.format(name=name, expected=f"values in [0, {len(names)})",
                                                  actual=f"min={labels.min()}, max={labels.max()}"))
        if np.issubdtype(x.dtype, np.floating) and n and (x.min() < 0 or x.max() > 1):
            raise ValueError(BAD_ARRAY.format(name="x", expected="float values in [0, 1]",
                                              actual=f"min={x.min():.4g}, max={x.max():.4g}"))
        for field_name, array in (("x", x), ("y", y), ("g", g)):
            view = array.view()
            view.setflags(write=False)
            object.__setattr__(self, field_name, view)
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "groups", tuple(self.groups))

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def tensors(
        self, device: str | torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The data as torch tensors.

        Args:
            device: Optional device to put them on.

        Returns:
            ``(x, y, g)``: images as float32 (N, C, H, W) in [0, 1], labels and groups
            as int64 (N,).
        """
        import torch

        if self.x.dtype == np.uint8:
            x = torch.from_numpy(self.x.copy()).to(torch.float32).div_(255.0)
        else:
            x = torch.from_numpy(self.x.astype(np.float32, copy=True))
        y = torch.from_numpy(self.y.copy())
        g = torch.from_numpy(self.g.copy())
        if device is not None:
            x, y, g = x.to(device), y.to(device), g.to(device)
        return x, y, g

    def group_counts(self) -> dict[str, int]:
        """Number of images in each group, by group name (in group-label order)."""
        counts = np.bincount(self.g, minlength=len(self.groups))
        return {name: int(c) for name, c in zip(self.groups, counts)}

    def group_fractions(self) -> dict[str, float]:
        """Share of the images in each group, by group name (sums to 1; 0 for an empty split)."""
        n = max(len(self), 1)
        return {name: c / n for name, c in self.group_counts().items()}

    def class_group_counts(self) -> np.ndarray:
        """Counts per (group, class): int64 array of shape (len(groups), len(classes))."""
        flat = self.g * len(self.classes) + self.y
        counts = np.bincount(flat, minlength=len(self.groups) * len(self.classes))
        return counts.reshape(len(self.groups), len(self.classes))


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class GroupDatasetSpec:
    """One entry of :data:`GROUP_DATASETS`.

    Attributes:
        name: Registry key.
        description: One line for people.
        load: ``load(split, *, root, seed, **options) -> GroupDataset``.
        offline: Whether it works with nothing but this repository (and its bundled data).
        mirror_safe: Whether a horizontal flip keeps an image's class and group (train with
            ``flip=False`` where it does not).
        shape: (C, H, W) of its images at the loader's default options (which measures apply).
    """

    name: str
    description: str
    load: Callable[..., GroupDataset]
    offline: bool
    mirror_safe: bool = True
    shape: tuple[int, int, int] = (3, 64, 64)

    def options(self) -> tuple[str, ...]:
        """The keyword options ``load`` takes besides ``root`` and ``seed``."""
        params = inspect.signature(self.load).parameters.values()
        return tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in ("root", "seed"))


GROUP_DATASETS: Registry[GroupDatasetSpec] = Registry("group dataset")


def load_group_dataset(
    name: str = "fmnist-groups",
    split: Split = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    **options: object,
) -> GroupDataset:
    """Load one split of a registered group data set.

    Args:
        name: A key of :data:`GROUP_DATASETS`: ``"fmnist-groups"``, ``"celeba"`` or ``"csv"``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: Where the data lives (see each loader); ``None`` for the default.
        seed: Seed of every random choice (subsets, group assignment, splits): the same
            seed gives identical arrays.
        **options: Options of the loader (see :func:`load_fmnist_groups`,
            :func:`load_celeba`, :func:`load_csv_groups`).

    Returns:
        The split as a :class:`GroupDataset`.

    Raises:
        ValueError: Unknown name, split or option, or what the loader raises.
    """
    spec = GROUP_DATASETS.lookup(name)
    known = spec.options()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(BAD_OPTION.format(dataset=name, names=", ".join(map(repr, unknown)),
                                           known=", ".join(known)))
    return spec.load(split, root=root, seed=seed, **options)


def check_split(split: object) -> None:
    if split not in SPLITS:
        raise ValueError(BAD_SPLIT.format(split=split))


def check_fraction(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(BAD_FRACTION.format(name=name, value=value))
