"""PostgreSQL: the finished jobs' notification, and the waits it wakes.

A wait here polls once an hour, so only a notification can end it within the test's
bounds. Each test makes sure the wait listens before the job finishes: the wait's read
after its listener's first call back (which comes once the LISTEN runs) is counted, and
only then is the job finished, by a Worker in ANOTHER process. Nothing sleeps to
synchronise: the parent reads pipes, counts reads, or polls pg_stat_activity (server
state) in a bounded loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.backends.postgres._pg import require_psycopg, until

require_psycopg()

import psycopg  # noqa: E402

from jobledger import JobQueue, JobStatus, WaitTimeout, Worker  # noqa: E402
from jobledger.aio import AsyncJobQueue  # noqa: E402
from jobledger.backends.postgres import _queries as q_  # noqa: E402
from jobledger.backends.postgres._listen import (  # noqa: E402
    finished_ids,
    start_listening_for_finished,
)
from tests._child import Channel, Child  # noqa: E402

WAIT = 60  # seconds: only a bound on a hang, never a synchronisation
HOUR = 3600


def _sessions(url: str, name: str) -> list[int]:
    """The server pids of this database's sessions named ``jobledger <name>...``."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s"
            " AND datname = current_database()",
            (f"jobledger {name}%",),
        ).fetchall()
    return [r[0] for r in rows]


def _worker_in_a_child(url: str):
    """A child process whose Worker runs the jobs of type T: it says ``started <id>``
    and finishes the job (returning its pid) when told ``finish``."""

    def target(chan: Channel) -> None:
        queue = JobQueue(url, durability="flush")

        def handler(job) -> dict[str, int]:
            chan.send(f"started {job.job_id}")
            assert chan.recv() == "finish"
            return {"pid": os.getpid()}

        Worker(queue, {"T": handler}, poll_interval=HOUR, handle_signals=False).run(
            until_empty=True
        )
        queue.close()
        chan.send("done")

    return target


class CountedReads:
    """Wraps a ``get``: each read's status is kept and released on a semaphore."""

    def __init__(self, get: Any) -> None:
        self._get = get
        self.statuses: list[JobStatus] = []
        self.done = threading.Semaphore(0)

    def __call__(self, job_id: str) -> Any:
        record = self._get(job_id)
        self.statuses.append(record.status)
        self.done.release()
        return record


class AsyncCountedReads(CountedReads):
    async def __call__(self, job_id: str) -> Any:  # type: ignore[override]
        record = await self._get(job_id)
        self.statuses.append(record.status)
        self.done.release()
        return record


def test_a_wait_is_woken_by_a_worker_in_another_process(pg_url, monkeypatch):
    with JobQueue(pg_url, durability="flush") as q:
        job_id = q.enqueue({"type": "T"})
    waiter = JobQueue(pg_url, durability="flush")
    reads = CountedReads(waiter.reader.get)
    monkeypatch.setattr(waiter.reader, "get", reads)
    with Child(_worker_in_a_child(pg_url)) as child:
        assert child.read_until("started ") == job_id
        got: list[Any] = []
        thread = threading.Thread(
            target=lambda: got.append(waiter.wait(job_id, timeout=WAIT, poll_interval=HOUR))
        )
        thread.start()
        # The first read, then the one the listener's first call back asks for: from then
        # on the job's finish reaches the wait by its notification, or not at all.
        assert reads.done.acquire(timeout=WAIT) and reads.done.acquire(timeout=WAIT)
        assert reads.statuses == [JobStatus.RUNNING, JobStatus.RUNNING]
        child.send("finish")
        thread.join(WAIT)
        assert got == [{"pid": child.pid}]
        assert len(reads.statuses) == 3  # woken once, for the one finish
        child.expect("done")
        child.check()
    waiter.close()
    assert _sessions(pg_url, "listen for finished jobs") == []  # close() stopped it


def test_an_async_wait_is_woken_by_a_worker_in_another_process(pg_url):
    with JobQueue(pg_url, durability="flush") as q:
        job_id = q.enqueue({"type": "T"})

    async def main(child: Child) -> Any:
        async with AsyncJobQueue(pg_url, durability="flush") as aq:
            reads = AsyncCountedReads(aq._native.get)
            aq._native.get = reads  # type: ignore[method-assign]
            waiting = asyncio.ensure_future(aq.wait(job_id, timeout=WAIT, poll_interval=HOUR))
            for _ in range(2):  # the first read, and the one after the LISTEN
                assert await asyncio.to_thread(reads.done.acquire, timeout=WAIT)
            assert reads.statuses == [JobStatus.RUNNING, JobStatus.RUNNING]
            assert len(_sessions(pg_url, "listen for finished jobs")) == 1
            child.send("finish")
            result = await waiting
            assert len(reads.statuses) == 3
            return result

    with Child(_worker_in_a_child(pg_url)) as child:
        assert child.read_until("started ") == job_id
        assert asyncio.run(main(child)) == {"pid": child.pid}
        child.expect("done")
        child.check()
    assert _sessions(pg_url, "listen for finished jobs") == []


class NoThreads(ThreadPoolExecutor):
    """An executor that fails any call once ``forbid`` is set."""

    forbid = False

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.forbid:
            raise AssertionError(f"a call went to a thread: {fn!r}")
        return super().submit(fn, *args, **kwargs)


@pytest.mark.parametrize("durability", ["fsync", "flush"])
def test_the_native_calls_use_no_thread(pg_url, durability):
    executor = NoThreads(max_workers=2)

    async def main() -> None:
        async with AsyncJobQueue(pg_url, durability, executor=executor) as aq:
            await aq.enqueue({"type": "T"}, job_id="warm")  # first use: migrate, recover
            await aq.get("warm")
            executor.forbid = True
            assert await aq.enqueue({"type": "T"}, job_id="one") == "one"
            assert await aq.enqueue({"type": "T"}, job_id="one") == "one"
            assert await aq.enqueue_many([{"type": "T"}] * 2, job_ids=["x", "one"]) == [
                "x",
                "one",
            ]
            assert (await aq.get("x")).status is JobStatus.QUEUED
            with pytest.raises(WaitTimeout):
                await aq.wait("x", timeout=0.05)
            with JobQueue(pg_url, durability="flush") as other:  # blocking, on purpose
                other.claim(types=["T"])
                other.complete("warm", 7)
            assert await aq.wait("warm", timeout=WAIT) == 7
            executor.forbid = False

    asyncio.run(main())
    executor.shutdown()
    with JobQueue(pg_url) as q:
        assert q.counts()["Queued"] == 2  # one and x, each stored once


def test_the_native_calls_reconnect_after_their_sessions_end(pg_url):
    async def main() -> None:
        async with AsyncJobQueue(pg_url, durability="flush") as aq:
            await aq.enqueue({"type": "T"}, job_id="before")
            pids = _sessions(pg_url, "async requests")
            assert pids
            with psycopg.connect(pg_url, autocommit=True) as admin:
                for pid in pids:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            until(lambda: not set(pids) & set(_sessions(pg_url, "async requests")), 30, "gone")
            assert (await aq.get("before")).job_id == "before"
            assert await aq.enqueue({"type": "T"}, job_id="after") == "after"

    asyncio.run(main())
    with JobQueue(pg_url) as q:
        assert q.counts()["Queued"] == 2


def test_the_async_listener_listens_again_after_its_session_ends(pg_url):
    with JobQueue(pg_url, durability="flush") as q:
        job_id = q.enqueue({"type": "T"})

    async def main(child: Child) -> Any:
        async with AsyncJobQueue(pg_url, durability="flush") as aq:
            reads = AsyncCountedReads(aq._native.get)
            aq._native.get = reads  # type: ignore[method-assign]
            waiting = asyncio.ensure_future(aq.wait(job_id, timeout=WAIT, poll_interval=HOUR))
            for _ in range(2):
                assert await asyncio.to_thread(reads.done.acquire, timeout=WAIT)
            [old] = _sessions(pg_url, "listen for finished jobs")
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (old,))
            # Listening again, it calls back once: the wait reads again, then waits.
            assert await asyncio.to_thread(reads.done.acquire, timeout=WAIT)
            assert _sessions(pg_url, "listen for finished jobs") not in ([], [old])
            child.send("finish")
            return await waiting

    with Child(_worker_in_a_child(pg_url)) as child:
        assert child.read_until("started ") == job_id
        assert asyncio.run(main(child)) == {"pid": child.pid}
        child.expect("done")
        child.check()


# -- the notification itself ---------------------------------------------------------------


def _notes(conn: psycopg.Connection[Any], marker: str) -> list[tuple[str, Any]]:
    """The notifications this session heard up to ``marker`` (sent last, on the jobs'
    channel), as (channel, payload parsed as JSON where it is)."""
    conn.execute("SELECT pg_notify('jobledger_jobs', %s)", (marker,))
    out = []
    for note in conn.notifies(timeout=WAIT):
        if note.payload == marker:
            return out
        try:
            payload = json.loads(note.payload)
        except ValueError:
            payload = note.payload
        out.append((note.channel, payload))
    raise AssertionError(f"the marker never came; heard {out}")


def test_finishes_notify_their_own_channel_once_per_transaction(pg_url):
    with JobQueue(pg_url, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="warm")  # creates the schema
        with psycopg.connect(pg_url, autocommit=True) as conn:
            schema = conn.execute("SELECT current_schema()").fetchone()[0]
            conn.execute("LISTEN jobledger_jobs")
            conn.execute("LISTEN jobledger_finished")
            # No listener's mark held: a finish notifies no one (nor takes the lock).
            q.enqueue({"type": "T"}, job_id="unheard", priority=1)
            q.claim()
            q.complete("unheard")
            assert _notes(conn, "m0") == [("jobledger_jobs", schema)]
            conn.execute(q_.LISTENING_FOR_FINISHED)  # what a listener holds
            q.enqueue_many([{"type": "T"}] * 3, job_ids=["a", "b", "c"], max_attempts=1)
            q.claim_many(3)  # warm, a, b: c stays Queued, so its cancel finishes it
            q.complete_many({"warm": 1, "a": 2})
            q.fail("b", "boom")
            q.cancel("c")
            assert _notes(conn, "m1") == [
                ("jobledger_jobs", schema),  # the enqueue: claimable jobs
                ("jobledger_finished", [schema, ["a", "warm"]]),  # one for the batch
                ("jobledger_finished", [schema, ["b"]]),
                ("jobledger_finished", [schema, ["c"]]),
            ]
            # Too many long ids for one payload: a notification that names none.
            long_ids = [c * 3000 for c in "xyz"]
            q.enqueue_many([{"type": "T"}] * 3, job_ids=long_ids)
            q.claim_many(3)
            q.complete_many(dict.fromkeys(long_ids, None))
            assert _notes(conn, "m2") == [
                ("jobledger_jobs", schema),
                ("jobledger_finished", [schema, None]),
            ]
            # A requeue, a retry, a failure to be retried: nothing finished.
            q.enqueue({"type": "T"}, job_id="d", max_attempts=2)
            q.claim()
            q.requeue("d")
            q.claim()
            q.fail("d", "once")
            q.retry("c")
            heard = _notes(conn, "m3")
            assert heard and all(channel == "jobledger_jobs" for channel, _ in heard)


def test_a_dead_workers_job_failed_by_recovery_is_notified(pg_url):
    first = JobQueue(pg_url, durability="flush")
    first.enqueue({"type": "T"}, job_id="doomed", max_attempts=1)
    first.claim()
    first.close()  # its worker is gone; recovering its job fails it for good
    with (
        psycopg.connect(pg_url, autocommit=True) as conn,
        JobQueue(pg_url, durability="flush") as second,
    ):
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        conn.execute("LISTEN jobledger_jobs")  # for _notes's marker
        start_listening_for_finished(conn)
        assert [j.job_id for j in second.recover()] == ["doomed"]
        assert _notes(conn, "m") == [("jobledger_finished", [schema, ["doomed"]])]
        assert second.get("doomed").status is JobStatus.FAILED


def _lock_waits(url: str) -> int:
    """How many advisory lock requests of this database wait (not granted)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    return int(row[0])


def test_a_finish_looks_for_listeners_only_once_it_holds_the_barrier(pg_url):
    # A finish held up at the barrier while a listener takes its mark: it must look for
    # listeners after the barrier, see the mark, and notify. (Had it looked first, it
    # would have found none, and its job's waiter would wait for its poll.)
    with JobQueue(pg_url, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="held")
        q.claim()
        with (
            psycopg.connect(pg_url, autocommit=True) as blocker,
            psycopg.connect(pg_url, autocommit=True) as listener,
        ):
            schema = listener.execute("SELECT current_schema()").fetchone()[0]
            blocker.execute(q_.FINISHED_BARRIER)
            finishing = threading.Thread(target=q.complete, args=("held",))
            finishing.start()
            until(lambda: _lock_waits(pg_url) == 1, 30, "the finish waiting at the barrier")
            listener.execute("LISTEN jobledger_jobs")
            listener.execute(q_.LISTEN_FINISHED)
            listener.execute(q_.LISTENING_FOR_FINISHED)
            blocker.execute(q_.FINISHED_BARRIER_DONE)
            finishing.join(WAIT)
            assert _notes(listener, "m") == [("jobledger_finished", [schema, ["held"]])]


def test_a_new_listener_calls_back_only_after_the_finishes_that_looked_before_it(pg_url):
    # A finishing transaction that looked for listeners (none) and has not committed: a
    # new listener must not call back (its waits would read the job before the commit
    # and then wait for a notification that never comes) until that transaction ends.
    with JobQueue(pg_url, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="warm")  # creates the schema
        called = threading.Event()
        with psycopg.connect(pg_url) as finisher:  # a transaction, left open
            finisher.execute(q_.NOTIFY_FINISHED, ("jobledger_finished", ["x"]))
            stop = q.backend.watch_finished(lambda job_id: called.set())
            until(lambda: _lock_waits(pg_url) == 1, 30, "the listener waiting at the barrier")
            assert not called.is_set()
            finisher.commit()
            assert called.wait(WAIT)
            stop()


def test_a_notification_names_the_jobs_of_its_own_schema_only():
    assert finished_ids('["s1", ["a", "b"]]', "s1") == ["a", "b"]
    assert finished_ids('["s1", null]', "s1") == [None]
    assert finished_ids('["s2", ["a"]]', "s1") == []
    assert finished_ids("", "s1") == []  # a stopping listener's own wake-up
    assert finished_ids("s1", "s1") == []  # not a finished jobs' notification
