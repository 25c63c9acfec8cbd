"""Tests of core.data's group data sets: fmnist-groups, CelebA folders, the CSV loader."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CELEBA_ATTRIBUTES
from conftest import write_fake_celeba as _fake_celeba
from PIL import Image

from core.data import (
    FASHION_MNIST_CLASSES,
    FMNIST_GROUPS,
    GROUP_DATASETS,
    SPLITS,
    GroupDataset,
    load_celeba,
    load_fashion_mnist,
    load_group_dataset,
)
from core.data import fashion_mnist as datasets
from core.data.groups import BAD_FRACTION, BAD_SPLIT

HAS_FULL_FMNIST = any(s.has("train") for s in datasets.fashion_mnist_sources() if s.name != "bundled")


# --------------------------------------------------------------------------- registry and container


def test_registry():
    assert list(GROUP_DATASETS) == ["fmnist-groups", "fmnist-shortcut", "celeba", "csv"]
    assert GROUP_DATASETS["fmnist-shortcut"].offline and not GROUP_DATASETS["fmnist-shortcut"].mirror_safe
    assert GROUP_DATASETS["fmnist-groups"].offline
    assert "minority_fraction" in GROUP_DATASETS["fmnist-groups"].options()
    assert GROUP_DATASETS["celeba"].options() == ("target", "group", "grouping", "size", "max_images")
    with pytest.raises(ValueError, match="unknown group dataset 'nope'; expected one of: fmnist-groups, fmnist-shortcut, celeba, csv"):
        load_group_dataset("nope", "train")
    with pytest.raises(ValueError, match="fmnist-groups: unexpected option\\(s\\) 'minority_share'"):
        load_group_dataset("fmnist-groups", "train", minority_share=0.1)
    with pytest.raises(ValueError, match="minority: expected one of inverted, fog, blur, noise, got 0.1"):
        load_group_dataset("fmnist-groups", "train", minority=0.1)
    with pytest.raises(ValueError, match=re.escape(BAD_SPLIT.format(split="valid"))):
        load_group_dataset("fmnist-groups", "valid")


def test_group_dataset_container():
    x = np.zeros((3, 1, 4, 4), dtype=np.uint8)
    x[1] = 255
    data = GroupDataset("toy", "train", x, np.array([0, 1, 1]), np.array([1, 0, 1]), ("a", "b"), ("p", "q"), "", "test")
    assert len(data) == 3
    assert data.group_counts() == {"p": 1, "q": 2}
    assert data.group_fractions() == pytest.approx({"p": 1 / 3, "q": 2 / 3})
    np.testing.assert_array_equal(data.class_group_counts(), [[0, 1], [1, 1]])  # (group, class)
    xt, yt, gt = data.tensors("cpu")
    assert xt.dtype == torch.float32 and xt.shape == (3, 1, 4, 4) and float(xt.max()) == 1.0
    assert yt.dtype == gt.dtype == torch.int64 and gt.tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="read-only"):
        data.x[0, 0, 0, 0] = 1
    x[0, 0, 0, 0] = 7  # the caller's array stays writable
    with pytest.raises(ValueError, match=re.escape("g: expected values in [0, 2), got min=0, max=2")):
        GroupDataset("toy", "train", x, np.array([0, 1, 1]), np.array([2, 0, 1]), ("a", "b"), ("p", "q"), "", "")
    with pytest.raises(ValueError, match="y: expected int64 of shape \\(3,\\)"):
        GroupDataset("toy", "train", x, np.array([0, 1]), np.array([0, 0, 1]), ("a", "b"), ("p", "q"), "", "")
    with pytest.raises(ValueError, match="x: expected float values in \\[0, 1\\]"):
        GroupDataset("toy", "train", x * 2.0, np.array([0, 1, 1]), np.array([0, 0, 1]), ("a", "b"), ("p", "q"), "", "")


# --------------------------------------------------------------------------- fmnist-groups


def _originals(data: GroupDataset) -> np.ndarray:
    """The images as Fashion-MNIST stores them (inverted ones inverted back), (N, 28, 28)."""
    x = data.x[:, 0].copy()
    x[data.g == 1] = 255 - x[data.g == 1]
    return x


@pytest.fixture(scope="module")
def bundled_splits():
    return {split: load_group_dataset("fmnist-groups", split, source="bundled", seed=0) for split in SPLITS}


def test_fmnist_groups_bundled_shapes_and_fractions(bundled_splits):
    sizes = {"train": 1200, "val": 300, "test": 500}
    inverted = {"train": 60, "val": 150, "test": 250}  # 5% of train, half of val and test
    for split, data in bundled_splits.items():
        assert data.source == "bundled" and data.split == split and data.name == "fmnist-groups"
        assert data.x.shape == (sizes[split], 1, 28, 28) and data.x.dtype == np.uint8
        assert data.classes == FASHION_MNIST_CLASSES and data.groups == FMNIST_GROUPS
        assert data.group_counts() == {"standard": sizes[split] - inverted[split], "inverted": inverted[split]}
        # every class equally often in each group: the group says nothing about the class
        per_class = data.class_group_counts()
        assert (per_class[1] == inverted[split] // 10).all()
        assert (per_class.sum(0) == sizes[split] // 10).all()
        x, y, g = data.tensors()
        assert x.dtype == torch.float32 and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        np.testing.assert_array_equal(g.numpy(), data.g)
        np.testing.assert_array_equal(y.numpy(), data.y)


def test_fmnist_groups_bundled_splits_are_disjoint_subsets(bundled_splits):
    pool = load_fashion_mnist("test", source="bundled")
    index = {img.tobytes(): i for i, img in enumerate(pool.x)}
    seen = set()
    for data in bundled_splits.values():
        rows = [index[img.tobytes()] for img in _originals(data)]  # KeyError if not a pool image
        np.testing.assert_array_equal(pool.y[rows], data.y)
        assert seen.isdisjoint(rows)
        seen.update(rows)
    assert len(seen) == 2000


def test_fmnist_groups_minority_is_visible(bundled_splits):
    """Inverted images have a white background: their border is bright, the others' dark."""
    data = bundled_splits["test"]
    border = np.concatenate([data.x[:, 0, 0, :], data.x[:, 0, -1, :], data.x[:, 0, :, 0], data.x[:, 0, :, -1]], 1)
    mean_border = border.mean(1)
    assert mean_border[data.g == 1].min() > mean_border[data.g == 0].max()  # every one, not just on average
    assert mean_border[data.g == 1].mean() - mean_border[data.g == 0].mean() > 200


def test_fmnist_groups_deterministic(bundled_splits):
    again = load_group_dataset("fmnist-groups", "train", source="bundled", seed=0)
    first = bundled_splits["train"]
    for name in ("x", "y", "g"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
    other = load_group_dataset("fmnist-groups", "train", source="bundled", seed=1)
    assert not np.array_equal(other.g, first.g)
    assert len(other) == len(first)


def test_fmnist_groups_options_and_errors(no_full_data):
    data = load_group_dataset("fmnist-groups", "train", seed=0, minority_fraction=0.1)
    assert data.source == "bundled"  # auto falls back to the bundled subset
    assert data.group_counts()["inverted"] == 120  # 10% of 1,200
    assert load_group_dataset("fmnist-groups", "test", eval_minority_fraction=0.0).group_counts()["inverted"] == 0
    with pytest.raises(ValueError, match=re.escape(BAD_FRACTION.format(name="minority_fraction", value=1.5))):
        load_group_dataset("fmnist-groups", "train", minority_fraction=1.5)
    with pytest.raises(ValueError, match="fmnist-groups: source 'debian' has no Fashion-MNIST training split"):
        load_group_dataset("fmnist-groups", "train", source="debian")
    with pytest.raises(ValueError, match="n_train: expected a positive integer, got 0"):
        load_group_dataset("fmnist-groups", "train", n_train=0)


@pytest.mark.skipif(not HAS_FULL_FMNIST, reason="full Fashion-MNIST not installed")
def test_fmnist_groups_full_data():
    options = {"n_train": 3000, "n_val": 1000, "n_test": 2000, "seed": 3}
    train = load_group_dataset("fmnist-groups", "train", **options)
    val = load_group_dataset("fmnist-groups", "val", **options)
    test = load_group_dataset("fmnist-groups", "test", **options)
    assert train.source in ("debian", "torchvision") and len(train) == 3000 and len(val) == 1000
    assert len(test) == 2000
    assert train.group_counts()["inverted"] == pytest.approx(150, abs=5)  # 5%, rounded per class
    assert val.group_counts()["inverted"] == pytest.approx(500, abs=5)
    assert test.group_counts()["inverted"] == pytest.approx(1000, abs=5)
    train_images = {img.tobytes() for img in _originals(train)}
    assert train_images.isdisjoint(img.tobytes() for img in _originals(val))  # val carved from train's pool
    again = load_group_dataset("fmnist-groups", "val", **options)
    np.testing.assert_array_equal(again.x, val.x)


# --------------------------------------------------------------------------- celeba


def test_celeba_folder_layout(tmp_path):
    table = _fake_celeba(tmp_path)
    data = load_group_dataset("celeba", "train", root=tmp_path)
    rows = np.arange(0, 12, 3)  # partition 0: images 1, 4, 7, 10
    assert data.x.shape == (4, 3, 64, 64) and data.x.dtype == np.uint8
    assert data.classes == ("not Blond_Hair", "Blond_Hair") and data.groups == ("not Male", "Male")
    np.testing.assert_array_equal(data.y, table[rows, CELEBA_ATTRIBUTES.index("Blond_Hair")] > 0)
    np.testing.assert_array_equal(data.g, table[rows, CELEBA_ATTRIBUTES.index("Male")] > 0)
    np.testing.assert_array_equal(data.x[:, 0, 10, 10], 20 * rows)  # flat images keep their value
    test = load_celeba("test", root=tmp_path, target="Smiling", group="Young", size=32)
    assert test.x.shape == (4, 3, 32, 32) and test.classes == ("not Smiling", "Smiling")
    np.testing.assert_array_equal(test.g, table[rows + 2, CELEBA_ATTRIBUTES.index("Young")] > 0)


def test_celeba_four_groups_subset_and_kaggle(tmp_path):
    table = _fake_celeba(tmp_path / "tv")
    four = load_celeba("val", root=tmp_path / "tv", grouping="attribute_x_target", size=16)
    rows = np.arange(1, 12, 3)
    y = table[rows, CELEBA_ATTRIBUTES.index("Blond_Hair")] > 0
    a = table[rows, CELEBA_ATTRIBUTES.index("Male")] > 0
    np.testing.assert_array_equal(four.g, 2 * a + y)
    assert four.groups[3] == "Male, Blond_Hair" and len(four.groups) == 4
    sub = load_celeba("train", root=tmp_path / "tv", max_images=2, size=16, seed=5)
    assert len(sub) == 2
    np.testing.assert_array_equal(sub.x, load_celeba("train", root=tmp_path / "tv", max_images=2, size=16, seed=5).x)
    kaggle_table = _fake_celeba(tmp_path / "kg", kaggle=True)
    kaggle = load_celeba("train", root=tmp_path / "kg", size=16)
    blond = kaggle_table[np.arange(0, 12, 3), CELEBA_ATTRIBUTES.index("Blond_Hair")] > 0
    np.testing.assert_array_equal(kaggle.y, blond)


def test_celeba_errors(tmp_path):
    with pytest.raises(ValueError, match="CelebA not found: expected img_align_celeba/, list_attr_celeba.txt") as err:
        load_group_dataset("celeba", "train", root=tmp_path)
    assert "torchvision.datasets.CelebA(root, split='all', download=True)" in str(err.value)
    _fake_celeba(tmp_path)
    with pytest.raises(ValueError, match="unknown CelebA attribute 'Blonde' for target; expected one of: 5_o_Clock"):
        load_celeba("train", root=tmp_path, target="Blonde")
    partition = tmp_path / "celeba" / "list_eval_partition.txt"
    original = partition.read_text()
    partition.write_text(original + "000099.jpg 0\n")
    with pytest.raises(ValueError, match="list_attr_celeba.txt: no attributes for 000099.jpg \\(and 0 more images"):
        load_celeba("train", root=tmp_path, size=16)
    partition.write_text(original)
    (tmp_path / "celeba" / "img_align_celeba" / "000004.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="CelebA image 000004.jpg \\(split train\\): could not read the image"):
        load_celeba("train", root=tmp_path, size=16)
    attr = tmp_path / "celeba" / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    lines[4] = lines[4].replace(" 1", " 2", 1).replace("-1", " 2", 1)
    attr.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{attr}: line 5: expected values 1 or -1")):
        load_celeba("train", root=tmp_path, size=16)
    attr.write_text("twelve\n")
    with pytest.raises(ValueError, match=re.escape(f"{attr}: line 2: expected a count line and a header")):
        load_celeba("train", root=tmp_path, size=16)
    attr.write_text("twelve\nBlond_Hair Male\n000001.jpg 1 -1\n")
    with pytest.raises(ValueError, match=re.escape(f"{attr}: line 1: expected the number of images") + "$"):
        load_celeba("train", root=tmp_path, size=16)  # the line's text is never quoted back


# --------------------------------------------------------------------------- csv


def _image_folder(root: Path, n: int = 10) -> list[str]:
    (root / "imgs").mkdir(parents=True)
    paths = []
    for i in range(n):
        pixels = np.full((20, 30, 3), (10 * i, 100, 200), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "imgs" / f"{i}.png")
        paths.append(f"imgs/{i}.png")
    return paths


def test_csv_with_split_column(tmp_path):
    paths = _image_folder(tmp_path)
    labels = ["dog", "cat"] * 5
    groups = ["outdoor", "indoor", "indoor", "outdoor", "outdoor"] * 2
    splits = ["train"] * 6 + ["val", "valid", "test", "test"]
    rows = [f"{p},{lab},{grp},{s}" for p, lab, grp, s in zip(paths, labels, groups, splits)]
    (tmp_path / "data.csv").write_text("path,label,group,split\n" + "\n".join(rows) + "\n")
    train = load_group_dataset("csv", "train", root=tmp_path / "data.csv", size=8)
    assert train.classes == ("cat", "dog") and train.groups == ("indoor", "outdoor")
    assert train.x.shape == (6, 3, 8, 8) and train.x.dtype == np.uint8
    assert train.y.tolist() == [1, 0, 1, 0, 1, 0] and train.g.tolist() == [1, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(train.x[:, 0, 4, 4], 10 * np.arange(6))  # red channel = 10 i
    val = load_group_dataset("csv", "val", root=tmp_path / "data.csv", size=8, channels=1)
    assert val.x.shape == (2, 1, 8, 8) and val.y.tolist() == [1, 0]  # rows 7 (dog) and 8 (cat)
    assert len(load_group_dataset("csv", "test", root=tmp_path / "data.csv", size=8)) == 2


def test_csv_without_split_column_numeric_names_and_metadata_default(tmp_path):
    paths = _image_folder(tmp_path, 20)
    rows = [f"{p},{10 if i % 2 else 2},{i % 2}" for i, p in enumerate(paths)]
    (tmp_path / "metadata.csv").write_text("path,label,group\n" + "\n".join(rows) + "\n")
    parts = {s: load_group_dataset("csv", s, root=tmp_path, size=8, seed=1) for s in SPLITS}
    assert parts["train"].classes == ("2", "10")  # numeric order, not "10" < "2"
    assert [len(parts[s]) for s in SPLITS] == [12, 4, 4]  # 60/20/20 of each group of 10
    for data in parts.values():
        assert data.group_counts() == {"0": len(data) // 2, "1": len(data) // 2}
    reds = np.concatenate([parts[s].x[:, 0, 0, 0] for s in SPLITS])
    assert sorted(reds.tolist()) == [10 * i for i in range(20)]  # every row in exactly one split
    again = load_group_dataset("csv", "val", root=tmp_path, size=8, seed=1)
    np.testing.assert_array_equal(again.x, parts["val"].x)


def test_csv_errors(tmp_path):
    paths = _image_folder(tmp_path, 3)
    csv_path = tmp_path / "data.csv"
    with pytest.raises(ValueError, match="needs root="):
        load_group_dataset("csv", "train")
    with pytest.raises(ValueError, match="no CSV file at"):
        load_group_dataset("csv", "train", root=tmp_path)
    csv_path.write_text("file,label,group\nimgs/0.png,a,b\n")
    with pytest.raises(ValueError, match=re.escape(f"{csv_path}: missing column(s) path; expected a header line with columns")):
        load_group_dataset("csv", "train", root=csv_path)
    csv_path.write_text(f"path,label,group,split\n{paths[0]},a,x,train\nimgs/missing.png,b,y,train\n")
    with pytest.raises(ValueError, match=re.escape(f"{csv_path}: row 2 (line 3): 'imgs/missing.png': could not read "
                                                   "the image: no such file")):
        load_group_dataset("csv", "train", root=csv_path)
    (tmp_path / "imgs" / "bad.png").write_text("not an image")
    csv_path.write_text(f"path,label,group,split\n{paths[0]},a,x,train\nimgs/bad.png,b,y,train\n")
    with pytest.raises(ValueError, match=re.escape(f"{csv_path}: row 2 (line 3): 'imgs/bad.png': could not read")):
        load_group_dataset("csv", "train", root=csv_path)
    csv_path.write_text(f"path,label,group,split\n{paths[0]},a,,train\n")
    with pytest.raises(ValueError, match=re.escape(f"{csv_path}: row 1 (line 2): empty 'group'")):
        load_group_dataset("csv", "train", root=csv_path)
    csv_path.write_text(f"path,label,group,split\n{paths[0]},a,x,holdout\n")
    with pytest.raises(ValueError, match="row 1 \\(line 2\\): split must be train, val \\(valid, validation\\) or test$"):
        load_group_dataset("csv", "train", root=csv_path)
    csv_path.write_text(f"path,label,group,split\n{paths[0]},a,x,train\n")
    with pytest.raises(ValueError, match=re.escape(f"{csv_path}: no rows in the test split")):
        load_group_dataset("csv", "test", root=csv_path)


def test_stratified_split_partitions_every_stratum_by_its_shares():
    from core.data.splits import seeded_rng, stratified_split

    strata = np.repeat([0, 1, 3], [40, 20, 100])  # group 2 absent: only the strata present count
    shares = (0.6, 0.15, 0.25)
    parts = {s: stratified_split(strata, s, shares, seeded_rng(7, "t")) for s in ("train", "val", "test")}
    assert np.array_equal(np.sort(np.concatenate(list(parts.values()))), np.arange(len(strata)))  # a partition
    for value, n in ((0, 40), (1, 20), (3, 100)):
        got = [int((strata[parts[s]] == value).sum()) for s in ("train", "val", "test")]
        assert got == [round(0.6 * n), round(0.75 * n) - round(0.6 * n), n - round(0.75 * n)]
    again = stratified_split(strata, "val", shares, seeded_rng(7, "t"))
    assert np.array_equal(again, parts["val"])  # seeded
    assert not np.array_equal(stratified_split(strata, "val", shares, seeded_rng(8, "t")), parts["val"])
