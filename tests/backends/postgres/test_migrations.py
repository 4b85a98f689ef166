"""Schema migrations: a fresh install equals a migrated one; migrating again is a no-op."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.backends.postgres._pg import require_psycopg

psycopg = require_psycopg()

from jobledger import JobQueue, JobState  # noqa: E402
from jobledger.backends.postgres._migrate import (  # noqa: E402
    applied_versions,
    migrate,
    migrations,
)


def _dump(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    """The current schema's tables, columns, constraints, indexes and sequences, from
    information_schema (and pg_indexes), without the schema's own name. NOT NULL
    constraints are named after oids; the columns' is_nullable covers them."""
    schema = conn.execute("SELECT current_schema()").fetchone()[0]
    queries = {
        "tables": "SELECT table_name, table_type FROM information_schema.tables"
        " WHERE table_schema = %s ORDER BY 1",
        "columns": "SELECT table_name, ordinal_position, column_name, data_type,"
        " is_nullable, column_default FROM information_schema.columns"
        " WHERE table_schema = %s ORDER BY 1, 2",
        "constraints": "SELECT table_name, constraint_name, constraint_type"
        " FROM information_schema.table_constraints WHERE table_schema = %s"
        " AND constraint_name NOT LIKE '%%_not_null' ORDER BY 1, 2",
        "checks": "SELECT c.constraint_name, c.check_clause"
        " FROM information_schema.check_constraints c"
        " JOIN information_schema.table_constraints t USING (constraint_schema, constraint_name)"
        " WHERE c.constraint_schema = %s AND c.constraint_name NOT LIKE '%%_not_null'"
        " ORDER BY 1, 2",
        "keys": "SELECT table_name, constraint_name, column_name, ordinal_position"
        " FROM information_schema.key_column_usage WHERE table_schema = %s ORDER BY 1, 2, 4",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes"
        " WHERE schemaname = %s ORDER BY 1, 2",
        "sequences": "SELECT sequence_name, data_type, start_value, increment"
        " FROM information_schema.sequences WHERE sequence_schema = %s ORDER BY 1",
    }
    out = {}
    for name, query in queries.items():
        rows = conn.execute(query, (schema,)).fetchall()
        out[name] = [
            tuple(v.replace(f"{schema}.", "") if isinstance(v, str) else v for v in row)
            for row in rows
        ]
    return out


@pytest.fixture
def connect(pg_database):
    """Connections to fresh schemas: ``connect()`` makes one schema and connects to it."""
    opened = []

    def make(url: str | None = None):
        if url is None:
            _, url = pg_database.new_schema()
        conn = psycopg.connect(url, autocommit=True)
        opened.append(conn)
        return conn, url

    yield make
    for conn in opened:
        conn.close()


def test_the_packaged_migrations_are_numbered_from_one():
    versions = [m.version for m in migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert all(m.sql.strip() for m in migrations())


def test_step_by_step_equals_all_at_once(connect):
    fresh, _ = connect()
    assert migrate(fresh) == [m.version for m in migrations()]
    stepped, _ = connect()
    for m in migrations():
        assert migrate(stepped, upto=m.version) == [m.version]
    assert _dump(stepped) == _dump(fresh)
    assert applied_versions(stepped) == applied_versions(fresh) == {m.version for m in migrations()}


@pytest.mark.parametrize("make", [JobState, JobQueue], ids=["JobState", "JobQueue"])
def test_first_use_migrates_an_older_schema_to_a_fresh_ones_shape(connect, make):
    fresh, _ = connect()
    migrate(fresh)
    older, url = connect()
    last = migrations()[-1].version
    migrate(older, upto=last - 1)  # nothing at all when there is only version 1
    if make is JobState:
        state = JobState(url=url, timezone="UTC")
        state.taskset("a", "t", ["x"]).mark_done("x")
        state.backend.close()
    else:
        with JobQueue(url) as queue:
            queue.enqueue({"type": "T"})
    assert _dump(older) == _dump(fresh)


def test_migrating_again_is_a_no_op(connect):
    conn, _ = connect()
    migrate(conn)
    before = _dump(conn)
    recorded = conn.execute("SELECT * FROM jobledger_migrations ORDER BY version").fetchall()
    assert migrate(conn) == []
    assert migrate(conn) == []
    assert _dump(conn) == before
    assert conn.execute("SELECT * FROM jobledger_migrations ORDER BY version").fetchall() == (
        recorded
    )


def test_concurrent_first_uses_apply_each_version_once(connect):
    _, url = connect()
    conns = [connect(url)[0] for _ in range(6)]
    barrier = threading.Barrier(len(conns))
    applied: list[list[int]] = []
    errors: list[BaseException] = []

    def run(conn: Any) -> None:
        try:
            barrier.wait()
            applied.append(migrate(conn))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(v for done in applied for v in done) == [m.version for m in migrations()]


def test_status_is_checked_text_and_jobs_have_no_foreign_key(connect):
    conn, _ = connect()
    migrate(conn)
    column = conn.execute(
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'jobledger_jobs'"
        " AND column_name = 'status'"
    ).fetchone()
    assert column == ("text",)
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO jobledger_jobs (job_id, type, status, seq) VALUES ('j', 'T', 'Bogus', 1)"
        )
    fks = conn.execute(
        "SELECT count(*) FROM information_schema.table_constraints"
        " WHERE table_schema = current_schema() AND constraint_type = 'FOREIGN KEY'"
    ).fetchone()
    assert fks == (0,)
    tables = {
        r[0]
        for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    }
    assert tables and all(t.startswith("jobledger_") for t in tables)
