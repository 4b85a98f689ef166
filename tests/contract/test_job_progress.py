"""A running job's attempt on every backend: a cancel asked of its worker, its progress
(coalesced, fenced) and its checkpoints (durable, fenced, read back exactly by the next
attempt).

Workers run in threads; the tests wait on events (bounded), never sleep. Progress writes
are counted with a spy on the backend, under an injected monotonic clock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import jobledger
from jobledger import (
    InvalidPayload,
    Job,
    JobCancelled,
    JobConflict,
    JobProgress,
    JobQueue,
    JobStatus,
)
from jobledger._attempt_services import AttemptServices
from jobledger._clock import iso_utc

# -- helpers ----------------------------------------------------------------------------------


class Writes:
    """A spy on a queue's backend: the progress and checkpoint changes it was given."""

    def __init__(self, queue: JobQueue) -> None:
        self.changes = 0
        self.batches = 0
        self._inside = False  # a backend's transition may go through its transition_many
        backend: Any = queue.backend
        many, one = backend.transition_many, backend.transition

        def counted(n: int, call: Callable[[], Any]) -> Any:
            if self._inside:
                return call()
            self.batches += 1
            self.changes += n
            self._inside = True
            try:
                return call()
            finally:
                self._inside = False

        def transition_many(changes: list[Any], **kwargs: Any) -> Any:
            return counted(len(changes), lambda: many(changes, **kwargs))

        def transition(job_id: str, change: Any, **kwargs: Any) -> Any:
            return counted(1, lambda: one(job_id, change, **kwargs))

        backend.transition_many = transition_many
        backend.transition = transition


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _claimed(q: JobQueue, job_id: str) -> Job:
    job = q.claim()
    assert job is not None and job.job_id == job_id
    return job


@pytest.fixture
def running(make_queue) -> Iterator[Callable[..., tuple[JobQueue, AttemptServices, Job]]]:
    """``running(job_id)``: a queue, its attempt services (under a clock the test moves,
    no thread) and the claimed job with its Attempt attached."""
    made: list[AttemptServices] = []

    def make(job_id: str = "j", **enqueue: Any) -> tuple[JobQueue, AttemptServices, Job]:
        q = make_queue(retry_delay=0)
        q.enqueue({"type": "T", "n": 1}, job_id=job_id, **enqueue)
        job = _claimed(q, job_id)
        services = AttemptServices(q, monotonic=Ticks())
        made.append(services)
        return q, services, job.with_attempt(services.begin(job))

    yield make


def _serve(worker: jobledger.Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, kwargs={"until_empty": True}, daemon=True)
    thread.start()
    return thread


def _finish(thread: threading.Thread) -> None:
    thread.join(60)
    assert not thread.is_alive(), "the worker did not finish"


def _exactly(a: Any, b: Any) -> bool:
    """Equal, and of the same JSON types all the way down (1.0 is not 1, -0.0 not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_exactly(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_exactly(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


# -- cancelling a running job -----------------------------------------------------------------


def _stopping_handler(started: threading.Event, outcome: Callable[[Job], Any]) -> Any:
    """A handler that says it started, waits (bounded) to be asked to stop, then ends as
    ``outcome(job)`` says (``job.check()`` raises JobCancelled)."""

    def handler(job: Job) -> Any:
        started.set()
        assert job.attempt is not None
        assert job.attempt.cancel.wait(60), "the cancel never reached the handler"
        assert job.cancel_requested
        return outcome(job)

    return handler


def test_a_running_jobs_cancel_is_a_request_its_worker_ends_cancelled(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="long", max_attempts=5)
    started = threading.Event()
    worker = jobledger.Worker(
        q,
        {"T": _stopping_handler(started, lambda job: job.check())},
        handle_signals=False,
        cancel_poll=0.01,
    )
    thread = _serve(worker)
    assert started.wait(60)
    # Asked through another queue object, as another process would: the worker polls
    # (and on PostgreSQL hears the NOTIFY).
    asked = make_queue().cancel("long")
    assert asked.status is JobStatus.RUNNING and asked.cancel_requested_at is not None
    _finish(thread)
    job = q.get("long")
    assert job.status is JobStatus.CANCELLED and job.attempts == 1  # never retried
    assert job.worker is None and job.finished is not None
    assert "cancelled while running" in job.error_message
    assert "JobCancelled" in job.error_message and job.traceback is None
    assert job.cancel_requested_at == asked.cancel_requested_at
    assert q.claim() is None


def test_a_cancel_through_the_workers_own_queue_reaches_it_at_once(make_queue):
    # The poll is an hour: only the queue's own wake-up can deliver the request.
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="long")
    started = threading.Event()
    worker = jobledger.Worker(
        q,
        {"T": _stopping_handler(started, lambda job: job.check())},
        handle_signals=False,
        cancel_poll=3600,
    )
    thread = _serve(worker)
    assert started.wait(60)
    q.cancel("long")
    _finish(thread)
    assert q.get("long").status is JobStatus.CANCELLED


def test_a_handler_that_returns_a_result_anyway_completes_its_job(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="stubborn")
    started = threading.Event()
    worker = jobledger.Worker(
        q,
        {"T": _stopping_handler(started, lambda job: {"done": "anyway"})},
        handle_signals=False,
        cancel_poll=0.01,
    )
    thread = _serve(worker)
    assert started.wait(60)
    make_queue().cancel("stubborn")
    _finish(thread)
    job = q.get("stubborn")
    assert job.status is JobStatus.COMPLETED and job.result == {"done": "anyway"}
    assert job.cancel_requested_at is not None  # it was asked: the job says so


def test_a_handler_that_fails_after_the_cancel_is_cancelled_not_retried(make_queue):
    def fail(job: Job) -> None:
        raise ValueError("interrupted mid-epoch")

    q = make_queue()
    q.enqueue({"type": "T"}, job_id="j", max_attempts=5)
    started = threading.Event()
    worker = jobledger.Worker(
        q, {"T": _stopping_handler(started, fail)}, handle_signals=False, cancel_poll=0.01
    )
    thread = _serve(worker)
    assert started.wait(60)
    make_queue().cancel("j")
    _finish(thread)
    job = q.get("j")
    assert job.status is JobStatus.CANCELLED and job.attempts == 1
    assert "ValueError: interrupted mid-epoch" in job.error_message
    assert "ValueError" in job.traceback  # a real failure keeps its traceback


def test_a_handler_raising_job_cancelled_unasked_cancels_its_job(make_queue):
    def give_up(job: Job) -> None:
        raise JobCancelled(job.job_id)

    q = make_queue()
    q.enqueue({"type": "T"}, job_id="j", max_attempts=5)
    jobledger.Worker(q, {"T": give_up}, handle_signals=False).run(until_empty=True)
    job = q.get("j")
    assert job.status is JobStatus.CANCELLED and job.attempts == 1
    assert job.cancel_requested_at is not None


def test_a_dead_workers_cancel_requested_job_is_recovered_cancelled(make_queue):
    first = make_queue()
    first.enqueue({"type": "T"}, job_id="j", max_attempts=5)
    _claimed(first, "j")
    other = make_queue()
    assert other.cancel("j").status is JobStatus.RUNNING  # its worker is alive: asked
    first.close()  # ... and it dies before it stops the job
    [recovered] = other.recover()
    assert recovered.job_id == "j" and recovered.status is JobStatus.CANCELLED
    assert "died" in recovered.error_message and "cancelled" in recovered.error_message
    assert other.claim() is None
    assert other.counts()["Cancelled"] == 1


def test_a_worker_that_stops_first_cancels_instead_of_requeueing(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="j")
    _claimed(q, "j")
    make_queue().cancel("j")
    job = q.requeue("j")  # what a stopping Worker does with a job still running
    assert job.status is JobStatus.CANCELLED
    assert q.claim() is None


def test_a_retried_cancelled_job_runs_afresh_from_its_checkpoint(running):
    q, _, job = running("j")
    job.checkpoint({"epoch": 2})
    q.cancel("j")
    assert q.fail("j", JobCancelled("j")).status is JobStatus.CANCELLED
    again = q.retry("j")
    assert again.status is JobStatus.QUEUED and again.cancel_requested_at is None
    resumed = _claimed(q, "j")
    assert resumed.checkpoint_data == {"epoch": 2}


def test_a_cancel_seen_before_the_job_starts_is_set_on_its_attempt(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="j")
    job = _claimed(q, "j")
    services = AttemptServices(q)
    services.start(lambda: ["j"])  # claimed, not started: waiting its turn in a batch
    try:
        q.cancel("j")
        assert services.look_for_cancels() == {"j"}
        assert services.begin(job).cancel.is_set()
    finally:
        services.stop()


# -- progress ---------------------------------------------------------------------------------


def test_progress_is_coalesced_into_one_write_a_second_and_one_at_the_end(running, clock):
    q, services, job = running("j")
    writes = Writes(q)
    ticks: Any = services.monotonic
    for i in range(1, 51):
        job.progress(i, 100, f"step {i}")
    assert writes.changes == 0  # a report is not a write
    assert services.flush_progress() == 1
    assert q.get("j").progress_info == JobProgress(50.0, 100.0, "step 50", iso_utc(clock.now()))
    ticks.now += 0.5
    for i in range(51, 81):
        job.progress(i, 100)
    assert services.flush_progress() == 0  # written half a second ago: held
    assert q.get("j").progress_info.done == 50.0
    ticks.now += 0.5
    assert services.flush_progress() == 1
    stored = q.get("j").progress_info
    assert stored.done == 80.0 and stored.note is None and stored.short() == "80/100 80%"
    assert services.flush_progress() == 0  # nothing new held: nothing written
    job.progress(99, 100)
    services.end("j")  # the attempt's end writes what is held, however recent
    assert q.get("j").progress_info.done == 99.0
    assert writes.changes == 3


def test_a_workers_thread_writes_progress_while_the_handler_runs(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="long")
    backend: Any = q.backend
    written = threading.Event()
    many = backend.transition_many

    def transition_many(changes: list[Any], **kwargs: Any) -> Any:
        out = many(changes, **kwargs)
        written.set()  # while the handler runs, only a progress write changes a job
        return out

    backend.transition_many = transition_many
    seen: list[Any] = []

    def handler(job: Job) -> None:
        job.progress(1, 10, "first epoch")
        assert written.wait(60), "the held report was not written while the job ran"
        seen.append(q.get("long").progress_info)

    jobledger.Worker(q, {"T": handler}, handle_signals=False).run(until_empty=True)
    assert [(p.done, p.total, p.note) for p in seen] == [(1.0, 10.0, "first epoch")]


def test_progress_of_several_jobs_is_written_in_one_batch(make_queue):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 3, job_ids=["a", "b", "c"])
    jobs = q.claim_many(3)
    services = AttemptServices(q, monotonic=Ticks())
    attached = [job.with_attempt(services.begin(job)) for job in jobs]
    writes = Writes(q)
    for n, job in enumerate(attached):
        job.progress(n, 3)
    assert services.flush_progress() == 3
    assert writes.batches == 1
    assert [q.get(j).progress_info.done for j in "abc"] == [0.0, 1.0, 2.0]


def test_a_progress_report_is_checked_when_made(running):
    q, services, job = running("j")
    for bad in ("3", None, True, math.nan, math.inf):
        with pytest.raises(InvalidPayload, match="progress done must be"):
            job.progress(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidPayload, match="a progress note must be a string"):
        job.progress(1, 2, note=5)  # type: ignore[arg-type]
    job.progress(1, note="x" * 1000 + "\x00")
    services.end("j")
    note = q.get("j").progress_info.note
    assert len(note) == 200 and note.endswith("...")


def test_a_worker_that_lost_its_job_never_writes_its_progress(running, make_queue, clock):
    q, services, job = running("j")
    job.progress(1, 10)
    assert services.flush_progress() == 1
    q.requeue("j")  # given back (a forced stop) while its handler runs on
    clock.advance(seconds=1)
    other = make_queue()
    _claimed(other, "j")
    services.monotonic.now += 5  # type: ignore[attr-defined]
    job.progress(7, 10)
    services.flush_progress()  # refused: not this attempt's job any more
    job.progress(8, 10)
    services.end("j")  # refused too
    assert q.get("j").progress_info.done == 1.0
    assert q.get("j").worker == other.worker_id


def test_progress_stays_after_the_job_ends_and_is_shown_with_its_time(running, clock):
    q, services, job = running("j")
    job.progress(10, 10, "all epochs")
    services.end("j")
    q.complete("j", "ok")
    done = q.get("j")
    assert done.progress_info == JobProgress(10.0, 10.0, "all epochs", iso_utc(clock.now()))


# -- checkpoints ------------------------------------------------------------------------------

#: JSON's whole range: nesting, unicode, floats that jsonb would change, big integers.
CHECKPOINT: dict[str, Any] = {
    "epoch": 3,
    "lr": 1e16,
    "tiny": 5e-324,
    "third": 1 / 3,
    "negative zero": -0.0,
    "big": 123456789012345678901234567890,
    "text": 'é — 日本語 \U0001f600 \\ " \n',
    "nested": {"a": [1, 2.5, None, True, False, {"deep": [[[]]]}], "": {}},
    "z first?": [{"b": 1, "a": 2}],
}


def test_a_checkpoint_reads_back_exactly_in_the_next_attempt(running):
    q, _, job = running("j")
    assert job.checkpoint_data is None  # a first run
    job.checkpoint(CHECKPOINT)
    q.fail("j", "boom")  # retried at once (retry_delay=0)
    resumed = _claimed(q, "j")
    assert resumed.attempts == 2
    assert _exactly(resumed.checkpoint_data, CHECKPOINT)
    assert resumed.checkpoint_at is not None


def test_the_last_acknowledged_checkpoint_wins_and_survives_a_recovery(running, make_queue):
    q, _, job = running("j")
    job.checkpoint({"epoch": 1})
    job.checkpoint({"epoch": 2})
    q.close()  # its worker dies
    other = make_queue()
    other.recover()
    assert _claimed(other, "j").checkpoint_data == {"epoch": 2}


def test_a_completed_job_drops_its_checkpoint_a_failed_one_keeps_it(running, make_queue):
    q, _, job = running("done")
    job.checkpoint({"epoch": 9})
    q.complete("done", "ok")
    assert q.get("done").checkpoint_data is None
    q.enqueue({"type": "T"}, job_id="failed", max_attempts=1)
    failing = _claimed(q, "failed")
    services = AttemptServices(q)
    failing.with_attempt(services.begin(failing)).checkpoint({"epoch": 4})
    assert q.fail("failed", "boom").status is JobStatus.FAILED
    assert q.get("failed").checkpoint_data == {"epoch": 4}


def test_a_checkpoint_too_large_or_not_json_is_refused_and_nothing_stored(running):
    q, _, job = running("j")
    job.checkpoint({"epoch": 1})
    with pytest.raises(InvalidPayload, match="more than the 1 MiB a checkpoint may hold"):
        job.checkpoint({"blob": "x" * jobledger.MAX_CHECKPOINT_BYTES})
    with pytest.raises(InvalidPayload, match="checkpoint"):
        job.checkpoint({"loss": math.nan})
    with pytest.raises(InvalidPayload, match="checkpoint"):
        job.checkpoint({"when": object()})
    q.requeue("j")
    assert _claimed(q, "j").checkpoint_data == {"epoch": 1}


def test_a_worker_that_lost_its_claim_cannot_overwrite_the_checkpoint(running, make_queue, clock):
    q, _, job = running("j")
    job.checkpoint({"epoch": 1})
    q.requeue("j")  # given back while its handler runs on
    clock.advance(seconds=1)
    other = make_queue()
    now_running = _claimed(other, "j")
    services = AttemptServices(other)
    now_running.with_attempt(services.begin(now_running)).checkpoint({"epoch": 5})
    with pytest.raises(JobConflict, match="not Running in attempt 1 under worker"):
        job.checkpoint({"epoch": 2})
    assert other.get("j").checkpoint_data == {"epoch": 5}


def test_a_worker_refuses_a_cancel_poll_of_zero(make_queue):
    with pytest.raises(jobledger.ConfigError, match="cancel_poll must be more than 0"):
        jobledger.Worker(make_queue(), {"T": lambda job: None}, cancel_poll=0)
