"""The overview page (``/``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ._context import dashboard_of

__all__ = ["routes"]


async def overview(request: Request) -> Response:
    """Today's task sets, the queue's counts, workers, recent failures, throughput."""
    board = dashboard_of(request)
    return board.render(request, "overview.html", {"title": "Overview"})


def routes() -> list[BaseRoute]:
    """The overview's routes."""
    return [Route("/", overview, name="overview")]
