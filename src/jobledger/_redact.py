"""Passwords out of every text jobledger shows: the one redaction for URLs and messages.

A connection string can reach a message, a log line or an exception in three shapes: a
URL (``postgresql://user:password@host/db?password=...``), a libpq keyword string
(``host=h password='p w'``), or, worse, quoted piecemeal by libpq itself: libpq splits a
URL's user info at the FIRST ``@``, so with ``user:pw@tail@host`` it reports the host
``tail@host``, quoting the tail of the password. So:

* :func:`redact_url` reads a URL the most cautious way: everything between ``://`` (or
  ``scheme:``) and the LAST ``@`` is user info, of which only the user name (up to the
  first ``:``, ``@``, ``/`` or ``?``) is kept; the query (which may hold ``password=``) is
  dropped; and when a ``?`` comes before that last ``@`` (a password holding ``?``, or a
  query value holding ``@``), nothing after the user name is shown at all.
* :func:`url_secrets` lists every text that may be (part of) a password of a URL or a
  keyword string, raw and percent-decoded, whole and cut where libpq may cut it;
  :func:`scrub` replaces them in a text (libpq's messages, for one).
* :func:`redact_text` is the safety net for any message: every PostgreSQL URL in it
  redacted (one whose password holds white space too, cautiously), every
  ``password=...`` (and ``sslpassword``, ``..._secret``) value replaced.

Texts shorter than :data:`MIN_PIECE` characters are not scrubbed: replacing every ``a``
or ``db`` in a message would make it unreadable. :func:`redact_url` hides a password of
any length, since it cuts by structure, not by search.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

__all__ = ["HIDDEN", "MIN_PIECE", "redact_text", "redact_url", "scrub", "url_secrets"]

#: What a scrubbed secret becomes.
HIDDEN = "***"

#: The shortest text :func:`scrub` is given by :func:`url_secrets`.
MIN_PIECE = 3

# ``scheme:`` and its slashes: what a URL (or a look-alike such as ``postgres:host``)
# starts with.
_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*:/*)")
# Where a PostgreSQL URL starts inside a longer text: the scheme at the start of a word
# (or after a quote or bracket), ``:`` and a ``/``. Only PostgreSQL's: any ``word:/`` in
# a password would otherwise start a "URL" of its own, named after the password.
_URL_START = re.compile(r"(?i)(?<![A-Za-z0-9+.\-])postgres(?:ql)?:/")
# A secret-bearing keyword with its value: ``password=x``, ``password = 'a \' b'``,
# ``sslpassword=...``, ``oauth_client_secret=...``, in a keyword string or a URL query.
# An unquoted value runs to white space, '&' included (a keyword string's value may hold
# one; in a URL query, hiding the next parameters too is the cautious side).
_SECRET_KEYWORD = re.compile(r"(?i)([A-Za-z_]*(?:password|secret)\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)")
# A URL as messages show it: user name (no ':'), host list with numeric ports, a path.
_HOST_ITEM = r"(?:\[[0-9A-Za-z:.%]*\]|[^\s:/?@\[\],]*)(?::\d+)?"
_SHOWN = rf"[A-Za-z][A-Za-z0-9+.\-]*:/+(?!/)(?:[^:@/?\s]+@)?{_HOST_ITEM}(?:,{_HOST_ITEM})*"
_SHOWN_URL = re.compile(rf"{_SHOWN}(?:/[^@\s]*)?")
# ... and with a path: what surely ends there (a path-less one may be cut short).
_SHOWN_URL_WITH_PATH = re.compile(rf"{_SHOWN}/[^@\s]*")
_SPACE = re.compile(r"\s")
# Where libpq (first ``@``, then ``,`` between hosts, ``:`` before a port) or a careful
# reader (last ``@``) may cut a password; ``&``, where a query value ends; white space,
# where a message wraps.
_CUTS = re.compile(r"[@:/?,&\s]")


def _user(userinfo: str) -> str:
    """The user name of ``userinfo``: what every reading agrees is not the password."""
    return _CUTS.split(userinfo, maxsplit=1)[0]


def redact_url(value: str) -> str:
    """``value`` as messages may show it: a URL (or a URL look-alike) without its password
    and query; any other text with its ``password=...`` values hidden.

    Robust to malformed URLs (bad ``%`` escapes, several ``@``, a bad port): the user info
    runs to the LAST ``@``, and a ``?`` before that ``@`` hides the rest.
    """
    match = _PREFIX.match(value)
    if match is None:
        return _hide_keywords(value)
    prefix, rest = match.group(1), value[match.end() :]
    at = rest.rfind("@")
    if at < 0:
        return prefix + rest.split("?", 1)[0]
    user = _user(rest[:at])
    shown_user = f"{user}@" if user else ""
    if "?" in rest[:at]:
        # A password holding '?', or a query value holding '@': which text is the host
        # cannot be told, so none is shown.
        return f"{prefix}{shown_user}…"
    return prefix + shown_user + rest[at + 1 :].split("?", 1)[0]


def _hide_keywords(text: str) -> str:
    return _SECRET_KEYWORD.sub(lambda m: m.group(1) + HIDDEN, text)


def _shown_url(text: str, start: int, end: int) -> tuple[str, int]:
    """The URL found at ``text[start:end]`` (up to white space) as it may be shown, and
    where it really ends.

    A URL as jobledger shows it (``scheme://user@host[:port][,...]/path``) is kept, and
    so is one without a user when no ``@`` follows before the next URL. Anything else may
    be a raw URL whose password holds white space, cut short by the search: the last
    ``@`` before the next URL may still end its user info, so it runs on to the end of
    the word holding that ``@`` and is shown as ``scheme://user@…`` (what lies in between
    is hidden too: cautious, not exact). Without such an ``@``, it is shown redacted if
    that reads as a URL, else as ``scheme:…``."""
    found = text[start:end]
    following = _URL_START.search(text, end)
    at = text.rfind("@", end, following.start() if following is not None else len(text))
    if _SHOWN_URL_WITH_PATH.fullmatch(found) and ("@" in found or at < 0):
        return found, end
    prefix = _PREFIX.match(found)
    scheme = prefix.group(1) if prefix is not None else ""
    if at >= 0:
        space = _SPACE.search(text, at)
        end = space.start() if space is not None else len(text)
        user = _user(text[start + len(scheme) : end])
        return f"{scheme}{user}@…" if user else f"{scheme}…", end
    shown = redact_url(found)
    return (shown if _SHOWN_URL.fullmatch(shown) else f"{scheme}…"), end


def redact_text(text: str) -> str:
    """``text`` with every PostgreSQL URL in it redacted (:func:`redact_url`) and every
    ``password=...`` value hidden: the last line of defence before a text is shown."""
    out: list[str] = []
    done = 0
    for match in _URL_START.finditer(text):
        if match.start() < done:
            continue  # inside a URL already redacted
        word = _SPACE.search(text, match.start())
        shown, done_at = _shown_url(text, match.start(), word.start() if word else len(text))
        out += [text[done : match.start()], shown]
        done = done_at
    out.append(text[done:])
    return _hide_keywords("".join(out))


def _forms(secret: str) -> set[str]:
    """``secret`` raw and percent-decoded, whole and cut at each ``@ : / ? , &`` and space."""
    found: set[str] = set()
    for form in (secret, unquote(secret, errors="replace")):
        pieces = [form, *_CUTS.split(form)]
        found.update(piece for piece in pieces if len(piece) >= MIN_PIECE)
    return found


def _unquote_keyword(value: str) -> str:
    if value.startswith("'"):
        value = value[1:-1] if value.endswith("'") and len(value) > 1 else value[1:]
        return re.sub(r"\\(.)", r"\1", value)
    return value


def url_secrets(value: str) -> list[str]:
    """Every text that may be (part of) a password in ``value`` (a URL or a keyword
    string), longest first, for :func:`scrub`.

    For a URL: what follows the user name in the user info (to the LAST ``@``), so that
    libpq's own reading (password to the FIRST ``@``, the rest taken as the host) is
    covered too; and the values of ``password=`` and the like in the query. Each raw and
    percent-decoded, whole and cut at each ``@``, ``:``, ``/``, ``?``, ``,``, ``&`` and white
    space.
    """
    found: set[str] = set()
    match = _PREFIX.match(value)
    if match is not None:
        rest = value[match.end() :]
        at = rest.rfind("@")
        if at >= 0:
            userinfo = rest[:at]
            user = _user(userinfo)
            found |= _forms(userinfo[len(user) + 1 :])
    for keyword in _SECRET_KEYWORD.finditer(value):
        raw = keyword.group(2)  # as written, quoted and escaped, and as libpq reads it
        for form in (raw, raw.strip("'"), _unquote_keyword(raw)):
            found |= _forms(form)
    return sorted(found, key=lambda s: (-len(s), s))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (longest first) replaced by ``***``."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, HIDDEN)
    return text
