"""Where data lives: a folder, or a PostgreSQL URL. The one place that tells them apart.

:func:`classify` is used by :class:`~jobledger.JobQueue`, :class:`~jobledger.JobState`,
the CLI and :func:`~jobledger._export.export`, so that a near-miss (``mysql://...``,
``postgresql:/host/db``, ``postgres:host/db``) is refused everywhere alike instead of
becoming a folder named after it, and a URL that names no database is refused instead of
silently meaning the server's default database. Messages never show a password.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, quote, urlsplit

from ._errors import ConfigError

__all__ = ["ACCEPTED", "URL_SCHEMES", "Location", "classify", "is_postgres_url", "shown"]

#: The URL prefixes taken as PostgreSQL; any other ``scheme:`` is refused.
URL_SCHEMES = ("postgresql://", "postgres://")

#: The accepted forms, for messages.
ACCEPTED = "a folder path, or a PostgreSQL URL such as postgresql://user@host:5432/dbname"

# Two or more scheme characters and a colon: what a URL starts with. A single letter and a
# colon is a Windows drive (C:\state), which is a folder.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")
# ``scheme:`` and slashes, then everything up to the last '@': the user info. Greedy, so
# that a password holding '/' or '@' is still cut away.
_USERINFO = re.compile(r"^([^:/]+:/*)(.*)@")


def is_postgres_url(value: object) -> bool:
    """Whether ``value`` is a ``postgresql://`` (or ``postgres://``) URL."""
    return isinstance(value, str) and value.startswith(URL_SCHEMES)


def shown(value: str) -> str:
    """``value`` as messages may show it: a URL's password (the user info after ``:``)
    and query string removed."""
    match = _USERINFO.match(value)
    if match is not None:
        user = match.group(2).split(":", 1)[0]
        value = f"{match.group(1)}{user}@{value[match.end() :]}"
    return value.split("?", 1)[0]


def _redact(url: str) -> str:
    """A readable PostgreSQL URL without its password and query, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    user = f"{quote(parts.username, safe='')}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


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


def _check_url(url: str, what: str) -> str:
    """``url`` without its password, once it is known readable and naming a database."""
    try:
        where = _redact(url)
    except ValueError:
        # The host or port cannot be read (and may carry a password): quote neither.
        raise ConfigError(
            f"{_prefix(what)}the PostgreSQL URL cannot be read; check its host and port "
            "(postgresql://user@host:5432/dbname)"
        ) from None
    parts = urlsplit(url)
    dbname = parts.path.lstrip("/")
    from_query = parse_qs(parts.query).get("dbname", [""])[0]
    if not dbname and not from_query:
        raise ConfigError(
            f"{_prefix(what)}the PostgreSQL URL {where} names no database (the server would pick "
            "one of its own); add it after the host, e.g. postgresql://user@host:5432/dbname"
        )
    return where


def classify(location: str | os.PathLike[str], what: str = "the location") -> Location:
    """Tell a folder from a PostgreSQL URL, refusing what is neither (ConfigError).

    A ``str`` starting with ``postgresql://`` or ``postgres://`` is a URL; it must be
    readable and name a database (in its path or as ``?dbname=``). Any other string that
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
    match = _SCHEME.match(location)
    if match is not None:
        raise ConfigError(
            f"{_prefix(what)}{shown(location)!r} starts like a URL ({match.group(1)}:) but is "
            f"not a PostgreSQL one; give {ACCEPTED} (postgresql:// or postgres://, two "
            f"slashes). If you mean a folder whose name has a colon, write it as "
            f"./{shown(location)}"
        )
    return Location("folder", location, location)
