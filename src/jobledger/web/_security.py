"""The dashboard's two locks: the access token and the CSRF token.

**Access token** (:class:`TokenGate`, an ASGI middleware): when the application has a
token, every request must carry it, as ``Authorization: Bearer TOKEN``, as the cookie
``jobledger_token``, or once as ``?token=TOKEN``, which answers with that cookie
(HttpOnly, SameSite=Strict) and a redirect to the same address without the token, so it
does not stay in the address bar or the history. Anything else is answered 401.

**CSRF** (signed double submit): each browser gets a random cookie ``jobledger_csrf``
(HttpOnly, SameSite=Strict); every form carries ``csrf_token`` = HMAC(secret, cookie),
which another site can neither read nor compute. :func:`require_csrf` refuses (403) a
POST whose token is missing or wrong, before it changes anything.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "TOKEN_COOKIE",
    "CsrfCookie",
    "SecurityHeaders",
    "TokenGate",
    "csrf_token_for",
    "new_token",
    "require_csrf",
]

TOKEN_COOKIE = "jobledger_token"
CSRF_COOKIE = "jobledger_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_SCOPE_KEY = "jobledger.csrf_cookie"


def new_token() -> str:
    """A fresh access token (URL-safe, 32 random bytes)."""
    return secrets.token_urlsafe(32)


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header: as if absent
                return {}
    return {key: morsel.value for key, morsel in jar.items()}


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _cookie_header(name: str, value: str, path: str) -> tuple[bytes, bytes]:
    text = f"{name}={value}; Path={path or '/'}; HttpOnly; SameSite=Strict"
    return b"set-cookie", text.encode("latin-1")


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class TokenGate:
    """Refuse every request that does not carry ``token`` (see the module's docstring)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        auth = _header(scope, b"authorization")
        if auth is not None and auth.lower().startswith("bearer "):
            if _same(auth[7:].strip(), self.token):
                await self.app(scope, receive, send)
                return
        elif _same(_cookies(scope).get(TOKEN_COOKIE), self.token):
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        given = [v for k, v in query if k == "token"]
        if given and _same(given[-1], self.token) and scope.get("method") in ("GET", "HEAD"):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            where = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [
                        (b"location", where.encode("latin-1")),
                        _cookie_header(TOKEN_COOKIE, self.token, scope.get("root_path", "")),
                        (b"content-length", b"0"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        body = b"401 Unauthorized: this dashboard needs its access token (the one printed "
        body += b"at its start): open it once as /?token=TOKEN, or send 'Authorization: "
        body += b"Bearer TOKEN'.\n"
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="jobledger"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class CsrfCookie:
    """Give each browser its random ``jobledger_csrf`` cookie (set on the first answer)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = _cookies(scope).get(CSRF_COOKIE) or ""
        fresh = len(value) < 16
        if fresh:
            value = secrets.token_urlsafe(24)
        scope[_SCOPE_KEY] = value
        if fresh:
            # Read when the answer starts: the root path is the one routing settled on.
            send = _adding_headers(
                send, lambda: [_cookie_header(CSRF_COOKIE, value, scope.get("root_path", ""))]
            )
        await self.app(scope, receive, send)


def _adding_headers(send: Send, headers: Callable[[], list[tuple[bytes, bytes]]]) -> Send:
    """``send``, with ``headers()`` added to the headers of the answer's start."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *headers()]}
        await send(message)

    return sending


_HEADERS = [
    # Defence in depth behind the escaping: no script but the dashboard's own file runs,
    # no other site frames a page (its buttons cannot be clicked through a decoy), and
    # forms post only here.
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Add the dashboard's security headers to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _adding_headers(send, lambda: _HEADERS))


def csrf_token_for(request: Request, secret: bytes) -> str:
    """The CSRF token the forms of this browser carry."""
    cookie = str(request.scope.get(_SCOPE_KEY, ""))
    return hmac.new(secret, cookie.encode(), hashlib.sha256).hexdigest()


async def require_csrf(request: Request, secret: bytes) -> FormData:
    """The POST's form, once its CSRF token is checked; HTTPException(403) when the
    request is not a POST or its token is missing or wrong (nothing was changed)."""
    if request.method != "POST":
        raise HTTPException(405, "state changes only by POST")
    form = await request.form()
    given: Any = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    # The cookie must have come with the request: a fresh one (just made by CsrfCookie)
    # has never been seen by a page, so no form can carry its token.
    if CSRF_COOKIE not in request.cookies:
        raise HTTPException(403, "refused: no CSRF cookie (load the page, then submit it)")
    if not isinstance(given, str) or not _same(given, csrf_token_for(request, secret)):
        raise HTTPException(403, "refused: missing or wrong CSRF token (reload the page)")
    return form


Handler = Callable[[Request], Awaitable[Any]]
