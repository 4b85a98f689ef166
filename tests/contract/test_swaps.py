"""The backends' ``swap`` and ``swap_and_claim``, and the fencing they give the queue, on
every backend.

``swap`` writes a job's new record only where the stored job still holds the claim paired
with it: Running under the same worker, in the same attempt, since the same start. The
queue completes, fails and requeues the jobs it claimed through it; anything else (and any
job that no longer holds the claim) through ``transition_many``, which refuses as before.
"""

from __future__ import annotations

import pytest

from jobledger import JobCancelled, JobConflict, JobNotFound, JobStatus
from jobledger._clock import iso_utc
from jobledger._job_record import JobRecord


def _done(claimed: JobRecord, result: object, finished: str) -> JobRecord:
    return claimed.evolve(status=JobStatus.COMPLETED, result=result, finished=finished)


def _stored(q, job_id: str) -> JobRecord:
    record = q.backend.get(job_id)
    assert record is not None, job_id
    return record


def test_swap_writes_only_while_the_job_holds_the_claim_it_is_paired_with(make_queue, clock):
    q = make_queue()
    q.enqueue_many([{"type": "T", "n": 1}] * 2, job_ids=["a", "b"])
    q.claim_many(2)
    a, b = _stored(q, "a"), _stored(q, "b")
    now = iso_utc(clock.now())
    new = _done(a, {"r": [1]}, now)
    assert q.backend.swap([(a, new)]) == [new]
    stored = _stored(q, "a")
    assert (stored.status, stored.result, stored.finished) == (JobStatus.COMPLETED, {"r": [1]}, now)
    assert stored.payload == {"n": 1} and stored.worker == a.worker  # the rest as it was
    # No longer Running: the same swap writes nothing, the stored record is left alone.
    assert q.backend.swap([(a, _done(a, "again", now))]) == [None]
    assert _stored(q, "a").result == {"r": [1]}
    # Each part of the claim fences: another worker, attempt or start, and nothing is
    # written; an id that is not stored neither.
    for other in (
        b.evolve(worker="another-worker"),
        b.evolve(attempts=b.attempts + 1),
        b.evolve(started="2000-01-01T00:00:00.000Z"),
        b.evolve(job_id="missing"),
    ):
        assert q.backend.swap([(other, _done(other, "no", now))]) == [None]
    assert _stored(q, "b") == b
    with pytest.raises(ValueError, match="twice"):
        q.backend.swap([(b, _done(b, 1, now)), (b, _done(b, 2, now))])
    assert q.backend.swap([]) == []


def test_swap_writes_a_batch_and_tells_which_it_wrote(make_queue, clock):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 3, job_ids=["a", "b", "c"])
    q.claim_many(3)
    a, b, c = (_stored(q, i) for i in "abc")
    q.cancel("b")  # another's change: b no longer holds its claim (asked to stop,
    q.fail("b", JobCancelled("b"))  # then ended Cancelled by its worker)
    now = iso_utc(clock.now())
    failed = c.evolve(status=JobStatus.QUEUED, error_message="boom", run_after=now, worker=None)
    out = q.backend.swap([(c, failed), (b, _done(b, 2, now)), (a, _done(a, 1, now))])
    assert [r.job_id if r else None for r in out] == ["c", None, "a"]
    assert [_stored(q, i).status for i in "abc"] == [
        JobStatus.COMPLETED,
        JobStatus.CANCELLED,
        JobStatus.QUEUED,
    ]
    assert _stored(q, "c").error_message == "boom"
    assert [j.job_id for j in q.claim_many(5)] == ["c"]  # Queued again, due


def test_a_claim_given_back_and_taken_again_fences_the_earlier_one(make_queue, clock):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="j")
    q.claim()
    first = _stored(q, "j")
    q.requeue("j")  # the attempt not counted: the next claim has the same attempt
    clock.advance(seconds=1)
    q.claim()
    second = _stored(q, "j")
    assert (second.worker, second.attempts) == (first.worker, first.attempts)
    now = iso_utc(clock.now())
    assert q.backend.swap([(first, _done(first, "stale", now))]) == [None]
    assert _stored(q, "j") == second
    assert q.complete("j", "fresh").result == "fresh"


def test_a_worker_that_lost_its_claim_never_completes_the_job(make_queue):
    """The worker is presumed dead (its liveness lock or lease is gone) while it still
    holds its claim; another worker recovers the job and takes it. The first one's late
    completion, failure or requeue is refused, and the job stays the second one's."""
    first = make_queue()
    first.enqueue({"type": "T"}, job_id="j")
    assert first.claim().job_id == "j"
    lease = first._worker_lock
    assert lease is not None
    lease.release()  # what its death does; its JobQueue (and its claim) lives on
    second = make_queue()
    second.recover()
    taken = second.claim()
    assert (taken.job_id, taken.attempts) == ("j", 2)
    with pytest.raises(JobConflict):
        first.complete("j", "late")
    with pytest.raises(JobConflict):
        first.fail("j", "late")
    with pytest.raises(JobConflict):
        first.requeue("j")
    with pytest.raises(JobConflict) as info:
        first.complete_many({"j": "late"})
    assert set(info.value.refused) == {"j"}
    stored = second.get("j")
    assert (stored.status, stored.worker, stored.attempts, stored.result) == (
        JobStatus.RUNNING,
        second.worker_id,
        2,
        None,
    )
    assert second.complete("j", "ok").result == "ok"


def test_swap_and_claim_records_and_claims_together(make_queue, clock):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 3, job_ids=["a", "b", "c"])
    q.enqueue({"type": "U"}, job_id="u", priority=5)
    q.claim_many(2, types=["T"])  # a, b
    a, b = _stored(q, "a"), _stored(q, "b")
    q.cancel("b")
    q.fail("b", JobCancelled("b"))
    now = iso_utc(clock.now())
    worker = q.worker_id
    out, claimed = q.backend.swap_and_claim(
        [(a, _done(a, 1, now)), (b, _done(b, 2, now))], worker, now, frozenset({"T"}), 5
    )
    assert [r.job_id if r else None for r in out] == ["a", None]
    assert [(r.job_id, r.status, r.worker, r.attempts) for r in claimed] == [
        ("c", JobStatus.RUNNING, worker, 1)
    ]
    assert _stored(q, "a").status is JobStatus.COMPLETED
    assert _stored(q, "b").status is JobStatus.CANCELLED
    assert _stored(q, "c") == claimed[0]
    # Nothing to record: a claim alone; nothing due: the records alone.
    assert q.backend.swap_and_claim([], worker, now, None, 5) == ([], [_stored(q, "u")])
    c = claimed[0]
    assert q.backend.swap_and_claim([(c, _done(c, 3, now))], worker, now, None, 5) == (
        [_done(c, 3, now)],
        [],
    )
    assert q.counts()["Completed"] == 2


def test_the_queue_records_completions_with_its_next_claim(make_queue):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 4, job_ids=["a", "b", "c", "d"])
    assert [j.job_id for j in q.claim_many(2)] == ["a", "b"]
    jobs, recorded, conflict = q._record_and_claim([("a", 1), ("b", 2)], 5, None)
    assert ([j.job_id for j in jobs], recorded, conflict) == (["c", "d"], 2, None)
    assert [q.get(i).result for i in "ab"] == [1, 2]
    q.cancel("c")
    q.fail("c", JobCancelled("c"))
    jobs, recorded, conflict = q._record_and_claim(
        [("c", "late"), ("d", 4), ("nope", None)], 5, None
    )
    assert (jobs, recorded) == ([], 1)
    assert conflict is not None and set(conflict.refused) == {"c", "nope"}
    assert isinstance(conflict.refused["nope"], JobNotFound)
    assert q.get("c").status is JobStatus.CANCELLED and q.get("d").result == 4
    with pytest.raises(TypeError, match="result of job e"):
        q._record_and_claim([("e", object())], 1, None)


def test_a_late_completion_never_completes_the_job_its_own_claim_takes_again(make_queue):
    """The worker lost its claim (presumed dead, its job recovered: Queued, first in line)
    and records the job's completion with its next claim, which takes that very job again:
    the completion is refused, as recorded before the claim it would be, and the job is
    handed out to be run again, not completed by the earlier attempt's result."""
    first = make_queue()
    first.enqueue({"type": "T"}, job_id="j")
    assert first.claim().job_id == "j"
    lease = first._worker_lock
    assert lease is not None
    lease.release()
    assert [j.job_id for j in make_queue().recover()] == ["j"]
    jobs, recorded, conflict = first._record_and_claim([("j", "late")], 1, None)
    assert [(j.job_id, j.attempts) for j in jobs] == [("j", 2)]
    assert recorded == 0 and conflict is not None and set(conflict.refused) == {"j"}
    assert isinstance(conflict.refused["j"], JobConflict)
    stored = first.get("j")
    assert (stored.status, stored.attempts, stored.result) == (JobStatus.RUNNING, 2, None)
