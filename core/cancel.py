"""Cancellation that reaches code which takes no callback: loading, decoding and unpacking data.

A :class:`core.services.jobs.Job` runs its work inside :func:`cancellable` with its own stop
flag; the loops that can take long without a training step (one image file after another,
one zip member after another) call :func:`check_cancelled`, which raises :class:`Cancelled`
once the flag is set. The flag lives in a :class:`contextvars.ContextVar`, so each job's
thread sees its own and code outside a job is never stopped.

Example::

    with cancellable(stop_event.is_set):
        data = load_group_dataset("csv", "train", root=folder)  # raises Cancelled soon after the event is set
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["CANCELLED", "Cancelled", "cancellable", "check_cancelled"]

CANCELLED = "cancelled"
_SHOULD_STOP: ContextVar[Callable[[], bool] | None] = ContextVar("should_stop", default=None)


class Cancelled(Exception):
    """The work was cancelled while it loaded, decoded or unpacked data."""


@contextmanager
def cancellable(should_stop: Callable[[], bool]) -> Iterator[None]:
    """Within the block, :func:`check_cancelled` raises :class:`Cancelled` once ``should_stop()`` is true."""
    token = _SHOULD_STOP.set(should_stop)
    try:
        yield
    finally:
        _SHOULD_STOP.reset(token)


def check_cancelled() -> None:
    """Raise :class:`Cancelled` when the enclosing :func:`cancellable` block's flag is set (else nothing)."""
    should_stop = _SHOULD_STOP.get()
    if should_stop is not None and should_stop():
        raise Cancelled(CANCELLED)
