"""Unique jobs and schedules across real processes, on every backend: many forked processes
enqueue one unique key, or fire one due occurrence, at the same moment, and one job is
stored; a process killed in the middle of a keyed enqueue leaves the key to exactly one
job. Children are released together by one line each down their pipes (no sleeping)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from jobledger import JobQueue, JobStatus, _faults
from tests.conftest import FakeClock

from .._child import Channel, Child, released_together

KEY = "acct-1:2025-01-20"
RACERS = 8
OCCURRENCE = "2025-01-20T07:00:00+00:00"


def _enqueuer(location: str | Path, n: int, unique_for: float | None) -> Callable[[Channel], None]:
    def target(chan: Channel) -> None:
        q = JobQueue(location, durability="flush")
        q.recover()  # opened (and, on PostgreSQL, migrated) before the race
        chan.send("ready")
        assert chan.recv() == "go"
        job_id = q.enqueue({"type": "T", "who": n}, unique_key=KEY, unique_for=unique_for)
        chan.send(f"result {job_id}")

    return target


@pytest.mark.parametrize("unique_for", [None, 3600.0])
def test_many_processes_enqueueing_one_key_at_once_store_one_job(make_queue, unique_for):
    make_queue().recover()  # the schema exists before the children race for it
    ids = released_together([_enqueuer(make_queue.location, n, unique_for) for n in range(RACERS)])
    assert len(set(ids)) == 1
    q = make_queue()
    [job] = q.list()
    assert job.job_id == ids[0] and job.unique_key == KEY
    assert q.counts()["Queued"] == 1


def _batch_enqueuer(location: str | Path, n: int) -> Callable[[Channel], None]:
    def target(chan: Channel) -> None:
        q = JobQueue(location, durability="flush")
        q.recover()
        chan.send("ready")
        assert chan.recv() == "go"
        keys = [f"k-{(n + i) % 10}" for i in range(10)]  # every key, in another order
        ids = q.enqueue_many([{"type": "T", "who": n}] * 10, unique_keys=keys)
        chan.send("result " + ",".join(f"{k}={i}" for k, i in sorted(zip(keys, ids, strict=True))))

    return target


def test_many_processes_enqueueing_batches_of_the_same_keys_store_one_job_per_key(make_queue):
    make_queue().recover()
    results = released_together([_batch_enqueuer(make_queue.location, n) for n in range(6)])
    assert len(set(results)) == 1  # every process got the same job for each key
    q = make_queue()
    assert q.counts()["Queued"] == 10
    assert sorted(j.unique_key for j in q.list()) == sorted(f"k-{i}" for i in range(10))


def _firer(location: str | Path) -> Callable[[Channel], None]:
    def target(chan: Channel) -> None:
        q = JobQueue(location, durability="flush", clock=FakeClock(OCCURRENCE))
        q.recover()
        chan.send("ready")
        assert chan.recv() == "go"
        chan.send("result " + ",".join(q.enqueue_due()))

    return target


@pytest.mark.parametrize("catch_up", ["latest", "all"])
def test_many_processes_firing_one_schedule_enqueue_each_occurrence_once(
    make_queue, clock, catch_up
):
    clock.set("2025-01-20T02:30:00+00:00")
    q = make_queue()
    q.schedule("s", "0 * * * *", job={"type": "T"}, catch_up=catch_up)
    q.close()
    results = released_together([_firer(make_queue.location) for _ in range(RACERS)])
    enqueued = [job_id for line in results for job_id in line.split(",") if job_id]
    hours = ["07"] if catch_up == "latest" else ["03", "04", "05", "06", "07"]
    want = [f"s@2025-01-20T{h}:00:00.000Z" for h in hours]
    assert sorted(enqueued) == want  # each reported by exactly one process
    again = make_queue()
    assert sorted(j.job_id for j in again.list()) == want
    assert again.schedules()[0].last == "2025-01-20T07:00:00.000Z"


# Where a keyed enqueue can die: its journal line written but not its file (files), its
# file's temp written or renamed; PostgreSQL's one statement before it is sent or after
# it is answered.
_POINTS = {
    "files": ["queue.journal_appended", "files.temp_written", "files.replaced"],
    "postgres": ["pg.before_commit", "pg.after_commit"],
}


def _killed_enqueuer(location: str | Path, point: str) -> Callable[[Channel], None]:
    def target(chan: Channel) -> None:
        q = JobQueue(location, durability="fsync", clock=FakeClock())
        q.recover()
        _faults.arm(point)
        q.enqueue({"type": "T", "who": "killed"}, unique_key=KEY, unique_for=60)
        chan.send("result survived")  # never reached: the point kills it

    return target


@pytest.mark.parametrize("index", [0, 1, 2])
def test_a_keyed_enqueue_killed_at_any_point_leaves_the_key_to_one_job(make_queue, index):
    points = _POINTS[make_queue.backend]
    if index >= len(points):
        pytest.skip(f"{make_queue.backend} has {len(points)} points")
    make_queue().recover()
    child = Child(_killed_enqueuer(make_queue.location, points[index]))
    try:
        assert child.exit_code() == -9, "the fault point was never reached"
    finally:
        child.close()
    q = make_queue()
    first = q.enqueue({"type": "T", "who": "after"}, unique_key=KEY, unique_for=60)
    live = q.list(JobStatus.QUEUED)
    assert [j.job_id for j in live] == [first]
    assert make_queue().enqueue({"type": "T"}, unique_key=KEY, unique_for=60) == first
    stored = [j for j in make_queue().list() if j.unique_key == KEY]
    assert len(stored) == 1
    # Killed after its write landed, the dead process's job is the one: an enqueue that
    # never returned may or may not be stored, but never twice.
    assert stored[0].raw["who"] in ("killed", "after")
