"""``JobQueue.prune`` in batches, on every backend: what a prune deletes does not depend on
its batch size (``backend.prune_batch``), and a prune stopped between two batches keeps
what it deleted and leaves a whole queue behind.

``prunable()`` (a read) is the oracle: it lists what one prune deletes, by the same rule
written once more (finished, and finished before the cutoff)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from jobledger import JobQueue, JobStatus

DAY = dt.timedelta(days=1)


class Stop(Exception):
    """Raised by an ``on_batch`` to stop a prune between two batches."""


def scene(q: JobQueue, clock) -> set[str]:
    """Finished jobs of every kind on both sides of the one-day cutoff (several finished
    at the very same instant, one at the cutoff itself), and live jobs older than it.
    The ids of the jobs a prune of those older than a day deletes."""
    q.enqueue({"type": "T"}, job_id="old-running")
    assert q.claim().job_id == "old-running"
    q.enqueue({"type": "T"}, job_id="old-queued", run_after=dt.timedelta(days=30))
    for day in range(3):  # finishing at 0 h (and 1 h), 24 h (25 h), 48 h (49 h)
        if day:
            clock.advance(hours=23)
        ids = [f"d{day}-{i}" for i in range(5)]
        q.enqueue_many([{"type": "T"}] * 5, job_ids=ids, max_attempts=1)
        q.complete(q.claim().job_id)
        q.complete(q.claim().job_id)  # the same instant as the one before
        q.fail(q.claim().job_id, "boom")  # for good: max_attempts=1
        q.cancel(ids[3])
        clock.advance(hours=1)
        q.complete(q.claim().job_id)
    # Now 49 h: the cutoff is 25 h, when d1-4 finished (kept: not before the cutoff).
    doomed = {f"d0-{i}" for i in range(5)} | {f"d1-{i}" for i in range(4)}
    assert {j.job_id for j in q.prunable(DAY)} == doomed
    return doomed


def stored(q: JobQueue) -> dict[str, JobStatus]:
    return {j.job_id: j.status for j in q.list()}


@pytest.mark.parametrize("batch", [1, 2, 3, 7, 1000])
def test_every_batch_size_deletes_exactly_the_old_finished_jobs(make_queue, clock, batch):
    q = make_queue()
    doomed = scene(q, clock)
    before = stored(q)
    assert all(before[i] in JobStatus.FINISHED for i in doomed)
    q.backend.prune_batch = batch
    counts: list[int] = []
    assert q.prune(DAY, on_batch=counts.append) == len(doomed)
    assert stored(q) == {i: s for i, s in before.items() if i not in doomed}
    assert sum(counts) == len(doomed) and all(0 < n <= batch for n in counts)
    assert len(counts) >= -(-len(doomed) // batch)  # batches, not one
    again = make_queue()  # as another process sees it
    assert stored(again) == stored(q)
    assert again.counts() == q.counts()
    assert q.prune(DAY) == 0


def test_a_batch_smaller_than_the_jobs_finished_at_one_instant_deletes_them_all(make_queue, clock):
    q = make_queue()
    ids = [f"j{i:02d}" for i in range(12)]
    q.enqueue_many([{"type": "T"}] * 12, job_ids=ids)
    for _ in ids:
        q.complete(q.claim().job_id)  # the clock stands still: one finished time for all
    clock.advance(days=2)
    q.backend.prune_batch = 5
    counts: list[int] = []
    assert q.prune(DAY, on_batch=counts.append) == 12
    assert counts == [5, 5, 2]
    assert q.list() == []
    assert make_queue().counts()["Completed"] == 0


def test_a_prune_stopped_between_batches_keeps_what_it_deleted(make_queue, clock):
    q = make_queue()
    doomed = scene(q, clock)
    before = stored(q)
    q.backend.prune_batch = 3
    counts: list[int] = []

    def stop_after_two(n: int) -> None:
        counts.append(n)
        if len(counts) == 2:
            raise Stop

    with pytest.raises(Stop):
        q.prune(DAY, on_batch=stop_after_two)
    assert counts == [3, 3]
    left = stored(q)
    gone = set(before) - set(left)
    assert len(gone) == 6 and gone <= doomed  # two whole batches, old finished jobs only
    assert left == {i: s for i, s in before.items() if i not in gone}
    # Nothing half done: the counts agree with the jobs, here and in another process.
    expected = {s.value: 0 for s in JobStatus}
    for status in left.values():
        expected[status.value] += 1
    assert q.counts() == expected
    other = make_queue()
    assert other.counts() == expected and stored(other) == left
    # Run again, it goes on with the rest.
    assert other.prune(DAY) == len(doomed) - 6
    assert stored(other) == {i: s for i, s in before.items() if i not in doomed}


def test_a_job_retried_while_a_prune_runs_is_not_deleted(make_queue, clock):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 3, job_ids=["a", "b", "c"], max_attempts=1)
    for _ in range(3):
        q.fail(q.claim().job_id, "boom")  # a, b, c fail for good, in that order
        clock.advance(minutes=1)
    clock.advance(days=2)
    q.backend.prune_batch = 1

    def retry_c(n: int) -> None:
        if q.get("c") is not None and q.get("c").status is JobStatus.FAILED:
            q.retry("c")  # found old and finished before the prune began

    assert q.prune(DAY, on_batch=retry_c) == 2
    assert stored(q) == {"c": JobStatus.QUEUED}
    assert make_queue().counts()["Failed"] == 0


def test_a_prune_pauses_between_batches_as_long_as_told(make_queue, clock, monkeypatch):
    q = make_queue()
    ids = [f"j{i:02d}" for i in range(12)]
    q.enqueue_many([{"type": "T"}] * 12, job_ids=ids)
    for _ in ids:
        q.complete(q.claim().job_id)
    clock.advance(days=2)
    q.recover()  # connected and opened: the prune's batches only from here
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)  # the pause, not a wait in a test
    q.backend.prune_batch = 5
    q.backend.prune_pause = 3.0
    assert q.prune(DAY) == 12
    assert len(pauses) == 2 and all(p > 0 for p in pauses)  # between the three batches
    q.enqueue_many([{"type": "T"}] * 12, job_ids=[f"k{i:02d}" for i in range(12)])
    for _ in ids:
        q.complete(q.claim().job_id)
    clock.advance(days=2)
    pauses.clear()
    q.backend.prune_pause = 0.0
    assert q.prune(DAY) == 12
    assert pauses == [0.0, 0.0]
