"""The job table's columns are the job fields' table's: a field without its migration (or
with another type) is found here, not by a failing insert."""

from __future__ import annotations

from tests.backends.postgres._pg import require_psycopg

require_psycopg()

import psycopg  # noqa: E402

from jobledger._job_fields import FIELDS  # noqa: E402
from jobledger.backends.postgres.jobs import PostgresJobBackend  # noqa: E402


def test_every_field_has_a_column_of_its_type(pg_url):
    backend = PostgresJobBackend(pg_url)
    assert backend.get("none") is None  # migrates
    backend.close()
    with psycopg.connect(pg_url) as conn:
        columns = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = 'jobledger_jobs'"
            ).fetchall()
        )
    assert {f.name: f.pg_type for f in FIELDS} == {
        name: columns.get(name) for name in (f.name for f in FIELDS)
    }
    # The one column that is not a field: the lease of a Running job (server time).
    assert set(columns) - {f.name for f in FIELDS} == {"lease_until"}
