"""A write whose COMMIT had an unknown outcome is settled by reading its rows back.

Two cases per write (a completion, a failure, a requeue, a cancel, a retry, a batch of
completions, an enqueue by INSERT and by COPY, a task set's ``mark_done``):

- "cut": the session is killed just before COMMIT (``pg.before_commit``), so the COMMIT
  never lands, and ``txid_status`` is made to lie "committed", as it does after a server
  crash that hands the lost transaction's xid to a new one. The call must end with its
  change stored (run again), never return having stored nothing.
- "landed": the COMMIT lands but its answer is lost (``pg.after_commit`` raises
  ConnectionLost with ``commit_unknown``). The call must return that change, applied once:
  no second attempt refused as a conflict, no attempt count moved twice, no job twice.

No sleep synchronises anything: the fault runs inside the committing thread, and
``pg_terminate_backend`` waits for the killed session to exit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from tests.backends.postgres._pg import require_psycopg

psycopg = require_psycopg()

import jobledger  # noqa: E402
from jobledger import JobQueue, JobStatus  # noqa: E402
from jobledger._job_record import JobRecord  # noqa: E402
from jobledger.backends.postgres import _db, jobs  # noqa: E402
from jobledger.backends.postgres._db import ConnectionLost, Database  # noqa: E402
from jobledger.backends.postgres.jobs import PostgresJobBackend  # noqa: E402

FAULTS = ["cut", "landed"]


def _arm(monkeypatch: pytest.MonkeyPatch, url: str, db: Database, fault: str) -> list[str]:
    """Make the next outermost COMMIT of ``db`` fail as ``fault`` says; the returned list
    gets the fault's name once it fired."""
    fired: list[str] = []
    where = "pg.before_commit" if fault == "cut" else "pg.after_commit"

    def point(name: str) -> None:
        if name != where or fired:
            return
        fired.append(fault)
        if fault == "landed":
            raise ConnectionLost("lost after COMMIT", commit_unknown=True)
        assert db._conn is not None
        pid = db._conn.info.backend_pid
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as admin:
            # Waits (up to 5 s) for the session to be gone: the COMMIT then finds it dead.
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))

    monkeypatch.setattr(_db, "point", point)
    if fault == "cut":
        # After a server crash txid_status can read "committed" for the lost transaction:
        # a settle that asks it returns without the change stored. (Settling by rows does
        # not ask: this method is no longer there, hence raising=False.)
        monkeypatch.setattr(db, "committed", lambda xid: True, raising=False)
    return fired


def _stored(url: str, job_id: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.row_factory = psycopg.rows.dict_row
        row = conn.execute(
            "SELECT status, attempts, worker, finished, result, error_message, seq,"
            " cancel_requested_at"
            " FROM jobledger_jobs WHERE job_id = %s",
            (job_id,),
        ).fetchone()
    assert row is not None, f"job {job_id} is not stored"
    return dict(row)


def _job_ids(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return [r[0] for r in conn.execute("SELECT job_id FROM jobledger_jobs ORDER BY job_id")]


def _backend(queue: JobQueue) -> PostgresJobBackend:
    backend = queue.backend
    assert isinstance(backend, PostgresJobBackend)
    return backend


# -- transitions ------------------------------------------------------------------------


def _running(queue: JobQueue, max_attempts: int = 3) -> str:
    queue.enqueue({"type": "T"}, job_id="j", max_attempts=max_attempts)
    job = queue.claim()
    assert job is not None and job.job_id == "j"
    return "j"


def _queued(queue: JobQueue) -> str:
    queue.enqueue({"type": "T"}, job_id="j")
    return "j"


def _finished_off(queue: JobQueue) -> str:
    queue.enqueue({"type": "T"}, job_id="j")
    queue.cancel("j")
    return "j"


# Each: (prepare the job, the call, the state it must leave: status, attempts, worker).
ACTIONS: dict[str, tuple[Callable[[JobQueue], str], Callable[[JobQueue, str], Any], tuple]] = {
    "complete": (_running, lambda q, j: q.complete(j, {"n": 1.0}), ("Completed", 1, "me")),
    "fail": (_running, lambda q, j: q.fail(j, "boom"), ("Queued", 1, None)),
    "fail-last": (
        lambda q: _running(q, max_attempts=1),
        lambda q, j: q.fail(j, "boom"),
        ("Failed", 1, None),
    ),
    "requeue": (_running, lambda q, j: q.requeue(j), ("Queued", 0, None)),
    # Fenced by the attempt as well (the Job as claimed): found landed, not refused.
    "snooze": (_running, lambda q, j: q.snooze(q.get(j), 30), ("Queued", 0, None)),
    # A Running job's cancel is asked of its worker: it stays Running, the request stored.
    "cancel": (_running, lambda q, j: q.cancel(j), ("Running", 1, "me")),
    "cancel-queued": (_queued, lambda q, j: q.cancel(j), ("Cancelled", 0, None)),
    "retry": (_finished_off, lambda q, j: q.retry(j), ("Queued", 0, None)),
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_a_transition_whose_commit_outcome_was_lost_is_stored_once(
    pg_url, monkeypatch, action, fault
):
    prepare, act, (status, attempts, worker) = ACTIONS[action]
    queue = JobQueue(pg_url, recover_every=3600)
    try:
        job_id = prepare(queue)
        before = _stored(pg_url, job_id)
        fired = _arm(monkeypatch, pg_url, _backend(queue)._db, fault)
        job = act(queue, job_id)  # no JobConflict: a landed change is not applied again
        assert fired == [fault]
        stored = _stored(pg_url, job_id)
        me = queue.worker_id
        assert (stored["status"], stored["attempts"]) == (status, attempts)
        assert stored["worker"] == (me if worker == "me" else worker)
        # What the call returned is what is stored.
        assert (job.status.value, job.attempts, job.finished) == (
            stored["status"],
            stored["attempts"],
            stored["finished"],
        )
        if action == "complete":
            assert stored["result"] == {"n": 1.0}
        if action.startswith("fail"):
            assert stored["error_message"] == "boom"
        if action == "retry":
            assert stored["seq"] > before["seq"]  # queued again at the back
        if action == "cancel":
            assert stored["cancel_requested_at"] == job.cancel_requested_at is not None
    finally:
        queue.close()


@pytest.mark.parametrize("fault", FAULTS)
def test_a_batch_of_completions_whose_commit_outcome_was_lost_is_stored_once(
    pg_url, monkeypatch, fault
):
    queue = JobQueue(pg_url, recover_every=3600)
    try:
        ids = queue.enqueue_many([{"type": "T"}] * 4, job_ids=["a", "b", "c", "d"])
        assert [j.job_id for j in queue.claim_many(3)] == ["a", "b", "c"]
        fired = _arm(monkeypatch, pg_url, _backend(queue)._db, fault)
        # "d" is not this worker's: refused, in both attempts alike; the others recorded.
        with pytest.raises(jobledger.JobConflict) as caught:
            queue.complete_many({job_id: f"r-{job_id}" for job_id in ids})
        assert fired == [fault]
        assert sorted(caught.value.refused) == ["d"]  # not a, b or c: none applied twice
        for job_id in "abc":
            stored = _stored(pg_url, job_id)
            assert (stored["status"], stored["attempts"], stored["result"]) == (
                "Completed",
                1,
                f"r-{job_id}",
            )
        assert _stored(pg_url, "d")["status"] == "Queued"
    finally:
        queue.close()


def test_a_landed_batch_is_recognised_per_row(pg_url, monkeypatch):
    """A row found as the lost attempt wrote it keeps its outcome; a row changed since
    (here by another process, between the lost COMMIT and the rerun) gets its change
    again, fenced: refused, not silently taken for done."""
    queue = JobQueue(pg_url, recover_every=3600)
    try:
        queue.enqueue_many([{"type": "T"}] * 2, job_ids=["a", "b"])
        queue.claim_many(2)
        fired: list[str] = []

        def point(name: str) -> None:
            if name == "pg.after_commit" and not fired:
                fired.append(name)
                with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as other:
                    other.execute(
                        "UPDATE jobledger_jobs SET status = 'Queued', worker = NULL"
                        " WHERE job_id = 'b'"
                    )
                raise ConnectionLost("lost after COMMIT", commit_unknown=True)

        monkeypatch.setattr(_db, "point", point)
        with pytest.raises(jobledger.JobConflict) as caught:
            queue.complete_many({"a": 1, "b": 2})
        assert fired and sorted(caught.value.refused) == ["b"]
        assert _stored(pg_url, "a")["status"] == "Completed"
    finally:
        queue.close()


# -- a worker's one-statement claims -----------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_completions_recorded_with_a_claim_whose_outcome_was_lost_are_stored_once(
    pg_url, monkeypatch, fault
):
    queue = JobQueue(pg_url, recover_every=3600)
    try:
        queue.enqueue_many([{"type": "T"}] * 5, job_ids=["a", "b", "c", "d", "e"])
        assert [j.job_id for j in queue.claim_many(2)] == ["a", "b"]
        fired = _arm(monkeypatch, pg_url, _backend(queue)._db, fault)
        jobs, recorded, conflict = queue._record_and_claim([("a", 1), ("b", 2)], 2, None)
        assert fired == [fault]
        # Recorded once (no refusal of a completion that landed), and the claim is the
        # one that landed (or, cut, the one made again): c and d, not e.
        assert ([j.job_id for j in jobs], recorded, conflict) == (["c", "d"], 2, None)
        me = queue.worker_id
        for job_id, result in (("a", 1), ("b", 2)):
            stored = _stored(pg_url, job_id)
            assert (stored["status"], stored["attempts"], stored["result"]) == (
                "Completed",
                1,
                result,
            )
        for job_id in "cd":
            stored = _stored(pg_url, job_id)
            assert (stored["status"], stored["attempts"], stored["worker"]) == ("Running", 1, me)
        assert _stored(pg_url, "e")["status"] == "Queued"
    finally:
        queue.close()


def _after_commit_lost(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The next statement lands, but its answer is lost (ConnectionLost after it)."""
    fired: list[str] = []

    def point(name: str) -> None:
        if name == "pg.after_commit" and not fired:
            fired.append(name)
            raise ConnectionLost("lost after COMMIT", commit_unknown=True)

    monkeypatch.setattr(_db, "point", point)
    return fired


NOW = "2026-01-01T00:00:01+00:00"  # one time for every claim: a clock that does not move


def _three_jobs(url: str) -> PostgresJobBackend:
    backend = PostgresJobBackend(url)
    backend.put(
        [
            JobRecord.queued(i, "T", {}, priority=0, max_attempts=3, created=NOW, run_after=None)
            for i in ("j1", "j2", "j3")
        ]
    )
    return backend


def _statuses(url: str) -> list[tuple[str, str, str | None]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(
            "SELECT job_id, status, worker FROM jobledger_jobs ORDER BY job_id"
        ).fetchall()


def test_a_lost_claim_is_settled_with_its_own_jobs_not_an_earlier_claims_at_its_time(
    pg_url, monkeypatch
):
    """Two claims of one worker at the same ``now`` (a clock that did not move): the
    second's read-back finds both claims' jobs Running since then, and takes only its own,
    not the first's (handed out already, and running)."""
    backend = _three_jobs(pg_url)
    try:
        [first] = backend.claim("w1", NOW, None)
        fired = _after_commit_lost(monkeypatch)
        [second] = backend.claim("w1", NOW, None)
        assert fired and (first.job_id, second.job_id) == ("j1", "j2")
        assert _statuses(pg_url) == [
            ("j1", "Running", "w1"),
            ("j2", "Running", "w1"),
            ("j3", "Queued", None),  # not claimed by a second run of the lost claim
        ]
    finally:
        backend.close()


@pytest.mark.parametrize("how", ["swap", "transition"])
def test_a_job_given_back_and_claimed_again_at_the_same_time_is_found_by_the_read_back(
    pg_url, monkeypatch, how
):
    """The job of the first claim is given back (a requeue keeps its attempt count) and
    claimed again at the same ``now``: the lost claim's row looks like the first claim's,
    which this backend handed out; but the give-back was written here too, so the read-back
    knows that claim is over, and takes the row for the lost claim's."""
    backend = _three_jobs(pg_url)
    try:
        [first] = backend.claim("w1", NOW, None)
        back = first.evolve(status=JobStatus.QUEUED, attempts=0, worker=None, recovered=True)
        if how == "swap":
            assert backend.swap([(first, back)]) == [back]
        else:
            backend.transition("j1", lambda record: back)
        fired = _after_commit_lost(monkeypatch)
        [again] = backend.claim("w1", NOW, None)
        assert fired and (again.job_id, again.attempts) == ("j1", 1)
        assert _statuses(pg_url) == [
            ("j1", "Running", "w1"),
            ("j2", "Queued", None),  # the lost claim was not made a second time
            ("j3", "Queued", None),
        ]
    finally:
        backend.close()


# -- enqueue ------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("how", ["enqueue", "many-insert", "many-copy"])
def test_an_enqueue_whose_commit_outcome_was_lost_stores_each_job_once(
    pg_url, monkeypatch, caplog, how, fault
):
    queue = JobQueue(pg_url, recover_every=3600)
    copies: list[int] = []
    copy_new = jobs.copy_staged

    def spy(conn: Any, records: list[Any], seqs: list[int]) -> Any:
        copies.append(len(records))
        return copy_new(conn, records, seqs)

    monkeypatch.setattr(jobs, "copy_staged", spy)
    try:
        queue.enqueue({"type": "warm-up"}, job_id="w")  # connects and migrates first
        fired = _arm(monkeypatch, pg_url, _backend(queue)._db, fault)
        caplog.set_level(logging.INFO, logger="jobledger")
        if how == "enqueue":
            ids = [queue.enqueue({"type": "T"}, job_id="one")]
        elif how == "many-insert":  # ids given: INSERT ... ON CONFLICT
            ids = queue.enqueue_many([{"type": "T"}] * 40, job_ids=[f"g{i:02d}" for i in range(40)])
        else:  # generated ids: COPY
            ids = queue.enqueue_many([{"type": "T"}] * 40)
        assert fired == [fault]
        assert bool(copies) == (how == "many-copy")
        assert sorted(_job_ids(pg_url)) == sorted([*ids, "w"])  # each once, none lost
        assert queue.counts()["Queued"] == len(ids) + 1
        # Each is reported as enqueued by this call, never as "already exists".
        said = [r.getMessage() for r in caplog.records]
        assert not [m for m in said if "already exists" in m], said
        assert sum(m.startswith("Enqueued job") for m in said) == len(ids)
        for job_id in ids:  # and each stored as it was returned to the queue
            assert _stored(pg_url, job_id)["status"] == "Queued"
    finally:
        queue.close()


@pytest.mark.parametrize("fault", FAULTS)
def test_put_returns_the_landed_records_as_new(pg_url, monkeypatch, fault):
    backend = PostgresJobBackend(pg_url)
    try:
        backend.get("x")  # connects and migrates first
        fired = _arm(monkeypatch, pg_url, backend._db, fault)
        records = [
            JobRecord.queued(
                f"p{i}", "T", {}, priority=0, max_attempts=3, created="2026-01-01", run_after=None
            )
            for i in range(3)
        ]
        out = backend.put(records)
        assert fired == [fault]
        assert [(r.job_id, new) for r, new in out] == [("p0", True), ("p1", True), ("p2", True)]
        assert [r.seq for r, _ in out] == [backend.get(f"p{i}").seq for i in range(3)]
    finally:
        backend.close()


# -- task sets ----------------------------------------------------------------------------

PLAN = ["a", "b", "c"]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_mark_done_whose_commit_outcome_was_lost_is_stored_once(
    pg_url, monkeypatch, caplog, fault
):
    state = jobledger.JobState(url=pg_url, timezone="UTC")
    try:
        with state.taskset("acct", "daily", PLAN, date="2025-01-20") as ts:
            ts.mark_done("a")
            fired = _arm(monkeypatch, pg_url, state.backend._db, fault)
            caplog.set_level(logging.WARNING, logger="jobledger")
            ts.mark_done("b")
            assert fired == [fault]
            assert ts.completed == ["a", "b"]
        # A landed save is its own result: not taken for another process's change.
        said = [r.getMessage() for r in caplog.records]
        assert not [m for m in said if "changed by another process" in m], said
    finally:
        state.backend.close()
    again = jobledger.JobState(url=pg_url, timezone="UTC")
    try:
        ts = again.taskset("acct", "daily", date="2025-01-20")
        assert list(ts.completed) == ["a", "b"]
        assert list(ts.pending()) == ["c"]
    finally:
        again.backend.close()
