"""The Jinja2 filters the templates use to show stored values as text (never markup:
autoescape stays on, these only make strings)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from jinja2 import Environment

from .._redact import redact_text

__all__ = ["install_filters", "parse_iso"]


def parse_iso(value: str | None) -> dt.datetime | None:
    """An ISO 8601 time as stored (``...Z``) as an aware datetime; None if it is none."""
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def span(seconds: float | None) -> str:
    """``3h 05m``, ``4m 12s``, ``0.8s``: a duration for people."""
    if seconds is None:
        return ""
    if seconds < 0:
        seconds = 0.0
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def pretty(value: Any) -> str:
    """A JSON value as indented text (shown escaped, inside <pre>)."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def short_time(value: str | None) -> str:
    """``2025-01-20 10:30:02`` from a stored ISO time (UTC)."""
    moment = parse_iso(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


def clip(value: Any, n: int = 120) -> str:
    """The first line of a text, cut to ``n`` characters."""
    text = "" if value is None else str(value)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= n else first[: n - 1] + "…"


def install_filters(env: Environment, now: Callable[[], dt.datetime]) -> None:
    """Register the filters on ``env``; ``now`` is the dashboard's clock."""

    def age(value: str | None) -> str:
        moment = parse_iso(value)
        return span((now() - moment).total_seconds()) if moment is not None else ""

    def between(start: str | None, end: str | None) -> str:
        a, b = parse_iso(start), parse_iso(end)
        return span((b - a).total_seconds()) if a is not None and b is not None else ""

    env.filters.update(
        age=age,
        between=between,
        span=span,
        pretty=pretty,
        when=short_time,
        clip=clip,
        redact=redact_text,
    )
