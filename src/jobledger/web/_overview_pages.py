"""The overview page (``/``): today's task sets per account, the queue's counts by status
and queue, workers alive, recent failures, finishes per minute over the last hour.

The page is server-rendered whole; its live part (``_overview_live.html``) is also
served alone at ``/fragments/overview``, which the page's script fetches every few
seconds.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .._job_state import JobState
from ._context import Dashboard, dashboard_of
from ._queues import counts_by_queue

__all__ = ["minute_chart", "routes"]

CHART_WIDTH, CHART_HEIGHT, CHART_MINUTES = 600, 120, 60


def minute_chart(
    per_minute: dict[str, dict[str, int]], now: dt.datetime, minutes: int = CHART_MINUTES
) -> dict[str, Any]:
    """The bars of the finishes-per-minute chart: one slot per minute of the last
    ``minutes`` (oldest first), a mark per status that had finishes in it (Completed
    below, Failed and Cancelled stacked on top)."""
    end = now.astimezone(dt.timezone.utc).replace(second=0, microsecond=0)
    slots = [end - dt.timedelta(minutes=minutes - 1 - i) for i in range(minutes)]
    keys = [s.strftime("%Y-%m-%dT%H:%M") for s in slots]
    totals = [sum(per_minute.get(k, {}).values()) for k in keys]
    peak = max([*totals, 1])
    width = CHART_WIDTH / minutes
    marks = []
    for i, key in enumerate(keys):
        y = float(CHART_HEIGHT)
        for status in ("Completed", "Failed", "Cancelled"):
            n = per_minute.get(key, {}).get(status, 0)
            if not n:
                continue
            h = max(1.0, (CHART_HEIGHT - 14) * n / peak)
            y -= h
            marks.append(
                {
                    "x": round(i * width + 1, 1),
                    "y": round(y, 1),
                    "w": round(max(width - 2, 1), 1),
                    "h": round(h, 1),
                    "status": status,
                    "title": f"{key[11:]} UTC: {n} {status}",
                }
            )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "marks": marks,
        "peak": peak,
        "total": sum(totals),
        "first": keys[0][11:],
        "last": keys[-1][11:],
    }


def _tasksets_today(state: JobState) -> list[dict[str, Any]]:
    today = state.today().isoformat()
    accounts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in state.records(since=today):
        if record.date != today:
            continue
        done, left = len(record.completed), len(record.remaining)
        total = done + left
        accounts[record.account].append(
            {
                "type": record.type,
                "done": done,
                "total": total,
                "percent": round(100 * done / total) if total else 100,
                "failures": len(record.failures),
                "updated": record.last_update,
            }
        )
    return [{"account": a, "sets": accounts[a]} for a in sorted(accounts)]


def overview_data(board: Dashboard) -> dict[str, Any]:
    """Everything the overview shows, read through the public API."""
    data: dict[str, Any] = {"now": board.now()}
    queue = board.queue
    if queue is not None:
        page = queue.live_page("Queued", limit=0)
        data["counts"] = page.counts
        data["by_queue"] = counts_by_queue(page)
        data["workers"] = queue.reader.live_workers()
        data["failures"] = queue.history(status="Failed", limit=10)
        data["chart"] = minute_chart(queue.finished_per_minute(3600), board.now())
    if board.state is not None:
        data["accounts"] = _tasksets_today(board.state)
        data["today"] = board.state.today().isoformat()
    return data


def overview(request: Request) -> Response:
    """The overview page."""
    board = dashboard_of(request)
    return board.render(request, "overview.html", {"title": "Overview", **overview_data(board)})


def overview_fragment(request: Request) -> Response:
    """The overview's live part alone (for the page's refresh)."""
    board = dashboard_of(request)
    return board.render(request, "_overview_live.html", overview_data(board))


def routes() -> list[BaseRoute]:
    """The overview's routes."""
    return [
        Route("/", overview, name="overview"),
        Route("/fragments/overview", overview_fragment, name="overview_fragment"),
    ]
