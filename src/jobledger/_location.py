"""Where data lives: a folder, or a PostgreSQL URL. The one place that tells them apart.

:func:`classify` is used by :class:`~jobledger.JobQueue`, :class:`~jobledger.JobState`,
the CLI and :func:`~jobledger._export.export`, so that a near-miss (``mysql://...``,
``postgresql:/host/db``, ``postgres:host/db``) is refused everywhere alike instead of
becoming a folder named after it, and a URL that names no database is refused instead of
silently meaning the server's default database, and a URL libpq would misread (a bad
``%`` escape, a password holding ``@``, an unknown query parameter) is a ConfigError
before libpq quotes it. Messages never show a password (:mod:`jobledger._redact`).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, unquote_to_bytes

from ._errors import ConfigError
from ._redact import redact_url

__all__ = [
    "ACCEPTED",
    "LIBPQ_KEYWORDS",
    "URL_SCHEMES",
    "Location",
    "classify",
    "is_postgres_url",
    "shown",
]

#: The URL prefixes taken as PostgreSQL; any other ``scheme:`` is refused.
URL_SCHEMES = ("postgresql://", "postgres://")

#: The accepted forms, for messages.
ACCEPTED = "a folder path, or a PostgreSQL URL such as postgresql://user@host:5432/dbname"

# Two or more scheme characters and a colon: what a URL starts with. A single letter and a
# colon is a Windows drive (C:\state), which is a folder.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")
# A libpq keyword string (``host=h dbname=d password=...``) starts with a keyword and '='.
_KEYWORD_DSN = re.compile(r"^\s*([A-Za-z_]+)\s*=")
# A '%' that does not start a percent-escape (libpq refuses it, quoting the text around).
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# One host of a URL's host list: ``[ipv6]`` or a name, then an optional ``:port``.
_HOST = re.compile(r"^(\[[^\[\]/?@]*\]|[^\[\]:]*)(?::(\d*))?$")

#: libpq's connection keywords (PostgreSQL 18), the query parameters a URL may carry; the
#: linked libpq's own list is added when psycopg is there. ``ssl`` is the URL-only alias
#: (``ssl=true``).
LIBPQ_KEYWORDS = frozenset(
    [
        "application_name",
        "channel_binding",
        "client_encoding",
        "connect_timeout",
        "dbname",
        "fallback_application_name",
        "gssdelegation",
        "gssencmode",
        "gsslib",
        "host",
        "hostaddr",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "krbsrvname",
        "load_balance_hosts",
        "max_protocol_version",
        "min_protocol_version",
        "oauth_client_id",
        "oauth_client_secret",
        "oauth_issuer",
        "oauth_scope",
        "options",
        "passfile",
        "password",
        "port",
        "replication",
        "require_auth",
        "requirepeer",
        "scram_client_key",
        "scram_server_key",
        "service",
        "ssl_max_protocol_version",
        "ssl_min_protocol_version",
        "sslcert",
        "sslcertmode",
        "sslcompression",
        "sslcrl",
        "sslcrldir",
        "sslkey",
        "sslkeylogfile",
        "sslmode",
        "sslnegotiation",
        "sslpassword",
        "sslrootcert",
        "sslsni",
        "target_session_attrs",
        "tcp_user_timeout",
        "user",
        "ssl",
    ]
)


def is_postgres_url(value: object) -> bool:
    """Whether ``value`` is a ``postgresql://`` (or ``postgres://``) URL."""
    return isinstance(value, str) and value.startswith(URL_SCHEMES)


def shown(value: str) -> str:
    """``value`` as messages may show it: a URL's password (the user info after ``:``)
    and query string removed (see :func:`jobledger._redact.redact_url`)."""
    return redact_url(value)


@functools.cache
def _keywords() -> frozenset[str]:
    """The query parameters libpq takes: the static list, and the linked libpq's own."""
    try:
        from psycopg import pq
    except ImportError:  # pragma: no cover - psycopg is an optional dependency
        return LIBPQ_KEYWORDS
    try:
        linked = {d.keyword.decode() for d in pq.Conninfo.get_defaults()}
    except Exception:  # pragma: no cover - a libpq that cannot list them: the static list
        return LIBPQ_KEYWORDS
    return LIBPQ_KEYWORDS | linked


@dataclass(frozen=True)
class Location:
    """A classified location: ``kind`` is ``"folder"`` or ``"postgres"``; ``value`` is the
    folder path or the URL exactly as given (it may hold a password: do not print it);
    ``where`` is what messages show (the URL without its password)."""

    kind: Literal["folder", "postgres"]
    value: str
    where: str

    @property
    def is_url(self) -> bool:
        """Whether this is a PostgreSQL URL."""
        return self.kind == "postgres"


def _prefix(what: str) -> str:
    return f"{what}: " if what else ""


def _unreadable(what: str, reason: str, fix: str, url: str = "") -> ConfigError:
    """The ConfigError for a URL that cannot be read. ``url`` (shown redacted) only when
    its host and port were read: a bad port may be a password's tail."""
    shown_url = f" {redact_url(url)}" if url else ""
    return ConfigError(
        f"{_prefix(what)}the PostgreSQL URL{shown_url} cannot be read: {reason}; {fix} "
        "(postgresql://user:password@host:5432/dbname)"
    )


def _check_hosts(hosts: str, what: str) -> None:
    """ConfigError unless ``hosts`` is ``host[:port]`` items, comma-separated, each port
    a number from 1 to 65535; neither host nor port is quoted (either may be a password
    that lost its way)."""
    for item in hosts.split(","):
        match = _HOST.match(item)
        port = match.group(2) if match is not None else None
        if match is None or (port and not 0 < int(port) < 65536):
            raise _unreadable(
                what,
                "its host or port is not readable (a port is a number from 1 to 65535; an "
                "IPv6 address is written in brackets)",
                "check its host and port (after the '@')",
            )


def _check_query(query: str, url: str, what: str) -> str:
    """ConfigError unless ``query`` is ``key=value`` pairs of libpq keywords (as libpq
    reads them); its ``dbname``, percent-decoded. A key is quoted only when it looks like
    a keyword (lower-case letters and '_'), never a value."""
    dbname = ""
    pairs = query.split("&")
    if len(pairs) > 1 and pairs[-1] == "":
        pairs.pop()  # libpq accepts a trailing '&'
    for number, pair in enumerate(pairs, 1):
        key, sep, value = pair.partition("=")
        key = unquote(key)
        named = f"{key!r}" if re.fullmatch(r"[a-z_]{1,40}", key) else f"number {number}"
        if not sep or "=" in value:
            raise _unreadable(
                what,
                f"its query parameter {named} is not one key=value pair",
                "write each as key=value, separated by '&' (a '=' or '&' in a value as %3D or %26)",
                url,
            )
        if key not in _keywords():
            raise _unreadable(
                what,
                f"its query parameter {named} is not one libpq knows",
                "use libpq's connection keywords only (such as sslmode, connect_timeout, "
                "application_name, options)",
                url,
            )
        if key == "dbname":
            dbname = unquote(value)
    return dbname


def _utf8(data: bytes) -> bool:
    # Not raised from the handler: the decode error's context quotes the bytes.
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_url(url: str, what: str) -> str:
    """``url`` without its password, once it is known readable (by libpq, the same way
    as by the redaction) and naming a database; ConfigError otherwise.

    The checks run before libpq sees the URL because libpq's own complaints quote it:
    a bad ``%`` escape in a password is quoted whole, and a password holding ``@`` is cut
    at its first ``@`` with the rest reported as the host."""
    if re.search(r"\s", url):
        raise _unreadable(
            what,
            "it holds white space (libpq refuses it, quoting the text around)",
            "percent-encode a space as %20 (in a password too)",
            url,
        )
    if _BAD_ESCAPE.search(url):
        raise _unreadable(
            what,
            "it holds a '%' that is not followed by two hex digits",
            "write a '%' (in a password too) as %25",
            url,
        )
    if not _utf8(unquote_to_bytes(url)):
        # psycopg decodes what libpq decoded, and fails with an error of its own.
        raise _unreadable(
            what,
            "its %-escapes do not spell UTF-8 text",
            "percent-encode the UTF-8 bytes of each character (é as %C3%A9)",
            url,
        )
    rest = url.split("://", 1)[1]
    at = rest.rfind("@")
    userinfo = rest[:at] if at >= 0 else ""
    if "@" in userinfo:
        raise _unreadable(
            what,
            "it has more than one '@' (libpq takes the first one as the end of the password, "
            "the rest as the host)",
            "percent-encode a '@' in a user name, password or query value as %40",
            url,
        )
    if "/" in userinfo or "?" in userinfo:
        raise _unreadable(
            what,
            "it has a '/' or '?' before the '@' (in the user name or password)",
            "percent-encode them: '/' as %2F, '?' as %3F (a '@' in a query value as %40)",
            url,
        )
    rest = rest[at + 1 :]
    before_query, _, query = rest.partition("?")
    hosts, slash, path = before_query.partition("/")
    _check_hosts(hosts, what)
    dbname = unquote(path) if slash else ""
    if query or "?" in rest:
        dbname = _check_query(query, url, what) or dbname
    where = redact_url(url)
    if not dbname:
        raise ConfigError(
            f"{_prefix(what)}the PostgreSQL URL {where} names no database (the server would pick "
            "one of its own); add it after the host, e.g. postgresql://user@host:5432/dbname"
        )
    return where


def classify(location: str | os.PathLike[str], what: str = "the location") -> Location:
    """Tell a folder from a PostgreSQL URL, refusing what is neither (ConfigError).

    A ``str`` starting with ``postgresql://`` or ``postgres://`` is a URL; it must be
    readable and name a database (in its path or as ``?dbname=``). Readable means: no
    white space, every ``%`` starts a valid escape (of UTF-8 text), one ``@`` at most (a
    ``@``, ``/`` or ``?`` in a password is percent-encoded), host and port readable, and
    libpq's keywords only in the query;
    a URL libpq would misread is refused here, since libpq's complaints quote the URL
    (password and all). A libpq keyword string (``host=h password=...``) is refused too
    rather than becoming a folder named after it. Any other string that
    starts like a URL (two or more letters and a colon: ``mysql://x``,
    ``postgresql:/host/db``, ``postgres:host/db``, ``http://...``) is refused; a folder
    whose name really has a colon is written ``./name:with:colon``. Everything else,
    including a ``C:`` drive path and any ``os.PathLike``, is a folder. ``what`` names the
    setting in messages (``"key 'jobState.url' in app.json"``; ``""`` for none).
    """
    if not isinstance(location, str):
        path = os.fspath(location)
        return Location("folder", path, path)
    if is_postgres_url(location):
        return Location("postgres", location, _check_url(location, what))
    keyword = _KEYWORD_DSN.match(location)
    if keyword is not None and keyword.group(1).lower() in _keywords():
        # Never a folder: its name would carry the password into every message.
        raise ConfigError(
            f"{_prefix(what)}this looks like a libpq keyword string "
            f"({keyword.group(1).lower()}=...), which jobledger does not take; give "
            f"{ACCEPTED} (percent-encode special characters of the password). If you "
            "mean a folder whose name has '=', write it as ./name"
        )
    match = _SCHEME.match(location)
    if match is not None:
        raise ConfigError(
            f"{_prefix(what)}{shown(location)!r} starts like a URL ({match.group(1)}:) but is "
            f"not a PostgreSQL one; give {ACCEPTED} (postgresql:// or postgres://, two "
            f"slashes). If you mean a folder whose name has a colon, write it as "
            f"./{shown(location)}"
        )
    return Location("folder", location, location)
