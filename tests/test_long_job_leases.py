"""A job that runs for ten times the worker lease, on a machine whose CPU other processes
keep busy, keeps its lease while its worker lives: a rival worker that recovers and
claims all along never gets it, and it completes once.

On PostgreSQL the lease is short (1 s, a heartbeat every 0.2 s) and the test reads the
job's ``lease_until`` from the database until its renewals have pushed it ten leases past
its first value; in a folder a worker's liveness is its OS lock, which needs no renewal,
and the test waits until the rival has tried for as long. Then it lets the handler
return. Nothing here asserts a duration: the waits are conditions, bounded against a hang.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobledger import JobStatus, Worker
from jobledger._job_view import Job
from tests._child import Spawned

LEASE = 1.0  # seconds of worker lease (PostgreSQL)
LEASES = 10  # how many leases the job outlives
HOGS = 3  # busy-loop processes keeping the CPUs loaded
WAIT = 120  # seconds: only a bound on a hang, never a synchronisation


@pytest.fixture
def cpu_hogs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes that spin on the CPU until the test ends."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(HOGS)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _rival(location: str, backend: str) -> Spawned:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [sys.executable, "-m", "tests._lease_rival", location]
    if backend == "postgres":
        args.append(str(LEASE))
    return Spawned(args, cwd=Path(__file__).parent.parent, env=env, merge_stderr=True)


def _lease_until(url: str, job_id: str) -> dt.datetime:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT lease_until FROM jobledger_jobs WHERE job_id = %s", (job_id,)
        ).fetchone()
    assert row is not None and row[0] is not None
    return row[0]


def test_a_long_job_on_a_busy_machine_keeps_its_lease_and_runs_once(make_queue, cpu_hogs):
    pg = make_queue.backend == "postgres"
    q = make_queue(worker_lease=LEASE) if pg else make_queue()
    job_id = q.enqueue({"type": "Long"})
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def handler(job: Job) -> str:
        runs.append(job.attempts)
        started.set()
        assert release.wait(WAIT), "never released"
        return "done by its worker"

    worker = Worker(q, {"Long": handler}, handle_signals=False)
    runner = threading.Thread(target=worker.run, kwargs={"until_empty": True})
    runner.start()
    rival = _rival(str(make_queue.location), make_queue.backend)
    try:
        assert started.wait(WAIT)
        rival.wait_for("ready ")
        first = _lease_until(str(make_queue.location), job_id) if pg else None
        tried = 0.0
        while True:  # until the rival has tried for LEASES leases (and, PG, renewals show)
            line = rival.wait_for("round ")
            assert "claimed" not in rival.output and "recovered" not in rival.output
            tried = float(line.split()[2])
            if tried < LEASES * LEASE:
                continue
            if not pg:
                break
            renewed = _lease_until(str(make_queue.location), job_id) - first
            if renewed >= dt.timedelta(seconds=LEASES * LEASE):
                break
        running = q.get(job_id)
        assert running.status is JobStatus.RUNNING and running.worker == q.worker_id
        assert q.worker_id in q.live_workers()
        release.set()
        runner.join(WAIT)  # it records the completion and, the queue empty, returns
        assert not runner.is_alive()
    finally:
        release.set()
        worker.stop()
        runner.join(WAIT)
        assert rival.proc.stdin is not None
        rival.proc.stdin.close()
        rival.finish()
    assert "done " in rival.output, rival.output
    assert "claimed" not in rival.output and "recovered" not in rival.output, rival.output
    job = q.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.result == "done by its worker"
    assert job.attempts == 1 and runs == [1]
