"""``async def`` handlers in a Worker (``_async_handlers.py``), on every backend.

Overlap is proven with asyncio events (two coroutines that each wait for the other can
only both finish if they run side by side), never with sleeps.
"""

from __future__ import annotations

import asyncio
import threading

from jobledger import Job, JobStatus, Worker

WAIT = 60  # seconds: only a bound on a hang, never a synchronisation
LOOP_THREAD = "jobledger-async-handlers"


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == LOOP_THREAD]


def test_two_async_handlers_overlap_on_one_event_loop(make_queue):
    q = make_queue()
    a, b = q.enqueue_many([{"type": "Meet", "who": w} for w in "ab"], job_ids=["a", "b"])
    arrived = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def meet(job: Job) -> list[int]:
        me, other = job.payload["who"], {"a": "b", "b": "a"}[job.payload["who"]]
        arrived[me].set()
        # Returns only if the other coroutine runs meanwhile, on this same loop.
        await asyncio.wait_for(arrived[other].wait(), WAIT)
        return [threading.get_ident(), id(asyncio.get_running_loop())]

    worker = Worker(q, {"Meet": meet}, concurrency=2, batch_size=1, handle_signals=False)
    worker.run(until_empty=True)
    first, second = q.get(a), q.get(b)
    assert first.status is second.status is JobStatus.COMPLETED
    assert first.result == second.result  # one thread, one loop
    assert _loop_threads() == []  # run() stopped the loop


def test_concurrency_bounds_the_coroutines_in_flight(make_queue):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 6)
    in_flight: list[int] = [0]
    most: list[int] = [0]

    async def step(job: Job) -> None:
        in_flight[0] += 1  # one loop thread: no lock needed
        most[0] = max(most[0], in_flight[0])
        for _ in range(5):
            await asyncio.sleep(0)  # let any other coroutine run
        in_flight[0] -= 1

    Worker(q, {"T": step}, concurrency=1, handle_signals=False).run(until_empty=True)
    assert q.counts()["Completed"] == 6
    assert most == [1]


def test_an_async_handlers_value_is_the_result_and_its_exception_fails_the_job(make_queue):
    q = make_queue()
    ok = q.enqueue({"type": "Add", "x": 2, "y": 3})
    bad = q.enqueue({"type": "Boom"}, max_attempts=1)

    async def add(job: Job) -> int:
        await asyncio.sleep(0)
        return int(job.payload["x"]) + int(job.payload["y"])

    async def boom(job: Job) -> None:
        await asyncio.sleep(0)
        raise KeyError("missing column")

    Worker(q, {"Add": add, "Boom": boom}, handle_signals=False).run(until_empty=True)
    assert q.wait(ok, timeout=WAIT) == 5
    failed = q.get(bad)
    assert failed.status is JobStatus.FAILED
    assert failed.error_message == "KeyError: 'missing column'"
    assert "in boom" in failed.traceback and 'raise KeyError("missing column")' in failed.traceback
    # Another worker starts a loop of its own.
    again = q.enqueue({"type": "Add", "x": 1, "y": 1})
    Worker(q, {"Add": add}, handle_signals=False).run(until_empty=True)
    assert q.wait(again, timeout=WAIT) == 2 and _loop_threads() == []


def test_a_coroutine_still_running_when_the_worker_stops_is_cancelled_and_given_back(
    make_queue,
):
    q = make_queue()
    job_id = q.enqueue({"type": "Forever"})
    started, cancelled = threading.Event(), threading.Event()

    async def forever(job: Job) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # never set
        except asyncio.CancelledError:
            cancelled.set()
            raise

    worker = Worker(q, {"Forever": forever}, grace_period=0, handle_signals=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert started.wait(WAIT)
    worker.stop()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert cancelled.is_set()  # before run() returned
    job = q.get(job_id)
    assert job.status is JobStatus.QUEUED and job.attempts == 0  # given back, uncounted
    assert _loop_threads() == []
