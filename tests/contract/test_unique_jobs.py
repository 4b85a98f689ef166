"""Unique jobs (``enqueue(..., unique_key=, unique_for=)``) through the public API, on every
backend: a key held by a live job (or, with ``unique_for``, by a job that finished less
than that long ago) returns that job and stores nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from jobledger import ConfigError, InvalidNameError, JobConflict, JobStatus

KEY = "acct-1:2025-01-20"


def test_a_key_held_by_a_queued_or_running_job_returns_that_job(make_queue):
    q = make_queue()
    first = q.enqueue({"type": "Report", "n": 1}, unique_key=KEY)
    again = q.enqueue({"type": "Report", "n": 2}, unique_key=KEY)
    assert again == first
    assert q.counts()["Queued"] == 1
    assert q.get(first).raw == {"n": 1}  # the first job's payload, stored once
    assert q.get(first).unique_key == KEY
    running = q.claim()
    assert running.job_id == first
    assert q.enqueue({"type": "Report"}, unique_key=KEY) == first  # Running holds it too
    q.complete(first)
    # Finished: the key is free again (without unique_for).
    later = q.enqueue({"type": "Report", "n": 3}, unique_key=KEY)
    assert later != first
    assert q.get(later).status is JobStatus.QUEUED
    assert sum(q.counts().values()) == 2


def test_other_keys_and_jobs_without_a_key_are_not_affected(make_queue):
    q = make_queue()
    a = q.enqueue({"type": "T"}, unique_key="a")
    b = q.enqueue({"type": "T"}, unique_key="b")
    plain = [q.enqueue({"type": "T"}) for _ in range(2)]
    assert len({a, b, *plain}) == 4
    assert q.get(plain[0]).unique_key is None


def test_unique_for_counts_a_job_that_finished_less_than_that_long_ago(make_queue, clock):
    q = make_queue()
    first = q.enqueue({"type": "T"}, unique_key=KEY, unique_for=dt.timedelta(hours=1))
    job = q.claim()
    q.complete(job.job_id)
    clock.advance(minutes=59)
    assert q.enqueue({"type": "T"}, unique_key=KEY, unique_for=3600) == first
    # Another queue object (another process): the same answer.
    assert make_queue().enqueue({"type": "T"}, unique_key=KEY, unique_for=3600) == first
    # Without unique_for, a finished job does not hold its key.
    fresh = q.enqueue({"type": "T"}, unique_key=KEY)
    assert fresh != first
    assert q.enqueue({"type": "T"}, unique_key=KEY, unique_for=3600) == fresh  # live: held


@pytest.mark.parametrize("end", ["fail", "cancel"])
def test_unique_for_counts_failed_and_cancelled_jobs_and_lets_go_after_it(make_queue, clock, end):
    q = make_queue()
    first = q.enqueue({"type": "T"}, unique_key=KEY, max_attempts=1)
    if end == "fail":
        q.fail(q.claim().job_id, "boom")
    else:
        q.cancel(first)
    assert q.get(first).status in JobStatus.FINISHED
    clock.advance(seconds=30)
    assert q.enqueue({"type": "T"}, unique_key=KEY, unique_for=60) == first
    clock.advance(seconds=31)
    later = q.enqueue({"type": "T"}, unique_key=KEY, unique_for=60)
    assert later != first


def test_unique_for_looks_at_the_keys_latest_job(make_queue, clock):
    q = make_queue()
    old = q.enqueue({"type": "T"}, unique_key=KEY)
    q.complete(q.claim().job_id)
    clock.advance(hours=2)
    new = q.enqueue({"type": "T"}, unique_key=KEY, unique_for=3600)
    assert new != old
    q.complete(q.claim().job_id)
    clock.advance(minutes=10)
    assert make_queue().enqueue({"type": "T"}, unique_key=KEY, unique_for=3600) == new


def test_an_existing_id_is_looked_at_before_the_key(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="holder", unique_key=KEY)
    q.enqueue({"type": "T"}, job_id="other", unique_key="other-key")
    assert q.enqueue({"type": "T"}, job_id="other", unique_key=KEY) == "other"
    assert q.enqueue({"type": "T"}, job_id="new", unique_key=KEY) == "holder"
    assert q.get("new") is None


def test_enqueue_many_honours_keys_and_the_first_of_a_batch_wins(make_queue):
    q = make_queue()
    held = q.enqueue({"type": "T"}, job_id="held", unique_key="k0")
    ids = q.enqueue_many(
        [{"type": "T", "i": i} for i in range(5)],
        job_ids=["a", "b", "c", "d", "e"],
        unique_keys=["k0", "k1", "k1", None, "k2"],
    )
    assert ids == [held, "b", "b", "d", "e"]
    assert q.get("c") is None
    assert q.get("b").raw == {"i": 1}
    assert q.counts()["Queued"] == 4
    # Another batch: every key is held now.
    again = q.enqueue_many([{"type": "T"}] * 3, unique_keys=["k1", "k2", "k0"])
    assert again == ["b", "e", held]
    assert q.counts()["Queued"] == 4


def test_a_large_batch_with_keys_stores_each_key_once(make_queue):
    # 40 generated ids: the PostgreSQL backend's COPY path.
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="held", unique_key="k-7")
    keys = [f"k-{i % 30}" for i in range(40)]
    ids = q.enqueue_many([{"type": "T", "i": i} for i in range(40)], unique_keys=keys)
    assert ids[7] == "held"
    assert ids[30:] == ids[:10]  # k-0..k-9 again: the first of each
    assert len(set(ids)) == 30
    assert q.counts()["Queued"] == 30
    assert {q.get(i).unique_key for i in ids} == {f"k-{i}" for i in range(30)}


def test_enqueue_many_with_unique_for(make_queue, clock):
    q = make_queue()
    [first] = q.enqueue_many([{"type": "T"}], unique_keys=[KEY])
    q.complete(q.claim().job_id)
    clock.advance(seconds=10)
    ids = q.enqueue_many([{"type": "T"}, {"type": "T"}], unique_keys=[KEY, "new"], unique_for=60)
    assert ids[0] == first
    assert ids[1] != first


def test_a_retry_is_refused_while_another_live_job_holds_the_key(make_queue):
    q = make_queue()
    first = q.enqueue({"type": "T"}, unique_key=KEY, max_attempts=1)
    q.fail(q.claim().job_id, "boom")
    second = q.enqueue({"type": "T"}, unique_key=KEY)
    with pytest.raises(JobConflict, match=f"job {second} holds its unique key"):
        q.retry(first)
    assert q.get(first).status is JobStatus.FAILED
    q.cancel(second)
    assert q.retry(first).status is JobStatus.QUEUED  # the key is free again
    assert q.enqueue({"type": "T"}, unique_key=KEY) == first


def test_a_dead_workers_keyed_job_keeps_its_key_when_recovered(make_queue):
    first = make_queue()
    job_id = first.enqueue({"type": "T"}, unique_key=KEY)
    assert first.claim().job_id == job_id
    first.close()  # its worker is gone
    second = make_queue()
    second.recover()
    assert second.get(job_id).status is JobStatus.QUEUED
    assert second.enqueue({"type": "T"}, unique_key=KEY) == job_id


def test_a_pruned_job_frees_its_key(make_queue, clock):
    q = make_queue()
    first = q.enqueue({"type": "T"}, unique_key=KEY)
    q.complete(q.claim().job_id)
    clock.advance(days=2)
    assert q.prune(dt.timedelta(days=1)) == 1
    other = make_queue()  # learns of the prune from the storage
    later = other.enqueue({"type": "T"}, unique_key=KEY, unique_for=dt.timedelta(days=30))
    assert later != first


def test_the_key_survives_reopening(make_queue, clock):
    q = make_queue()
    first = q.enqueue({"type": "T"}, unique_key=KEY)
    q.complete(q.claim().job_id)
    q.close()
    clock.advance(seconds=5)
    again = make_queue()
    assert again.get(first).unique_key == KEY
    assert again.enqueue({"type": "T"}, unique_key=KEY, unique_for=60) == first


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"unique_key": ""}, InvalidNameError, "unique_key must be a non-empty string"),
        ({"unique_key": 5}, InvalidNameError, "unique_key must be a non-empty string"),
        ({"unique_key": "a\x00b"}, InvalidNameError, "without NUL"),
        ({"unique_key": "k" * 1001}, ConfigError, "more than 1000"),
        ({"unique_for": 60}, ConfigError, "unique_for needs a unique_key"),
        ({"unique_key": "k", "unique_for": -1}, ConfigError, "unique_for must be"),
    ],
)
def test_bad_keys_and_windows_are_refused_before_any_write(make_queue, kwargs, error, message):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="before")
    with pytest.raises(error, match=message):
        q.enqueue({"type": "T"}, **kwargs)
    with pytest.raises(error, match=message):
        q.enqueue_many(
            [{"type": "T"}],
            unique_keys=[kwargs.get("unique_key")],
            **{k: v for k, v in kwargs.items() if k == "unique_for"},
        )
    assert sum(q.counts().values()) == 1
