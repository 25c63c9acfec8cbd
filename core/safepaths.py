"""Paths that stay inside a root, and uploaded zip archives unpacked within limits.

A server that shows this project to a room must never read a file because a visitor named
it. Three tools keep every path a visitor (or a CSV file) gives inside a folder that the
person running the server chose:

* :func:`data_roots` reads the allow-list of data folders from the environment variable
  ``PDRO_DATA_ROOTS`` (folders separated by ``os.pathsep``); without it, visitors can name
  no folder at all and can only upload their data.
* :func:`resolve_inside` resolves a relative path strictly inside a root: no absolute path,
  no ``..``, no symbolic link that leads out. Its refusal is one sentence that never says
  whether the path exists.
* :func:`extract_zip` unpacks an uploaded archive into a folder after checking, on the
  archive's central directory and before inflating anything, the number of members, their
  declared sizes and their names (no absolute paths, no ``..``, no links).

Example::

    root = resolve_inside("/srv/data", "celeba")      # /srv/data/celeba, or ValueError
    extract_zip(uploaded_bytes, tmp_folder)           # the members, checked, under tmp_folder
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath, PureWindowsPath

from core.cancel import check_cancelled

__all__ = [
    "DATA_ROOTS_VARIABLE",
    "MAX_ZIP_BYTES",
    "MAX_ZIP_MEMBERS",
    "OUTSIDE",
    "ZIP_BAD",
    "ZIP_MEMBER",
    "ZIP_TOO_LARGE",
    "ZIP_TOO_MANY",
    "data_roots",
    "extract_zip",
    "resolve_inside",
    "unpacked",
]

DATA_ROOTS_VARIABLE = "PDRO_DATA_ROOTS"
MAX_ZIP_MEMBERS = 20_000  # files in one uploaded data set
MAX_ZIP_BYTES = 512 * 2**20  # their declared sizes, inflated, in total

OUTSIDE = "{what} must be a relative path inside {root}, without '..' or links that lead out"
ZIP_BAD = "not a zip archive (expected a .zip of images and a CSV file)"
ZIP_TOO_MANY = "the archive holds {count} members, the limit is {limit}"
ZIP_TOO_LARGE = "the archive's members declare {size:.0f} MB inflated, the limit is {limit:.0f} MB"
ZIP_MEMBER = "the archive member #{index} has an absolute name, '..' or is a link; refused"
_ZIP_LIED = "the archive member #{index} inflates to more than it declares; refused"


def data_roots(environ: dict[str, str] | None = None) -> tuple[Path, ...]:
    """The data folders a visitor of the app may choose from, as the server's person set them.

    Read from ``PDRO_DATA_ROOTS`` (folders separated by ``os.pathsep``); folders that do not
    exist are left out. Empty when the variable is unset: visitors then upload their data.
    """
    text = (os.environ if environ is None else environ).get(DATA_ROOTS_VARIABLE, "")
    roots = []
    for part in text.split(os.pathsep):
        part = part.strip()
        if part and Path(part).expanduser().is_dir():
            roots.append(Path(part).expanduser().resolve())
    return tuple(dict.fromkeys(roots))


def resolve_inside(root: str | os.PathLike[str], relative: str | os.PathLike[str], *, what: str = "the path",
                   shown_root: str | None = None) -> Path:
    """``root / relative``, resolved, refused unless it stays inside ``root``.

    The check is on the path's text first (absolute, ``..``, a drive) and then on the
    resolved path (every symbolic link followed), so a link inside the root that points out
    of it is refused as well. The message is the same whether or not the path exists.

    Args:
        root: The folder that must contain the result.
        relative: A relative path ("" or "." for the root itself).
        what: What the path is, for the message ("the data folder", "row 3's image").
        shown_root: How the message names the root (default: its path).

    Raises:
        ValueError: the path is absolute, holds ``..``, or resolves outside ``root``.
    """
    text = os.fspath(relative)
    base = Path(root).resolve()
    refusal = ValueError(OUTSIDE.format(what=what, root=shown_root if shown_root is not None else base))
    if "\x00" in text or _escapes(text):
        raise refusal
    candidate = (base / text).resolve()
    if candidate != base and base not in candidate.parents:
        raise refusal
    return candidate


def extract_zip(data: bytes, folder: str | os.PathLike[str], *, max_members: int = MAX_ZIP_MEMBERS,
                max_bytes: int = MAX_ZIP_BYTES) -> Path:
    """Unpack an uploaded zip archive into ``folder`` within limits; return the folder.

    Everything is checked on the central directory before a byte is inflated: the number of
    members, the total of their declared sizes, and every name (refused: absolute names,
    ``..``, drive letters, symbolic links). While inflating, a member that yields more than
    it declared is refused too, so a lying directory cannot exceed the limit.

    Raises:
        ValueError: not a zip archive, or over a limit, or a refused member (one line; the
            members are then removed again).
    """
    target = Path(folder)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise ValueError(ZIP_BAD) from None
    with archive:
        members = archive.infolist()
        if len(members) > max_members:
            raise ValueError(ZIP_TOO_MANY.format(count=len(members), limit=max_members))
        declared = sum(m.file_size for m in members)
        if declared > max_bytes:
            raise ValueError(ZIP_TOO_LARGE.format(size=declared / 2**20, limit=max_bytes / 2**20))
        for index, member in enumerate(members, start=1):
            if _escapes(member.filename) or stat.S_ISLNK(member.external_attr >> 16):
                raise ValueError(ZIP_MEMBER.format(index=index))
        target.mkdir(parents=True, exist_ok=True)
        for index, member in enumerate(members, start=1):
            check_cancelled()  # a job's Cancel stops the unpacking between two members
            path = resolve_inside(target, member.filename, what=f"archive member #{index}", shown_root="the archive")
            if member.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(member) as source, open(path, "wb") as sink:
                    left = member.file_size
                    while chunk := source.read(min(1 << 20, left + 1)):
                        left -= len(chunk)
                        if left < 0:
                            raise ValueError(_ZIP_LIED.format(index=index))
                        sink.write(chunk)
            except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError):
                raise ValueError(ZIP_BAD) from None
    return target


@contextmanager
def unpacked(data: bytes, *, shown_as: str = "the upload") -> Iterator[Path]:
    """An uploaded zip archive unpacked (:func:`extract_zip`) into a private temporary folder.

    The folder is deleted when the block ends, however it ends. A ``ValueError`` or
    ``OSError`` raised in the block names the folder ``shown_as`` instead of its server path.
    """
    with tempfile.TemporaryDirectory(prefix="pdro-upload-") as folder:
        try:
            yield extract_zip(data, folder)
        except (ValueError, OSError) as err:
            text = str(err)
            for form in {folder, str(Path(folder).resolve())}:
                text = text.replace(form, shown_as)
            raise ValueError(text) from None


def _escapes(name: str) -> bool:
    """Whether a path's text could leave the folder it is joined to (absolute, drive, '..')."""
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.is_absolute() or pure.drive or pure.root or ".." in pure.parts:
            return True
    return False
