"""``"celeba"``: CelebA in torchvision's folder layout, a target attribute by a group attribute (Group DRO's setting)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from core.data.fashion_mnist import default_data_root
from core.data.groups import GroupDataset, Split, check_split
from core.data.images import load_images
from core.data.splits import seeded_rng
from core.safepaths import resolve_inside
from core.validation import check_positive_int

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
    check_split(split)
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
        keep = np.sort(seeded_rng(seed, f"celeba-{split}").choice(len(chosen), size=max_images, replace=False))
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

    x = load_images(chosen, lambda name: resolve_inside(image_dir, name, what="the image name",
                                                        shown_root="img_align_celeba/"),
                    channels=3, size=size, error=lambda k, name, err: CELEBA_IMAGE.format(name=name, split=split, reason=err))
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
