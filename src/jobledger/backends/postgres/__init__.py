"""The PostgreSQL backends (psycopg 3: from a clone, ``pip install -e '.[postgres]'``).

``jobledger.backends.open_job_backend`` and ``open_taskset_backend`` (the one door that
``JobState(url="postgresql://...")``, ``JobQueue("postgresql://...")``, the CLI and export
go through) open them for a URL. The tables (``jobledger_*``) live in the URL's schema
(``options=-csearch_path=...``, default ``public``) and are created or migrated on first
write (a read never creates or migrates them: it reports a missing or outdated schema);
``sql/`` holds the migrations, ``_queries.py`` every statement the backends send, by name.

Importing this package does not import psycopg: the factories below do, and say how to
install it when it is missing. The backends themselves are in ``.tasksets`` and ``.jobs``.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from ..._clock import Clock
from ..._errors import ConfigError
from ..._location import URL_SCHEMES, is_postgres_url
from ._errors import DatabaseError, SchemaMissing, SchemaOutdated, WrongConnection

if TYPE_CHECKING:
    from .jobs import PostgresJobBackend
    from .tasksets import PostgresTaskSetBackend

__all__ = [
    "URL_SCHEMES",
    "DatabaseError",
    "SchemaMissing",
    "SchemaOutdated",
    "WrongConnection",
    "is_postgres_url",
    "job_backend",
    "taskset_backend",
]


def _require_psycopg() -> None:
    if importlib.util.find_spec("psycopg") is None:
        raise ConfigError(
            "a PostgreSQL URL needs psycopg 3, which is not installed; "
            "install it from the jobledger clone with: pip install -e '.[postgres]'"
        )


def taskset_backend(
    url: str, *, fsync: bool, clock: Clock, read_only: bool = False
) -> PostgresTaskSetBackend:
    """The task-set backend on ``url`` (nothing is connected until first use). A
    ``read_only`` one never migrates: a missing or older schema raises SchemaMissing."""
    _require_psycopg()
    from .tasksets import PostgresTaskSetBackend

    return PostgresTaskSetBackend(url, fsync=fsync, clock=clock, read_only=read_only)


def job_backend(
    url: str,
    *,
    fsync: bool,
    clock: Clock,
    worker_lease: float | None = None,
    read_only: bool = False,
) -> PostgresJobBackend:
    """The job backend on ``url`` (nothing is connected until first use). A
    ``read_only`` one never migrates: a missing or older schema raises SchemaMissing."""
    _require_psycopg()
    from .jobs import DEFAULT_WORKER_LEASE, PostgresJobBackend

    lease = DEFAULT_WORKER_LEASE if worker_lease is None else worker_lease
    return PostgresJobBackend(
        url, fsync=fsync, clock=clock, worker_lease=lease, read_only=read_only
    )
