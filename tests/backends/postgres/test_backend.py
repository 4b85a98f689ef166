"""The PostgreSQL backends' own behaviour: factories, messages, records as stored."""

from __future__ import annotations

import logging
import os
import threading
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.backends.postgres._pg import require_psycopg

require_psycopg()

import jobledger  # noqa: E402
from jobledger import JobQueue, JobState, JobStatus  # noqa: E402
from jobledger._job_record import JobRecord  # noqa: E402
from jobledger.backends.postgres import DatabaseError  # noqa: E402
from jobledger.backends.postgres.jobs import PostgresJobBackend  # noqa: E402

SECRET = "hunter2-not-shown"


def _with_password(url: str, password: str = SECRET) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


def test_factories_and_config(pg_url):
    state = JobState.from_config({"jobState": {"url": pg_url, "timezone": "UTC"}})
    state.taskset("a", "t", ["x"]).mark_done("x")
    assert JobState(url=pg_url, timezone="UTC").taskset("a", "t").completed == ["x"]
    with JobQueue(pg_url) as queue:
        assert queue.enqueue({"type": "T"}, job_id="j") == "j"
    with JobQueue(pg_url.replace("postgresql://", "postgres://", 1)) as queue:
        assert queue.get("j") is not None
    with pytest.raises(jobledger.ConfigError, match="url"):
        JobState.from_config({"jobState": {"url": 5}})
    state.backend.close()


def test_the_worker_lease_is_a_queue_option_on_postgres_only(pg_url, tmp_path):
    with JobQueue(pg_url) as queue:
        assert queue.backend.worker_lease == 6.0  # recovery within 10 s: see jobs.py
        assert queue.backend.heartbeat == pytest.approx(1.2)
    with JobQueue(pg_url, worker_lease=2.5) as queue:
        assert queue.backend.worker_lease == 2.5
        assert queue.backend.heartbeat == pytest.approx(0.5)
    with pytest.raises(jobledger.ConfigError, match="PostgreSQL queue only"):
        JobQueue(tmp_path / "q", worker_lease=5)


def test_the_password_never_shows(pg_url):
    url = _with_password(pg_url)  # trust authentication ignores it
    state = JobState(url=url, timezone="UTC")
    queue = JobQueue(url)
    with state.taskset("a", "t", ["x"]) as ts:
        with pytest.raises(jobledger.AlreadyRunning) as info, JobState(url=url).taskset("a", "t"):
            pass
        assert info.value.holder.pid == os.getpid()
        assert state.holder(ts.key) == info.value.holder
    for text in (repr(state), repr(queue), state.backend.location, queue.dir, str(info.value)):
        assert SECRET not in text
    queue.close()
    state.backend.close()


def test_connection_errors_name_host_and_database_not_the_password(pg_url):
    parts = urlsplit(_with_password(pg_url))
    missing_db = urlunsplit(parts._replace(path="/no_such_db_here"))
    with pytest.raises(DatabaseError) as info:
        JobState(url=missing_db).taskset("a", "t")
    text = str(info.value)
    assert "no_such_db_here" in text and str(parts.hostname) in text and SECRET not in text
    closed_port = urlunsplit(parts._replace(netloc=f"postgres:{SECRET}@127.0.0.1:1"))
    with pytest.raises(DatabaseError) as info:
        JobQueue(closed_port).enqueue({"type": "T"})
    assert "127.0.0.1:1" in str(info.value) and SECRET not in str(info.value)
    assert isinstance(info.value, jobledger.JobLedgerError)


def test_a_job_record_round_trips_identically(pg_url):
    backend = PostgresJobBackend(pg_url)
    record = JobRecord(
        job_id="j-ü",
        type="TextJob",
        status=JobStatus.QUEUED,
        payload={"model": "m", "nested": {"a": [1, 2.5, None, True]}, "text": "é"},
        error_message="earlier: x",
        priority=7,
        attempts=1,
        max_attempts=4,
        created="2025-01-20T10:30:00.000Z",
        run_after="2025-01-20T10:31:00.000Z",
        extra_meta={"addedByNewerVersion": {"k": 1}},
    )
    [(stored, new)] = backend.put([record])
    assert new and stored.seq > 0
    assert backend.get("j-ü") == stored == record.evolve(seq=stored.seq)
    assert backend.put([record.evolve(priority=0)]) == [(stored, False)]
    done = backend.transition(
        "j-ü",
        lambda r: r.evolve(
            status=JobStatus.COMPLETED,
            result={"out": [1, "two"]},
            finished="2025-01-21T00:00:00.000Z",
        ),
    )
    assert backend.get("j-ü") == done
    assert list(backend.all_records()) == [done]
    backend.close()


def test_put_stores_an_id_given_twice_in_one_batch_once(pg_url):
    backend = PostgresJobBackend(pg_url)
    a = JobRecord(job_id="a", type="T", status=JobStatus.QUEUED, payload={"n": 1})
    out = backend.put([a, a.evolve(payload={"n": 2}), a.evolve(job_id="b")])
    assert [(r.job_id, r.payload, new) for r, new in out] == [
        ("a", {"n": 1}, True),
        ("a", {"n": 1}, False),
        ("b", {"n": 1}, True),
    ]
    assert out[0][0].seq < out[2][0].seq  # FIFO within a batch
    assert backend.counts()["Queued"] == 2
    backend.close()


def _batch(n: int, prefix: str) -> list[JobRecord]:
    return [
        JobRecord(
            job_id=f"{prefix}{i}",
            type="T",
            status=JobStatus.QUEUED,
            payload={"i": i, "text": 'tab\there, é, \\ and "quotes"\nnewline'},
            run_after="2025-01-20T10:31:00.000Z" if i % 2 else None,
            extra_meta={"k": [1]} if i == 3 else {},
        )
        for i in range(n)
    ]


def test_a_batch_of_generated_ids_goes_in_by_copy_exactly_as_given(pg_url, monkeypatch):
    import jobledger.backends.postgres.jobs as pg_jobs

    copied = []
    real_copy = pg_jobs.copy_staged
    monkeypatch.setattr(
        pg_jobs, "copy_staged", lambda c, r, s: copied.append(len(r)) or real_copy(c, r, s)
    )
    backend = PostgresJobBackend(pg_url)
    batch = _batch(40, "g")
    out = backend.put(batch, frozenset(r.job_id for r in batch))
    assert copied == [40]
    assert all(new for _, new in out)
    assert [r.seq for r, _ in out] == sorted(r.seq for r, _ in out)  # FIFO within a batch
    for given, (stored, _) in zip(batch, out, strict=True):
        assert backend.get(given.job_id) == stored == given.evolve(seq=stored.seq)
    backend.close()


def test_a_copied_batch_that_meets_a_stored_id_is_stored_once_the_usual_way(pg_url):
    # Ids said to be fresh that exist after all (a batch run again after a lost commit):
    # the COPY is undone and the batch inserted as usual, nothing twice, the stored kept.
    backend = PostgresJobBackend(pg_url)
    batch = _batch(40, "c")
    [(kept, _)] = backend.put([batch[7].evolve(payload={"first": True})])
    out = backend.put(batch, frozenset(r.job_id for r in batch))
    assert [new for _, new in out] == [i != 7 for i in range(40)]
    assert out[7][0] == kept and backend.get("c7") == kept
    assert backend.counts()["Queued"] == 40
    backend.close()


def test_seqs_come_in_blocks_unique_and_in_enqueue_order(pg_url):
    # A batch takes one value of the sequence per block of SEQ_BLOCK jobs, not one per job.
    import psycopg

    from jobledger.backends.postgres._queries import SEQ_BLOCK

    def sequence_value() -> int:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            return int(conn.execute("SELECT last_value FROM jobledger_job_seq").fetchone()[0])

    with JobQueue(pg_url, durability="flush") as q:
        first = q.enqueue({"type": "T"})
        before = sequence_value()
        batch = q.enqueue_many([{"type": "T"}] * (SEQ_BLOCK + 476))  # by COPY, two blocks
        assert sequence_value() == before + 2
        given = q.enqueue_many([{"type": "T"}] * 3, job_ids=["g1", "g2", "g3"])  # INSERT
        last = q.enqueue({"type": "T"})
        order = [first, *batch, *given, last]
        seqs = [q.backend.get(job_id).seq for job_id in order]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert [job.job_id for job in q.claim_many(len(order))] == order


def test_a_record_that_is_not_a_task_set_is_set_aside(pg_url, caplog):
    state = JobState(url=pg_url, timezone="UTC")
    ts = state.taskset("a", "t", ["x"], date="2025-01-20")
    ts.mark_done("x")
    with state.backend._db.transaction("test") as conn:  # type: ignore[attr-defined]
        conn.execute("UPDATE jobledger_tasksets SET record = '{\"date\": 5}'")
    assert [f.kind for f in state.doctor(repair=False)] == ["corrupt"]
    caplog.set_level(logging.WARNING, logger="jobledger")
    assert state.backend.load(ts.key) is None
    assert "jobledger_set_aside" in caplog.text
    assert [f.kind for f in state.doctor(repair=True)] == ["note"]
    ts.mark_done("y")  # what this process completed survives the loss of the row
    assert sorted(JobState(url=pg_url).taskset("a", "t", date="2025-01-20").completed) == [
        "x",
        "y",
    ]
    state.backend.close()


def test_usage_and_stale_lease_rows(pg_url):
    state = JobState(url=pg_url, timezone="UTC")
    state.taskset("a", "t", ["x"]).mark_done("x")
    size, rows = state.usage()
    assert rows == 1 and size > 0
    with state.backend._db.transaction("test") as conn:  # type: ignore[attr-defined]
        conn.execute(
            "INSERT INTO jobledger_leases (account, type, date, lock_key, backend_pid, pid)"
            " VALUES ('a', 't', '2025-01-20', 1, 1, 1)"
        )
    assert state.holder(jobledger.TaskSetKey("a", "t", "2025-01-20")) is None
    assert [f.kind for f in state.doctor(repair=True)] == ["stale-lease"]
    assert state.doctor(repair=True) == []
    state.backend.close()


def test_lease_waits_as_long_as_told(pg_url):
    state = JobState(url=pg_url, timezone="UTC")
    holder = state.taskset("a", "t")
    holder.acquire()
    other = JobState(url=pg_url, timezone="UTC").taskset("a", "t")
    with pytest.raises(jobledger.AlreadyRunning):
        other.acquire(wait=0.3)  # waits, then gives up: the holder keeps it
    took: list[bool] = []

    def wait_forever() -> None:
        other.acquire(wait=True)
        took.append(True)

    waiter = threading.Thread(target=wait_forever)
    waiter.start()
    # The waiter is blocked on the lock; the holder row still names this holder.
    assert state.holder(holder.key).pid == os.getpid()
    holder.release()
    waiter.join(timeout=30)
    assert took, "wait=True did not get the lease after its release"
    other.release()
    assert state.holder(holder.key) is None
    state.backend.close()


@pytest.mark.parametrize(
    "url", ["postgresql://u:s3cr3t-pw@host:notaport/db", "postgresql://u:s3cr3t-pw@[::1/db"]
)
def test_an_unreadable_url_fails_cleanly_without_showing_the_password(url):
    # Refused when the queue is made (a URL psycopg cannot parse) or first used.
    with pytest.raises(jobledger.JobLedgerError) as info:
        JobQueue(url).counts()
    assert "s3cr3t-pw" not in str(info.value)
    assert "cannot be read" in str(info.value) or "could not connect" in str(info.value)


def test_a_transaction_the_server_rolls_back_for_a_deadlock_runs_again(pg_url, caplog):
    from jobledger.backends.postgres._db import Database, TransactionAborted

    db = Database(pg_url)
    runs = []

    def run() -> int:
        runs.append(1)
        with db.transaction("test a deadlock") as conn:
            if len(runs) == 1:  # the server's own error for a deadlock victim
                conn.execute("DO $$ BEGIN RAISE EXCEPTION 'victim' USING ERRCODE = '40P01'; END $$")
            return int(conn.execute("SELECT 7").fetchone()[0])

    caplog.set_level(logging.INFO, logger="jobledger")
    assert db.retrying(run) == 7 and len(runs) == 2
    assert "running it again" in caplog.text
    with pytest.raises(TransactionAborted, match="test a deadlock"):  # outside retrying
        runs.clear()
        run()
    db.close()
