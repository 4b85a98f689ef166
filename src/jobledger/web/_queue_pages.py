"""The queue's pages (``/queue``, ``/queue/history``, ``/jobs/{id}``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ._context import dashboard_of

__all__ = ["routes"]


async def queue_page(request: Request) -> Response:
    """Running, queued and failed jobs, schedules, limits, workers."""
    board = dashboard_of(request)
    return board.render(request, "queue.html", {"title": "Queue"})


def routes() -> list[BaseRoute]:
    """The queue pages' routes."""
    return [Route("/queue", queue_page, name="queue")]
