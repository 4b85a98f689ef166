"""A worker survives a PostgreSQL restart mid-run: it reconnects and loses nothing.

Below it, the same machinery without a restart (a session terminated on purpose): a
transaction run again whole, a COMMIT of unknown outcome settled by asking the server, and
a task set's run lease re-taken (or the holder told) after its session was lost.

A forked worker drains a queue; each handler run appends ``start <id>`` and ``end <id>``
to an O_APPEND execution log, and the parent appends ``restart-begin`` / ``restart-end``
around ``pg_ctlcluster ... restart``. The parent never sleeps to synchronise: it polls the
log and the database in bounded loops. No assertion is about time.

Skipped (with the reason) where ``pg_ctlcluster`` or the local cluster is not available,
except under CI=true, where that is a failure: CI must exercise it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.backends.postgres._pg import ADMIN_URL, require_psycopg, until

psycopg = require_psycopg()

from jobledger import AlreadyRunning, JobQueue, JobState, Worker  # noqa: E402
from jobledger._job_view import Job  # noqa: E402
from jobledger.backends.postgres._db import HOST, ConnectionLost  # noqa: E402
from jobledger.backends.postgres.jobs import PostgresJobBackend  # noqa: E402
from tests._child import Channel, Child  # noqa: E402
from tests.backends.files.queue._procs import log_run  # noqa: E402

N = 30
# Each run takes a little while so that the restart lands while jobs remain (pacing only:
# nothing asserts on it).
WORK = 0.05
LEASE = 30.0  # the worker's lease: outlives the restart, so no job is recovered from it
BOUND = 120.0  # seconds any bounded wait may take before the test fails


def _cluster() -> tuple[str, str]:
    """(version, name) of the local cluster the tests' server is, or skip/fail."""

    def unavailable(reason: str) -> None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the restart test is required under CI=true: {reason}", pytrace=False)
        pytest.skip(f"PostgreSQL restart test skipped: {reason}")

    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_isready") is None:
        unavailable("pg_ctlcluster/pg_isready not found (Debian postgresql-common)")
    host = urlsplit(ADMIN_URL).hostname or "localhost"
    if host not in ("localhost", "127.0.0.1", "::1") and not host.startswith("/"):
        unavailable(f"the test server {host} is not a local cluster")
    try:
        versions = sorted(os.listdir("/etc/postgresql"))
    except OSError:
        versions = []
    clusters = [(v, "main") for v in versions if Path("/etc/postgresql", v, "main").is_dir()]
    if len(clusters) != 1:
        unavailable(f"expected one local cluster 'main' under /etc/postgresql, got {clusters}")
    return clusters[0]


def _ready() -> bool:
    parts = urlsplit(ADMIN_URL)
    cmd = ["pg_isready", "-q", "-h", parts.hostname or "localhost", "-p", str(parts.port or 5432)]
    return subprocess.run(cmd, check=False).returncode == 0


def _started_at(url: str) -> object:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute("SELECT status, count(*) FROM jobledger_jobs GROUP BY status")
        return {status: int(n) for status, n in rows}


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _worker(url: str, log: Path) -> Callable[[Channel], None]:
    def handle(job: Job) -> str:
        log_run(log, f"start {job.job_id}")
        time.sleep(WORK)
        log_run(log, f"end {job.job_id}")
        return "ok"

    def target(chan: Channel) -> None:
        class Up(logging.Handler):
            """Sends the worker's warnings up the pipe, one line each."""

            def emit(self, record: logging.LogRecord) -> None:
                chan.send("warn " + " ".join(record.getMessage().split()))

        logging.getLogger("jobledger").addHandler(Up(logging.WARNING))
        # A frequent heartbeat, so that its renewal after the restart is soon seen.
        queue = JobQueue(
            durability="flush",
            backend=PostgresJobBackend(url, fsync=False, worker_lease=LEASE, heartbeat=0.1),
        )
        chan.send("ready")
        Worker(queue, {"T": handle}, handle_signals=False).run(until_empty=True)
        # The heartbeat thread survived the restart (its session did not): the lease is
        # renewed after now, which is after the restart (the worker waited through it).
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            since = conn.execute("SELECT clock_timestamp()").fetchone()[0]

            def renewed() -> bool:
                row = conn.execute(
                    "SELECT lease_until - make_interval(secs => %s) > %s"
                    " FROM jobledger_workers WHERE worker = %s",
                    (LEASE, since, queue.worker_id),
                ).fetchone()
                return bool(row and row[0])

            until(renewed, BOUND, "the worker's lease renewed after the restart", every=0.05)
        queue.close()
        chan.send("drained")

    return target


def test_a_worker_reconnects_after_a_server_restart_and_loses_nothing(pg_url, tmp_path):
    version, name = _cluster()
    log = tmp_path / "runs.log"
    queue = JobQueue(pg_url, durability="flush")
    ids = [queue.enqueue({"type": "T"}, job_id=f"job-{i:03d}") for i in range(N)]
    queue.close()  # nothing of the parent's is open while the child forks
    before = _started_at(pg_url)

    child = Child(_worker(pg_url, log))
    try:
        child.read_until("ready")
        # Restart once the worker is well into the queue (a few jobs started).
        until(
            lambda: sum(x.startswith("start ") for x in _lines(log)) >= 3,
            BOUND,
            "running",
            every=0.05,
        )
        log_run(log, "restart-begin")
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart"],
            check=True,
            timeout=BOUND,
        )
        until(_ready, BOUND, "accepting connections (pg_isready)", every=0.05)
        log_run(log, "restart-end")
        assert _started_at(pg_url) != before, "the server was not restarted"

        def settled() -> bool:
            counts = _counts(pg_url)
            return counts.get("Queued", 0) == 0 and counts.get("Running", 0) == 0

        until(settled, BOUND, "drained (Queued == Running == 0)", every=0.05)
        said = []
        while (text := child.readline()) is not None and text != "drained":
            said.append(text)
        assert text == "drained", (said, child.errors)
        child.check()
    finally:
        if child.status is None:  # failed before reaping it: do not leave it running
            child.kill()

    assert _counts(pg_url) == {"Completed": N}  # none lost, none Failed, none stuck
    # The worker noticed: it reconnected, saying where to (never a password: none here).
    where = f"database {urlsplit(pg_url).path.lstrip('/')} on "
    assert any("PostgreSQL" in w and where in w for w in said), said
    with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as conn:
        # The stopped worker removed its row, though the session it had was gone.
        assert conn.execute("SELECT count(*) FROM jobledger_workers").fetchone()[0] == 0

    lines = _lines(log)
    begin, end = lines.index("restart-begin"), lines.index("restart-end")
    starts = Counter(x.split()[1] for x in lines if x.startswith("start "))
    assert set(starts) == set(ids)
    assert max(starts.values()) <= 2, starts
    for job_id, n in starts.items():
        if n == 2:
            # A second run only for a job whose first run overlapped the restart: started
            # before it ended, and not finished before it began.
            first_start = lines.index(f"start {job_id}")
            assert first_start < end, (job_id, lines)
            assert f"end {job_id}" not in lines[:begin], (job_id, lines)


# -- the same machinery without a restart: a session killed on purpose -------------------


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_transaction_that_lost_its_connection_midway_runs_again_whole(pg_url):
    queue = JobQueue(pg_url, durability="flush")
    queue.enqueue({"type": "T"}, job_id="j")
    backend = queue.backend
    assert isinstance(backend, PostgresJobBackend)
    with backend._db.transaction("find the session") as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    seen = []

    def change(record):
        seen.append(record.priority)
        if len(seen) == 1:
            _terminate(pg_url, pid)  # the write that follows finds the session gone
        return record.evolve(priority=record.priority + 1)

    new = backend.transition("j", change)
    # Run twice from the stored record (the first attempt left nothing), written once.
    assert seen == [0, 0]
    assert new.priority == 1 and queue.get("j").priority == 1
    queue.close()


def test_a_commit_of_unknown_outcome_is_settled_by_its_read_back_not_rerun(pg_url):
    # Which read-back each write uses (and why not txid_status) is proven in
    # test_settle_read_back.py; here, that retrying() trusts what the settle step reports.
    backend = PostgresJobBackend(pg_url)
    db = backend._db
    runs = []

    def run() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise ConnectionLost("lost during COMMIT", commit_unknown=True)
        return "ran again"

    assert db.retrying(run, lambda: "it had landed") == "it had landed"
    assert len(runs) == 1  # never re-applied
    runs.clear()
    assert db.retrying(run, lambda: None) == "ran again"  # it had not: run again
    assert len(runs) == 2
    backend.close()


def _lease_pid() -> int:
    """The backend pid of this process's one task-set lease session."""
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        [(pid,)] = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
            (f"jobledger lease pid {os.getpid()} on {HOST}"[:63],),
        ).fetchall()
    return int(pid)


def test_a_run_lease_lost_with_its_session_is_retaken_on_the_next_write(pg_url):
    state = JobState(url=pg_url, timezone="UTC", durability="flush")
    ts = state.taskset("a", "t", ["x", "y", "z"], date="2025-01-20")
    ts.acquire(wait=False)
    _terminate(pg_url, _lease_pid())  # as a restart would
    ts.mark_done("x")  # re-takes the lease first, then writes
    holder = state.backend.holder(ts.key)
    assert holder is not None and holder.pid == os.getpid()

    # Lost again, and this time another process's run takes it meanwhile: told, not written.
    _terminate(pg_url, _lease_pid())
    other = JobState(url=pg_url, timezone="UTC", durability="flush")
    rival = other.taskset("a", "t", date="2025-01-20")

    def target(chan: Channel) -> None:
        rival.acquire(wait=30.0)
        chan.send("holding")
        chan.recv()  # until killed

    child = Child(target)
    try:
        child.read_until("holding")
        state.backend._db.reconnect_for = 0.5  # how long the re-take waits for the lock
        with pytest.raises(AlreadyRunning):
            ts.mark_done("y")
        with pytest.raises(AlreadyRunning):  # and every later write while it holds it
            ts.mark_done("z")
    finally:
        child.kill()
    stored = JobState(url=pg_url, timezone="UTC", durability="flush").taskset(
        "a", "t", date="2025-01-20"
    )
    assert sorted(stored.completed) == ["x"]
    ts.release()
