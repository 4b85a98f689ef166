"""Issue 12, point 1, against libpq and the server: what the refusals advise works, and
libpq's own text is scrubbed.

The server trusts every local connection, so any password is accepted: these tests show
that a password percent-encoded as the messages say (``%40`` for ``@``, ``%25`` for
``%``) is read by libpq and never shown, and that libpq's real message for a password
holding an unencoded ``@`` (the tail taken as the host) is scrubbed by the redaction.
"""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from tests.backends.postgres._pg import require_psycopg

require_psycopg()

import psycopg  # noqa: E402

from jobledger import JobQueue, JobState  # noqa: E402
from jobledger._redact import scrub, url_secrets  # noqa: E402
from jobledger.backends.postgres import DatabaseError  # noqa: E402
from jobledger.backends.postgres._db import Database  # noqa: E402
from jobledger.cli import cli  # noqa: E402

MARK = "Zq9SECRETmark"
FORBIDDEN = (MARK, MARK[:5], MARK[-5:])


def _hidden(text: str) -> bool:
    return not any(bit in text for bit in FORBIDDEN)


def _with_password(url: str, encoded: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{encoded}@{host}"


def test_a_percent_encoded_password_is_read_by_libpq_and_never_shown(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # "p@ss%<MARK>", encoded as the refusals advise.
    url = _with_password(pg_url, f"p%40ss%25{MARK}")
    caplog.set_level(logging.INFO, logger="jobledger")
    with JobQueue(url) as queue:
        queue.enqueue({"type": "T"}, job_id="j")
        assert queue.counts().get("Queued") == 1
        assert _hidden(repr(queue)) and _hidden(queue.dir)
    state = JobState(url=url, timezone="UTC")
    state.taskset("a", "t", ["x"]).mark_done("x")
    assert _hidden(repr(state)) and _hidden(state.backend.location)
    state.backend.close()
    result = CliRunner().invoke(cli, ["db", "status", "--url", url])
    assert result.exit_code == 0, result.output
    assert _hidden(result.output) and _hidden(caplog.text)


def test_a_password_in_the_query_is_read_and_never_shown(pg_url: str) -> None:
    url = f"{pg_url}&password=x%26{MARK}"
    with JobQueue(url) as queue:
        queue.enqueue({"type": "t"})  # a writer: it connects with that password, and migrates
        assert queue.counts().get("Queued", 0) == 1
        assert _hidden(repr(queue))
    result = CliRunner().invoke(cli, ["jobs", "counts", "--dir", url])
    assert result.exit_code == 0 and _hidden(result.output)


def test_a_missing_database_names_it_and_never_the_password(pg_url: str) -> None:
    scheme_user, rest = _with_password(pg_url, f"a%40{MARK}").split("@", 1)
    host = rest.split("/", 1)[0]
    url = f"{scheme_user}@{host}/no_such_db_for_secrets"
    with pytest.raises(DatabaseError) as info:
        JobQueue(url).counts()
    assert "no_such_db_for_secrets" in str(info.value) and _hidden(str(info.value))
    result = CliRunner().invoke(cli, ["status", "--dir", url])
    assert result.exit_code == 2 and "no_such_db_for_secrets" in result.stderr
    assert _hidden(result.output)


def test_libpqs_own_message_for_an_unencoded_at_sign_is_scrubbed() -> None:
    # What jobledger now refuses up front, given to libpq directly: it cuts the user info
    # at the first '@' and quotes the rest of the password as the host.
    url = f"postgresql://bob:Pw7q@{MARK}@127.0.0.1:1/db?connect_timeout=1"
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(url)
    assert MARK in str(info.value)  # the leak being guarded against
    assert _hidden(scrub(str(info.value), url_secrets(url)))


def test_a_databases_errors_scrub_the_password_from_libpqs_real_text(pg_url: str) -> None:
    # A real libpq failure for this URL's password, put through Database.error.
    url = _with_password(pg_url, f"{MARK}").replace("127.0.0.1:5432", "127.0.0.1:1")
    db = Database(url)
    try:
        psycopg.connect(f"postgresql://bob:Pw7q@{MARK}@127.0.0.1:1/db?connect_timeout=1")
    except psycopg.OperationalError as exc:
        error = db.error("connect to PostgreSQL", exc)
    assert "127.0.0.1" in str(error) and _hidden(str(error))
