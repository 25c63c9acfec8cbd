"""Writing files so that a reader never sees half a file and a failure leaves nothing behind.

Every file the project writes (PNG images, weights, checkpoints, JSON cards) goes through
:func:`atomic_write`: the bytes go to a temporary file beside the target, are flushed to
disk, and replace the target in one :func:`os.replace`. When anything fails (a full disk,
a read-only folder) the temporary file is removed, the previous version of the target is
left as it was, and one :class:`WriteError` says what happened in one line.

Nothing but a regular file is ever replaced: a folder, a device, a FIFO, a socket or a
symbolic link at the target is refused (:data:`NOT_REGULAR`), so ``--out /dev/full`` or a
link into another folder cannot turn into a file. With ``replace=False`` an existing file is
refused too (:data:`EXISTS`), and the check is atomic: the temporary file is hard-linked to
the target, which fails if anything appeared there in the meantime. The command line writes
its ``--out`` this way unless ``--force`` is given (:func:`check_output` refuses before any work).
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Any

__all__ = ["EXISTS", "NOT_REGULAR", "WRITE_FAILED", "WriteError", "atomic_save", "atomic_write", "check_output",
           "check_writable"]

WRITE_FAILED = "could not write {name} in {folder}: {reason}"
NOT_REGULAR = "refusing to write {path}: it is {kind}, not a regular file"
EXISTS = "refusing to replace {path}: it exists (pass --force to replace it)"


class WriteError(OSError):
    """A file could not be written; the message is one line and the target is unchanged."""


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, replace: bool = True) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; return the path.

    Args:
        path: The target file.
        data: Its content.
        replace: Replace an existing regular file (default). ``False`` refuses it.

    Raises:
        WriteError: the folder or the file cannot be written (full disk, read-only folder,
            missing permissions), the target is not a regular file, or it exists and
            ``replace=False``. Nothing is left behind and an existing ``path`` is untouched.
    """
    target = Path(path)
    check_output(target, force=replace)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            if replace:
                check_output(target, force=True)  # still a regular file (or nothing) just before the rename
                os.replace(temporary, target)
            else:
                _place_new(temporary, target)
        except BaseException:
            _remove(temporary)
            raise
    except WriteError:
        raise
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        raise WriteError(WRITE_FAILED.format(name=target.name, folder=target.parent, reason=reason)) from None
    return target


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (serialised in memory, then :func:`atomic_write`)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, buffer.getvalue())


def check_output(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Refuse an output path that must not be written: anything but a regular file, or an existing
    file unless ``force``. Call it before long work, so a refusal costs nothing.

    Raises:
        WriteError: one line, :data:`NOT_REGULAR` or :data:`EXISTS`.
    """
    target = Path(path)
    kind = _special_kind(target)
    if kind is not None:
        raise WriteError(NOT_REGULAR.format(path=target, kind=kind))
    if not force and target.exists():
        raise WriteError(EXISTS.format(path=target))
    return target


def check_writable(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` if needed and check a file can be written there, before any long work.

    Raises:
        WriteError: the folder cannot be created or written.
    """
    folder = Path(folder)
    probe = atomic_write(folder / ".write-check", b"")
    _remove(probe)
    return folder


def _special_kind(path: Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file (``"a folder"``, ...), else ``None``."""
    import stat

    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError:
        return None  # the write itself will fail with its own reason
    if stat.S_ISREG(mode):
        return None
    for test, kind in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def _place_new(temporary: Path, target: Path) -> None:
    """Give ``temporary`` the name ``target`` only if nothing is there (a hard link fails on any entry)."""
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise WriteError(EXISTS.format(path=target)) from None
    except OSError:  # a file system without hard links: check, then rename (not atomic against a racer)
        if os.path.lexists(target):
            raise WriteError(EXISTS.format(path=target)) from None
        os.replace(temporary, target)
        return
    _remove(temporary)


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
