"""A queue limit of 2 with three worker PROCESSES, on every backend: never three jobs of
the queue Running at once, checked on every transition.

Each of three forked workers (two threads each: six slots for a limit of two) serves the
limited queue. Every handler appends a "start" line to a shared execution log (O_APPEND:
one write each) right after its claim and an "end" line just before it returns, before
its completion is recorded: each job's interval in the log lies within its Running time,
so three overlapping intervals in the log would be three jobs Running at once. A handler
also reads the queue's Running count (``counts_by_queue``, through its worker's queue: a
consistent view) at its start. To make overlap
likely, a handler holds on until the log shows a second job running (or no job is left
to start), bounded: that wait is a read of the log, and nothing is timed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from jobledger import Job, JobQueue, JobStatus, Worker
from tests._child import Channel, Child, serve_until_stopped
from tests.backends.files.queue._procs import log_run

LIMIT = 2
JOBS = 24
WORKERS = 3
WAIT = 120.0  # seconds: only a bound on a hang


def _running(lines: list[str]) -> tuple[int, int]:
    """(jobs running at the end of ``lines``, jobs started in all)."""
    running = started = 0
    for line in lines:
        event = line.split()[0]
        if event == "start":
            running += 1
            started += 1
        elif event == "end":
            running -= 1
    return running, started


def _worker(location: str, log: Path) -> Callable[[Channel], None]:
    def target(chan: Channel) -> None:
        queue = JobQueue(location, durability="flush", recover_every=60)
        pid = os.getpid()

        def handler(job: Job) -> None:
            log_run(log, f"start {job.job_id} {pid}")
            # The worker's own queue object has written (it claimed), so its read is a
            # consistent view: under the queue lock on a folder, one statement on
            # PostgreSQL. A reading-only object's folder read takes no lock and reads the
            # job files one by one, so it may meet one job's file from before a change
            # and another's from after the next (a count no moment held).
            seen = queue.counts_by_queue()["gpu"]["Running"]
            log_run(log, f"seen {seen} {pid}")
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                running, started = _running(log.read_text().splitlines())
                if running >= LIMIT or started >= JOBS:
                    break
                time.sleep(0.002)  # a poll of the log, not a synchronisation by time
            log_run(log, f"end {job.job_id} {pid}")

        worker = Worker(
            queue,
            {"T": handler},
            concurrency=2,
            queues=["gpu"],
            handle_signals=False,
            poll_interval=0.01,
            batch_size=1,
        )
        chan.send("ready")
        serve_until_stopped(chan, worker)
        queue.close()
        chan.send("stopped")

    return target


def test_a_queue_limit_of_two_holds_across_three_worker_processes(make_queue, tmp_path):
    location = str(make_queue.location)
    log = tmp_path / "exec.log"
    q = JobQueue(location)
    q.set_limit("gpu", LIMIT)
    q.enqueue_many([{"type": "T"}] * JOBS, queue="gpu", job_ids=[f"g{i:02d}" for i in range(JOBS)])
    q.close()  # nothing of the parent's is open while the children fork

    children = [Child(_worker(location, log)) for _ in range(WORKERS)]
    try:
        for c in children:
            c.read_until("ready")
        for c in children:
            c.send("go")
        watcher = JobQueue(location)
        start = time.monotonic()
        while watcher.counts_by_queue()["gpu"]["Completed"] < JOBS:
            assert time.monotonic() - start < WAIT, "the jobs were not all completed"
            time.sleep(0.05)
        watcher.close()
        for c in children:
            c.send("stop")
            c.read_until("stopped")
            c.check()
    finally:
        for c in children:
            if c.status is None:
                c.kill()

    lines = log.read_text().splitlines()
    running = most = 0
    for line in lines:  # every transition, in the order the log holds them
        event = line.split()[0]
        if event == "start":
            running += 1
        elif event == "end":
            running -= 1
        most = max(most, running)
        assert running <= LIMIT, f"{running} jobs of the queue ran at once: {line}"
    assert most == LIMIT  # the limit was reached, not merely never tested
    seen = [int(line.split()[1]) for line in lines if line.startswith("seen ")]
    assert len(seen) == JOBS and max(seen) <= LIMIT
    starts = [line.split()[1] for line in lines if line.startswith("start ")]
    assert sorted(starts) == [f"g{i:02d}" for i in range(JOBS)]  # each ran once
    final = JobQueue(location)
    try:
        assert {final.get(f"g{i:02d}").status for i in range(JOBS)} == {JobStatus.COMPLETED}
    finally:
        final.close()
