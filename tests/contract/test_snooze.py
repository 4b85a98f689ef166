"""Snooze through the queue's API, on every backend: a Running job back to Queued for
later, its attempt not counted, fenced by the worker and by the attempt.

The clock is the injected FakeClock (``make_queue`` gives every queue the test's clock):
"later" is when the test moves it, never a sleep.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest

import jobledger
from jobledger import (
    ConfigError,
    JobConflict,
    JobNotFound,
    JobStatus,
    Snooze,
    WaitTimeout,
    _waiting,
)
from jobledger._clock import iso_utc

WAIT = 60  # seconds: only a bound on a hang, never a synchronisation


def test_a_snoozed_job_is_queued_for_later_with_its_attempt_not_counted(make_queue, clock):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="s", max_attempts=1)
    job = q.claim()
    assert job.attempts == 1
    snoozed = q.snooze(job, 30)
    assert snoozed.status is JobStatus.QUEUED
    assert snoozed.attempts == 0  # as before the claim: max_attempts=1 still has its one
    assert snoozed.run_after == iso_utc(clock.now() + dt.timedelta(seconds=30))
    assert snoozed.worker is None and snoozed.error_message is None
    assert make_queue().get("s") == snoozed  # stored, as another process reads it
    assert q.counts()["Queued"] == 1 and q.counts()["Failed"] == 0
    assert q.queued_by_type()["T"] == (0, 1, snoozed.run_after)  # delayed, not due
    assert q.claim() is None  # not served before its time
    clock.advance(seconds=29.5)
    assert q.claim() is None
    clock.advance(seconds=0.5)
    again = q.claim()
    assert again.job_id == "s" and again.attempts == 1 and again.run_after is None
    assert q.complete("s", "woke").status is JobStatus.COMPLETED


def test_a_snooze_takes_a_timedelta_keeps_the_last_failure_and_is_not_a_retry(make_queue, clock):
    q = make_queue(retry_delay=60)
    q.enqueue({"type": "T"}, job_id="j", max_attempts=2)
    q.fail(q.claim().job_id, ValueError("flaky"))
    clock.advance(seconds=60)
    job = q.claim()
    assert job.attempts == 2  # the last one max_attempts allows
    snoozed = q.snooze(job, dt.timedelta(minutes=5))
    assert snoozed.attempts == 1 and snoozed.error_message == "ValueError: flaky"
    assert snoozed.run_after == iso_utc(clock.now() + dt.timedelta(minutes=5))
    clock.advance(minutes=5)
    assert q.claim().attempts == 2  # still allowed: the snoozed attempt did not count
    assert q.fail("j", "bad again").status is JobStatus.FAILED


def test_a_snooze_of_zero_seconds_is_due_at_once(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="now")
    job = q.claim()
    assert q.snooze(job.job_id, 0).status is JobStatus.QUEUED
    assert q.claim().job_id == "now"


def test_only_the_jobs_own_worker_may_snooze_it(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="mine")
    q.enqueue({"type": "T"}, job_id="waiting")
    job = q.claim()
    other = make_queue()
    other.claim(types=["nothing"])  # a worker of its own
    with pytest.raises(JobConflict, match="cannot snooze job mine"):
        other.snooze("mine", 10)
    with pytest.raises(JobConflict):
        other.snooze(job, 10)
    with pytest.raises(JobConflict, match="it is Queued"):
        q.snooze("waiting", 10)  # not Running
    with pytest.raises(JobNotFound):
        q.snooze("missing", 10)
    assert q.get("mine").status is JobStatus.RUNNING and q.get("mine").attempts == 1
    q.complete("mine")
    with pytest.raises(JobConflict):
        q.snooze(job, 10)  # finished


def test_a_snooze_from_an_earlier_attempt_is_refused(make_queue, clock):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="j")
    first = q.claim()
    q.requeue("j")  # given back (as at a stop): attempt not counted either
    clock.advance(seconds=1)
    second = q.claim()
    # Same worker, same attempt number: only the start tells the attempts apart.
    assert (second.worker, second.attempts) == (first.worker, first.attempts)
    assert second.started != first.started
    with pytest.raises(JobConflict, match="not in the attempt 1"):
        q.snooze(first, 60)
    assert q.get("j").status is JobStatus.RUNNING
    assert q.snooze(second, 60).status is JobStatus.QUEUED


def test_a_job_whose_cancel_was_asked_ends_cancelled_when_it_snoozes(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="j")
    job = q.claim()
    q.cancel("j")
    ended = q.snooze(job, 60)
    assert ended.status is JobStatus.CANCELLED and ended.run_after is None
    assert "snoozed" in ended.error_message
    assert q.claim() is None


def test_a_snooze_must_be_a_duration_of_zero_or_more(make_queue):
    for bad in (-1, float("nan"), "10", True):
        with pytest.raises(ConfigError, match="Snooze's seconds"):
            Snooze(bad)
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="j")
    job = q.claim()
    with pytest.raises(ConfigError):
        q.snooze(job, -5)
    assert q.get("j").status is JobStatus.RUNNING
    assert Snooze(dt.timedelta(minutes=1)).seconds == 60.0
    assert issubclass(jobledger.Snooze, Exception)


def test_a_wait_goes_on_through_a_snooze_and_ends_when_one_cancels(make_queue, monkeypatch, clock):
    # An hour before the wait's first and every later look: only a wake-up ends it.
    monkeypatch.setattr(_waiting, "FIRST_POLL", 3600.0)
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="j")
    q.snooze(q.claim(), 60)
    with pytest.raises(WaitTimeout):
        q.wait("j", timeout=0)  # a snooze is no outcome: the job is Queued
    clock.advance(seconds=60)
    again = q.claim()
    assert again is not None and again.job_id == "j"
    reads = threading.Semaphore(0)
    read = q.backend.get

    def counted(job_id: str):
        record = read(job_id)
        reads.release()
        return record

    monkeypatch.setattr(q.backend, "get", counted)
    outcome: list[object] = []

    def wait() -> None:
        try:
            outcome.append(q.wait("j", timeout=WAIT, poll_interval=3600))
        except jobledger.JobLedgerError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert reads.acquire(timeout=WAIT)  # it has read the job Running: it now waits
    q.cancel("j")  # asked of its worker: still Running, the wait goes on
    assert q.snooze(again, 60).status is JobStatus.CANCELLED  # ...until the snooze ends it
    waiter.join(WAIT)
    assert not waiter.is_alive()
    assert isinstance(outcome[0], jobledger.JobCancelled)
