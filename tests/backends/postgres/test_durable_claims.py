"""A claim on PostgreSQL is durable before it returns: a server crash cannot forget it.

The files backend may forget a claim in a power cut because its workers die with the same
machine. A PostgreSQL server can crash while its workers live on other machines: a claim
it forgot would read Queued after the restart and be handed to a second worker while the
first still ran the job. So the claim commits with ``synchronous_commit`` as the server has
it (on by default); only ``durability="flush"`` commits it asynchronously.

The crash test stops the shared local server with ``pg_ctlcluster ... stop -m immediate``
(no checkpoint, no WAL flush: what a crash leaves) while a worker claims jobs one at a
time, then starts it again and lets a second live worker claim and recover all it can.
No sleep synchronises anything: an event marks the claims, and the server's readiness and
the heartbeat's renewal are polled in bounded loops. No assertion is about time.

Skipped (with the reason) where ``pg_ctlcluster`` or the local cluster is not available,
except under CI=true, where that is a failure (see ``test_restart._cluster``).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.backends.postgres._pg import ADMIN_URL, require_psycopg, until

psycopg = require_psycopg()

from jobledger import JobQueue  # noqa: E402
from jobledger._job_record import JobRecord  # noqa: E402
from jobledger.backends.postgres import _db  # noqa: E402
from jobledger.backends.postgres._db import ConnectionLost  # noqa: E402
from jobledger.backends.postgres.jobs import PostgresJobBackend  # noqa: E402
from tests.backends.postgres.test_restart import _cluster, _ready, _started_at  # noqa: E402

ROUNDS = 3
N = 1000  # jobs per round: more than the first worker can claim before the crash lands
K = 5  # claims acknowledged before the crash is started
# Longer than any restart here, so that no lease runs out during the downtime: what is
# tested is that the claims and the worker's row survive the crash, not the lease length.
LEASE = 30.0
BOUND = 60.0  # seconds any bounded wait may take before the test fails


def _queue(url: str, **options: Any) -> JobQueue:
    """A queue (durability="fsync", the default) whose worker beats every 0.1 s, so that
    its renewal after a restart is seen soon."""
    return JobQueue(backend=PostgresJobBackend(url, worker_lease=LEASE, heartbeat=0.1), **options)


def _pg_ctl(version: str, name: str, *action: str) -> None:
    # Not check=True: another test run on the shared server may have stopped or started
    # it meanwhile; the start time compared below says whether it did restart.
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, *action],
        check=False,
        timeout=BOUND,
        capture_output=True,
    )


def _rows(url: str, ids: list[str]) -> dict[str, tuple[str, str | None]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT job_id, status, worker FROM jobledger_jobs WHERE job_id = ANY(%s)", (ids,)
        )
        return {job_id: (status, worker) for job_id, status, worker in rows}


def _renewed_since(url: str, worker: str, since: object) -> bool:
    """Whether ``worker``'s row was renewed after ``since`` (server time)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT lease_until - make_interval(secs => %s) > %s"
            " FROM jobledger_workers WHERE worker = %s",
            (LEASE, since, worker),
        ).fetchone()
    return bool(row and row[0])


class _Claimer(threading.Thread):
    """Claims jobs one at a time for ``queue`` until stopped or none is left; ``claimed``
    holds the acknowledged claims (claim() returned them), ``enough`` is set after K."""

    def __init__(self, queue: JobQueue) -> None:
        super().__init__()
        self.queue = queue
        self.claimed: list[str] = []
        self.enough, self.stop = threading.Event(), threading.Event()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                job = self.queue.claim()
                if job is None:
                    break
                self.claimed.append(job.job_id)
                if len(self.claimed) >= K:
                    self.enough.set()
        except BaseException as exc:  # reported by the main thread
            self.errors.append(exc)
        finally:
            self.enough.set()


def _crash_round(url: str, first: JobQueue, round_: int, cluster: tuple[str, str]) -> None:
    ids = first.enqueue_many([{"type": "T"}] * N, job_ids=[f"r{round_}-{i:04d}" for i in range(N)])
    claimer = _Claimer(first)
    claimer.start()
    assert claimer.enough.wait(BOUND), "no claims"
    before = _started_at(ADMIN_URL)
    # Claims go on, one at a time, right up to the crash: the last ones were acknowledged
    # moments before it, when an asynchronous commit would not have been flushed yet.
    _pg_ctl(*cluster, "stop", "-m", "immediate")
    claimer.stop.set()  # no claim starts after the crash (one in flight ends after it)
    _pg_ctl(*cluster, "start")
    until(_ready, BOUND, "accepting connections (pg_isready)", every=0.05)
    restarted = _started_at(ADMIN_URL)
    assert restarted != before, "the server was not restarted"
    claimer.join(BOUND)
    assert not claimer.is_alive() and not claimer.errors, claimer.errors
    claimed = claimer.claimed
    assert K <= len(claimed) < N, len(claimed)  # the crash landed amid the claims

    # Every acknowledged claim survived: Running under the first worker.
    rows = _rows(url, claimed)
    lost = {j: rows.get(j) for j in claimed if rows.get(j) != ("Running", first.worker_id)}
    assert not lost, f"{len(lost)} of {len(claimed)} claims forgotten: {lost}"

    # A second live worker, which also recovers dead workers' jobs on every claim, takes
    # everything it can: none of the first worker's jobs.
    second = _queue(url, recover_every=0)
    try:
        taken: list[str] = []
        while batch := second.claim_many(250):
            taken += [job.job_id for job in batch]
        assert not set(taken) & set(claimed), sorted(set(taken) & set(claimed))
        assert sorted(taken + claimed) == sorted(ids)  # none lost, none twice

        # The first worker's row survived and its heartbeat renews it on the restarted
        # server; then still none of its jobs is recovered.
        until(
            lambda: _renewed_since(url, first.worker_id, restarted),
            BOUND,
            "the first worker's lease renewed after the restart",
            every=0.05,
        )
        assert second.recover() == []
        # Its jobs are still its own: their completions are accepted.
        assert len(first.complete_many({job_id: "ok" for job_id in claimed})) == len(claimed)
        second.complete_many({job_id: "ok" for job_id in taken})
    finally:
        second.close()


def test_a_server_crash_never_hands_a_live_workers_claimed_job_to_another(pg_url):
    cluster = _cluster()
    first = _queue(pg_url)
    try:
        for round_ in range(ROUNDS):
            _crash_round(pg_url, first, round_, cluster)
        assert first.counts()["Completed"] == ROUNDS * N
    finally:
        first.close()


@pytest.mark.parametrize("durability", ["fsync", "flush"])
def test_only_a_flush_queue_claims_without_waiting_for_the_wal_flush(
    pg_url, durability, monkeypatch
):
    queue = JobQueue(pg_url, durability=durability)
    queue.enqueue({"type": "T"}, job_id="j")
    backend = queue.backend
    assert isinstance(backend, PostgresJobBackend)
    with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as conn:
        default = conn.execute("SHOW synchronous_commit").fetchone()[0]
    assert default != "off", "the test server's synchronous_commit must be on"
    seen: list[str] = []
    statement = backend._db.statement

    @contextlib.contextmanager
    def spy(action: str) -> Iterator[Any]:
        with statement(action) as conn:
            # On the claim's own connection, before its statement.
            seen.append(conn.execute("SHOW synchronous_commit").fetchone()[0])
            yield conn

    monkeypatch.setattr(backend._db, "statement", spy)
    job = queue.claim()
    assert job is not None and job.job_id == "j"
    assert seen == (["off"] if durability == "flush" else [default])
    queue.close()


# -- a claim whose COMMIT had an unknown outcome: settled by its rows ---------------------


def _two_jobs(url: str) -> PostgresJobBackend:
    backend = PostgresJobBackend(url, worker_lease=LEASE)
    now = "2026-01-01T00:00:00+00:00"
    backend.put(
        [
            JobRecord.queued(
                job_id, "T", {}, priority=0, max_attempts=3, created=now, run_after=None
            )
            for job_id in ("j1", "j2")
        ]
    )
    return backend


def _on_commit(monkeypatch, where: str, action: Callable[[], None]) -> None:
    """Run ``action`` once, at the next ``pg.before_commit`` or ``pg.after_commit``."""
    fired: list[str] = []

    def point(name: str) -> None:
        if name == where and not fired:
            fired.append(name)
            action()

    monkeypatch.setattr(_db, "point", point)


def test_a_claim_whose_commit_was_lost_claims_again_though_its_xid_reads_committed(
    pg_url, monkeypatch
):
    backend = _two_jobs(pg_url)
    with backend._db.transaction("find the session") as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]

    def terminate() -> None:  # the COMMIT that follows finds the session gone
        with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    _on_commit(monkeypatch, "pg.before_commit", terminate)
    # After a server crash, the lost transaction's xid is handed to a new transaction, so
    # txid_status can read "committed" for a claim that never landed. (No settle asks it
    # any more; raising=False since the method is gone.)
    monkeypatch.setattr(backend._db, "committed", lambda xid: True, raising=False)
    [job] = backend.claim("w1", "2026-01-01T00:00:01+00:00", None)
    assert job.job_id == "j1" and job.worker == "w1"
    # What it returned is what is stored: claimed again, not taken for landed.
    assert _rows(pg_url, ["j1", "j2"]) == {"j1": ("Running", "w1"), "j2": ("Queued", None)}
    assert backend.get("j1").attempts == 1
    backend.close()


def test_a_claim_whose_commit_landed_unseen_is_its_result_not_claimed_again(pg_url, monkeypatch):
    backend = _two_jobs(pg_url)

    def lost() -> None:  # the COMMIT landed, but its answer never came back
        raise ConnectionLost("lost during COMMIT", commit_unknown=True)

    _on_commit(monkeypatch, "pg.after_commit", lost)
    [job] = backend.claim("w1", "2026-01-01T00:00:01+00:00", None)
    assert job.job_id == "j1"
    # One claim, not two: j2 was not claimed by a second run, left Running for no one.
    assert _rows(pg_url, ["j1", "j2"]) == {"j1": ("Running", "w1"), "j2": ("Queued", None)}
    backend.close()
