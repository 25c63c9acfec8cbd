"""``"csv"``: any image folder plus a CSV of ``path,label,group[,split]``."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from core.data.groups import (
    BAD_CHANNELS,
    BAD_FRACTION,
    GroupDataset,
    Split,
    check_split,
)
from core.data.images import load_images
from core.data.splits import seeded_rng, stratified_split
from core.safepaths import resolve_inside
from core.validation import check_positive_int

CSV_MISSING = "no CSV file at {path}; expected a CSV with columns path,label,group[,split]"
CSV_MISSING_COLUMNS = "{path}: missing column(s) {missing}; expected a header line with columns path,label,group[,split]"
CSV_BAD_ROW = "{path}: row {row} (line {line}): {problem}"
CSV_EMPTY = "{path}: no rows in the {split} split"
CSV_NO_ROOT = "the 'csv' data set needs root=<path of the CSV file, or a folder holding metadata.csv>"

_CSV_SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


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
    check_split(split)
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
        index = stratified_split(g_all, split, split_fractions, seeded_rng(seed, "csv-split"))
    if len(index) == 0:
        raise ValueError(CSV_EMPTY.format(path=path, split=split))

    def problem(k: int, name: str, err: ValueError) -> str:
        row = int(index[k])
        return CSV_BAD_ROW.format(path=path, row=row + 1, line=row + 2, problem=f"{name!r}: {err}")

    x = load_images([rows[i]["path"] for i in index],
                    lambda name: resolve_inside(path.parent, name, what="the image path", shown_root="the CSV's folder"),
                    channels=channels, size=size, error=problem)
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


def _sorted_names(values: object) -> tuple[str, ...]:
    """Distinct strings, sorted numerically when all are integers, else alphabetically."""
    distinct = set(values)  # type: ignore[arg-type]
    try:
        return tuple(sorted(distinct, key=int))
    except ValueError:
        return tuple(sorted(distinct))
