"""What every page and action is handed: the queue, the task sets, the settings.

One :class:`Dashboard` per application, kept on ``app.state.dashboard``. Pages get it
from the request (:func:`dashboard_of`) and render a template with :meth:`Dashboard.render`,
which adds what ``base.html`` needs (the CSRF token, whether actions are shown).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from .._clock import Clock, SystemClock
from .._job_state import JobState
from .._queue import JobQueue
from ._format import install_filters
from ._security import csrf_token_for

__all__ = ["TEMPLATES", "Dashboard", "dashboard_of"]

TEMPLATES = Path(__file__).parent / "templates"


def _environment() -> Environment:
    # Autoescape on for every template: each stored string (payloads, errors, names) is
    # shown as text, never as markup.
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


@dataclass
class Dashboard:
    """The application's state: what it shows and how.

    ``queue`` and ``state`` are the public API objects the pages read through (either
    may be None: that part of the dashboard then says it has nothing to show).
    ``read_only`` removes every action; ``secret`` signs the CSRF tokens (random per
    application unless given, so that several processes serving one dashboard agree).
    """

    queue: JobQueue | None
    state: JobState | None
    read_only: bool = False
    secret: bytes = field(default_factory=lambda: os.urandom(32))
    clock: Clock = field(default_factory=SystemClock)
    env: Environment = field(default_factory=_environment)

    def __post_init__(self) -> None:
        install_filters(self.env, self.now)

    def now(self) -> dt.datetime:
        """The dashboard's current time (aware UTC)."""
        return self.clock.now()

    def render(
        self, request: Request, template: str, context: dict[str, Any], status_code: int = 200
    ) -> HTMLResponse:
        """``template`` rendered with ``context`` plus what every page needs."""
        values = {
            "request": request,
            "read_only": self.read_only,
            "csrf_token": csrf_token_for(request, self.secret),
            "root": request.scope.get("root_path", ""),
            "has_queue": self.queue is not None,
            "has_state": self.state is not None,
            **context,
        }
        html = self.env.get_template(template).render(values)
        return HTMLResponse(html, status_code=status_code)

    def url(self, request: Request, path: str) -> str:
        """``path`` (starting with ``/``) under where the app is mounted."""
        return str(request.scope.get("root_path", "")) + path


def dashboard_of(request: Request) -> Dashboard:
    """The Dashboard of the application serving ``request``."""
    board: Dashboard = request.app.state.dashboard
    return board
