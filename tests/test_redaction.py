"""Issue 12, point 1: a password never shows, whatever shape the URL is in.

Every reported URL form is run through the CLI (``jobs counts``, ``status``, ``db status``)
and the Python API (``JobQueue(url).counts()``, ``JobState(url=...).keys()``): an unreadable
URL is a usage error (ConfigError, exit 2), and the password shows nowhere, not in the
output, the exception (str, repr, its causes) or the log. A hypothesis test then feeds
generated URLs around a marker password through every one of those paths, and through the
redaction itself. Connection attempts go to 127.0.0.1 port 1 (refused at once).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobledger import ConfigError, JobLedgerError, JobQueue, JobState
from jobledger._location import classify
from jobledger._redact import redact_text, redact_url, scrub, url_secrets
from jobledger.backends.postgres import DatabaseError
from jobledger.cli import cli

MARK = "Zq9SECRETmark"
#: The marker and its ends: none may show anywhere.
FORBIDDEN = (MARK, MARK[:5], MARK[-5:])

BAD_ESCAPE = f"postgresql://bob:{MARK}%ZZ@127.0.0.1:1/db"
TWO_ATS = f"postgresql://bob:Pw7q@{MARK}@127.0.0.1:1/db"
UNKNOWN_PARAMETER = f"postgresql://bob:{MARK}@127.0.0.1:1/db?foo=bar"
UNREADABLE = [
    BAD_ESCAPE,
    TWO_ATS,
    UNKNOWN_PARAMETER,
    f"postgresql://bob:{MARK}@127.0.0.1:x1/db",  # a bad port
    f"postgresql://bob:a/{MARK}@127.0.0.1:1/db",  # an unencoded '/' in the password
    f"postgresql://bob:a?{MARK}@127.0.0.1:1/db",  # an unencoded '?'
    f"postgresql://bob@127.0.0.1:1/db?password={MARK}&x",  # no '=' in a parameter
    f"postgresql://bob@127.0.0.1:1/db?password=a={MARK}",  # two '='
    f"postgresql://bob@127.0.0.1:1/db?password=a@{MARK}",  # '@' in a query value
    f"host=127.0.0.1 port=1 dbname=db password={MARK}",  # a keyword string
    f"host=127.0.0.1 port=1 dbname=db password='a b {MARK}'",
]
#: Readable URLs carrying the marker: the connection fails (exit 2), never showing it.
READABLE = [
    f"postgresql://bob:{MARK}@127.0.0.1:1/db",
    f"postgresql://bob:%40{MARK}%25@127.0.0.1:1/db",  # '@' and '%' percent-encoded
    f"postgres://bob@127.0.0.1:1/db?password={MARK}&connect_timeout=1",
    f"postgresql://bob@127.0.0.1:1/db?sslpassword={MARK}&sslmode=disable",
]


def assert_hidden(*texts: object) -> None:
    """None of ``texts`` (strings, or exceptions with their causes) shows the marker."""
    for text in texts:
        for shown in _texts(text):
            for bit in FORBIDDEN:
                assert bit not in shown, shown


def _texts(value: object) -> Iterator[str]:
    if isinstance(value, BaseException):
        seen: set[int] = set()
        exc: BaseException | None = value
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            yield str(exc)
            yield repr(exc)
            exc = exc.__cause__ or exc.__context__
    else:
        yield str(value)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"JOBLEDGER_QUEUE_DIR": None})


CLI_PLACES = [
    ("jobs", "counts", "--dir", "{v}"),
    ("status", "--dir", "{v}"),
    ("db", "status", "--url", "{v}"),
]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The current folder is tmp_path: a folder made by mistake would show up there."""
    monkeypatch.chdir(tmp_path)


# -- the reported URLs ----------------------------------------------------------------------


@pytest.mark.parametrize("place", CLI_PLACES, ids=lambda p: " ".join(p[:2]))
@pytest.mark.parametrize("url", UNREADABLE)
def test_an_unreadable_url_is_a_usage_error_that_never_shows_the_password(
    url: str, place: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    result = run(*(a.format(v=url) for a in place))
    assert result.exit_code == 2, result.output
    assert_hidden(result.output, result.stderr, caplog.text)


@pytest.mark.parametrize("url", UNREADABLE)
def test_an_unreadable_url_is_a_config_error_in_python(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    for use in (lambda: JobQueue(url).counts(), lambda: JobState(url=url).keys()):
        with pytest.raises(ConfigError) as info:
            use()
        assert isinstance(info.value, JobLedgerError)
        assert_hidden(info.value, caplog.text)
    with pytest.raises(ConfigError) as info:
        classify(url)
    assert_hidden(info.value)


def test_a_bad_percent_escape_is_refused_without_quoting_it() -> None:
    # It used to be "invalid percent-encoded token: "<password>%ZZ"", exit 1.
    result = run("jobs", "counts", "--dir", BAD_ESCAPE)
    assert result.exit_code == 2
    assert "%25" in result.stderr and "postgresql://bob@127.0.0.1:1/db" in result.stderr
    with pytest.raises(ConfigError, match="two hex digits") as info:
        JobQueue(BAD_ESCAPE)
    assert_hidden(info.value)


def test_a_password_holding_an_at_sign_is_refused_asking_for_percent_40() -> None:
    # libpq cuts at the first '@' and reported the password's tail as the host.
    for place in CLI_PLACES:
        result = run(*(a.format(v=TWO_ATS) for a in place))
        assert result.exit_code == 2 and "%40" in result.stderr, result.output
        assert "Pw7q" not in result.output
        assert_hidden(result.output)
    with pytest.raises(ConfigError, match="%40") as info:
        JobState(url=TWO_ATS)
    assert "Pw7q" not in str(info.value)


def test_an_unknown_query_parameter_is_a_usage_error_naming_it() -> None:
    for place in CLI_PLACES:
        result = run(*(a.format(v=UNKNOWN_PARAMETER) for a in place))
        assert result.exit_code == 2, result.output  # it was 1
        assert "'foo'" in result.stderr
    with pytest.raises(ConfigError, match="'foo' is not one libpq knows"):
        JobQueue(UNKNOWN_PARAMETER)
    # libpq's own keywords, the URL-only ssl=true and a trailing '&' are accepted.
    for query in ("sslmode=disable&connect_timeout=1", "ssl=true", "application_name=x&"):
        assert classify(f"postgresql://u@h/db?{query}").is_url


def test_multiple_hosts_and_ipv6_are_readable_and_a_keyword_like_folder_is_written_dotted(
    tmp_path,
) -> None:
    assert classify("postgresql://u@h1:5432,h2:5433/db").where == (
        "postgresql://u@h1:5432,h2:5433/db"
    )
    assert classify("postgresql://u:p@[::1]:5432/db").where == "postgresql://u@[::1]:5432/db"
    assert not classify("./host=x").is_url
    with pytest.raises(ConfigError, match=r"\./name"):
        classify("host=x")


@pytest.mark.parametrize("place", CLI_PLACES, ids=lambda p: " ".join(p[:2]))
@pytest.mark.parametrize("url", READABLE)
def test_an_unreachable_url_exits_2_never_showing_the_password(
    url: str, place: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    result = run(*(a.format(v=url) for a in place))
    assert result.exit_code == 2, result.output
    assert "127.0.0.1" in result.stderr
    assert_hidden(result.output, caplog.text)


@pytest.mark.parametrize("url", READABLE)
def test_an_unreachable_url_in_python_never_shows_the_password(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    queue, state = JobQueue(url), JobState(url=url)
    assert_hidden(repr(queue), queue.dir, repr(state), state.backend.location)
    for use in (queue.counts, state.keys):
        with pytest.raises(DatabaseError) as info:
            use()
        assert_hidden(info.value, caplog.text)
    queue.close()


# -- the redaction itself -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (TWO_ATS, "postgresql://bob@127.0.0.1:1/db"),
        (BAD_ESCAPE, "postgresql://bob@127.0.0.1:1/db"),
        (f"postgresql://bob@h/db?password={MARK}", "postgresql://bob@h/db"),
        (f"postgresql://bob@h/db?password=a@{MARK}", "postgresql://bob@…"),
        (f"postgresql://bob:a?b@{MARK}/db", "postgresql://bob@…"),
        (f"postgresql://:{MARK}@h/db", "postgresql://h/db"),
        (f"mysql:bob:{MARK}@h/db", "mysql:bob@h/db"),
        (f"host=h password={MARK} dbname=d", "host=h password=*** dbname=d"),
        (f"host=h password = '{MARK} \\' x' dbname=d", "host=h password = *** dbname=d"),
    ],
)
def test_redact_url_cuts_at_the_last_at_and_drops_the_query(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_redacts_every_url_and_password_value_in_a_message() -> None:
    text = f"could not use 'postgresql://bob:a@{MARK}@h/db?x=1' (sslpassword={MARK}&x) now"
    # The query is dropped up to white space, a closing quote included: a password may
    # hold a quote, so the URL is not taken to end at one.
    assert redact_text(text) == "could not use 'postgresql://bob@h/db (sslpassword=*** now"


def test_libpqs_first_at_reading_is_scrubbed_from_its_messages() -> None:
    # libpq takes "Pw7q" as the password and "<MARK>@127.0.0.1" as the host.
    secrets = url_secrets(TWO_ATS)
    assert "Pw7q" in secrets and MARK in secrets
    text = f"failed to resolve host '{MARK}@127.0.0.1': unknown"
    assert scrub(text, secrets) == "failed to resolve host '***@127.0.0.1': unknown"
    decoded = url_secrets(f"postgresql://bob:%5A{MARK[1:]}@h/db")
    assert MARK in decoded  # percent-decoded, as libpq quotes it


def test_database_errors_scrub_libpqs_text_and_redact_their_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from jobledger.backends.postgres._db import Database

    url = f"postgresql://bob:x{MARK}y@127.0.0.1:1/db"
    db = Database(url)
    fake = OSError(f'connection to "127.0.0.1" failed: password "x{MARK}y"\nrejected for bob')
    error = db.error("connect to PostgreSQL", fake)
    assert "database db on 127.0.0.1:1" in str(error) and "rejected for bob" in str(error)
    assert_hidden(error)
    assert_hidden(DatabaseError(f"could not reach {url} (password={MARK})"))
    with pytest.raises(ConfigError):
        Database(TWO_ATS)


# -- property: generated URLs around the marker, through every path --------------------------

# Text around the marker: the characters that break URLs, and some that are just unusual.
_AROUND = st.text(alphabet="ab9Z@%:/?#&=,' \\é€\n\t", max_size=6)
_QUERY_AROUND = st.text(alphabet="ab9Z@%:/?#=,é€", max_size=6)  # no '&': next parameter
_PLAIN_AROUND = st.text(alphabet="ab9Z@%:/?#&=,é€", max_size=6)  # no space or quote


@st.composite
def _secret_location(draw: st.DrawFn) -> str:
    """A location whose password (as libpq or a careful reader takes it) holds MARK."""
    secret = draw(_AROUND) + MARK + draw(_AROUND)
    scheme = draw(st.sampled_from(["postgresql://", "postgres://"]))
    user = draw(st.sampled_from(["bob", "", "b%40b"]))
    hosts = draw(st.sampled_from(["127.0.0.1:1", "127.0.0.1:1,127.0.0.1:1", "[::1]:1"]))
    tail = draw(st.sampled_from(["/db", "/db?connect_timeout=1", "/db?foo=bar", "/?dbname=db"]))
    form = draw(st.integers(0, 3))
    if form == 0:  # the user info
        return f"{scheme}{user}:{secret}@{hosts}{tail}"
    if form == 1:  # the query
        query_secret = draw(_QUERY_AROUND) + MARK + draw(_QUERY_AROUND)
        key = draw(st.sampled_from(["password", "sslpassword"]))
        sep = "&" if "?" in tail else "?"
        return f"{scheme}{user}@{hosts}{tail}{sep}{key}={query_secret}"
    if form == 2:  # a keyword string, unquoted value
        plain = draw(_PLAIN_AROUND) + MARK + draw(_PLAIN_AROUND)
        return f"host=127.0.0.1 port=1 dbname=db password={plain}"
    quoted = secret.replace("\\", "\\\\").replace("'", "\\'")
    return f"host=127.0.0.1 port=1 password='{quoted}' dbname=db"


@settings(
    max_examples=int(__import__("os").environ.get("SECRETS_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(location=_secret_location())
def test_no_path_ever_shows_the_marker_password(
    location: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="jobledger"):
        assert_hidden(redact_url(location), redact_text(location))
        try:
            assert_hidden(classify(location).where)
        except ConfigError as exc:
            assert_hidden(exc)
        for make, use in ((JobQueue, "counts"), (lambda u: JobState(url=u), "keys")):
            try:
                target = make(location)
                assert_hidden(repr(target))
                getattr(target, use)()
            except JobLedgerError as exc:
                assert_hidden(exc)
            else:  # pragma: no cover - nothing answers on port 1
                pytest.fail(f"port 1 answered for {redact_url(location)}")
        for place in CLI_PLACES:
            result = run(*(a.format(v=location) for a in place))
            assert result.exit_code == 2, result.output
            assert_hidden(result.output, result.stderr)
        # A libpq message quoting the URL, and the host as libpq reads it (first '@').
        after_first_at = re.split(r"@", location.split("://", 1)[-1], maxsplit=1)[-1]
        fake = f'invalid URI "{location}": could not translate host name "{after_first_at}"'
        assert_hidden(scrub(fake, [location, *url_secrets(location)]))
        assert_hidden(DatabaseError(scrub(fake, url_secrets(location))))
    assert_hidden(caplog.text)
