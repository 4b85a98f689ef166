"""Named queues and their limits through the public API, on every backend: a job waits in
its queue, a claim (or a Worker) serves the queues it is given, a queue's limit bounds its
Running jobs across every queue object (process), and ``counts_by_queue`` counts per queue."""

from __future__ import annotations

import asyncio

import pytest

from jobledger import ConfigError, InvalidNameError, JobStatus, Limits, Worker
from jobledger.aio import AsyncJobQueue


def _ids(jobs):
    return [j.job_id for j in jobs]


def test_a_job_waits_in_its_named_queue_and_a_claim_serves_the_queues_it_is_given(make_queue):
    q = make_queue()
    plain = q.enqueue({"type": "T"}, job_id="plain")
    gpu = q.enqueue({"type": "T"}, job_id="gpu-1", queue="gpu")
    assert q.get(plain).queue == "default"
    assert q.get(gpu).queue == "gpu"
    assert q.claim(queues=["cpu"]) is None
    assert q.claim(queues=["gpu"]).job_id == "gpu-1"
    assert q.claim(queues=["gpu"]) is None
    assert q.claim(queues=["default", "gpu"]).job_id == "plain"
    # Read back by another queue object (process), as stored.
    again = make_queue().get("gpu-1")
    assert again.queue == "gpu" and again.status is JobStatus.RUNNING


def test_a_claim_of_every_queue_takes_them_in_serving_order(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="a", queue="x")
    q.enqueue({"type": "T"}, job_id="b")
    q.enqueue({"type": "T"}, job_id="c", queue="y", priority=5)
    assert _ids(q.claim_many(10)) == ["c", "a", "b"]


def test_enqueue_many_and_the_async_queue_take_a_queue(make_queue):
    q = make_queue()
    ids = q.enqueue_many([{"type": "T"}] * 3, queue="batch")
    assert {q.get(i).queue for i in ids} == {"batch"}
    keyed = q.enqueue_many([{"type": "T"}] * 2, queue="batch", rate_keys=["k1", None])
    assert [q.get(i).rate_key for i in keyed] == ["k1", None]

    async def main() -> tuple[str, list[str]]:
        async with AsyncJobQueue(queue=make_queue()) as aq:
            one = await aq.enqueue({"type": "T"}, queue="async-q", rate_key="acct")
            many = await aq.enqueue_many([{"type": "T"}] * 2, queue="async-q")
            await aq.set_limit("async-q", 1)
            await aq.set_rate_limit("Other", 3, 60)
            assert (await aq.limits()).queues == {"async-q": 1}
            assert len(await aq.claim_many(5, queues=["async-q"])) == 1
            assert (await aq.counts_by_queue())["async-q"]["Running"] == 1
            assert await aq.claim(queues=["async-q"]) is None
            return one, many

    one, many = asyncio.run(main())
    assert (q.get(one).queue, q.get(one).rate_key) == ("async-q", "acct")
    assert {q.get(i).queue for i in many} == {"async-q"}


@pytest.mark.parametrize("name", ["", "a:b", " gpu", "x" * 201])
def test_a_queue_name_that_cannot_be_one_is_refused_before_any_write(make_queue, name):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="first")
    with pytest.raises((ConfigError, InvalidNameError)):
        q.enqueue({"type": "T"}, queue=name)
    with pytest.raises((ConfigError, InvalidNameError)):
        q.set_limit(name, 1)
    with pytest.raises((ConfigError, InvalidNameError)):
        q.claim(queues=[name])
    assert sum(q.counts().values()) == 1 and q.limits() == Limits()


def test_a_limit_must_be_a_count(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"})
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(ConfigError):
            q.set_limit("gpu", bad)
    assert q.limits() == Limits()


def test_a_queue_limit_bounds_its_running_jobs_across_queue_objects(make_queue):
    q = make_queue()
    q.set_limit("gpu", 2)
    assert q.limits().queues == {"gpu": 2}
    for i in range(5):
        q.enqueue({"type": "T"}, job_id=f"g{i}", queue="gpu")
    first = q.claim_many(5)
    assert _ids(first) == ["g0", "g1"]
    other = make_queue()  # another process
    assert other.claim_many(5) == []
    assert other.claim(queues=["gpu"]) is None
    q.complete("g0")
    assert _ids(other.claim_many(5)) == ["g2"]
    q.fail("g1", "boom")  # back to Queued (a retry later): no longer Running
    assert q.counts_by_queue()["gpu"]["Running"] == 1
    assert _ids(q.claim_many(5, queues=["gpu"])) == ["g3"]
    # Removed: no limit any more.
    other.set_limit("gpu", None)
    assert q.limits() == Limits()
    assert _ids(q.claim_many(5)) == ["g4"]


def test_a_full_queue_lets_the_claim_serve_other_queues(make_queue):
    q = make_queue()
    q.set_limit("gpu", 1)
    q.enqueue_many([{"type": "T"}] * 3, queue="gpu", priority=9, job_ids=["g1", "g2", "g3"])
    q.enqueue_many([{"type": "T"}] * 2, job_ids=["d1", "d2"])
    assert _ids(q.claim_many(10)) == ["g1", "d1", "d2"]


def test_a_limit_of_zero_starts_nothing_and_others_queues_are_not_limited(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="held", queue="paused")
    q.enqueue({"type": "T"}, job_id="free", queue="other")
    q.set_limit("paused", 0)
    assert _ids(q.claim_many(5)) == ["free"]
    assert q.get("held").status is JobStatus.QUEUED and q.get("held").attempts == 0


def test_a_limit_stored_after_a_queue_object_claimed_is_obeyed_by_it(make_queue):
    worker = make_queue()
    worker.enqueue({"type": "T"}, job_id="warm-up")
    assert worker.claim().job_id == "warm-up"  # it has claimed: it knows there are no limits
    worker.enqueue_many([{"type": "T"}] * 3, queue="gpu", job_ids=["g1", "g2", "g3"])
    make_queue().set_limit("gpu", 1)  # another process stores a limit
    assert _ids(worker.claim_many(5)) == ["g1"]
    make_queue().set_limit("gpu", 2)  # raised
    assert _ids(worker.claim_many(5)) == ["g2"]


def test_the_group_commit_of_a_worker_obeys_the_limit(make_queue):
    q = make_queue()
    q.set_limit("gpu", 1)
    q.enqueue_many([{"type": "T"}] * 3, queue="gpu", job_ids=["g1", "g2", "g3"])
    [job] = q.claim_many(5)
    # The completion recorded with the next claim: the claim sees the room it made.
    jobs, recorded, conflict = q._record_and_claim([(job.job_id, "ok")], 5, None)
    assert (recorded, conflict, _ids(jobs)) == (1, None, ["g2"])
    jobs, _, _ = q._record_and_claim([], 5, None, frozenset({"gpu"}))
    assert jobs == []


def test_counts_by_queue_counts_every_status_per_queue(make_queue):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 3, queue="gpu", job_ids=["g1", "g2", "g3"])
    q.enqueue({"type": "T"}, job_id="d1")
    q.claim(queues=["gpu"])
    q.complete("g1")
    q.claim(queues=["gpu"])
    q.cancel("g3")
    zero = {s.value: 0 for s in JobStatus}
    want = {
        "default": {**zero, "Queued": 1},
        "gpu": {**zero, "Running": 1, "Completed": 1, "Cancelled": 1},
    }
    assert q.counts_by_queue() == want
    assert make_queue().counts_by_queue() == want  # another process reads the same
    assert q.counts() == {**zero, "Queued": 1, "Running": 1, "Completed": 1, "Cancelled": 1}
    assert make_queue().counts_by_queue() == want


def test_a_worker_serves_only_its_queues_with_its_slots(make_queue):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 2, queue="gpu", job_ids=["g1", "g2"])
    q.enqueue_many([{"type": "T"}] * 2, queue="cpu", job_ids=["c1", "c2"])
    q.enqueue({"type": "T"}, job_id="elsewhere", queue="other")
    seen: list[str] = []
    worker = Worker(
        q,
        {"T": lambda job: seen.append(job.queue)},
        queues={"gpu": 1, "cpu": 2},
        handle_signals=False,
        poll_interval=0.01,
    )
    assert worker.concurrency == 3
    worker.run(until_empty=True)
    assert sorted(seen) == ["cpu", "cpu", "gpu", "gpu"]
    assert q.get("elsewhere").status is JobStatus.QUEUED
    with pytest.raises(ConfigError):
        Worker(q, {"T": print}, concurrency=2, queues={"gpu": 1})
    with pytest.raises(ConfigError):
        Worker(q, {"T": print}, queues={"gpu": 0})
    listed = Worker(q, {"T": print}, concurrency=2, queues=["gpu", "cpu"])
    assert listed.queues == frozenset({"gpu", "cpu"}) and listed.concurrency == 2
