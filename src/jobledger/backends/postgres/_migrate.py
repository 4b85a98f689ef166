"""Versioned schema migrations: ``sql/NNNN_name.sql``, applied in order, each once.

``migrate(conn)`` applies the versions missing from ``jobledger_migrations``, each in one
transaction together with its row there, under a transaction-level advisory lock of the
schema: concurrent first uses wait for each other instead of creating tables twice. It is
idempotent and cheap when nothing is missing (one query, no lock).
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any, NamedTuple

import psycopg

from . import _queries as q
from ._errors import DatabaseError

__all__ = ["Migration", "applied_versions", "migrate", "migrations"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# The two-key advisory lock space (objsubid 2 in pg_locks), apart from the leases' keys.
_LOCK_CLASS = 0x6A6C6D67  # "jlmg"


class Migration(NamedTuple):
    """One migration file: its version, name and SQL."""

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    out = []
    for entry in resources.files(__package__).joinpath("sql").iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append(Migration(int(m[1]), m[2], entry.read_text(encoding="utf-8")))
    out.sort()
    versions = [m.version for m in out]
    if versions != list(range(1, len(out) + 1)):
        raise DatabaseError(f"the packaged migrations are not numbered 1..n: {versions}")
    return out


def applied_versions(conn: psycopg.Connection[Any]) -> set[int]:
    """The versions recorded in the current schema (empty before the first migration)."""
    row = conn.execute(q.HAS_MIGRATIONS_TABLE).fetchone()
    if not row or not row[0]:
        return set()
    return {r[0] for r in conn.execute(q.APPLIED_MIGRATIONS)}


def migrate(conn: psycopg.Connection[Any], upto: int | None = None) -> list[int]:
    """Apply the missing migrations (up to version ``upto``) to the current schema of
    ``conn`` (an autocommit connection); return the versions applied now."""
    wanted = [m for m in migrations() if upto is None or m.version <= upto]
    if {m.version for m in wanted} <= applied_versions(conn):
        return []
    row = conn.execute(q.CURRENT_SCHEMA).fetchone()
    if not row or row[0] is None:
        raise DatabaseError(
            "no schema to create the jobledger tables in: the search_path names no "
            "existing schema; create it, or fix the search_path in the URL's options"
        )
    done = []
    for migration in wanted:
        with conn.transaction():
            conn.execute(q.LOCK_MIGRATIONS, (_LOCK_CLASS,))
            conn.execute(q.CREATE_MIGRATIONS_TABLE)
            if migration.version in applied_versions(conn):
                continue  # another process applied it while we waited for the lock
            conn.execute(migration.sql.encode())  # bytes: no placeholder parsing
            conn.execute(q.MIGRATION_DONE, (migration.version, migration.name))
        done.append(migration.version)
    return done
