"""The job queue's behaviour through its public API only, on every backend.

``make_queue(**kwargs)`` (tests/conftest.py) opens a JobQueue on one backend's storage
(each call opens it anew, as another process would), once per backend of ``BACKENDS``.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest

import jobledger
from jobledger import JobConflict, JobNotFound, JobQueue, JobStatus
from jobledger._clock import iso_utc
from jobledger._job_record import JobRecord


def _drain(q: JobQueue) -> list[str]:
    out = []
    while (job := q.claim()) is not None:
        out.append(job.job_id)
        q.complete(job.job_id)
    return out


def test_fifo_within_a_priority_and_higher_priority_first(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="a")
    q.enqueue({"type": "T"}, job_id="b", priority=5)
    q.enqueue({"type": "T"}, job_id="c")
    q.enqueue({"type": "T"}, job_id="d", priority=5)
    q.enqueue({"type": "T"}, job_id="e", priority=-1)
    assert [j.job_id for j in q.list(JobStatus.QUEUED)] == ["b", "d", "a", "c", "e"]
    assert _drain(q) == ["b", "d", "a", "c", "e"]


def test_a_dead_workers_jobs_are_served_before_every_queued_job(make_queue):
    first = make_queue()
    first.enqueue_many([{"type": "T"}] * 2, job_ids=["low-1", "low-2"])
    a = first.claim()
    b = first.claim()
    first.enqueue({"type": "T"}, job_id="urgent", priority=100)
    assert (a.job_id, b.job_id) == ("low-1", "low-2")
    first.close()  # its worker is gone: its Running jobs are orphans
    second = make_queue()
    assert second.counts()["Running"] == 2  # reading recovers nothing: shown as stored
    second.recover()  # what a writer's first use (enqueue, claim...) does
    assert second.counts()["Running"] == 0
    recovered = second.get("low-1")
    assert recovered.status is JobStatus.QUEUED and recovered.attempts == 1
    assert "died" in recovered.error_message
    assert [j.job_id for j in second.list(JobStatus.QUEUED)] == ["low-1", "low-2", "urgent"]
    again = second.claim()
    assert again.job_id == "low-1" and again.attempts == 2
    assert second.claim().job_id == "low-2"
    assert second.claim().job_id == "urgent"


def test_a_live_workers_running_job_is_not_recovered(make_queue):
    first = make_queue()
    first.enqueue({"type": "T"}, job_id="busy")
    first.claim()
    second = make_queue()
    assert second.recover() == []
    assert second.get("busy").status is JobStatus.RUNNING
    assert second.claim() is None
    with pytest.raises(JobConflict):
        second.complete("busy")  # not this worker's job
    first.complete("busy", 1)
    assert second.get("busy").result == 1


def test_recovery_past_max_attempts_fails_the_job(make_queue):
    first = make_queue()
    first.enqueue({"type": "T"}, job_id="j", max_attempts=1)
    first.claim()
    first.close()
    second = make_queue()
    [failed] = second.recover()
    assert failed.job_id == "j" and failed.status is JobStatus.FAILED
    assert "died" in second.get("j").error_message
    assert second.claim() is None


def test_a_live_queue_recovers_a_dead_peer_after_recover_every(make_queue, clock):
    watcher = make_queue(recover_every=5)
    watcher.enqueue({"type": "T"}, job_id="mine")
    peer = make_queue()
    assert peer.claim().job_id == "mine"
    assert watcher.claim() is None
    peer.close()
    clock.advance(seconds=4)
    assert watcher.claim() is None  # not looked again yet
    clock.advance(seconds=1)
    job = watcher.claim()
    assert job is not None and job.job_id == "mine" and job.attempts == 2


def test_run_after_delays_a_job(make_queue, clock):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="later", run_after=dt.timedelta(minutes=5))
    q.enqueue({"type": "T"}, job_id="at", run_after=clock.now() + dt.timedelta(seconds=30))
    q.enqueue({"type": "T"}, job_id="now")
    assert q.claim().job_id == "now"
    assert q.claim() is None
    clock.advance(seconds=30)
    assert q.claim().job_id == "at"
    clock.advance(minutes=4, seconds=29)
    assert q.claim() is None
    clock.advance(seconds=1)
    assert q.claim().job_id == "later"
    with pytest.raises(jobledger.ConfigError):
        q.enqueue({"type": "T"}, run_after=dt.datetime(2030, 1, 1))  # naive


def test_counts_and_list(make_queue):
    q = make_queue()
    ids = q.enqueue_many([{"type": "T", "i": i} for i in range(6)])
    assert q.counts() == {"Queued": 6, "Running": 0, "Completed": 0, "Failed": 0, "Cancelled": 0}
    done = q.claim()
    q.complete(done.job_id, "r")
    failed = q.claim()
    q.fail(failed.job_id, "no")  # retried later: Queued again
    running = q.claim()
    q.cancel(ids[5])
    assert q.counts() == {"Queued": 3, "Running": 1, "Completed": 1, "Failed": 0, "Cancelled": 1}
    assert [j.job_id for j in q.list(JobStatus.RUNNING)] == [running.job_id]
    assert [j.job_id for j in q.list("Completed")] == [done.job_id]
    assert [j.job_id for j in q.list(JobStatus.CANCELLED)] == [ids[5]]
    # A failed job waiting for its retry keeps its place in the serving order.
    assert [j.job_id for j in q.list(JobStatus.QUEUED)] == [ids[1], ids[3], ids[4]]
    everything = q.list()
    assert sorted(j.job_id for j in everything) == sorted(ids)
    assert [j.job_id for j in everything[:4]] == [running.job_id, ids[1], ids[3], ids[4]]
    assert make_queue().counts() == q.counts()  # another opening agrees


def test_get(make_queue):
    q = make_queue()
    q.enqueue({"type": "T", "k": [1, {"x": None}]}, job_id="j", priority=3, max_attempts=7)
    assert q.get("nope") is None
    job = q.get("j")
    assert (job.job_id, job.type, job.status, job.attempts, job.max_attempts, job.priority) == (
        "j",
        "T",
        JobStatus.QUEUED,
        0,
        7,
        3,
    )
    assert job.payload == job.raw == {"k": [1, {"x": None}]}
    assert job.known_type is False and job.created is not None


def test_fail_retries_with_backoff_then_fails_for_good(make_queue, clock):
    q = make_queue(retry_delay=2, max_retry_delay=5)
    q.enqueue({"type": "T"}, job_id="j", max_attempts=4)
    for delay in (2, 4, 5):  # 2, 4, then capped at 5
        job = q.claim()
        assert job.job_id == "j"
        after = q.fail("j", ValueError("bad input"))
        assert after.status is JobStatus.QUEUED
        assert after.error_message == "ValueError: bad input"
        clock.advance(seconds=delay - 0.5)
        assert q.claim() is None
        clock.advance(seconds=0.5)
    assert q.claim().attempts == 4
    final = q.fail("j", "still bad")
    assert final.status is JobStatus.FAILED and final.error_message == "still bad"
    clock.advance(days=1)
    assert q.claim() is None
    with pytest.raises(JobConflict):
        q.fail("j", "again")


def test_retry_queues_a_failed_or_cancelled_job_afresh(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="f", max_attempts=1)
    q.enqueue({"type": "T"}, job_id="c")
    q.enqueue({"type": "T"}, job_id="other")
    q.fail(q.claim().job_id, "x")
    q.cancel("c")
    with pytest.raises(JobConflict):
        q.retry("other")
    assert q.retry("f").attempts == 0
    assert q.retry("c").status is JobStatus.QUEUED
    assert q.get("f").error_message is None
    assert _drain(q) == ["other", "f", "c"]  # retried jobs go to the back
    assert q.counts()["Completed"] == 3 and q.counts()["Failed"] == 0
    with pytest.raises(JobNotFound):
        q.retry("missing")


def test_cancel(make_queue, clock):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="queued")
    q.enqueue({"type": "T"}, job_id="running")
    q.enqueue({"type": "T"}, job_id="done")
    q.complete(q.claim().job_id)  # "queued" is served first... complete it
    assert q.get("queued").status is JobStatus.COMPLETED
    running = q.claim()
    assert running.job_id == "running"
    # A Running job is asked to stop: it stays Running under its worker, which ends it.
    asked = q.cancel("running")
    assert asked.status is JobStatus.RUNNING and asked.worker == q.worker_id
    assert asked.cancel_requested_at == iso_utc(clock.now())
    clock.advance(seconds=5)
    assert make_queue().cancel("running") == asked  # asked again: nothing changes
    assert q.fail("running", "stopped").status is JobStatus.CANCELLED  # never retried
    assert q.cancel("done").status is JobStatus.CANCELLED
    assert q.claim() is None
    with pytest.raises(JobConflict):
        q.cancel("queued")  # already finished
    with pytest.raises(JobNotFound):
        q.cancel("missing")
    assert q.counts()["Cancelled"] == 2


def test_prune_removes_only_old_finished_jobs(make_queue, clock):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="old-done")
    q.enqueue({"type": "T"}, job_id="old-failed", max_attempts=1)
    q.enqueue({"type": "T"}, job_id="old-running")
    q.enqueue({"type": "T"}, job_id="old-cancelled")
    q.enqueue({"type": "T"}, job_id="old-queued", run_after=dt.timedelta(days=30))
    q.complete(q.claim().job_id)
    q.fail(q.claim().job_id, "x")
    assert q.claim().job_id == "old-running"
    q.cancel("old-cancelled")
    clock.advance(days=2)
    q.enqueue({"type": "T"}, job_id="new-done")
    assert q.claim().job_id == "new-done"
    q.complete("new-done")
    assert q.prune(older_than=dt.timedelta(days=1)) == 3
    for gone in ("old-done", "old-failed", "old-cancelled"):
        assert q.get(gone) is None
    for kept in ("old-running", "old-queued", "new-done"):
        assert q.get(kept) is not None
    assert q.counts() == {"Queued": 1, "Running": 1, "Completed": 1, "Failed": 0, "Cancelled": 0}
    assert q.prune(older_than=dt.timedelta(days=1)) == 0
    clock.advance(seconds=1)
    assert q.prune(older_than=0) == 1  # seconds work too
    assert make_queue().counts()["Completed"] == 0


def test_prune_dry_run_counts_what_prune_deletes_and_deletes_nothing(make_queue, clock):
    q = make_queue()
    for job_id in ("a-done", "b-failed", "c-cancelled"):
        q.enqueue({"type": "T"}, job_id=job_id, max_attempts=1)
    q.enqueue({"type": "T"}, job_id="d-queued", run_after=dt.timedelta(days=30))
    q.complete(q.claim().job_id)
    q.fail(q.claim().job_id, "x")
    q.cancel("c-cancelled")
    clock.advance(days=2)
    q.enqueue({"type": "T"}, job_id="e-done")
    q.complete(q.claim().job_id)
    clock.advance(seconds=1)
    before = q.counts()
    reader = make_queue()  # a queue that has written nothing: a dry run is a read
    assert reader.prune(dt.timedelta(days=1), dry_run=True) == 3
    assert [j.job_id for j in reader.prunable(dt.timedelta(days=1))] == [
        "a-done",
        "b-failed",
        "c-cancelled",
    ]
    assert reader.prune(dt.timedelta(hours=1), dry_run=True) == 3
    assert reader.prune(0, dry_run=True) == 4
    assert q.counts() == before  # nothing deleted
    assert q.prune(dt.timedelta(days=1)) == 3
    assert q.prune(dt.timedelta(days=1), dry_run=True) == 0


def test_enqueue_returns_ids_and_is_idempotent(make_queue):
    q = make_queue()
    auto = q.enqueue({"type": "T"})
    assert isinstance(auto, str) and auto
    assert q.enqueue({"type": "T", "job_id": "embedded"}) == "embedded"
    assert q.enqueue({"type": "T"}, job_id=auto) == auto
    assert q.enqueue_many([{"type": "T"}, {"type": "T"}], job_ids=[None, "embedded"])[1] == (
        "embedded"
    )
    assert q.counts()["Queued"] == 3
    with pytest.raises(TypeError):
        q.enqueue({"no": "type"})
    with pytest.raises(jobledger.ConfigError):
        q.enqueue({"type": "T"}, max_attempts=0)


def test_complete_is_fenced_to_the_claiming_worker_and_stores_the_result(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="j")
    with pytest.raises(JobConflict):
        q.complete("j")  # not claimed
    job = q.claim(worker="w1")
    assert job.status is JobStatus.RUNNING and job.attempts == 1 and job.started
    done = q.complete("j", {"out": [1, 2]})
    assert done.status is JobStatus.COMPLETED and done.finished
    assert make_queue().get("j").result == {"out": [1, 2]}
    with pytest.raises(JobConflict):
        q.complete("j")


def test_claim_many_takes_jobs_in_serving_order_once_each(make_queue, clock):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 4, job_ids=["a", "b", "c", "d"])
    q.enqueue({"type": "T"}, job_id="first", priority=9)
    q.enqueue({"type": "T"}, job_id="later", run_after=60)
    q.enqueue({"type": "U"}, job_id="other-type")
    got = q.claim_many(3, types=["T"])
    assert [j.job_id for j in got] == ["first", "a", "b"]
    assert all(j.status is JobStatus.RUNNING and j.attempts == 1 for j in got)
    peer = make_queue()
    # The rest, once each: the delayed job and the other type are not due or not wanted.
    assert [j.job_id for j in peer.claim_many(10, types=["T"])] == ["c", "d"]
    assert q.claim_many(10, types=["T"]) == []
    clock.advance(seconds=61)
    assert [j.job_id for j in q.claim_many(10)] == ["later", "other-type"]
    with pytest.raises(jobledger.ConfigError):
        q.claim_many(0)


def test_a_dead_workers_jobs_come_first_in_a_batch_claim(make_queue):
    first = make_queue()
    first.enqueue_many([{"type": "T"}] * 3, job_ids=["x", "y", "z"])
    assert [j.job_id for j in first.claim_many(2)] == ["x", "y"]
    first.enqueue({"type": "T"}, job_id="urgent", priority=100)
    first.close()
    second = make_queue()
    got = second.claim_many(4)
    assert [j.job_id for j in got] == ["x", "y", "urgent", "z"]
    assert [j.attempts for j in got] == [2, 2, 1, 1]


def test_complete_many_records_a_batch_and_reports_the_refused(make_queue):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 4, job_ids=["a", "b", "c", "d"])
    q.claim_many(3)  # a, b, c
    done = q.complete_many({"a": 1, "b": {"x": [2]}})
    assert [(j.job_id, j.status, j.result) for j in done] == [
        ("a", JobStatus.COMPLETED, 1),
        ("b", JobStatus.COMPLETED, {"x": [2]}),
    ]
    with pytest.raises(JobConflict) as info:
        q.complete_many([("c", "ok"), ("d", "not claimed"), ("nope", None), ("a", "again")])
    refused = info.value.refused
    assert set(refused) == {"d", "nope", "a"}
    assert isinstance(refused["nope"], JobNotFound)
    assert isinstance(refused["d"], JobConflict)
    assert "d" in str(info.value) and "nope" in str(info.value)
    # The rest of the batch was recorded; the refused jobs are as they were.
    again = make_queue()
    assert again.get("c").status is JobStatus.COMPLETED and again.get("c").result == "ok"
    assert again.get("d").status is JobStatus.QUEUED
    assert again.get("a").result == 1
    assert again.counts()["Completed"] == 3
    assert q.complete_many({}) == []


def test_record_completions_counts_a_batch_and_refuses_like_complete_many(make_queue):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 4, job_ids=["a", "b", "c", "d"])
    q.claim_many(3)  # a, b, c
    assert q.record_completions([("a", 1), ("b", None)]) == 2
    with pytest.raises(JobConflict) as info:
        q.record_completions({"c": "ok", "d": "not claimed"})
    assert set(info.value.refused) == {"d"}
    again = make_queue()
    assert [again.get(i).status for i in "abcd"] == [JobStatus.COMPLETED] * 3 + [JobStatus.QUEUED]
    assert again.get("a").result == 1 and again.get("c").result == "ok"
    assert q.record_completions({}) == 0


def test_complete_many_checks_every_result_before_writing_any(make_queue):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 2, job_ids=["a", "b"])
    q.claim_many(2)
    with pytest.raises(TypeError, match="result of job b"):
        q.complete_many({"a": 1, "b": object()})
    assert q.counts()["Running"] == 2


def test_an_idle_worker_wakes_at_once_for_a_job_enqueued_through_its_queue(make_queue):
    # The poll interval is an hour: only the wake-up can bring the job to the worker.
    q = make_queue()
    ran = threading.Event()
    worker = jobledger.Worker(
        q, {"T": lambda job: ran.set()}, poll_interval=3600, handle_signals=False
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        q.enqueue({"type": "T"}, job_id="j")
        assert ran.wait(30), "the idle worker was not woken"
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert q.get("j").status is JobStatus.COMPLETED


def test_watch_calls_back_for_changes_made_here_and_stops(make_queue):
    q = make_queue()
    calls: list[int] = []
    stop = q.watch(lambda: calls.append(1))
    q.enqueue({"type": "T"}, job_id="a")
    assert calls  # at once, in this thread (a backend may add its own calls later)
    stop()
    calls.clear()
    q.enqueue({"type": "T"}, job_id="b")
    assert calls == []


def test_running_jobs_are_listed_in_serving_order_on_every_backend(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="low")
    assert q.claim().job_id == "low"
    q.enqueue({"type": "T"}, job_id="high", priority=9)
    assert q.claim().job_id == "high"
    q.enqueue({"type": "T"}, job_id="queued")
    # Claimed low first, but high is ahead in serving order, and listings follow it.
    assert [j.job_id for j in q.list(JobStatus.RUNNING)] == ["high", "low"]
    assert [j.job_id for j in q.list()][:3] == ["high", "low", "queued"]
    assert [j.job_id for j in make_queue().list(JobStatus.RUNNING)] == ["high", "low"]


def _raise_in_a_handler(marker: str) -> None:
    raise ValueError(f"bad input {marker}")


def test_a_failed_jobs_traceback_round_trips_and_is_cleared_by_success(make_queue):
    q = make_queue(retry_delay=0)
    q.enqueue({"type": "T"}, job_id="j", max_attempts=3)
    job = q.claim()
    assert job is not None and job.traceback is None
    try:
        _raise_in_a_handler("x1")
    except ValueError as exc:
        failed = q.fail("j", exc)
    assert failed.error_message == "ValueError: bad input x1"
    assert failed.traceback is not None
    assert failed.traceback.startswith("Traceback (most recent call last):")
    assert "in _raise_in_a_handler" in failed.traceback
    assert failed.traceback.rstrip().endswith("ValueError: bad input x1")
    stored = make_queue(retry_delay=0).get("j")  # opened anew: read back from storage
    assert stored is not None and stored.traceback == failed.traceback
    assert q.claim() is not None
    q.fail("j", "a plain message")  # no exception: no traceback
    assert make_queue().get("j").traceback is None
    assert q.claim() is not None
    try:
        _raise_in_a_handler("x3")
    except ValueError as exc:
        q.fail("j", exc)
    final = make_queue().get("j")
    assert final.status is JobStatus.FAILED and "bad input x3" in final.traceback
    assert q.retry("j").traceback is None  # a fresh start clears the last failure
    assert q.claim() is not None
    assert q.complete("j", 1).traceback is None


def test_queued_by_type_counts_due_and_delayed_jobs(make_queue, clock):
    q = make_queue()
    assert q.queued_by_type() == {}
    q.enqueue({"type": "A"}, job_id="a1")
    q.enqueue({"type": "A"}, job_id="a2", run_after=dt.timedelta(hours=2))
    q.enqueue({"type": "A"}, job_id="a3", run_after=dt.timedelta(hours=1))
    q.enqueue({"type": "B"}, job_id="b1", run_after=dt.timedelta(minutes=5))
    q.enqueue({"type": "C"}, job_id="c1")
    assert q.claim(types=["C"]) is not None  # Running: not counted
    in_an_hour = iso_utc(clock.now() + dt.timedelta(hours=1))
    counts = q.queued_by_type()
    assert counts == {"A": (1, 2, in_an_hour), "B": (0, 1, counts["B"].next_due)}
    assert counts["A"].due == 1 and counts["A"].delayed == 2
    clock.advance(seconds=3600)
    assert q.queued_by_type()["A"] == (2, 1, q.get("a2").run_after)
    assert q.queued_by_type()["B"] == (1, 0, None)


def test_import_records_stores_jobs_as_given_and_keeps_the_stored_ones(make_queue):
    """``import_records`` is in the contract of every job backend (export writes through
    it on both sides): records are stored exactly, an id already stored is kept and
    returned, and a later enqueue is served after the imported Queued jobs."""
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="here")
    big = 10**17  # above any seq either backend has assigned (the files one: clock µs)
    done = JobRecord(
        job_id="done",
        type="T",
        status=JobStatus.COMPLETED,
        payload={"k": [1, None]},
        attempts=2,
        max_attempts=5,
        seq=big,
        created="2025-01-01T00:00:00Z",
        started="2025-01-01T00:00:01Z",
        finished="2025-01-01T00:00:02Z",
        worker="w-1",
        result={"ok": True},
    )
    waiting = JobRecord(
        job_id="waiting",
        type="T",
        status=JobStatus.QUEUED,
        payload={},
        attempts=1,
        seq=big + 1,
        created="2025-01-01T00:00:03Z",
        error_message="died once",
    )
    clash = JobRecord(job_id="here", type="Other", status=JobStatus.FAILED, payload={}, seq=big)
    assert q.backend.import_records([done, waiting, clash]) == ["here"]
    assert q.backend.import_records([]) == []
    q.close()
    other = make_queue()  # another opening, as another process would
    assert other.backend.get("done") == done
    assert other.backend.get("waiting") == waiting
    assert other.get("here").type == "T"  # kept as it was
    assert other.counts()["Completed"] == 1 and other.counts()["Queued"] == 2
    other.enqueue({"type": "T"}, job_id="later")
    assert other.backend.get("later").seq > waiting.seq
    assert _drain(other) == ["here", "waiting", "later"]
