"""Three worker processes on one PostgreSQL queue, one of them SIGKILLed mid-job.

The three forked workers stand in for three machines sharing a database: nothing ties
them together but the database (no shared files, no OS locks), so a dead one is noticed
only when its lease, renewed by a heartbeat, runs out on the server. One of them is
SIGKILLed while its handler runs a job; the test proves that

- while the killed worker's lease lasts, its job stays Running under it (a live worker's
  job is never taken), and every other job runs exactly once;
- once the lease runs out, a surviving worker recovers the job and finishes it, within
  the lease plus a bounded margin, as attempt 2;
- no job's handler ran to its end twice, the survivors' recorded completions add up with
  the dead one's, and every job ends Completed with nothing left Running or Queued.

Children report over pipes (tests/_child.py) and append to an execution log; the
parent never sleeps to synchronise. The only waits are bounded polls of the database for
the server-side lease expiry and the recovery that follows it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.backends.postgres._pg import require_psycopg, until

require_psycopg()

import jobledger  # noqa: E402
from jobledger import JobQueue, JobStatus, Worker  # noqa: E402
from jobledger.backends.postgres.jobs import PostgresJobBackend  # noqa: E402
from tests._child import Channel, Child, first_readable, serve_until_stopped  # noqa: E402
from tests.backends.files.queue._procs import log_run  # noqa: E402

LEASE = 3.0  # short, so the killed worker counts as dead soon, yet 12 missed beats long
HEARTBEAT = 0.25
RECOVER_EVERY = 0.25
NOOPS = 60
BLOCKER = "blocker"
# Generous: the bound is there to catch a job that is never recovered, not to time it.
RECOVERY_BOUND = LEASE + RECOVER_EVERY + 10.0


def _queue(url: str) -> JobQueue:
    return JobQueue(
        durability="flush",
        recover_every=RECOVER_EVERY,
        backend=PostgresJobBackend(url, fsync=False, worker_lease=LEASE, heartbeat=HEARTBEAT),
    )


def _worker(url: str, log: Path) -> Callable[[Channel], None]:
    def target(chan: Channel) -> None:
        queue = _queue(url)
        pid = os.getpid()
        # Never set: the first attempt of the blocker holds its worker until the SIGKILL.
        held = threading.Event()

        def noop(job: jobledger.Job) -> dict[str, int]:
            log_run(log, f"start {job.job_id} {pid}")
            log_run(log, f"end {job.job_id} {pid}")
            return {"pid": pid}

        def block(job: jobledger.Job) -> dict[str, int]:
            log_run(log, f"start {job.job_id} {pid}")
            if job.attempts == 1:
                chan.send(f"running {job.job_id} {pid} {job.worker}")
                held.wait()
            log_run(log, f"end {job.job_id} {pid}")
            return {"pid": pid}

        # One job per claim, each completion recorded before the next claim: what the
        # "ran to its end twice" and "processed" assertions below count on (the default
        # adaptive batches leave a finished job unrecorded for a bounded window).
        worker = Worker(
            queue,
            {"noop": noop, "block": block},
            handle_signals=False,
            poll_interval=0.05,
            batch_size=1,
        )
        # Registered before "ready": all three leases exist before any job is claimed.
        chan.send(f"ready {queue.worker_id}")
        serve_until_stopped(chan, worker)
        chan.send(f"processed {worker.processed}")
        queue.close()

    return target


def _first_to_say(children: list[Child], prefix: str, timeout: float) -> tuple[Child, str]:
    """The first child to write a line, and what follows ``prefix`` in it.

    Children say nothing between "ready" and ``prefix``, so the first line is that one."""
    child = first_readable(children, timeout)
    assert child is not None, f"no child said {prefix!r} within {timeout}s"
    return child, child.read_until(prefix)


def _log(path: Path) -> list[tuple[str, str, int]]:
    out = []
    for line in path.read_text().splitlines():
        event, job_id, pid = line.split()
        out.append((event, job_id, int(pid)))
    return out


def test_three_workers_one_sigkilled_mid_job_lose_nothing_and_run_nothing_twice(pg_url, tmp_path):
    log = tmp_path / "exec.log"
    q = _queue(pg_url)
    noops = [f"job-{i:02d}" for i in range(NOOPS)]
    # The blocker sits in the middle of the queue, so it is claimed while all three
    # workers are busy, and jobs remain for the survivors after the kill.
    ids = [*noops[: NOOPS // 3], BLOCKER, *noops[NOOPS // 3 :]]
    q.enqueue_many([{"type": "block" if i == BLOCKER else "noop"} for i in ids], job_ids=ids)
    q.close()  # nothing of the parent's is alive while the children fork

    children = [Child(_worker(pg_url, log)) for _ in range(3)]
    try:
        for c in children:
            c.read_until("ready ")
        for c in children:
            c.send("go")

        victim, said = _first_to_say(children, "running ", timeout=60)
        job_id, pid, worker = said.split()
        assert (job_id, int(pid)) == (BLOCKER, victim.pid)
        survivors = [c for c in children if c is not victim]
        held = q.get(BLOCKER)
        assert held.status is JobStatus.RUNNING and held.worker == worker
        assert held.attempts == 1

        victim.kill()
        killed_at = time.monotonic()
        # No read "just after the kill": the dead worker's session ends with it, and a
        # survivor's next claim may serve its job again within milliseconds. That the job
        # was never taken from a live worker is what the log below shows: one start by the
        # victim, then one run to its end by a survivor.

        until(
            lambda: q.get(BLOCKER).status is JobStatus.COMPLETED,
            RECOVERY_BOUND,
            "the killed worker's job completed by another worker",
        )
        recovery = time.monotonic() - killed_at
        until(lambda: q.counts()["Completed"] == len(ids), 30, "every job completed")

        processed = {}
        for c in survivors:
            c.send("stop")
            processed[c.pid] = int(c.read_until("processed "))
            c.check()
    finally:
        for c in children:
            if c.status is None:
                c.kill()

    events = _log(log)
    starts = Counter(j for e, j, _ in events if e == "start")
    ends = Counter(j for e, j, _ in events if e == "end")
    assert set(ends) == set(ids)
    assert [j for j, n in ends.items() if n > 1] == [], "a job ran to its end twice"
    assert all(starts[j] == 1 for j in noops), "a job of a live worker ran again"

    blocker_runs = [(e, p) for e, j, p in events if j == BLOCKER]
    finisher = blocker_runs[-1][1]
    assert blocker_runs == [("start", victim.pid), ("start", finisher), ("end", finisher)]
    assert finisher in processed  # a survivor, not the dead worker

    # Each completion a survivor recorded ran its handler to the end there once; the dead
    # worker's completions are its "end" lines (it recorded each before its next claim).
    ended_by = Counter(p for e, _, p in events if e == "end")
    assert processed == {p: ended_by[p] for p in processed}
    assert sum(processed.values()) + ended_by[victim.pid] == len(ids)

    counts = q.counts()
    assert counts["Completed"] == len(ids)
    assert counts["Running"] == counts["Queued"] == counts["Failed"] == 0
    for j in ids:
        job = q.get(j)
        assert job.status is JobStatus.COMPLETED, (j, job.status)
        assert job.attempts == (2 if j == BLOCKER else 1), (j, job.attempts)
    done = q.get(BLOCKER)
    assert done.result == {"pid": finisher}
    assert q.live_workers() == []
    print(f"killed worker's job completed {recovery:.2f}s after the SIGKILL (lease {LEASE}s)")
    q.close()
