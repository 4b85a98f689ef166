"""The Worker's adaptive claims (``batch_size=None``) and its time bound on unrecorded
completions, on a monotonic clock the handlers move (no sleeping, no timing).

Every queue test runs on each backend (``make_queue``, tests/conftest.py).
"""

from __future__ import annotations

import threading

import pytest

from jobledger import JobLedgerError, JobStatus, Worker
from jobledger._prefetch import PREFETCH_CAP, Prefetch

WAIT = 10  # seconds: only a bound on a hang, never a synchronisation


class _Ticks:
    """A monotonic clock that moves only when a handler says its job took some time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _observed(q):
    """Wrap ``q.claim_many``, ``q.record_completions`` and the Worker's group commit (a
    record and a claim in one call): what each was asked."""
    claims: list[tuple[int, int]] = []  # (limit asked, jobs given)
    recorded: list[int] = []  # completions per call that records them
    real_claim, real_record = q.claim_many, q.record_completions
    real_both = q._record_and_claim

    def claim_many(limit, worker=None, types=None):
        jobs = real_claim(limit, worker=worker, types=types)
        claims.append((limit, len(jobs)))
        return jobs

    def record_completions(results):
        results = list(results)
        recorded.append(len(results))
        return real_record(results)

    def record_and_claim(results, limit, types):
        recorded.append(len(results))
        jobs, n, conflict = real_both(results, limit, types)
        claims.append((limit, len(jobs)))
        return jobs, n, conflict

    q.claim_many, q.record_completions = claim_many, record_completions
    q._record_and_claim = record_and_claim
    return claims, recorded


def _timed_handler(ticks):
    def handler(job):
        ticks.now += job.payload["ms"] / 1000  # the job "took" that long
        return job.payload["i"]

    return handler


def test_short_jobs_grow_the_claims_toward_the_cap(make_queue):
    q = make_queue()
    ids = q.enqueue_many([{"type": "T", "i": i, "ms": 0.5} for i in range(300)])
    claims, _ = _observed(q)
    ticks = _Ticks()
    worker = Worker(q, {"T": _timed_handler(ticks)}, handle_signals=False, monotonic=ticks)
    worker.run(until_empty=True)
    asked = [limit for limit, got in claims if got]
    # Nothing measured: one job; then doubling while jobs stay short, up to the cap.
    assert asked[:7] == [1, 2, 4, 8, 16, 32, PREFETCH_CAP]
    assert max(asked) == PREFETCH_CAP
    assert worker.processed == 300
    assert all(q.get(i).result == n for n, i in enumerate(ids))
    q.close()


def test_long_jobs_bring_the_claims_back_to_one(make_queue):
    q = make_queue()
    short = [{"type": "T", "i": i, "ms": 0.5} for i in range(40)]
    long = [{"type": "T", "i": 40 + i, "ms": 20} for i in range(30)]
    ids = q.enqueue_many(short + long)
    claims, _ = _observed(q)
    ticks = _Ticks()
    worker = Worker(q, {"T": _timed_handler(ticks)}, handle_signals=False, monotonic=ticks)
    worker.run(until_empty=True)
    asked = [limit for limit, got in claims if got]
    # 1+2+4+8+16 short jobs, then a claim of 32: 9 short and 23 long. After five long
    # ones the recent mean is over 5 ms: the batch's 18 unstarted jobs go back to the
    # queue (not waiting Running behind long ones), then one job per claim.
    assert asked[:6] == [1, 2, 4, 8, 16, 32]
    assert asked[6:] == [1] * 25  # the 18 given back and the 7 long ones never claimed
    assert worker.processed == 70
    assert all(q.get(i).status is JobStatus.COMPLETED for i in ids)
    assert all(q.get(i).attempts == 1 for i in ids)  # given back: the attempt uncounted
    q.close()


def test_unrecorded_completions_are_recorded_once_the_oldest_is_50ms_old(make_queue):
    q = make_queue()
    ids = q.enqueue_many([{"type": "T", "i": i, "ms": 20} for i in range(10)])
    claims, recorded = _observed(q)
    ticks = _Ticks()
    worker = Worker(
        q, {"T": _timed_handler(ticks)}, batch_size=10, handle_signals=False, monotonic=ticks
    )
    worker.run(until_empty=True)
    assert claims[0] == (10, 10)  # one batch of ten
    # 20 ms each: after the fourth job the first finished 60 ms ago; so four, four, and
    # the last two at the batch's end.
    assert recorded == [4, 4, 2]
    assert all(q.get(i).result == n for n, i in enumerate(ids))
    q.close()


def test_a_fixed_batch_size_is_kept_whatever_the_durations(make_queue):
    q = make_queue()
    q.enqueue_many([{"type": "T", "i": i, "ms": 20} for i in range(9)])
    claims, _ = _observed(q)
    ticks = _Ticks()
    Worker(
        q, {"T": _timed_handler(ticks)}, batch_size=3, handle_signals=False, monotonic=ticks
    ).run(until_empty=True)
    assert [c for c in claims if c[1]] == [(3, 3)] * 3
    q.close()


def test_batch_size_none_is_adaptive_and_other_non_positive_sizes_are_refused(make_queue):
    q = make_queue()
    assert Worker(q, {"T": print}).batch_size is None
    for bad in (0, -1, 2.5):
        with pytest.raises(JobLedgerError, match="batch_size"):
            Worker(q, {"T": print}, batch_size=bad)


def test_prefetch_sizes_from_the_recent_mean_within_the_budget():
    p = Prefetch()
    assert p.size() == 1  # nothing measured
    for _ in range(20):
        p.observe(0.004)  # short, but 50 ms holds only 12 of them
    sizes = [p.size() for _ in range(6)]
    assert sizes == [2, 4, 8, 12, 12, 12]
    for _ in range(20):
        p.observe(0.010)
    assert p.size() == 1
    assert Prefetch(7).size() == 7 and Prefetch(7).most == 7 and Prefetch().most == 50


def test_completions_waiting_behind_a_long_job_are_recorded_while_it_runs(make_queue):
    q = make_queue()
    first, long = q.enqueue_many([{"type": "T", "i": 0}, {"type": "T", "i": 1}])
    ticks = _Ticks()
    recorded = threading.Event()
    real_complete = q.complete

    def complete(job_id, result=None):
        done = real_complete(job_id, result)
        if job_id == first:
            recorded.set()
        return done

    q.complete = complete
    seen_while_running: list[bool] = []

    def handler(job):
        if job.job_id == long:
            ticks.now += 0.06  # running 60 ms, the first job finished 60 ms ago
            seen_while_running.append(recorded.wait(WAIT))
        return job.payload["i"]

    Worker(q, {"T": handler}, batch_size=2, handle_signals=False, monotonic=ticks).run(
        until_empty=True
    )
    assert seen_while_running == [True]  # recorded before the long job ended
    assert q.get(first).result == 0 and q.get(long).result == 1
    q.close()
