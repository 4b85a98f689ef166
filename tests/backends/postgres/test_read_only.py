"""On PostgreSQL, reads never migrate: a database without the schema (or with an older
one) is reported, with the command that creates it; writers migrate as before."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from jobledger import JobQueue, JobState
from jobledger.backends.postgres import SchemaMissing, SchemaOutdated
from jobledger.cli._app import cli

from ._pg import PgDatabase, require_psycopg


def tables(pg_database: PgDatabase, schema: str) -> list[str]:
    with pg_database.connect() as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
    return sorted(r[0] for r in rows)


@pytest.fixture
def empty(pg_database: PgDatabase):
    require_psycopg()
    name, url = pg_database.new_schema()
    yield name, url
    pg_database.drop_schema(name)


def test_reading_methods_never_migrate(pg_database, empty):
    schema, url = empty
    state = JobState(url=url)
    with pytest.raises(SchemaMissing, match="run `jobledger db migrate --url postgresql://"):
        state.records()
    with pytest.raises(SchemaMissing):
        state.keys()
    q = JobQueue(url)
    for read in (lambda: q.get("x"), q.list, q.counts):
        with pytest.raises(SchemaMissing, match="no jobledger schema in"):
            read()
    assert tables(pg_database, schema) == []
    # A write migrates, on its first use, as before; then the reads work.
    q.enqueue({"type": "T"}, job_id="j")
    assert q.counts()["Queued"] == 1 and q.get("j") is not None
    assert "jobledger_jobs" in tables(pg_database, schema)
    q.close()
    state.close()


def test_read_commands_say_to_migrate_and_exit_1(pg_database, empty):
    schema, url = empty
    secret = url.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    runner = CliRunner()
    for args in (
        ["--dir", secret, "status"],
        ["--dir", secret, "list"],
        ["--dir", secret, "show", "alice"],
        ["--dir", secret, "stats"],
        ["--dir", secret, "du"],
        ["jobs", "list", "--dir", secret],
        ["jobs", "show", "x", "--dir", secret],
        ["jobs", "counts", "--dir", secret],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 1, (args, result.output)
        assert "no jobledger schema in" in result.stderr
        assert "run `jobledger db migrate --url postgresql://postgres@" in result.stderr
        assert "s3cret" not in result.output
    assert tables(pg_database, schema) == []


def test_an_older_schema_is_reported_not_migrated(pg_database, empty):
    import psycopg

    from jobledger.backends.postgres._migrate import migrate, migrations

    schema, url = empty
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn, upto=1)
    assert len(migrations()) > 1
    with pytest.raises(SchemaOutdated, match="older than this jobledger"):
        JobQueue(url).counts()
    result = CliRunner().invoke(cli, ["--dir", url, "status"])
    assert result.exit_code == 1 and "jobledger db migrate" in result.stderr
    with pg_database.connect() as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        versions = sorted(r[0] for r in conn.execute("SELECT version FROM jobledger_migrations"))
    assert versions == [1]
