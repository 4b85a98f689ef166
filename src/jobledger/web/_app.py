"""``create_app``: the dashboard as a Starlette application.

The routes come from one module per part of the dashboard, each exposing
``routes() -> list[BaseRoute]``: the overview (``_overview_pages.py``), the queue
(``_queue_pages.py``), the task sets (``_tasksets_pages.py``), the actions
(``_actions.py``) and the machine-read endpoints (``_metrics.py``: ``/metrics``,
``/healthz``). A new page goes into one of them (or a new one listed here).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from .._clock import Clock
from .._errors import ConfigError, JobLedgerError
from .._job_state import JobState
from .._queue import JobQueue
from .._redact import redact_text
from . import _actions, _metrics, _overview_pages, _queue_pages, _tasksets_pages
from ._context import Dashboard
from ._security import CsrfCookie, SecurityHeaders, TokenGate

__all__ = ["create_app"]

STATIC = Path(__file__).parent / "static"


def _queue(queue: JobQueue | str | os.PathLike[str] | None) -> JobQueue | None:
    if queue is None or isinstance(queue, JobQueue):
        return queue
    return JobQueue(queue)


def _state(state: JobState | str | os.PathLike[str] | None) -> JobState | None:
    if state is None or isinstance(state, JobState):
        return state
    return JobState(state)


def create_app(
    queue: JobQueue | str | os.PathLike[str] | None = None,
    state: JobState | str | os.PathLike[str] | None = None,
    *,
    read_only: bool = False,
    token: str | None = None,
    secret: bytes | None = None,
    clock: Clock | None = None,
    warm: bool = True,
) -> Starlette:
    """The dashboard as an ASGI application, to serve with uvicorn or mount in your own
    (``Mount("/jobs", app=create_app(...))``).

    ``queue``: a :class:`jobledger.JobQueue`, or its folder or ``postgresql://`` URL;
    ``state``: a :class:`jobledger.JobState`, or its folder or URL. Either may be None
    (that part of the dashboard then has nothing to show), not both. Pages only read
    (through the read-only reads of both); actions (POST with a CSRF token) call the
    public writers, and ``read_only=True`` removes every one of them.

    ``token``: when given, every request must carry it (``Authorization: Bearer``, or
    once ``?token=``, which sets a cookie). ``secret`` signs the CSRF tokens: give the
    same bytes to every process serving one dashboard (random per application by
    default). ``warm``: start reading, in a thread at once, the queue's history (a
    folder's dashboard reads its finished jobs once; the first page waits for it) and the
    last month of task sets.
    """
    if queue is None and state is None:
        raise ConfigError("create_app needs a queue, task sets (state), or both")
    board = Dashboard(queue=_queue(queue), state=_state(state), read_only=read_only)
    if secret is not None:
        board.secret = secret
    if clock is not None:
        board.clock = clock
    routes: list[BaseRoute] = [
        *_overview_pages.routes(),
        *_queue_pages.routes(),
        *_tasksets_pages.routes(),
        *_metrics.routes(),
    ]
    if not read_only:
        routes += _actions.routes() + _tasksets_pages.action_routes()
    routes.append(Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"))
    middleware = [Middleware(SecurityHeaders), Middleware(CsrfCookie)]
    if token is not None:
        if not token:
            raise ConfigError("the dashboard's token is empty; give a token, or none")
        middleware.insert(1, Middleware(TokenGate, token=token))

    def error_page(request: Request, status: int, detail: str) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return board.render(
                request, "error.html", {"status": status, "detail": detail}, status_code=status
            )
        return PlainTextResponse(f"{status}: {detail}\n", status_code=status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = "internal error" if exc.status_code >= 500 else redact_text(str(exc.detail))
        return error_page(request, exc.status_code, detail)

    async def storage_error(request: Request, exc: Exception) -> Response:
        # The queue or the task sets could not be read (a database without its tables,
        # a server down, a damaged folder): said as the library says it, never a password.
        return error_page(request, 503, redact_text(str(exc)))

    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, JobLedgerError: storage_error},
    )
    app.state.dashboard = board
    if warm:
        threading.Thread(target=_warm, args=(board,), daemon=True).start()
    return app


#: Days of task sets read ahead at start: the heat map's month.
WARM_DAYS = 31


def _warm(board: Dashboard) -> None:
    """Make the reads of the first pages ready before they are asked: the queue's bounded
    reads (a folder's summary of its finished jobs is built on its first read, seconds for
    100,000 jobs), and the last month of task sets (a read-only reader keeps what it
    parsed, so a page then parses only the sets that changed)."""
    with contextlib.suppress(JobLedgerError):  # unreadable for now: the pages say why
        if board.queue is not None:
            board.queue.finished_per_minute(60)
        if board.state is not None:
            board.state.records(since=board.state.today() - dt.timedelta(days=WARM_DAYS - 1))
