"""Data: Fashion-MNIST, and image data sets with group labels ``(x, y, g)`` for group fairness.

One file per concept: ``fashion_mnist`` (the idx reader, the sources, the loader and the
download for users), ``groups`` (the :class:`GroupDataset` contract and registry),
``fmnist_groups``, ``celeba`` and ``csv_groups`` (one loader each), ``splits`` (seeded
choices and the one stratified split), ``images`` (image files into an array).

Four data sets sit in the registry :data:`GROUP_DATASETS`, all loaded through
:func:`load_group_dataset` and all returned as a :class:`GroupDataset`:

* ``"fmnist-groups"`` (the default, works offline): Fashion-MNIST in which a
  minority of the images is shown with **inverted contrast** (dark garment on a
  white background). Group membership is what a person sees at a glance; the
  class is independent of the group. The inverted group is 5% of the training
  images and half of the validation and test images, so that plain ERM learns
  it less well and both groups are measured precisely. See
  :func:`load_fmnist_groups` for why and for the measured gap.
* ``"fmnist-shortcut"`` (offline): Fashion-MNIST whose images carry a cue (a bright
  mark or a faint border pattern) that names the class on 99% of the training images and
  another class on the rest: the shortcut that robust training can undo when switching the
  cue lies inside its ball (:mod:`core.data.fmnist_shortcut`).
* ``"celeba"``: CelebA in torchvision's folder layout, a target attribute
  (default ``Blond_Hair``) by a group attribute (default ``Male``), as in Group
  DRO (Sagawa et al., ICLR 2020). Needs the data on disk; nothing downloads.
* ``"csv"``: any image folder plus a CSV file with the columns
  ``path,label,group`` (and optionally ``split``).

Example::

    from core.data import load_group_dataset

    data = load_group_dataset("fmnist-groups", "train", seed=0)
    x, y, g = data.tensors()        # float32 (N, 1, 28, 28) in [0, 1], int64 (N,), int64 (N,)
    print(data.groups, data.group_counts(), data.source)
"""

from __future__ import annotations

from core.data.celeba import load_celeba
from core.data.csv_groups import load_csv_groups
from core.data.fashion_mnist import (
    BUNDLED_SIZE,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    DataSource,
    FashionMNIST,
    default_data_root,
    download_fashion_mnist,
    fashion_mnist_sources,
    load_fashion_mnist,
    read_idx,
    write_idx,
)
from core.data.fmnist_groups import BUNDLED_NOTICE, BUNDLED_SPLIT_SIZES, FMNIST_GROUPS, bundled_notice, load_fmnist_groups
from core.data.fmnist_shortcut import CUES, MIRROR_SAFE, SHORTCUT_GROUPS, cue_distance, load_fmnist_shortcut
from core.data.groups import GROUP_DATASETS, GroupDataset, GroupDatasetSpec, load_group_dataset
from core.data.splits import SPLITS

GROUP_DATASETS.add("fmnist-groups", GroupDatasetSpec(
    "fmnist-groups",
    "Fashion-MNIST, 10 classes; 5% of the training images shown with inverted contrast (the minority group)",
    load_fmnist_groups,
    offline=True,
    shape=(1, 28, 28),
))
GROUP_DATASETS.add("fmnist-shortcut", GroupDatasetSpec(
    "fmnist-shortcut",
    "Fashion-MNIST with a cue (a bright mark or a faint pattern) that names the class on 99% of the training images",
    load_fmnist_shortcut,
    offline=True,
    mirror_safe=MIRROR_SAFE,
    shape=(1, 28, 28),
))
GROUP_DATASETS.add("celeba", GroupDatasetSpec(
    "celeba", "CelebA faces: Blond_Hair by Male (both selectable); needs the data on disk", load_celeba, offline=False,
))
GROUP_DATASETS.add("csv", GroupDatasetSpec(
    "csv", "Your images: a folder plus a CSV of path,label,group[,split]", load_csv_groups, offline=False,
))

__all__ = [
    "BUNDLED_NOTICE",
    "BUNDLED_SIZE",
    "BUNDLED_SPLIT_SIZES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "CUES",
    "FMNIST_GROUPS",
    "GROUP_DATASETS",
    "SHORTCUT_GROUPS",
    "SPLITS",
    "DataSource",
    "FashionMNIST",
    "GroupDataset",
    "GroupDatasetSpec",
    "bundled_notice",
    "cue_distance",
    "default_data_root",
    "download_fashion_mnist",
    "fashion_mnist_sources",
    "load_celeba",
    "load_csv_groups",
    "load_fashion_mnist",
    "load_fmnist_groups",
    "load_fmnist_shortcut",
    "load_group_dataset",
    "read_idx",
    "write_idx",
]
