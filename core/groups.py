"""Image data sets with group labels ``(x, y, g)``, for measuring and improving group fairness.

Three data sets sit in the registry :data:`GROUP_DATASETS`, all loaded through
:func:`load_group_dataset` and all returned as a :class:`GroupDataset`:

* ``"fmnist-groups"`` (the default, works offline): Fashion-MNIST in which a
  minority of the images is shown with **inverted contrast** (dark garment on a
  white background). Group membership is what a person sees at a glance; the
  class is independent of the group. The inverted group is 5% of the training
  images and half of the validation and test images, so that plain ERM learns
  it less well and both groups are measured precisely. See
  :func:`load_fmnist_groups` for why and for the measured gap.
* ``"celeba"``: CelebA in torchvision's folder layout, a target attribute
  (default ``Blond_Hair``) by a group attribute (default ``Male``), as in Group
  DRO (Sagawa et al., ICLR 2020). Needs the data on disk; nothing downloads.
* ``"csv"``: any image folder plus a CSV file with the columns
  ``path,label,group`` (and optionally ``split``).

Example::

    from core.groups import load_group_dataset

    data = load_group_dataset("fmnist-groups", "train", seed=0)
    x, y, g = data.tensors()        # float32 (N, 1, 28, 28) in [0, 1], int64 (N,), int64 (N,)
    print(data.groups, data.group_counts(), data.source)
"""

from __future__ import annotations

import csv
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from core.datasets import (
    BUNDLED_SIZE,
    FASHION_MNIST_CLASSES,
    default_data_root,
    fashion_mnist_sources,
    load_fashion_mnist,
)
from core.registry import Registry
from core.safepaths import resolve_inside
from core.validation import check_positive_int

if TYPE_CHECKING:
    import torch

__all__ = [
    "BAD_FRACTION",
    "BAD_OPTION",
    "BUNDLED_NOTICE",
    "bundled_notice",
    "BAD_SPLIT",
    "CELEBA_BAD_FILE",
    "CELEBA_IMAGE",
    "CELEBA_MISSING",
    "CELEBA_UNKNOWN_ATTR",
    "CSV_BAD_ROW",
    "CSV_EMPTY",
    "CSV_MISSING_COLUMNS",
    "BUNDLED_SPLIT_SIZES",
    "FMNIST_GROUPS",
    "GROUP_DATASETS",
    "SPLITS",
    "GroupDataset",
    "GroupDatasetSpec",
    "load_celeba",
    "load_csv_groups",
    "load_fmnist_groups",
    "load_group_dataset",
]

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""The splits every group data set has."""

Split = Literal["train", "val", "test"]

FMNIST_GROUPS: tuple[str, ...] = ("standard", "inverted")
"""Group names of ``"fmnist-groups"``: group 1 is shown with inverted contrast (255 - pixel)."""

BUNDLED_SPLIT_SIZES: dict[str, int] = {"train": 1200, "val": 300, "test": 500}
"""Split sizes of ``"fmnist-groups"`` when only the bundled 2,000-image subset is available
(per class: 120 / 30 / 50 of its 200 images)."""

# --- error messages (format strings) -------------------------------------------------
BAD_SPLIT = "split must be one of 'train', 'val', 'test', got {split!r}"
BAD_FRACTION = "{name} must be a number in [0, 1], got {value!r}"
BAD_CHANNELS = "channels must be 1 or 3, got {value!r}"
BAD_OPTION = "{dataset}: unexpected option(s) {names}; expected some of: {known}"
BUNDLED_NOTICE = ("NOTE: the full Fashion-MNIST training set was not found, so this trains on the {n} bundled "
                  "images (far lower accuracy). Get it with: python -c \"from core.datasets import "
                  "download_fashion_mnist; download_fashion_mnist()\" (online) or apt-get install dataset-fashion-mnist")


def bundled_notice(data: GroupDataset, options: dict) -> str | None:
    """:data:`BUNDLED_NOTICE` when ``data`` fell back to the bundled images without being asked to, else ``None``."""
    if data.source == "bundled" and options.get("source") != "bundled":
        return BUNDLED_NOTICE.format(n=len(data))
    return None
BAD_ARRAY = "{name}: expected {expected}, got {actual}"
FMNIST_NO_TRAIN = (
    "fmnist-groups: source {source!r} has no Fashion-MNIST training split; "
    "use source='auto' or 'bundled' (the bundled subset is split into train/val/test), "
    "or install the full data (see core.datasets)"
)
TOO_FEW = "{name}: asked for {asked} images but the pool holds only {available}"
CELEBA_MISSING = (
    "CelebA not found: expected {missing} under {folder} (torchvision's layout: "
    "<root>/celeba/img_align_celeba/*.jpg, <root>/celeba/list_attr_celeba.txt, "
    "<root>/celeba/list_eval_partition.txt). Get it with "
    "torchvision.datasets.CelebA(root, split='all', download=True) on a machine with internet "
    "(Google Drive; it is often over quota), or download the official files from "
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Align&Cropped images and the Anno/Eval "
    "txt files) or Kaggle's jessicali9530/celeba-dataset (its list_attr_celeba.csv and "
    "list_eval_partition.csv are read too) into that folder, then pass root=<root> "
    "or set PDRO_DATA."
)
CELEBA_BAD_FILE = "{path}: line {line}: {problem}"  # problems name what was expected, never the line's text
CELEBA_UNKNOWN_ATTR = "unknown CelebA attribute {name!r} for {role}; expected one of: {known}"
CELEBA_BAD_GROUPING = "grouping must be 'attribute' or 'attribute_x_target', got {value!r}"
CELEBA_NO_ATTRIBUTES = "{path}: no attributes for {name} (and {more} more images listed in {partition})"
CELEBA_EMPTY = "CelebA: the {split} split is empty in {path}"
CELEBA_IMAGE = "CelebA image {name} (split {split}): {reason}"
CSV_MISSING = "no CSV file at {path}; expected a CSV with columns path,label,group[,split]"
CSV_MISSING_COLUMNS = "{path}: missing column(s) {missing}; expected a header line with columns path,label,group[,split]"
CSV_BAD_ROW = "{path}: row {row} (line {line}): {problem}"
CSV_EMPTY = "{path}: no rows in the {split} split"
CSV_NO_ROOT = "the 'csv' data set needs root=<path of the CSV file, or a folder holding metadata.csv>"


# --------------------------------------------------------------------------- the data set


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
    """

    name: str
    description: str
    load: Callable[..., GroupDataset]
    offline: bool

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


# --------------------------------------------------------------------------- fmnist-groups


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
        root: Data root of torchvision's layout (see :func:`core.datasets.load_fashion_mnist`).
        seed: Seed of the subsets and of the group assignment.
        source: Where to read Fashion-MNIST: ``"auto"``, ``"torchvision"``, ``"debian"``
            or ``"bundled"``.
        minority_fraction: Share of inverted images in ``"train"``, in [0, 1].
        eval_minority_fraction: Share of inverted images in ``"val"`` and ``"test"``.
        n_train: Training images (at most 60,000 minus ``n_val``).
        n_val: Validation images, carved from the training split.
        n_test: Test images; ``None`` for all 10,000.

    Returns:
        The split; images are uint8 (N, 1, 28, 28), groups :data:`FMNIST_GROUPS`.

    Raises:
        ValueError: Bad split, fraction or size, or the data cannot be read.
    """
    _check_split(split)
    _check_fraction("minority_fraction", minority_fraction)
    _check_fraction("eval_minority_fraction", eval_minority_fraction)
    for count_name, count in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if count is not None:
            check_positive_int(count, name=count_name)
    fraction = minority_fraction if split == "train" else eval_minority_fraction

    if source == "bundled" or not _has_fmnist_train(root, source):
        if source not in ("auto", "bundled"):
            raise ValueError(FMNIST_NO_TRAIN.format(source=source))
        bundled = load_fashion_mnist("test", source="bundled")
        images, labels = bundled.x, bundled.y
        index = _bundled_split(labels, split, seed)
        origin = "bundled"
    else:
        data = load_fashion_mnist("train" if split != "test" else "test", root=root, source=source)
        images, labels = data.x, data.y
        origin = data.source
        if split == "test":
            index = np.arange(len(labels)) if n_test is None else _subset(len(labels), n_test, "n_test", seed)
        else:
            if n_train + n_val > len(labels):
                raise ValueError(TOO_FEW.format(name="n_train + n_val", asked=n_train + n_val, available=len(labels)))
            order = _rng(seed, "pool").permutation(len(labels))
            index = np.sort(order[:n_train] if split == "train" else order[n_train : n_train + n_val])

    x = np.asarray(images)[index][:, None, :, :].copy()  # (N, 1, 28, 28) uint8
    y = np.asarray(labels, dtype=np.int64)[index].copy()
    g = _assign_per_class(y, fraction, _rng(seed, f"groups-{split}"))
    x[g == 1] = 255 - x[g == 1]
    description = (
        f"Fashion-MNIST ({origin}), {split} split: {len(y)} images, "
        f"{int((g == 1).sum())} ({(g == 1).mean():.1%}) shown with inverted contrast "
        "(dark garment on a white background) as the 'inverted' group, drawn per class so the "
        "group says nothing about the class."
    )
    return GroupDataset(
        name="fmnist-groups",
        split=split,
        x=x,
        y=y,
        g=g,
        classes=FASHION_MNIST_CLASSES,
        groups=FMNIST_GROUPS,
        description=description,
        source=origin,
    )


# --------------------------------------------------------------------------- celeba

_CELEBA_PARTITIONS = {"train": 0, "val": 1, "test": 2}


def load_celeba(
    split: Split = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    target: str = "Blond_Hair",
    group: str = "Male",
    grouping: Literal["attribute", "attribute_x_target"] = "attribute",
    size: int = 64,
    max_images: int | None = None,
) -> GroupDataset:
    """CelebA faces: a binary target attribute, grouped by another attribute.

    Reads torchvision's layout, never downloads::

        <root>/celeba/img_align_celeba/000001.jpg ...
        <root>/celeba/list_attr_celeba.txt       # count line, header of 40 names, rows "name  1 -1 ..."
        <root>/celeba/list_eval_partition.txt    # rows "name 0|1|2" (train, val, test)

    Kaggle's copy (``list_attr_celeba.csv``, ``list_eval_partition.csv`` and a nested
    ``img_align_celeba/img_align_celeba/``) is read too. Attribute values ``1`` / ``-1``
    become 1 / 0.

    With ``grouping="attribute"`` (default) the groups are the two values of ``group``
    (``("not Male", "Male")``): the sensitive attribute of demographic parity and
    equalized odds. With ``"attribute_x_target"`` they are the four (group, target)
    pairs, the groups of Group DRO's worst-group accuracy (Sagawa et al., ICLR 2020;
    https://arxiv.org/abs/1911.08731), indexed ``2 * group + target``.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (the official partition 0 / 1 / 2).
        root: Folder holding ``celeba/``; defaults to ``$PDRO_DATA`` or ``~/.cache/perceptual-dro/data``.
        seed: Seed of the random subset taken when ``max_images`` is set.
        target: Attribute to predict; classes are ``("not <target>", "<target>")``.
        group: Attribute that defines the groups.
        grouping: ``"attribute"`` (2 groups) or ``"attribute_x_target"`` (4 groups).
        size: Side of the square images: the shorter side is resized to ``size``
            (bicubic), then center-cropped (:func:`core.imageio.load_tensor`).
        max_images: Load a random subset of at most this many images of the split
            (kept in file order); ``None`` for all.

    Returns:
        The split; images are uint8 (N, 3, size, size).

    Raises:
        ValueError: The folder or a file is missing (the message says how to get the
            data), a file is malformed (the message names the line), an attribute is
            unknown, or an image cannot be read (the message names it).
    """
    _check_split(split)
    if grouping not in ("attribute", "attribute_x_target"):
        raise ValueError(CELEBA_BAD_GROUPING.format(value=grouping))
    if max_images is not None:
        check_positive_int(max_images, name="max_images")
    check_positive_int(size, name="size")
    folder = (Path(root).expanduser() if root is not None else default_data_root()) / "celeba"
    image_dir, attr_file, partition_file = _celeba_files(folder)

    names, attributes, values = _read_celeba_attributes(attr_file)
    for role, attr in (("target", target), ("group", group)):
        if attr not in attributes:
            raise ValueError(CELEBA_UNKNOWN_ATTR.format(name=attr, role=role, known=", ".join(attributes)))
    partition = _read_celeba_partition(partition_file)
    wanted = _CELEBA_PARTITIONS[split]
    row_of = {name: i for i, name in enumerate(names)}
    chosen = [name for name, part in partition if part == wanted]
    if not chosen:
        raise ValueError(CELEBA_EMPTY.format(split=split, path=partition_file))
    missing_attr = [name for name in chosen if name not in row_of]
    if missing_attr:
        raise ValueError(CELEBA_NO_ATTRIBUTES.format(path=attr_file, name=missing_attr[0], more=len(missing_attr) - 1,
                                                     partition=partition_file.name))
    if max_images is not None and max_images < len(chosen):
        keep = np.sort(_rng(seed, f"celeba-{split}").choice(len(chosen), size=max_images, replace=False))
        chosen = [chosen[i] for i in keep]

    rows = np.array([row_of[name] for name in chosen], dtype=np.int64)
    y = (values[rows, attributes.index(target)] > 0).astype(np.int64)
    a = (values[rows, attributes.index(group)] > 0).astype(np.int64)
    if grouping == "attribute":
        g = a
        groups: tuple[str, ...] = (f"not {group}", group)
    else:
        g = 2 * a + y
        groups = (f"not {group}, not {target}", f"not {group}, {target}",
                  f"{group}, not {target}", f"{group}, {target}")

    from core.imageio import load_tensor

    x = np.empty((len(chosen), 3, size, size), dtype=np.uint8)
    for i, name in enumerate(chosen):
        try:
            image_path = resolve_inside(image_dir, name, what="the image name", shown_root="img_align_celeba/")
            image = load_tensor(image_path, channels=3, size=size)
        except ValueError as err:
            raise ValueError(CELEBA_IMAGE.format(name=name, split=split, reason=err)) from None
        x[i] = image[0].mul(255.0).round_().byte().numpy()
    description = (
        f"CelebA {split} split ({len(chosen)} images at {size}x{size}): predict {target}, "
        f"groups by {group}" + (" and the target" if grouping == "attribute_x_target" else "") + "."
    )
    return GroupDataset(
        name="celeba",
        split=split,
        x=x,
        y=y,
        g=g,
        classes=(f"not {target}", target),
        groups=groups,
        description=description,
        source="celeba",
    )


# --------------------------------------------------------------------------- csv


def load_csv_groups(
    split: Split = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    size: int = 64,
    channels: int = 3,
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
) -> GroupDataset:
    """Any image folder with a CSV file of ``path,label,group`` (optional ``split``) columns.

    * ``path``: image file, relative to the CSV file's folder and inside it: absolute paths,
      ``..`` and symbolic links that lead out of the folder are refused (a CSV cannot make
      the loader read a file elsewhere on the machine).
    * ``label`` and ``group``: any strings; the distinct values, sorted (numerically when
      all are integers), become the class and group names, indexed from 0. They are
      collected over *all* rows, so every split uses the same indices.
    * ``split`` (optional): ``train``, ``val`` (``valid``, ``validation``) or ``test``.
      Without the column the rows are split at random (seeded), per group, by
      ``split_fractions``.

    Images are loaded with :func:`core.imageio.load_tensor`: the shorter side is
    resized to ``size``, then center-cropped, in ``channels`` channels.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: The CSV file, or a folder holding ``metadata.csv``.
        seed: Seed of the random split (without a ``split`` column).
        size: Side of the square images.
        channels: 1 (grayscale) or 3 (RGB).
        split_fractions: Train, val and test shares when there is no ``split`` column.

    Returns:
        The split; images are uint8 (N, channels, size, size).

    Raises:
        ValueError: No CSV, missing columns, an empty split, or a bad row (missing
            file, a path outside the folder, unreadable image, empty or unknown value); the
            message names the row and never quotes the file's other contents.
    """
    _check_split(split)
    if root is None:
        raise ValueError(CSV_NO_ROOT)
    path = Path(root).expanduser()
    if path.is_dir():
        path = path / "metadata.csv"
    if not path.is_file():
        raise ValueError(CSV_MISSING.format(path=path))
    check_positive_int(size, name="size")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(BAD_CHANNELS.format(value=channels))
    fractions_ok = len(split_fractions) == 3 and all(0 <= f <= 1 for f in split_fractions)
    if not fractions_ok or abs(sum(split_fractions) - 1) > 1e-9:
        raise ValueError(BAD_FRACTION.format(name="split_fractions (three shares summing to 1)", value=split_fractions))

    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        found = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in ("path", "label", "group") if c not in found]
        if missing:
            raise ValueError(CSV_MISSING_COLUMNS.format(path=path, missing=", ".join(missing)))
        rows = [{(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in r.items()}
                for r in reader]
    has_split = "split" in found
    for i, row in enumerate(rows):
        for column in ("path", "label", "group") + (("split",) if has_split else ()):
            if not row.get(column):
                raise ValueError(CSV_BAD_ROW.format(path=path, row=i + 1, line=i + 2, problem=f"empty {column!r}"))
        if has_split and row["split"].lower() not in _CSV_SPLITS:
            raise ValueError(CSV_BAD_ROW.format(path=path, row=i + 1, line=i + 2,
                                                problem="split must be train, val (valid, validation) or test"))
    classes = _sorted_names(r["label"] for r in rows)
    groups = _sorted_names(r["group"] for r in rows)
    y_all = np.array([classes.index(r["label"]) for r in rows], dtype=np.int64)
    g_all = np.array([groups.index(r["group"]) for r in rows], dtype=np.int64)
    if has_split:
        index = np.array([i for i, r in enumerate(rows) if _CSV_SPLITS[r["split"].lower()] == split], dtype=np.int64)
    else:
        index = _random_split(g_all, split, split_fractions, _rng(seed, "csv-split"))
    if len(index) == 0:
        raise ValueError(CSV_EMPTY.format(path=path, split=split))

    from core.imageio import load_tensor

    x = np.empty((len(index), channels, size, size), dtype=np.uint8)
    for k, i in enumerate(index):
        try:
            image_path = resolve_inside(path.parent, rows[i]["path"], what="the image path", shown_root="the CSV's folder")
            image = load_tensor(image_path, channels=channels, size=size)
        except ValueError as err:
            raise ValueError(CSV_BAD_ROW.format(path=path, row=int(i) + 1, line=int(i) + 2,
                                                problem=f"{rows[i]['path']!r}: {err}")) from None
        x[k] = image[0].mul(255.0).round_().byte().numpy()
    return GroupDataset(
        name="csv",
        split=split,
        x=x,
        y=y_all[index],
        g=g_all[index],
        classes=classes,
        groups=groups,
        description=f"Images listed in {path} ({split} split, {len(index)} images at {size}x{size}).",
        source=str(path),
    )


GROUP_DATASETS.add("fmnist-groups", GroupDatasetSpec(
    "fmnist-groups",
    "Fashion-MNIST, 10 classes; 5% of the training images shown with inverted contrast (the minority group)",
    load_fmnist_groups,
    offline=True,
))
GROUP_DATASETS.add("celeba", GroupDatasetSpec(
    "celeba", "CelebA faces: Blond_Hair by Male (both selectable); needs the data on disk", load_celeba, offline=False,
))
GROUP_DATASETS.add("csv", GroupDatasetSpec(
    "csv", "Your images: a folder plus a CSV of path,label,group[,split]", load_csv_groups, offline=False,
))


# --------------------------------------------------------------------------- helpers

_CSV_SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _check_split(split: object) -> None:
    if split not in SPLITS:
        raise ValueError(BAD_SPLIT.format(split=split))


def _check_fraction(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(BAD_FRACTION.format(name=name, value=value))



def _rng(seed: int, purpose: str) -> np.random.Generator:
    """A generator for one purpose, independent of the others and of the call order."""
    salt = int.from_bytes(purpose.encode("utf-8"), "little") % (2**63)
    return np.random.default_rng(np.random.SeedSequence([int(seed), salt]))


def _assign_per_class(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Group 1 for exactly ``round(fraction * n_c)`` random images of each class ``c``, else 0."""
    g = np.zeros(len(y), dtype=np.int64)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        k = int(round(fraction * len(members)))
        g[rng.choice(members, size=k, replace=False)] = 1
    return g


def _has_fmnist_train(root: str | os.PathLike[str] | None, source: str) -> bool:
    """Whether a full Fashion-MNIST training split is on disk (without reading it)."""
    return any(s.has("train") for s in fashion_mnist_sources(root) if source in ("auto", s.name))


def _subset(n: int, k: int, name: str, seed: int) -> np.ndarray:
    if k > n:
        raise ValueError(TOO_FEW.format(name=name, asked=k, available=n))
    return np.sort(_rng(seed, name).choice(n, size=k, replace=False))


def _bundled_split(labels: np.ndarray, split: str, seed: int) -> np.ndarray:
    """Indices of ``split`` in the bundled subset: per class, a random 60% / 15% / 25%."""
    rng = _rng(seed, "bundled-pool")
    shares = np.array([BUNDLED_SPLIT_SIZES[s] for s in SPLITS], dtype=np.float64) / BUNDLED_SIZE
    picked = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        bounds = np.round(np.cumsum(shares) * len(members)).astype(int)
        start = 0 if split == "train" else bounds[SPLITS.index(split) - 1]
        picked.append(members[start : bounds[SPLITS.index(split)]])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def _random_split(
    g: np.ndarray, split: str, fractions: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """Rows of ``split``: each group's rows permuted and cut by ``fractions``."""
    picked = []
    for group in range(int(g.max()) + 1 if len(g) else 0):
        members = rng.permutation(np.flatnonzero(g == group))
        bounds = np.round(np.cumsum(fractions) * len(members)).astype(int)
        start = 0 if split == "train" else bounds[SPLITS.index(split) - 1]
        picked.append(members[start : bounds[SPLITS.index(split)]])
    return np.sort(np.concatenate(picked)).astype(np.int64) if picked else np.zeros(0, dtype=np.int64)


def _sorted_names(values: object) -> tuple[str, ...]:
    """Distinct strings, sorted numerically when all are integers, else alphabetically."""
    distinct = set(values)  # type: ignore[arg-type]
    try:
        return tuple(sorted(distinct, key=int))
    except ValueError:
        return tuple(sorted(distinct))


def _celeba_files(folder: Path) -> tuple[Path, Path, Path]:
    """The image folder, attribute file and partition file under ``folder`` (txt, else Kaggle csv)."""
    image_dir = folder / "img_align_celeba"
    if (image_dir / "img_align_celeba").is_dir():  # Kaggle's nesting
        image_dir = image_dir / "img_align_celeba"
    found = []
    missing = []
    for stem in ("list_attr_celeba", "list_eval_partition"):
        for candidate in (folder / f"{stem}.txt", folder / f"{stem}.csv"):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            missing.append(f"{stem}.txt")
    if not image_dir.is_dir():
        missing.insert(0, "img_align_celeba/")
    if missing:
        raise ValueError(CELEBA_MISSING.format(missing=", ".join(missing), folder=folder))
    return image_dir, found[0], found[1]


def _read_celeba_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(image names, attribute names, (N, A) int8 values in {1, -1}) from the txt or csv file."""
    numbered = list(enumerate(path.read_text(encoding="utf-8").splitlines(), start=1))
    kaggle = path.suffix == ".csv"
    if len(numbered) < (1 if kaggle else 2):
        problem = "expected a header of attribute names" if kaggle else "expected a count line and a header"
        raise ValueError(CELEBA_BAD_FILE.format(path=path, line=len(numbered) + 1, problem=problem))
    if kaggle:  # "image_id,5_o_Clock_Shadow,..." then "000001.jpg,-1,1,..."
        header = [h.strip() for h in numbered[0][1].split(",")][1:]
        body = numbered[1:]
    else:  # "202599", "5_o_Clock_Shadow Arched_Eyebrows ...", then "000001.jpg -1  1 ..."
        header, body = numbered[1][1].split(), numbered[2:]
    body = [(number, line) for number, line in body if line.strip()]
    if not kaggle:
        try:
            count = int(numbered[0][1].strip())
        except ValueError:
            problem = "expected the number of images"
            raise ValueError(CELEBA_BAD_FILE.format(path=path, line=1, problem=problem)) from None
        if count != len(body):
            problem = f"says {count} images but {len(body)} rows follow"
            raise ValueError(CELEBA_BAD_FILE.format(path=path, line=1, problem=problem))
    if not header:
        raise ValueError(CELEBA_BAD_FILE.format(path=path, line=1 if kaggle else 2, problem="no attribute names"))
    names, values = [], np.empty((len(body), len(header)), dtype=np.int8)
    for i, (number, line) in enumerate(body):
        fields = [f.strip() for f in line.split(",")] if kaggle else line.split()
        if len(fields) != len(header) + 1:
            problem = f"expected a name and {len(header)} values, got {len(fields)} fields"
            raise ValueError(CELEBA_BAD_FILE.format(path=path, line=number, problem=problem))
        try:
            row = [int(v) for v in fields[1:]]
        except ValueError:
            row = []
        if len(row) != len(header) or any(v not in (1, -1) for v in row):
            raise ValueError(CELEBA_BAD_FILE.format(path=path, line=number, problem="expected values 1 or -1"))
        names.append(fields[0])
        values[i] = row
    return names, header, values


def _read_celeba_partition(path: Path) -> list[tuple[str, int]]:
    """(image name, 0|1|2) pairs from the txt or csv partition file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = 1 if path.suffix == ".csv" else 0
    pairs = []
    for i, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        fields = line.replace(",", " ").split()
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ValueError(CELEBA_BAD_FILE.format(path=path, line=i, problem="expected 'name 0|1|2'"))
        pairs.append((fields[0], int(fields[1])))
    return pairs
