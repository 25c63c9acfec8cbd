"""core.safepaths and its users: no visitor-named path, CSV row or zip member reads a file outside its root."""

from __future__ import annotations

import io
import os
import re
import stat
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data import load_group_dataset
from core.safepaths import (
    DATA_ROOTS_VARIABLE,
    OUTSIDE,
    ZIP_BAD,
    ZIP_MEMBER,
    data_roots,
    extract_zip,
    resolve_inside,
    unpacked,
)

SECRET = "top-secret-line-of-a-server-file"


@pytest.fixture
def layout(tmp_path) -> tuple[Path, Path]:
    """A data root with one image folder, and a secret file beside (outside) the root."""
    root = tmp_path / "root"
    (root / "data" / "imgs").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(root / "data" / "imgs" / f"{i}.png")
    secret = tmp_path / "secret.csv"
    secret.write_text(f"path,label,group\n{SECRET},a,b\n")
    return root, secret


def test_resolve_inside_keeps_paths_in_the_root(layout):
    root, _ = layout
    assert resolve_inside(root, "data") == (root / "data").resolve()
    assert resolve_inside(root, "data/imgs/0.png") == (root / "data" / "imgs" / "0.png").resolve()
    assert resolve_inside(root, ".") == root.resolve()


@pytest.mark.parametrize("name", ["/etc/passwd", "../secret.csv", "data/../../secret.csv", "..", "C:\\x",
                                  "data\\..\\..\\secret.csv", "/proc/self/environ", "a\x00b"])
def test_resolve_inside_refuses_escapes_with_one_message(layout, name):
    root, _ = layout
    with pytest.raises(ValueError) as err:
        resolve_inside(root, name, what="the data folder", shown_root="root")
    assert str(err.value) == OUTSIDE.format(what="the data folder", root="root")


def test_a_symlink_out_of_the_root_is_refused_and_says_nothing_of_existence(layout, tmp_path):
    root, secret = layout
    (root / "link").symlink_to(secret)
    (root / "dirlink").symlink_to(tmp_path)
    messages = set()
    for name in ("link", "dirlink/secret.csv", "dirlink/does-not-exist"):
        with pytest.raises(ValueError) as err:
            resolve_inside(root, name, shown_root="root")
        messages.add(str(err.value))
    assert len(messages) == 1  # an existing and a missing file outside read the same


def test_data_roots_come_from_the_environment_only(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    assert data_roots({}) == ()
    assert data_roots({DATA_ROOTS_VARIABLE: f"{a}{os.pathsep}{b}{os.pathsep}{a}"}) == (a.resolve(),)  # b is missing


# --------------------------------------------------------------------------- CSV rows


@pytest.mark.parametrize("row", ["/etc/passwd", "../secret.csv", "imgs/../../../secret.csv", "link.png"])
def test_a_csv_row_cannot_point_outside_its_folder(layout, row):
    root, secret = layout
    (root / "data" / "link.png").symlink_to(secret)
    rows = [f"imgs/{i}.png,{i % 2},{i % 2}" for i in range(4)] + [f"{row},0,1"]
    (root / "data" / "metadata.csv").write_text("path,label,group,split\n" + "\n".join(r + ",train" for r in rows))
    with pytest.raises(ValueError) as err:
        load_group_dataset("csv", "train", root=root / "data", size=8)
    message = str(err.value)
    assert "row 5 (line 6)" in message and "must be a relative path inside the CSV's folder" in message
    assert SECRET not in message and "\n" not in message


def test_a_server_file_named_as_the_csv_is_not_echoed(layout):
    _, secret = layout
    secret.write_text(f"{SECRET}:x:0:0\nsecond line\n")
    with pytest.raises(ValueError) as err:
        load_group_dataset("csv", "train", root=secret)
    assert "missing column(s) path, label, group" in str(err.value) and SECRET not in str(err.value)


# --------------------------------------------------------------------------- zip uploads


def _zip(members: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_extract_zip_unpacks_a_data_set_that_loads(layout, tmp_path):
    root, _ = layout
    members = {f"imgs/{i}.png": (root / "data" / "imgs" / f"{i}.png").read_bytes() for i in range(4)}
    members["metadata.csv"] = ("path,label,group,split\n" + "\n".join(
        f"imgs/{i}.png,{i % 2},{i // 2},train" for i in range(4)) + "\n").encode()
    with unpacked(_zip(members)) as folder:
        data = load_group_dataset("csv", "train", root=folder, size=8)
        assert len(data) == 4 and data.classes == ("0", "1")
        kept = folder
    assert not kept.exists()  # the private folder is gone when the block ends


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt", "C:/evil.txt"])
def test_extract_zip_refuses_escaping_members_before_writing(tmp_path, name):
    data = _zip({"ok.txt": b"fine", name: b"evil"})
    with pytest.raises(ValueError, match=re.escape(ZIP_MEMBER.format(index=2))):
        extract_zip(data, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_extract_zip_refuses_symlink_members(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(ValueError, match=re.escape(ZIP_MEMBER.format(index=1))):
        extract_zip(buffer.getvalue(), tmp_path / "out")


def test_extract_zip_limits_members_and_size_and_refuses_a_bomb_without_inflating(tmp_path):
    with pytest.raises(ValueError, match="holds 3 members, the limit is 2"):
        extract_zip(_zip({"a": b"1", "b": b"2", "c": b"3"}), tmp_path / "a", max_members=2)
    bomb = _zip({"zeros.bin": bytes(256 * 2**20)})  # 256 MiB of zeros in ~250 KB
    assert len(bomb) < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="declare 256 MB inflated, the limit is 64 MB"):
            extract_zip(bomb, tmp_path / "b", max_bytes=64 * 2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # bound: 8 MiB of Python allocations; nothing was inflated
    assert not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match=re.escape(ZIP_BAD)):
        extract_zip(b"not a zip at all", tmp_path / "c")
