"""The named statements of the PostgreSQL backends (``backends/postgres/_queries.py``):
every name is used by the code (no dead query), and every statement is one the server
accepts against the migrated schema (a misspelt column or table fails here)."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.backends.postgres._pg import require_psycopg

require_psycopg()

import psycopg  # noqa: E402

from jobledger.backends.postgres import _queries as q  # noqa: E402
from jobledger.backends.postgres.jobs import PostgresJobBackend  # noqa: E402

SRC = Path(q.__file__).resolve().parents[2]  # src/jobledger
MODULE = "_queries"

# The names that are not statements: what statements are made of, for the code's use.
NOT_STATEMENTS = {
    "CANCEL_CHANNEL",
    "CHANNEL",
    "COLUMNS",
    "FINISHED_CHANNEL",
    "SEQ_BLOCK",
    "WRITABLE",
}
# A statement made per call: how the test makes one (every column, a timeout).
MADE: dict[str, Callable[[], str]] = {
    "update_jobs": lambda: q.update_jobs(q.WRITABLE),
    "swap_job": lambda: q.swap_job(q.WRITABLE),
    "swap_jobs": lambda: q.swap_jobs(q.WRITABLE),
    "swap_job_and_claim": lambda: q.swap_job_and_claim(q.WRITABLE, True, 50, True),
    "swap_jobs_and_claim": lambda: q.swap_jobs_and_claim(q.WRITABLE, True, 50, True),
    "claim_next": lambda: q.claim_next(True, 50, True),
    "claim_jobs": lambda: q.claim_jobs(True, True),
    "pick_limited": lambda: q.pick_limited(True, True, 2),
    "set_lock_timeout": lambda: q.set_lock_timeout(1500),
}


def _public_names() -> set[str]:
    """Every public name the module defines (assigned or def'd at its top level)."""
    tree = ast.parse(Path(q.__file__).read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
    return {name for name in names if not name.startswith("_")}


def _names_used() -> set[str]:
    """The names of ``_queries`` the code outside it reads: ``q.NAME`` where ``q`` is the
    module imported under some alias, and ``from ._queries import NAME``."""
    used: set[str] = set()
    for path in SRC.rglob("*.py"):
        if path.stem == MODULE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith(MODULE):
                used.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                aliases.update(a.asname or a.name for a in node.names if a.name == MODULE)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                used.add(node.attr)
    return used


def _statements() -> dict[str, str]:
    out = {}
    for name in sorted(_public_names() - NOT_STATEMENTS):
        value = getattr(q, name)
        out[name] = MADE[name]() if callable(value) else value
    return out


def test_every_name_is_exported_and_used_by_the_code():
    names = _public_names()
    assert set(q.__all__) == names
    assert names - _names_used() == set(), "named but never used: delete them"
    assert _names_used() - names == set(), "used but not defined"


def test_every_made_statement_is_made_by_the_test():
    made = {name for name in _public_names() if callable(getattr(q, name))}
    assert made == set(MADE)


def test_the_job_statements_name_every_field_in_the_tables_order():
    from jobledger._job_fields import FIELDS

    names = [f.name for f in FIELDS]
    assert list(q.COLUMNS) == names
    reads = ("GET_JOB", "GET_JOBS", "LOCK_JOBS", "RECOVERABLE_JOBS", "LIVE_JOBS")
    for name in ("INSERT_NEW_JOBS", "COPY_JOBS", "JOBS_IN_SEQ_ORDER", *reads):
        assert ", ".join(names) in getattr(q, name), name
    returning = "RETURNING " + ", ".join(f"j.{n}" for n in names)
    for of_types in (False, True):
        assert returning in q.claim_jobs(of_types, False)
        assert returning in q.claim_jobs(of_types, True)
        assert returning in q.CLAIM_CHOSEN
        assert returning in q.claim_next(of_types, 1)
        assert returning in q.swap_job_and_claim(("status",), of_types, 1)
        assert returning in q.swap_jobs_and_claim(("status",), of_types, 1)


_PREPARABLE = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")


def _check(conn: psycopg.Connection[Any], name: str, statement: str) -> None:
    """Have the server parse and analyse ``statement`` without running it where it can
    (PREPARE, its parameters' types inferred), else run it in a transaction rolled back."""
    assert "%" not in statement.replace("%s", ""), f"{name}: a % that is not a placeholder"
    numbered = iter(range(1, statement.count("%s") + 1))
    text = re.sub("%s", lambda _: f"${next(numbered)}", statement)
    with conn.transaction(force_rollback=True):
        if text.split()[0].upper() in _PREPARABLE:
            conn.execute(f"PREPARE jobledger_check AS {text}")
            conn.execute("DEALLOCATE jobledger_check")
        elif text.startswith("COPY "):
            with conn.cursor().copy(text):
                pass  # no row: COPY FROM STDIN of nothing
        else:
            assert "$" not in text, f"{name}: a utility statement takes no parameter"
            conn.execute(text)


def test_the_server_accepts_every_statement(pg_url):
    backend = PostgresJobBackend(pg_url)
    assert backend.get("none") is None  # migrates
    backend.close()
    refused = {}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name, statement in _statements().items():
            try:
                _check(conn, name, statement)
            except psycopg.Error as exc:
                refused[name] = str(exc)
    assert refused == {}
