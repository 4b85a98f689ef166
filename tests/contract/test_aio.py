"""``jobledger.aio.AsyncJobQueue`` on every backend: the JobQueue's methods as coroutines,
``wait`` for each outcome, and the web-service example of the README.

Each test runs its coroutine with ``asyncio.run`` (no pytest plugin). The queue is opened
on the same storage as ``make_queue``'s (its location, the fake clock, "flush").
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

import jobledger
from jobledger import (
    JobCancelled,
    JobFailed,
    JobNotFound,
    JobQueue,
    JobStatus,
    WaitTimeout,
    Worker,
)
from jobledger.aio import NATIVE_ON_POSTGRES, AsyncJobQueue

T = TypeVar("T")
WAIT = 60  # seconds: only a bound on a hang, never a synchronisation


def run(make_queue, test: Callable[[AsyncJobQueue], Awaitable[T]]) -> T:
    """``test(queue)`` on a new event loop, with an AsyncJobQueue on ``make_queue``'s
    storage, closed afterwards."""

    async def main() -> T:
        async with AsyncJobQueue(queue=make_queue()) as aq:
            return await test(aq)

    return asyncio.run(main())


def test_the_queue_methods_as_coroutines(make_queue, clock):
    async def test(aq: AsyncJobQueue) -> None:
        assert aq.native == (NATIVE_ON_POSTGRES if make_queue.backend == "postgres" else set())
        first = await aq.enqueue({"type": "T", "n": 1}, job_id="first", priority=5)
        assert first == "first"
        assert await aq.enqueue({"type": "T", "n": 99}, job_id="first") == "first"  # once
        many = await aq.enqueue_many([{"type": "T", "n": i} for i in (2, 3)], job_ids=["a", "b"])
        assert many == ["a", "b"]
        later = await aq.enqueue({"type": "T"}, job_id="later", run_after=3600)
        got = await aq.get("first")
        assert got.status is JobStatus.QUEUED and got.payload == {"n": 1}
        assert await aq.get("nope") is None
        assert [j.job_id for j in await aq.list(JobStatus.QUEUED)] == ["first", "a", "b", later]
        assert (await aq.counts())["Queued"] == 4
        assert await aq.pending_count() == 4
        assert (await aq.queued_by_type())["T"].delayed == 1

        claimed = await aq.claim()
        assert claimed.job_id == "first" and claimed.attempts == 1
        assert await aq.live_workers() == [aq.queue.worker_id]
        done = await aq.complete("first", {"ok": True})
        assert done.status is JobStatus.COMPLETED
        assert await aq.wait("first") == {"ok": True}

        [a, b] = await aq.claim_many(2)
        await aq.complete_many({a.job_id: 1})
        back = await aq.requeue(b.job_id)
        assert back.status is JobStatus.QUEUED and back.attempts == 0
        snoozed = await aq.snooze(await aq.claim(), 0)  # due at once, attempt uncounted
        assert snoozed.status is JobStatus.QUEUED and snoozed.attempts == 0
        await aq.claim()
        failed = await aq.fail("b", "no luck")
        assert failed.status is JobStatus.QUEUED and failed.error_message == "no luck"
        cancelled = await aq.cancel("b")
        assert cancelled.status is JobStatus.CANCELLED
        assert (await aq.retry("b")).status is JobStatus.QUEUED
        assert await aq.recover() == []
        await aq.checkpoint()

        clock.advance(days=2)
        assert {j.job_id for j in await aq.prunable(86400)} == {"first", "a"}
        assert await aq.prune(86400, dry_run=True) == 2
        assert await aq.prune(86400) == 2
        assert await aq.get("first") is None

    run(make_queue, test)


def test_enqueue_refuses_what_the_queue_refuses_before_any_write(make_queue):
    async def test(aq: AsyncJobQueue) -> None:
        with pytest.raises(TypeError):
            await aq.enqueue({"no": "type"})
        with pytest.raises(jobledger.ConfigError):
            await aq.enqueue({"type": "T"}, max_attempts=0)
        with pytest.raises(jobledger.ConfigError):
            await aq.enqueue_many([{"type": "T"}], job_ids=["x", "y"])
        with pytest.raises(jobledger.InvalidPayload):
            await aq.enqueue_many([{"type": "T", "bad": float("nan")}])
        await aq.enqueue({"type": "T"})
        assert (await aq.counts())["Queued"] == 1  # of the five, only the good one

    run(make_queue, test)


def test_wait_answers_each_outcome(make_queue):
    async def test(aq: AsyncJobQueue) -> None:
        ok, bad, gone, slow = await aq.enqueue_many(
            [{"type": "T"}] * 4, job_ids=["ok", "bad", "gone", "slow"], max_attempts=1
        )
        await aq.claim_many(2)
        await aq.complete(ok, [1, 2])
        try:
            raise RuntimeError("out of memory")
        except RuntimeError as exc:
            await aq.fail(bad, exc)
        await aq.cancel(gone)
        assert await aq.wait(ok, timeout=WAIT) == [1, 2]
        with pytest.raises(JobFailed) as failed:
            await aq.wait(bad, timeout=WAIT)
        assert failed.value.job_id == bad and failed.value.error_message.endswith("out of memory")
        assert "raise RuntimeError" in failed.value.traceback and "raise RuntimeError" in str(
            failed.value
        )
        with pytest.raises(JobCancelled):
            await aq.wait(gone, timeout=WAIT)
        with pytest.raises(TimeoutError) as late:
            await aq.wait(slow, timeout=0.05)
        assert isinstance(late.value, WaitTimeout) and late.value.status == "Queued"
        with pytest.raises(JobNotFound):
            await aq.wait("no-such-job", timeout=WAIT)
        assert (await aq.get(slow)).status is JobStatus.QUEUED  # a wait changes nothing

    run(make_queue, test)


def test_many_waits_share_the_loop_and_a_worker_in_this_process_ends_them(make_queue):
    async def test(aq: AsyncJobQueue) -> list[Any]:
        ids = await aq.enqueue_many([{"type": "Square", "x": x} for x in range(20)])
        waits = [asyncio.ensure_future(aq.wait(i, timeout=WAIT)) for i in ids]
        await asyncio.sleep(0)  # every wait has started (a loop turn, not a time)

        async def square(job: jobledger.Job) -> int:
            await asyncio.sleep(0)
            return int(job.payload["x"]) ** 2

        worker = Worker(aq.queue, {"Square": square}, concurrency=4, handle_signals=False)
        thread = threading.Thread(target=worker.run, kwargs={"until_empty": True})
        thread.start()
        results = await asyncio.gather(*waits)
        await asyncio.to_thread(thread.join, WAIT)
        return results

    assert run(make_queue, test) == [x * x for x in range(20)]


def test_a_queue_given_is_left_open_and_one_opened_is_closed(make_queue):
    given = make_queue()

    async def main() -> None:
        async with AsyncJobQueue(queue=given) as aq:
            await aq.enqueue({"type": "T"}, job_id="kept")
        assert given.get("kept").status is JobStatus.QUEUED  # still usable
        with pytest.raises(jobledger.ConfigError):
            AsyncJobQueue(make_queue.location, queue=given)
        opened = AsyncJobQueue(make_queue.location, durability="flush")
        assert isinstance(opened.queue, JobQueue) and opened.dir == given.dir
        assert (await opened.get("kept")).job_id == "kept"
        await opened.close()

    asyncio.run(main())


def test_one_queue_serves_one_event_loop_after_another(make_queue):
    aq = AsyncJobQueue(queue=make_queue())

    async def first() -> None:
        await aq.enqueue({"type": "T"}, job_id="j")
        with pytest.raises(WaitTimeout):
            await aq.wait("j", timeout=0.05)  # its listener (PostgreSQL) ends with the loop

    async def second() -> Any:
        await aq.claim()
        await aq.complete("j", 3)
        assert (await aq.get("j")).status is JobStatus.COMPLETED
        return await aq.wait("j", timeout=WAIT)

    asyncio.run(first())
    assert asyncio.run(second()) == 3
    asyncio.run(aq.close())


# -- the README's web service example -------------------------------------------------------


class FakeApp:
    """The decorators of a FastAPI app, minus FastAPI: they register and return the
    function, so that the example's endpoints are plain coroutines to call."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Callable[..., Awaitable[Any]]] = {}

    def _route(self, method: str, path: str) -> Callable[[Any], Any]:
        def register(fn: Any) -> Any:
            self.routes[(method, path)] = fn
            return fn

        return register

    def post(self, path: str) -> Callable[[Any], Any]:
        return self._route("POST", path)

    def get(self, path: str) -> Callable[[Any], Any]:
        return self._route("GET", path)


def web_service(app: FakeApp, url: str) -> AsyncJobQueue:
    """The README's example, as written there (``app = FastAPI()`` aside)."""
    from jobledger.aio import AsyncJobQueue

    queue = AsyncJobQueue(url)

    @app.post("/reports")
    async def create_report(body: dict) -> dict:
        job_id = await queue.enqueue({"type": "Report", **body})
        return {"job_id": job_id}

    @app.get("/reports/{job_id}")
    async def report(job_id: str, timeout: float = 30) -> dict:
        try:
            result = await queue.wait(job_id, timeout=timeout)
        except TimeoutError:
            return {"status": "running"}
        except jobledger.JobFailed as exc:
            return {"status": "failed", "error": exc.error_message}
        except jobledger.JobNotFound:
            return {"status": "unknown"}
        return {"status": "done", "result": result}

    return queue


def test_the_web_service_example(make_queue):
    app = FakeApp()

    async def main() -> None:
        queue = web_service(app, str(make_queue.location))
        create, report = app.routes[("POST", "/reports")], app.routes[("GET", "/reports/{job_id}")]
        made = await create({"month": "2025-01"})
        job_id = made["job_id"]
        assert await report(job_id, timeout=0) == {"status": "running"}
        assert await report("nope") == {"status": "unknown"}

        def build(job: jobledger.Job) -> dict:
            if job.payload["month"] == "never":
                raise ValueError("no data for that month")
            return {"rows": 3, "month": job.payload["month"]}

        failing = (await create({"month": "never"}))["job_id"]
        # No backoff between the failing job's attempts: it fails for good in this run.
        worker_queue = JobQueue(make_queue.location, durability="flush", retry_delay=0)
        Worker(worker_queue, {"Report": build}, handle_signals=False).run(until_empty=True)
        worker_queue.close()
        assert await report(job_id) == {
            "status": "done",
            "result": {"rows": 3, "month": "2025-01"},
        }
        assert await report(failing) == {
            "status": "failed",
            "error": "ValueError: no data for that month",
        }
        await queue.close()

    asyncio.run(main())


def test_unique_keys_from_asyncio(make_queue):
    async def test(aq: AsyncJobQueue) -> None:
        first = await aq.enqueue({"type": "T"}, unique_key="k")
        assert await aq.enqueue({"type": "T"}, unique_key="k", unique_for=60) == first
        ids = await aq.enqueue_many([{"type": "T"}] * 3, unique_keys=["k", "k2", "k2"])
        assert ids[0] == first and ids[1] == ids[2] != first
        plain = await aq.enqueue({"type": "T"})  # the native path, without a key
        assert plain not in ids

    run(make_queue, test)
    assert make_queue().counts()["Queued"] == 3
