"""PostgreSQL for the tests: a database per test run, a schema per test.

The run creates ``jobledger_test_<pid>_<random>`` from template0 on the server named by
``JOBLEDGER_TEST_PG`` (an admin URL; default ``postgresql://postgres@127.0.0.1:5432/postgres``)
and drops it (WITH (FORCE)) at the end. Each test gets a fresh schema in it, named in its
URL's ``options=-csearch_path=...``: tests never see each other's tables or leases.

When the server cannot be reached the PostgreSQL tests are skipped with the reason,
except under CI=true, where that is a failure.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import pytest

ADMIN_URL = os.environ.get("JOBLEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_schemas = itertools.count(1)


def until(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.02) -> float:
    """Poll ``condition`` (a read of the server's state) until true; the seconds it took.
    Fails naming ``what`` after ``timeout`` seconds."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not {what} after {timeout}s")
        time.sleep(every)
    return time.monotonic() - start


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``."""
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(name)))


def with_schema(url: str, schema: str) -> str:
    """``url`` whose sessions use ``schema`` (created beforehand) as their search_path."""
    parts = urlsplit(url)
    query = "&".join(
        q for q in (parts.query, urlencode({"options": f"-csearch_path={schema}"})) if q
    )
    return urlunsplit(parts._replace(query=query))


class PgDatabase:
    """The run's database: its URL, and schemas made in it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def connect(self, url: str | None = None):  # -> psycopg.Connection
        import psycopg

        return psycopg.connect(url or self.url, autocommit=True, connect_timeout=5)

    def new_schema(self) -> tuple[str, str]:
        """(name, URL) of a fresh empty schema."""
        name = f"t{next(_schemas)}_{secrets.token_hex(3)}"
        with self.connect() as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return name, with_schema(self.url, name)

    def drop_schema(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute("SET lock_timeout = '5s'")
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def require_psycopg():  # -> the psycopg module
    """psycopg, or skip the calling module (fail under CI=true) when it is missing."""
    if os.environ.get("CI", "").lower() == "true":
        import psycopg

        return psycopg
    return pytest.importorskip(
        "psycopg", reason='psycopg is not installed (pip install -e ".[test]")'
    )


def _unreachable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[PgDatabase]:
    """A database of our own for the whole run, dropped at its end."""
    try:
        import psycopg
    except ImportError:
        _unreachable('psycopg is not installed (pip install -e ".[test]")')
    from jobledger.backends.postgres._db import redact

    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        _unreachable(f"cannot connect to {redact(ADMIN_URL)}: {' '.join(str(exc).split())}")
    name = f"jobledger_test_{os.getpid()}_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield PgDatabase(with_database(ADMIN_URL, name))
    finally:
        # A connection of its own: test_restart.py restarts the server meanwhile.
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: PgDatabase) -> Iterator[str]:
    """The URL of a fresh schema for this test (dropped afterwards)."""
    name, url = pg_database.new_schema()
    yield url
    pg_database.drop_schema(name)
