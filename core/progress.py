"""The one progress type of long work: ``report(fraction, text)``.

Everything that runs for seconds or minutes and can tell how far it is (a comparison, a
fairness evaluation, a background job, a "train now" run) takes a :data:`Report`: called with
the fraction done, in [0, 1], and one line for people. Loops that only count (an attack's steps,
attacked batches) take a :data:`Counter` ``(done, total)``; :func:`counting` turns a counter of
one stage into reports of the whole. Training's per-step and per-epoch events carry its numbers
too (:class:`core.training.TrainProgress`, whose ``fraction`` feeds a :data:`Report`).
"""

from __future__ import annotations

from collections.abc import Callable

Report = Callable[[float, str], None]
Counter = Callable[[int, int], None]


def counting(report: Report | None, what: str, *, start: float = 0.0, span: float = 1.0) -> Counter:
    """A counter that reports ``start + span * done / total`` with ``"<what>: <done> of <total>"``.

    Example:
        >>> counter = counting(print, "under attack: wdro", start=0.5, span=0.5)
        >>> counter(128, 256)
        0.75 under attack: wdro: 128 of 256
    """

    def count(done: int, total: int) -> None:
        if report is not None:
            report(start + span * done / max(total, 1), f"{what}: {done} of {total}")

    return count


__all__ = ["Counter", "Report", "counting"]
