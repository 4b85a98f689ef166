"""The task-set pages (``/tasksets``...): their routes, for ``create_app``.

Each page reads through ``dashboard_of(request).state`` (a :class:`jobledger.JobState`,
or None when the dashboard shows a queue only) and renders a template of its own that
extends ``base.html``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ._context import dashboard_of

__all__ = ["routes"]


async def tasksets(request: Request) -> Response:
    """The task sets (a placeholder until their pages are built)."""
    board = dashboard_of(request)
    return board.render(request, "tasksets.html", {"title": "Task sets"})


def routes() -> list[BaseRoute]:
    """The task-set pages' routes."""
    return [Route("/tasksets", tasksets, name="tasksets")]
