"""Background jobs: progress, result, errors, cancellation."""

from __future__ import annotations

import threading

import pytest

from core.services.jobs import Job


def test_job_reports_progress_and_returns_its_result():
    halfway, gate = threading.Event(), threading.Event()

    def work(report, should_stop):
        report(0.5, "half way")
        halfway.set()
        gate.wait(5)
        report(1.5, "done")  # clipped to 1
        return 42

    job = Job(work).start()
    assert halfway.wait(5)
    status = job.status
    assert status.text == "half way"
    assert (status.fraction, status.done, status.cancelled) == (0.5, False, False)
    with pytest.raises(RuntimeError, match="still running"):
        job.result()
    gate.set()
    assert job.wait(5)
    assert job.result() == 42 and job.status.fraction == 1.0 and job.status.done and job.error is None


def test_cancel_is_seen_by_the_work_and_errors_reach_the_caller():
    def work(report, should_stop):
        steps = 0
        while not should_stop():
            steps += 1
        return steps

    job = Job(work).start()
    job.cancel()
    assert job.wait(5) and job.cancelled and job.result() >= 0

    def broken(report, should_stop):
        raise ValueError("bad input")

    job = Job(broken).start()
    assert job.wait(5)
    assert isinstance(job.error, ValueError)
    with pytest.raises(ValueError, match="bad input"):
        job.result()


def test_job_slots_bound_concurrent_jobs_and_come_back_however_the_work_ends():
    from core.services.jobs import BUSY, JobSlots, JobsBusy

    slots = JobSlots(2)
    release = threading.Event()

    def wait(report, should_stop):
        release.wait(5)
        return 1

    def fail(report, should_stop):
        raise ValueError("boom")

    first, second = Job(wait, slots=slots).start(), Job(wait, slots=slots).start()
    assert slots.running == 2
    with pytest.raises(JobsBusy, match=BUSY.format(running=2, limit=2)):
        Job(wait, slots=slots).start()
    release.set()
    assert first.wait(5) and second.wait(5) and slots.running == 0
    failing = Job(fail, slots=slots).start()
    assert failing.wait(5) and slots.running == 0 and isinstance(failing.error, ValueError)
    with pytest.raises(ValueError):
        JobSlots(0)


def test_a_session_holder_cancels_its_job_when_released():
    from pages.ui.resources import SessionJobs, _release_session_jobs

    started = threading.Event()

    def work(report, should_stop):
        started.set()
        while not should_stop():
            threading.Event().wait(0.01)
        return "stopped"

    holder = SessionJobs(job=Job(work).start())
    assert started.wait(5)
    _release_session_jobs(holder)  # what Streamlit calls when the session ends
    assert holder.job.wait(5) and holder.job.cancelled and holder.job.result() == "stopped"


def test_cancel_stops_a_job_that_is_still_loading_its_data(tmp_path):
    """Loading has no training step to poll between: Cancel must still free the slot within 2 s (core.cancel)."""
    import time

    import numpy as np
    from PIL import Image

    from core.data import load_group_dataset
    from core.services.jobs import JobSlots

    noise = np.random.default_rng(0).integers(0, 256, (1200, 1200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "big.png")  # ~40 ms to decode and resize
    rows = [f"big.png,{k % 2},{k % 3 == 0}" for k in range(2000)]  # the same file 2,000 times: ~80 s to load
    (tmp_path / "metadata.csv").write_text("path,label,group\n" + "\n".join(rows) + "\n")
    slots = JobSlots(1)
    loading = threading.Event()

    def work(report, should_stop):
        loading.set()
        return load_group_dataset("csv", "train", root=tmp_path)

    job = Job(work, slots=slots).start()
    assert loading.wait(5)
    time.sleep(0.5)
    assert not job.done and slots.running == 1
    cancelled_at = time.monotonic()
    job.cancel()
    assert job.wait(2.0), "still loading 2 s after Cancel"
    assert time.monotonic() - cancelled_at < 2.0
    assert slots.running == 0 and job.result() is None and job.status.cancelled
