"""Long work in a background thread that a user interface can watch and cancel.

The app trains models while the page keeps answering: the page starts a :class:`Job`,
polls :attr:`Job.status` a few times a second to draw a progress bar, and a Cancel button
calls :meth:`Job.cancel`. The work function receives two callables, ``report(fraction,
text)`` and ``should_stop()``, and is expected to poll ``should_stop`` and return early
(:func:`core.training.train_model` does, between steps). Loops that take no callback (loading
image files, unpacking a zip) stop through :mod:`core.cancel`: a job cancelled there ends with
the result ``None``.

Example::

    job = Job(lambda report, should_stop: slow_sum(report, should_stop)).start()
    while not job.done:
        print(job.status.fraction, job.status.text)
        time.sleep(0.5)
    job.result()  # the return value, or the work's exception raised here

A server bounds how many jobs run at once with :class:`JobSlots`: ``Job(..., slots=slots)``
takes a slot when it starts (or raises :class:`JobsBusy` with a one-line message) and gives
it back when the work ends, however it ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from core.cancel import Cancelled, cancellable
from core.progress import Report
from core.validation import check_positive_int

T = TypeVar("T")
BUSY = "{running} of {limit} background jobs are already running on this server; try again when one ends"
ShouldStop = Callable[[], bool]


@dataclass(frozen=True)
class JobStatus:
    """A snapshot: progress in [0, 1], a line of text, and the time the job has run."""

    fraction: float
    text: str
    seconds: float
    done: bool
    cancelled: bool


class JobsBusy(RuntimeError):
    """Every slot of a :class:`JobSlots` is taken."""


class JobSlots:
    """At most ``limit`` jobs of this pool run at once (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = check_positive_int(limit, name="limit")
        self._running = 0
        self._lock = threading.Lock()

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    def take(self) -> None:
        """Take a slot, or raise :class:`JobsBusy`."""
        with self._lock:
            if self._running >= self.limit:
                raise JobsBusy(BUSY.format(running=self._running, limit=self.limit))
            self._running += 1

    def give_back(self) -> None:
        with self._lock:
            self._running = max(self._running - 1, 0)


class Job(Generic[T]):
    """Run ``work(report, should_stop)`` in a daemon thread; watch it, cancel it, collect its result."""

    def __init__(self, work: Callable[[Report, ShouldStop], T], *, label: str = "job",
                 slots: JobSlots | None = None) -> None:
        self.label = label  # for people: what the job does
        self._work = work
        self._slots = slots
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._fraction, self._text = 0.0, "starting"
        self._result: T | None = None
        self._error: BaseException | None = None
        self._started = self._ended = None
        self._thread = threading.Thread(target=self._run, name=label, daemon=True)

    def start(self) -> Job[T]:
        """Start the work; with ``slots``, first take one (raises :class:`JobsBusy` when none is free)."""
        if self._slots is not None:
            self._slots.take()
        self._started = time.monotonic()
        try:
            self._thread.start()
        except BaseException:
            if self._slots is not None:
                self._slots.give_back()
            raise
        return self

    def _report(self, fraction: float, text: str) -> None:
        with self._lock:
            self._fraction = min(max(float(fraction), 0.0), 1.0)
            self._text = text

    def _run(self) -> None:
        try:
            with cancellable(self._stop.is_set):  # loading and unpacking stop too (core.cancel)
                self._result = self._work(self._report, self._stop.is_set)
        except Cancelled:
            self._result = None  # cancelled before it had a result
        except BaseException as err:  # handed to the caller by result()
            self._error = err
        finally:
            self._ended = time.monotonic()
            if self._slots is not None:
                self._slots.give_back()

    def cancel(self) -> None:
        """Ask the work to stop at its next ``should_stop()`` poll."""
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    @property
    def done(self) -> bool:
        return self._started is not None and not self._thread.is_alive()

    @property
    def status(self) -> JobStatus:
        with self._lock:
            fraction, text = self._fraction, self._text
        end = self._ended if self._ended is not None else time.monotonic()
        seconds = 0.0 if self._started is None else end - self._started
        return JobStatus(fraction, text, seconds, self.done, self.cancelled)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work ends (or ``timeout`` seconds); return whether it ended."""
        self._thread.join(timeout)
        return self.done

    def result(self) -> T:
        """The work's return value; its exception is raised here. Only once :attr:`done`."""
        if not self.done:
            raise RuntimeError("the job is still running; check job.done first")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

    @property
    def error(self) -> BaseException | None:
        """The exception the work raised, if any (after :attr:`done`)."""
        return self._error if self.done else None


__all__ = ["BUSY", "Job", "JobSlots", "JobStatus", "JobsBusy"]
