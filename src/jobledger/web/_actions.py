"""The actions: POSTs with a CSRF token that call the public writers."""

from __future__ import annotations

from starlette.routing import BaseRoute

__all__ = ["routes"]


def routes() -> list[BaseRoute]:
    """The actions' routes (none with ``read_only``: create_app leaves them out)."""
    return []
