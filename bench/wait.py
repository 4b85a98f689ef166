"""Benchmark: what ``wait`` and the finished jobs' notification cost, and what they buy.

Run from the project root (PostgreSQL must answer; psycopg 3 installed)::

    python -m bench.wait                 # 3 alternating rounds
    python -m bench.wait --quick         # small sizes, 1 round: a smoke run

It creates its own database (``jobledger_bench_wait_<pid>``, on the server of
``--admin-url``, default ``$JOBLEDGER_BENCH_PG`` or
``postgresql://postgres@127.0.0.1:5432/postgres``), drops it at the end, and measures,
each "with" and "without" in alternating rounds on fresh schemas:

- the cost of the finished jobs' notification on PostgreSQL (``--single`` jobs claimed
  and completed one at a time, and ``--jobs`` drained by one ``Worker(batch_size=100)``
  in this process), in three modes: "off" (the backend's ``_notify_finished`` made a
  no-op: no statement at all), "nobody" (as shipped, no one listening: the statement
  looks for a listener and sends nothing) and "heard" (as shipped, a session listening
  for finished jobs: every finishing transaction sends its NOTIFY); each mode's rate as
  a ratio to "off";
- how long a wait takes to return after another queue object's ``complete`` returns
  (median over ``--waits`` jobs): ``JobQueue.wait`` and ``AsyncJobQueue.wait`` on
  PostgreSQL with ``poll_interval`` an hour (the notification alone wakes them), and
  ``JobQueue.wait`` on a folder (woken by its backoff poll: 10 ms doubling to 1 s);
- ``AsyncJobQueue.enqueue`` one by one, native (an ``AsyncConnection``) against the same
  call through a thread (``JobQueue.enqueue`` in the loop's executor), and 50 at once.

The medians are printed as a Markdown table and written, with every round, to
``bench/results/wait.json``. Never collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jobledger
from bench._common import write_results
from jobledger.aio import AsyncJobQueue

ADMIN_URL = os.environ.get("JOBLEDGER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
RESULTS = Path(__file__).parent / "results" / "wait.json"
HOUR = 3600.0


def _connect(url: str) -> Any:  # psycopg.Connection
    import psycopg

    return psycopg.connect(url, autocommit=True)


@contextlib.contextmanager
def fresh_schema(db_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new empty schema, dropped afterwards."""
    from urllib.parse import urlencode

    name = f"{prefix}_{os.getpid()}_{time.monotonic_ns()}"
    with _connect(db_url) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    sep = "&" if "?" in db_url else "?"
    try:
        yield db_url + sep + urlencode({"options": f"-csearch_path={name}"})
    finally:
        with _connect(db_url) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


MODES = ("off", "nobody", "heard")


@contextlib.contextmanager
def finished_notify(mode: str, url: str) -> Iterator[None]:
    """The finished jobs' notification in ``mode`` (see the module) on ``url``'s schema."""
    from jobledger.backends.postgres import jobs
    from jobledger.backends.postgres._listen import start_listening_for_finished

    real = jobs._notify_finished
    if mode == "off":
        jobs._notify_finished = lambda conn, records: None
    listener = _connect(url) if mode == "heard" else None
    try:
        if listener is not None:
            start_listening_for_finished(listener)
        yield
    finally:
        jobs._notify_finished = real
        if listener is not None:
            listener.close()


def one_by_one(url: str, n: int) -> float:
    """Claim and complete ``n`` jobs one at a time: jobs/s."""
    with jobledger.JobQueue(url) as q:
        q.enqueue_many([{"type": "T"}] * n)
        start = time.perf_counter()
        while (job := q.claim()) is not None:
            q.complete(job.job_id, 1)
        return n / (time.perf_counter() - start)


def drain(url: str, n: int) -> float:
    """``n`` no-op jobs drained by one Worker(batch_size=100) in this process: jobs/s."""
    with jobledger.JobQueue(url) as q:
        q.enqueue_many([{"type": "T"}] * n)
        worker = jobledger.Worker(q, {"T": lambda j: None}, batch_size=100, handle_signals=False)
        start = time.perf_counter()
        worker.run(until_empty=True)
        return n / (time.perf_counter() - start)


def sync_wait_latency(location: str, k: int, poll: float) -> list[float]:
    """Seconds from another queue object's ``complete`` returning to ``wait`` returning."""
    out = []
    with jobledger.JobQueue(location) as q, jobledger.JobQueue(location) as waiter:
        for _ in range(k):
            job_id = q.enqueue({"type": "T"})
            q.claim()
            returned: list[float] = []
            ready = threading.Event()

            def wait(job_id: str, ready: threading.Event, returned: list[float]) -> None:
                ready.set()
                waiter.wait(job_id, timeout=60, poll_interval=poll)
                returned.append(time.perf_counter())

            thread = threading.Thread(target=wait, args=(job_id, ready, returned))
            thread.start()
            ready.wait()
            time.sleep(0.05)  # a benchmark, not a test: let the wait settle into its pause
            q.complete(job_id)
            done = time.perf_counter()
            thread.join()
            out.append(returned[0] - done)
    return out


def async_wait_latency(url: str, k: int) -> list[float]:
    """:func:`sync_wait_latency` for ``AsyncJobQueue.wait`` (poll an hour)."""

    async def main() -> list[float]:
        out = []
        with jobledger.JobQueue(url) as q:
            async with AsyncJobQueue(url) as aq:
                for _ in range(k):
                    job_id = await aq.enqueue({"type": "T"})
                    q.claim()
                    waiting = asyncio.ensure_future(aq.wait(job_id, timeout=60, poll_interval=HOUR))
                    await asyncio.sleep(0.05)
                    await asyncio.to_thread(q.complete, job_id)
                    done = time.perf_counter()
                    await waiting
                    out.append(time.perf_counter() - done)
        return out

    return asyncio.run(main())


def async_enqueue(url: str, n: int, native: bool, together: int) -> float:
    """``AsyncJobQueue.enqueue`` of ``n`` jobs, ``together`` at a time: jobs/s."""

    async def main() -> float:
        async with AsyncJobQueue(url) as aq:
            await aq.enqueue({"type": "T"})  # first use: migrate, recover

            async def one() -> None:
                if native:
                    await aq.enqueue({"type": "T"})
                else:
                    await aq._thread(aq.queue.enqueue, {"type": "T"})

            start = time.perf_counter()
            for _ in range(n // together):
                await asyncio.gather(*(one() for _ in range(together)))
            return (n // together * together) / (time.perf_counter() - start)

    return asyncio.run(main())


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wait", description=__doc__)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--single", type=int, help="jobs claimed and completed one by one (1000)")
    parser.add_argument("--jobs", type=int, help="jobs drained by the Worker (10000)")
    parser.add_argument("--waits", type=int, help="waits timed per kind (30)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (3)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    single = args.single or (200 if args.quick else 1000)
    n = args.jobs or (2000 if args.quick else 10_000)
    waits = args.waits or (5 if args.quick else 30)
    rounds = args.rounds or (1 if args.quick else 3)

    from urllib.parse import urlsplit, urlunsplit

    name = f"jobledger_bench_wait_{os.getpid()}"
    with _connect(args.admin_url) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    db_url = urlunsplit(urlsplit(args.admin_url)._replace(path="/" + name))
    rows: dict[str, list[float]] = {}

    def measure(key: str, fn: Callable[[str], Any], mode: str = "nobody") -> None:
        with fresh_schema(db_url, "w") as url, finished_notify(mode, url):
            value = fn(url)
        rows.setdefault(key, []).extend(value if isinstance(value, list) else [value])

    try:
        for r in range(rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                measure(f"one by one {mode}", lambda u: one_by_one(u, single), mode)
                measure(f"drain {mode}", lambda u: drain(u, n), mode)
            measure("wait pg", lambda u: sync_wait_latency(u, waits, HOUR))
            measure("async wait pg", lambda u: async_wait_latency(u, waits))
            with tempfile.TemporaryDirectory(dir=os.getcwd()) as folder:
                rows.setdefault("wait files", []).extend(
                    sync_wait_latency(folder, waits, jobledger._waiting.DEFAULT_POLL)
                )
            for together in (1, 50):
                for native in (True, False) if r % 2 == 0 else (False, True):
                    how = "native" if native else "thread"
                    measure(
                        f"async enqueue x{together} {how}",
                        lambda u, nat=native, t=together: async_enqueue(u, single, nat, t),
                    )
    finally:
        with _connect(args.admin_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    med = {k: _median(v) for k, v in rows.items()}
    table = [
        ("claim + complete one by one", "one by one", "jobs/s"),
        ("Worker(batch_size=100) drain", "drain", "jobs/s"),
    ]
    print("| measure | off | nobody listens | a listener |\n| --- | ---: | ---: | ---: |")
    for title, key, unit in table:
        off, nobody, heard = (med[f"{key} {m}"] for m in MODES)
        print(
            f"| {title} | {off:,.0f} {unit} | {nobody:,.0f} ({nobody / off:.2f}) "
            f"| {heard:,.0f} ({heard / off:.2f}) |"
        )
    print("\n| wait returns after complete() returned (median) | ms |\n| --- | ---: |")
    for key, title in (
        ("wait pg", "JobQueue.wait, PostgreSQL, poll an hour (NOTIFY)"),
        ("async wait pg", "AsyncJobQueue.wait, PostgreSQL, poll an hour (NOTIFY)"),
        ("wait files", "JobQueue.wait, folder, poll backoff to 1 s"),
    ):
        print(f"| {title} | {med[key] * 1000:.1f} (max {max(rows[key]) * 1000:.1f}) |")
    print("\n| AsyncJobQueue.enqueue | native | thread | ratio |\n| --- | ---: | ---: | ---: |")
    for together in (1, 50):
        a, b = med[f"async enqueue x{together} native"], med[f"async enqueue x{together} thread"]
        print(f"| {together} at a time | {a:,.0f} /s | {b:,.0f} /s | {a / b:.2f} |")
    write_results(args.output, {"medians": med, "rounds": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
