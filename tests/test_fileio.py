"""core.fileio: atomic writes that leave the old file intact and nothing behind when the disk says no."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from core import fileio
from core.fileio import WriteError, atomic_save, atomic_write, check_writable


def test_atomic_write_replaces_the_file(tmp_path):
    path = atomic_write(tmp_path / "sub" / "a.json", "one")
    atomic_write(path, b"two")
    assert path.read_bytes() == b"two" and os.listdir(path.parent) == ["a.json"]


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = atomic_write(tmp_path / "checkpoint.pt", b"good")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio.os, "fsync", full)
    with pytest.raises(WriteError) as err:
        atomic_save({"w": torch.zeros(3)}, path)
    assert str(err.value) == f"could not write checkpoint.pt in {tmp_path}: No space left on device"
    assert path.read_bytes() == b"good" and os.listdir(tmp_path) == ["checkpoint.pt"]


def test_check_writable_refuses_a_folder_that_cannot_exist(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match="could not write .write-check in .*file/out: Not a directory"):
        check_writable(tmp_path / "file" / "out")
    assert check_writable(tmp_path / "new") == tmp_path / "new" and os.listdir(tmp_path / "new") == []
