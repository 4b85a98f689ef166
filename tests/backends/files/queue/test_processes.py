"""Several worker processes on one queue, a worker dying beside a live one, SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest

import jobledger
from jobledger import JobQueue, JobStatus, Worker
from tests._child import Channel, Child

from ._procs import job_files, log_run, runs


def _logging_worker(qdir: Path, log: Path, go: bool = True, **queue_kw):
    def target(chan: Channel) -> None:
        queue = JobQueue(qdir, durability="flush", **queue_kw)

        def handler(job: jobledger.Job) -> int:
            log_run(log, job.job_id)
            return job.payload["n"] * 2

        chan.send(f"ready {queue.worker_id}")
        if go:
            assert chan.recv() == "go"
        Worker(queue, {"T": handler}, handle_signals=False, poll_interval=0.01).run(
            until_empty=True
        )

    return target


@pytest.mark.parametrize("n_workers", [2, 4])
def test_worker_processes_share_a_queue_and_run_each_job_exactly_once(tmp_path, n_workers):
    qdir, log = tmp_path / "q", tmp_path / "exec.log"
    with JobQueue(qdir, durability="flush") as q:
        ids = q.enqueue_many([{"type": "T", "n": i} for i in range(150)])
    children = [Child(_logging_worker(qdir, log)) for _ in range(n_workers)]
    workers = {c.read_until("ready ") for c in children}
    assert len(workers) == n_workers
    for c in children:  # every worker is registered before any claims
        c.send("go")
    for c in children:
        c.check()
    counts = runs(log)
    assert sorted(counts) == sorted(ids)
    assert set(counts.values()) == {1}, [i for i, n in counts.items() if n != 1]
    docs = job_files(qdir)
    assert {d["status"] for d in docs.values()} == {"Completed"}
    assert all(d["_jobledger"]["attempts"] == 1 for d in docs.values())
    assert all(d["_jobledger"]["result"] == d["n"] * 2 for d in docs.values())
    # The work was shared (each worker's id is recorded on the jobs it ran).
    assert {d["_jobledger"]["worker"] for d in docs.values()} <= workers


def _blocker(qdir: Path, block: str, recover_every: float = 2.0):
    """A worker whose handler reports "started <id>" and, for job ``block``, waits for a
    command from the parent before it returns."""

    def target(chan: Channel) -> None:
        queue = JobQueue(qdir, durability="flush", recover_every=recover_every)

        def handler(job: jobledger.Job) -> str:
            chan.send(f"started {job.job_id}")
            if job.job_id == block:
                chan.recv()
            return f"done by {os.getpid()}"

        Worker(queue, {"T": handler}, handle_signals=False, poll_interval=0.01).run(
            until_empty=True
        )
        chan.send("returned")

    return target


def test_a_live_worker_finishes_the_job_of_a_peer_killed_mid_job(tmp_path):
    qdir = tmp_path / "q"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="X")
    victim = Child(_blocker(qdir, block="X"))
    assert victim.read_until("started ") == "X"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="gate")
    live = Child(_blocker(qdir, block="gate", recover_every=0.05))
    assert live.read_until("started ") == "gate"  # the live worker is running, mid-job
    victim.kill()
    live.send("go")  # now let the live worker go on, without any restart
    assert live.read_until("started ") == "X"
    assert live.read_until("returned") == ""
    live.check()
    with JobQueue(qdir, durability="flush") as q:
        x = q.get("X")
        assert x is not None
        assert x.status is JobStatus.COMPLETED
        assert x.attempts == 2
        assert x.result == f"done by {live.pid}"
        assert q.get("gate").status is JobStatus.COMPLETED


def test_run_until_empty_does_not_return_while_a_dead_peers_job_is_running(tmp_path, clock):
    """The periodic recovery is not due yet (fake clock), but run(until_empty=True) must
    not call the queue empty while a dead worker's job is still marked Running."""
    qdir = tmp_path / "q"
    queue = JobQueue(qdir, durability="flush", clock=clock, recover_every=60)
    queue.enqueue({"type": "T"}, job_id="X")
    victim = Child(_blocker(qdir, block="X"))
    assert victim.read_until("started ") == "X"
    victim.kill()
    ran = []
    Worker(queue, {"T": lambda job: ran.append(job.job_id)}, handle_signals=False).run(
        until_empty=True
    )
    assert ran == ["X"]
    assert queue.get("X").status is JobStatus.COMPLETED
    queue.close()


class _SayLog(logging.Handler):
    def __init__(self, chan: Channel) -> None:
        super().__init__()
        self.chan = chan

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Received SIG"):
            self.chan.send("signalled")


def _sigterm_worker(qdir: Path, grace: float):
    def target(chan: Channel) -> None:
        logger = logging.getLogger("jobledger")
        logger.addHandler(_SayLog(chan))
        logger.setLevel(logging.INFO)
        queue = JobQueue(qdir, durability="flush")

        def handler(job: jobledger.Job) -> str:
            chan.send(f"started {job.job_id}")
            chan.recv()  # blocks until the parent says; forever if it never does
            return "finished"

        Worker(queue, {"T": handler}, grace_period=grace, poll_interval=0.01).run()
        chan.send("returned")

    return target


def test_sigterm_requeues_an_unfinished_job_and_run_returns_with_exit_0(tmp_path):
    qdir = tmp_path / "q"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="A")
        q.enqueue({"type": "T"}, job_id="B")
    child = Child(_sigterm_worker(qdir, grace=0.2))
    assert child.read_until("started ") == "A"
    os.kill(child.pid, signal.SIGTERM)
    assert child.read_until("signalled") == ""
    assert child.read_until("returned") == ""  # after the grace period, with A unfinished
    assert child.exit_code() == 0
    assert not child.errors
    with JobQueue(qdir, durability="flush") as q:
        a, b = q.get("A"), q.get("B")
        assert a.status is JobStatus.QUEUED
        assert a.attempts == 0  # the interrupted attempt is not counted
        assert b.status is JobStatus.QUEUED and b.attempts == 0  # never claimed
        assert [j.job_id for j in q.list(JobStatus.QUEUED)] == ["A", "B"]
        assert q.claim().job_id == "A"  # served first


def test_sigterm_lets_the_running_job_finish_within_the_grace_period(tmp_path):
    qdir = tmp_path / "q"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="A")
        q.enqueue({"type": "T"}, job_id="B")
    child = Child(_sigterm_worker(qdir, grace=60))
    assert child.read_until("started ") == "A"
    os.kill(child.pid, signal.SIGTERM)
    assert child.read_until("signalled") == ""  # it stopped claiming...
    child.send("finish")  # ...and A finishes within its grace period
    assert child.read_until("returned") == ""
    assert child.exit_code() == 0
    assert not child.errors
    with JobQueue(qdir, durability="flush") as q:
        assert q.get("A").status is JobStatus.COMPLETED
        assert q.get("A").result == "finished"
        assert q.get("B").status is JobStatus.QUEUED  # not claimed after the signal
        assert q.get("B").attempts == 0
