"""The queue's pages: ``/queue`` (running, queued and failed jobs, schedules, per-queue
limits, workers), ``/queue/history`` (finished jobs, filtered and paged) and
``/jobs/{job_id}`` (one job: payload, result, error and traceback, timeline).

Every read is bounded by what the page shows (``JobQueue.live_page``, ``history``):
no page reads the jobs it does not list. ``/queue``'s live part is also served alone at
``/fragments/queue`` for the page's refresh.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .._errors import ConfigError
from .._job_fields import JobStatus
from .._job_view import Job
from .._queue import JobQueue
from ._context import Dashboard, dashboard_of
from ._format import parse_iso

__all__ = ["PAGE", "history_filter", "routes"]

PAGE = 50  # jobs per table page
FAILED_SHOWN = 20


def _queue(board: Dashboard) -> JobQueue:
    if board.queue is None:
        raise HTTPException(404, "this dashboard shows no queue")
    return board.queue


def _int(request: Request, name: str, default: int = 0) -> int:
    try:
        return max(0, int(request.query_params.get(name, default)))
    except ValueError:
        return default


def _schedules(queue: JobQueue, now: dt.datetime) -> list[dict[str, Any]]:
    out = []
    for s in queue.schedules():
        try:
            next_run: str | None = s.next_run(now).strftime("%Y-%m-%d %H:%M:%S")
        except Exception as exc:  # croniter missing, or a cron it refuses: say why
            next_run = f"unknown ({type(exc).__name__})"
        out.append({"s": s, "next_run": next_run})
    return out


def queue_data(board: Dashboard, request: Request) -> dict[str, Any]:
    """What ``/queue`` shows: one page each of running and queued jobs (``roffset``,
    ``qoffset``), the latest failures, schedules, limits, workers."""
    queue = _queue(board)
    roffset, qoffset = _int(request, "roffset"), _int(request, "qoffset")
    running = queue.live_page(JobStatus.RUNNING, PAGE, roffset)
    queued = queue.live_page(JobStatus.QUEUED, PAGE, qoffset)
    return {
        "running": running.jobs,
        "running_total": running.total,
        "roffset": roffset,
        "queued": queued.jobs,
        "queued_total": queued.total,
        "qoffset": qoffset,
        "page": PAGE,
        "counts": queued.counts,
        "failed": queue.history(status="Failed", limit=FAILED_SHOWN),
        "schedules": _schedules(queue, board.now()),
        "limits": queue.limits(),
        "workers": queue.reader.live_workers(),
    }


def queue_page(request: Request) -> Response:
    """Running, queued and failed jobs, schedules, limits, workers."""
    board = dashboard_of(request)
    data = queue_data(board, request)
    return board.render(request, "queue.html", {"title": "Queue", **data})


def queue_fragment(request: Request) -> Response:
    """``/queue``'s live part alone."""
    board = dashboard_of(request)
    return board.render(request, "_queue_live.html", queue_data(board, request))


def _day_or_time(value: str | None, what: str) -> str | None:
    """A filter's time: ``2025-01-20``, ``2025-01-20T10:30`` or a full ISO time, as ISO
    UTC (naive values are UTC)."""
    if not value:
        return None
    moment = parse_iso(value)
    if moment is None:
        raise HTTPException(400, f"{what} is not a date or time: {value!r} (use 2025-01-20T10:30)")
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def history_filter(request: Request) -> dict[str, Any]:
    """The history page's filter from its query (status, type, queue, since, until)."""
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in ("Completed", "Failed", "Cancelled"):
        raise HTTPException(400, f"status must be Completed, Failed or Cancelled, not {status!r}")
    return {
        "status": status,
        "type": q.get("type") or None,
        "queue": q.get("queue") or None,
        "since": _day_or_time(q.get("since"), "since"),
        "until": _day_or_time(q.get("until"), "until"),
    }


def history_page(request: Request) -> Response:
    """Finished jobs, latest first, filtered, a page at a time (cursor: ``before``)."""
    board = dashboard_of(request)
    queue = _queue(board)
    where = history_filter(request)
    before_at, before_id = request.query_params.get("bt"), request.query_params.get("bid")
    before = (before_at, before_id) if before_at and before_id else None
    try:
        jobs = queue.history(**where, limit=PAGE + 1, before=before)
    except ConfigError as exc:
        raise HTTPException(400, str(exc)) from exc
    more = len(jobs) > PAGE
    jobs = jobs[:PAGE]
    shown = {
        k: request.query_params.get(k, "") for k in ("status", "type", "queue", "since", "until")
    }
    kept = {k: v for k, v in shown.items() if v}
    next_url = None
    if more and jobs:
        last = jobs[-1]
        next_url = "?" + urlencode({**kept, "bt": last.finished or "", "bid": last.job_id})
    return board.render(
        request,
        "history.html",
        {
            "title": "History",
            "jobs": jobs,
            "filter": shown,
            "filter_query": urlencode(kept),
            "next_url": next_url,
            "paged": before is not None,
        },
    )


def _timeline(job: Job) -> list[tuple[str, str]]:
    events = [
        ("created", job.created),
        ("due (run after)", job.run_after),
        ("started", job.started),
        ("last progress", job.progress_info.at if job.progress_info is not None else None),
        ("checkpoint", job.checkpoint_at),
        ("cancel asked", job.cancel_requested_at),
        (f"finished ({job.status.value})" if not job.status.is_live else "finished", job.finished),
    ]
    return sorted(((at, what) for what, at in events if at), key=lambda e: e[0])


def job_page(request: Request) -> Response:
    """One job: its fields, payload, result, error and traceback, timeline."""
    board = dashboard_of(request)
    queue = _queue(board)
    job_id = request.path_params["job_id"]
    job = queue.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r} in this queue")
    return board.render(
        request,
        "job.html",
        {
            "title": f"Job {job_id}",
            "job": job,
            "queue_name": job.queue,
            "timeline": _timeline(job),
        },
    )


def routes() -> list[BaseRoute]:
    """The queue pages' routes."""
    return [
        Route("/queue", queue_page, name="queue"),
        Route("/fragments/queue", queue_fragment, name="queue_fragment"),
        Route("/queue/history", history_page, name="history"),
        Route("/jobs/{job_id:path}", job_page, name="job"),
    ]
