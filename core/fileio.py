"""Writing files so that a reader never sees half a file and a failure leaves nothing behind.

Every file the project writes (PNG images, weights, checkpoints, JSON cards) goes through
:func:`atomic_write`: the bytes go to a temporary file beside the target, are flushed to
disk, and replace the target in one :func:`os.replace`. When anything fails (a full disk,
a read-only folder) the temporary file is removed, the previous version of the target is
left as it was, and one :class:`WriteError` says what happened in one line.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Any

__all__ = ["WRITE_FAILED", "WriteError", "atomic_save", "atomic_write", "check_writable"]

WRITE_FAILED = "could not write {name} in {folder}: {reason}"


class WriteError(OSError):
    """A file could not be written; the message is one line and the target is unchanged."""


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; return the path.

    Raises:
        WriteError: the folder or the file cannot be written (full disk, read-only folder,
            missing permissions). Nothing is left behind and an existing ``path`` is untouched.
    """
    target = Path(path)
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
            os.replace(temporary, target)
        except BaseException:
            _remove(temporary)
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


def check_writable(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` if needed and check a file can be written there, before any long work.

    Raises:
        WriteError: the folder cannot be created or written.
    """
    folder = Path(folder)
    probe = atomic_write(folder / ".write-check", b"")
    _remove(probe)
    return folder


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
