"""Fresh storage per hypothesis example, on either backend, and the machines' settings.

Hypothesis runs many examples inside one test function, so function-scoped fixtures are
shared between them. A :class:`StorageFactory` (the ``model_storage`` fixture) therefore
makes a new, empty place for every example instead: a new folder under the test's
``tmp_path`` for the files backend, or a new schema in the run's database for PostgreSQL.
The machine's ``teardown`` removes it.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

from tests.backends.postgres._pg import PgDatabase
from tests.conftest import BACKENDS

__all__ = ["BACKENDS", "StorageFactory", "model_settings"]

# Examples per backend are sized so that tests/model runs in well under a minute in all;
# JOBLEDGER_MODEL_EXAMPLES multiplies them (e.g. 20) for a longer search by hand.
_SCALE = float(os.environ.get("JOBLEDGER_MODEL_EXAMPLES", "1"))


def model_settings(examples: int) -> settings:
    """Settings of a machine: ``examples`` runs of up to 40 steps, no deadline (a step
    may wait for the disk or the server), no example database written into the repo."""
    return settings(
        max_examples=max(1, round(examples * _SCALE)),
        stateful_step_count=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


class Storage:
    """One example's place: ``location`` is a folder (files) or a schema's URL."""

    def __init__(self, kind: str, location: str, database: PgDatabase | None, schema: str) -> None:
        self.kind = kind
        self.location = location
        self._database = database
        self._schema = schema
        self._conn: Any = None

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in this example's schema (PostgreSQL only)."""
        assert self._database is not None, "a statement needs the PostgreSQL backend"
        if self._conn is None:
            self._conn = self._database.connect(self.location)
        cur = self._conn.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []

    def remove(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._database is not None:
            self._database.drop_schema(self._schema)
        else:
            shutil.rmtree(self.location, ignore_errors=True)


class StorageFactory:
    """Makes a fresh :class:`Storage` of one backend for each example."""

    def __init__(self, kind: str, tmp_path: Path, database: PgDatabase | None) -> None:
        self.kind = kind
        self._tmp_path = tmp_path
        self._database = database
        self._n = itertools.count(1)

    def new(self) -> Storage:
        if self._database is not None:
            schema, url = self._database.new_schema()
            return Storage(self.kind, url, self._database, schema)
        folder = self._tmp_path / f"example-{next(self._n)}"
        folder.mkdir()
        return Storage(self.kind, str(folder), None, "")
