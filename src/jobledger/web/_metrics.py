"""``/metrics`` (Prometheus text format) and ``/healthz``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["routes"]


async def healthz(request: Request) -> Response:
    """``ok`` while the application serves."""
    return PlainTextResponse("ok\n")


def routes() -> list[BaseRoute]:
    """The machine-read endpoints."""
    return [Route("/healthz", healthz, name="healthz")]
