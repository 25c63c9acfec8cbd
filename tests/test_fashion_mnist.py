"""Tests of core.data.fashion_mnist: the idx reader/writer, the source search and the bundled assets."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.data import fashion_mnist as datasets
from core.data.fashion_mnist import (
    BUNDLED_DIR,
    FASHION_MNIST_CLASSES,
    FashionMNIST,
    fashion_mnist_sources,
    load_fashion_mnist,
    read_idx,
    write_idx,
)

GALLERY_DIR = BUNDLED_DIR.parent / "gallery" / "fashion_mnist"


def _fake_split(folder: Path, n: int, *, split: str = "test", gz: bool = True, seed: int = 1):
    """Write a fake split of n images into folder; returns (images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    stem = "train" if split == "train" else "t10k"
    ext = ".gz" if gz else ""
    write_idx(folder / f"{stem}-images-idx3-ubyte{ext}", images)
    write_idx(folder / f"{stem}-labels-idx1-ubyte{ext}", labels)
    return images, labels


# --------------------------------------------------------------------------- idx files


def test_classes():
    assert len(FASHION_MNIST_CLASSES) == 10
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top"
    assert FASHION_MNIST_CLASSES[9] == "Ankle boot"


@pytest.mark.parametrize("name", ["a-idx3-ubyte.gz", "a-idx3-ubyte"])
def test_idx_round_trip_uint8(tmp_path, name):
    array = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5) * 4
    path = write_idx(tmp_path / name, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    out = read_idx(path)
    assert out.shape == (3, 4, 5)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, array)
    out[0, 0, 0] = 7  # writable copy


def test_idx_raw_header_and_other_dtypes(tmp_path):
    labels = np.array([9, 0, 3], dtype=np.uint8)
    raw = write_idx(tmp_path / "labels", labels).read_bytes()
    assert raw == b"\x00\x00\x08\x01" + struct.pack(">I", 3) + bytes([9, 0, 3])
    for dtype in (np.int8, np.int16, np.int32, np.float32, np.float64):
        array = (np.arange(6).reshape(2, 3) - 2).astype(dtype) * 3
        out = read_idx(write_idx(tmp_path / f"a-{np.dtype(dtype).name}.gz", array))
        assert out.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(out, array)
    with pytest.raises(ValueError, match="cannot store dtype"):
        write_idx(tmp_path / "bad", np.zeros(3, dtype=np.uint16))


def test_gzip_detected_by_magic_not_extension(tmp_path):
    array = np.array([[1, 2], [3, 250]], dtype=np.uint8)
    payload = b"\x00\x00\x08\x02" + struct.pack(">II", 2, 2) + array.tobytes()
    (tmp_path / "plain.gz").write_bytes(payload)  # not gzipped despite the name
    (tmp_path / "zipped.bin").write_bytes(gzip.compress(payload))
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "zipped.bin"), array)


def test_read_idx_rejects_wrong_magic(tmp_path):
    path = tmp_path / "wrong-magic"
    path.write_bytes(b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"\x00\x00")
    with pytest.raises(ValueError, match=r"wrong-magic: not an idx file: expected magic bytes "
                                         r"00 00 <type> <ndim>, found 01 00 08 01"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"\x00\x00")
    with pytest.raises(ValueError, match=r"wrong-magic: .*unknown data-type code 0x07"):
        read_idx(path)


def test_read_idx_rejects_truncated_payload(tmp_path):
    images = np.zeros((20, 28, 28), dtype=np.uint8)
    raw = write_idx(tmp_path / "full", images).read_bytes()
    (tmp_path / "cut").write_bytes(raw[:-100])
    with pytest.raises(ValueError, match=r"cut: truncated idx payload: header says shape "
                                         r"\(20, 28, 28\) of uint8 = 15680 bytes, found 15580"):
        read_idx(tmp_path / "cut")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(ValueError, match=r"cut\.gz: truncated idx payload"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(raw)[:-6])  # cut inside the trailer
    with pytest.raises(ValueError, match=r"broken\.gz: corrupt or truncated gzip stream"):
        read_idx(tmp_path / "broken.gz")
    (tmp_path / "long").write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match=r"long: corrupt \(trailing bytes\) idx payload.*15681"):
        read_idx(tmp_path / "long")


def test_read_idx_rejects_non_idx_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, world\n")
    with pytest.raises(ValueError, match=r"notes\.txt: not an idx file: expected magic bytes "
                                         r"00 00 <type> <ndim>, found 68 65 6c 6c"):
        read_idx(path)
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match=r"tiny: not an idx file: expected at least a 4-byte "
                                         r"header, found 2 bytes"):
        read_idx(tmp_path / "tiny")


# --------------------------------------------------------------------------- sources


def test_torchvision_layout_with_explicit_root(tmp_path):
    images, labels = _fake_split(tmp_path / "FashionMNIST" / "raw", 20)
    data = load_fashion_mnist("test", root=tmp_path, source="torchvision")
    assert isinstance(data, FashionMNIST)
    assert data.source == "torchvision"
    assert data.path == tmp_path / "FashionMNIST" / "raw"
    assert data.split == "test"
    assert len(data) == 20
    assert data.x.shape == (20, 28, 28) and data.x.dtype == np.uint8
    assert data.y.dtype == np.int64
    np.testing.assert_array_equal(data.x, images)
    np.testing.assert_array_equal(data.y, labels.astype(np.int64))
    assert data.classes == FASHION_MNIST_CLASSES


def test_auto_prefers_explicit_root_over_bundled(tmp_path):
    images, _ = _fake_split(tmp_path / "FashionMNIST" / "raw", 20, gz=False)
    data = load_fashion_mnist("test", root=tmp_path)
    assert data.source == "torchvision"
    assert len(data) == 20
    np.testing.assert_array_equal(data.x, images)


def test_auto_uses_pdro_data_then_falls_back_to_bundled(no_full_data, monkeypatch):
    env_root = no_full_data / "env-root"
    images, _ = _fake_split(env_root / "FashionMNIST" / "raw", 12, seed=5)
    monkeypatch.setenv("PDRO_DATA", str(env_root))
    data = load_fashion_mnist("test")
    assert (data.source, len(data)) == ("torchvision", 12)
    np.testing.assert_array_equal(data.x, images)

    monkeypatch.setenv("PDRO_DATA", str(no_full_data / "empty-root"))
    data = load_fashion_mnist("test")
    assert (data.source, len(data)) == ("bundled", 2000)


def test_debian_source_from_patched_folder(tmp_path, monkeypatch):
    images, labels = _fake_split(tmp_path / "deb", 7, split="train", gz=False, seed=3)
    monkeypatch.setattr(datasets, "DEBIAN_DIR", tmp_path / "deb")
    sources = fashion_mnist_sources(tmp_path / "root")
    assert [s.name for s in sources] == ["torchvision", "debian", "bundled"]
    assert [s.has("train") for s in sources] == [False, True, False]
    data = load_fashion_mnist("train", root=tmp_path / "root")
    assert (data.source, data.path, len(data)) == ("debian", tmp_path / "deb", 7)
    np.testing.assert_array_equal(data.x, images)
    np.testing.assert_array_equal(data.y, labels)


def test_train_split_without_full_data_is_a_helpful_error(no_full_data):
    with pytest.raises(ValueError) as info:
        load_fashion_mnist("train", root=no_full_data / "root")
    message = str(info.value)
    assert "train split not found" in message
    assert str(no_full_data / "root" / "FashionMNIST" / "raw") in message
    assert "dataset-fashion-mnist" in message
    assert "download=True" in message and "download_fashion_mnist" in message
    assert "PDRO_DATA" in message
    assert "only holds 2000 test images" in message
    with pytest.raises(ValueError, match="test split not found"):
        load_fashion_mnist("test", root=no_full_data / "root", source="torchvision")


def test_bad_arguments_and_inconsistent_files(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_fashion_mnist("val")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="source must be 'auto' or one of"):
        load_fashion_mnist("test", source="web")  # type: ignore[arg-type]
    raw = tmp_path / "FashionMNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte.gz", np.zeros((4, 28, 28), dtype=np.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: expected 4 labels.*found 3"):
        load_fashion_mnist("test", root=tmp_path)
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2, 10], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"expected labels in 0\.\.9, found 10"):
        load_fashion_mnist("test", root=tmp_path)


# --------------------------------------------------------------------------- bundled assets


def test_bundled_subset(tmp_path):
    data = load_fashion_mnist("test", root=tmp_path, source="bundled")
    assert data.source == "bundled"
    assert data.path == BUNDLED_DIR
    assert data.x.shape == (2000, 28, 28) and data.x.dtype == np.uint8
    assert data.y.shape == (2000,) and data.y.dtype == np.int64
    assert np.bincount(data.y, minlength=10).tolist() == [200] * 10
    assert int(data.x.max()) == 255 and int(data.x.min()) == 0
    x, y = data.tensors()
    assert x.shape == (2000, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (2000,) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    torch.testing.assert_close(x[:, 0] * 255, torch.tensor(data.x.astype(np.float32)))
    assert y.tolist() == data.y.tolist()
    assert not data.x.flags.writeable
    sizes = [(BUNDLED_DIR / n).stat().st_size for n in
             ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")]
    assert sum(sizes) < 1_000_000


def test_bundled_indices_match_original(tmp_path):
    indices = np.loadtxt(BUNDLED_DIR / "indices.txt", dtype=np.int64)
    assert indices.shape == (2000,)
    assert np.all(np.diff(indices) > 0) and indices[0] >= 0 and indices[-1] < 10000
    readme = (BUNDLED_DIR / "README.md").read_text()
    assert "MIT" in readme and "Zalando" in readme and "python bench/make_assets.py" in readme
    debian = fashion_mnist_sources(tmp_path)[1]
    if not debian.has("test"):
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    full = load_fashion_mnist("test", source="debian")
    bundled = load_fashion_mnist("test", source="bundled")
    np.testing.assert_array_equal(bundled.x, full.x[indices])
    np.testing.assert_array_equal(bundled.y, full.y[indices])


def test_gallery():
    bundled = load_fashion_mnist("test", source="bundled")
    indices = np.loadtxt(BUNDLED_DIR / "indices.txt", dtype=np.int64).tolist()
    slugs = [re.sub(r"[^a-z0-9]+", "-", c.lower()).strip("-") for c in FASHION_MNIST_CLASSES]
    files = sorted(GALLERY_DIR.glob("*.png"))
    assert len(files) == 30
    per_class = {s: 0 for s in slugs}
    for file in files:
        match = re.fullmatch(r"(\d{5})_([a-z0-9-]+)\.png", file.name)
        assert match, file.name
        original, slug = int(match.group(1)), match.group(2)
        pos = indices.index(original)
        assert slugs[int(bundled.y[pos])] == slug
        per_class[slug] += 1
        with Image.open(file) as image:
            assert image.size == (28, 28) and image.mode == "L"
            np.testing.assert_array_equal(np.asarray(image), bundled.x[pos])
    assert per_class == {s: 3 for s in slugs}
