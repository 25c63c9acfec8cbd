"""Long work in a background thread that a user interface can watch and cancel.

The app trains models while the page keeps answering: the page starts a :class:`Job`,
polls :attr:`Job.status` a few times a second to draw a progress bar, and a Cancel button
calls :meth:`Job.cancel`. The work function receives two callables, ``report(fraction,
text)`` and ``should_stop()``, and is expected to poll ``should_stop`` and return early
(:func:`core.training.train_model` does, between steps).

Example::

    job = Job(lambda report, should_stop: slow_sum(report, should_stop)).start()
    while not job.done:
        print(job.status.fraction, job.status.text)
        time.sleep(0.5)
    job.result()  # the return value, or the work's exception raised here
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
Report = Callable[[float, str], None]
ShouldStop = Callable[[], bool]


@dataclass(frozen=True)
class JobStatus:
    """A snapshot: progress in [0, 1], a line of text, and the time the job has run."""

    fraction: float
    text: str
    seconds: float
    done: bool
    cancelled: bool


class Job(Generic[T]):
    """Run ``work(report, should_stop)`` in a daemon thread; watch it, cancel it, collect its result."""

    def __init__(self, work: Callable[[Report, ShouldStop], T], *, label: str = "job") -> None:
        self.label = label  # for people: what the job does
        self._work = work
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._fraction, self._text = 0.0, "starting"
        self._result: T | None = None
        self._error: BaseException | None = None
        self._started = self._ended = None
        self._thread = threading.Thread(target=self._run, name=label, daemon=True)

    def start(self) -> Job[T]:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def _report(self, fraction: float, text: str) -> None:
        with self._lock:
            self._fraction = min(max(float(fraction), 0.0), 1.0)
            self._text = text

    def _run(self) -> None:
        try:
            self._result = self._work(self._report, self._stop.is_set)
        except BaseException as err:  # handed to the caller by result()
            self._error = err
        finally:
            self._ended = time.monotonic()

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


__all__ = ["Job", "JobStatus"]
