"""The actions: POSTs carrying a CSRF token (checked before anything else), each calling
one of the public writers, then a redirect back (303) that says what was done.

- ``/actions/jobs/{id}/retry``: ``JobQueue.retry`` (a Failed or Cancelled job);
- ``/actions/jobs/{id}/cancel``: ``JobQueue.cancel`` (a Queued job at once; a Running one's
  worker is asked to stop it);
- ``/actions/jobs/{id}/requeue``: ``JobQueue.enqueue`` of a new job with the finished
  job's type, payload, priority and max attempts (it runs again; the old one stays);
- ``/actions/prune``: ``JobQueue.prune(older_than)``;
- ``/actions/bulk/retry``: ``retry`` of every Failed or Cancelled job that matches the
  history filter sent with it (status, type, queue, since, until);
- ``/actions/bulk/cancel``: ``cancel`` of every Queued job of the type and queue sent
  with it (either left empty: any).

``create_app(read_only=True)`` mounts none of these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from .._durations import parse_duration
from .._errors import JobConflict, JobLedgerError, JobNotFound
from .._queue import JobQueue
from .._redact import redact_text
from ._context import Dashboard, dashboard_of
from ._security import require_csrf

__all__ = ["BULK_LIMIT", "csrf_post", "routes"]

#: The most jobs one bulk action changes (another POST goes on with the rest).
BULK_LIMIT = 10_000

Action = Callable[[Request, FormData, Dashboard], str]


def csrf_post(action: Action) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint of ``action(request, form, board) -> the address to go back to``,
    run in a thread once the request's CSRF token is checked (403 otherwise, nothing
    changed). A refusal of the queue (JobConflict, an unknown job) answers 409/404."""

    async def endpoint(request: Request) -> Response:
        board = dashboard_of(request)
        form = await require_csrf(request, board.secret)
        try:
            where = await run_in_threadpool(action, request, form, board)
        except JobNotFound as exc:
            raise HTTPException(404, redact_text(str(exc))) from exc
        except JobConflict as exc:
            raise HTTPException(409, redact_text(str(exc))) from exc
        except JobLedgerError as exc:
            raise HTTPException(400, redact_text(str(exc))) from exc
        return RedirectResponse(where, status_code=303)

    return endpoint


def _queue(board: Dashboard) -> JobQueue:
    if board.queue is None:
        raise HTTPException(404, "this dashboard shows no queue")
    return board.queue


def _back(board: Dashboard, request: Request, path: str, done: str) -> str:
    return board.url(request, path) + "?" + urlencode({"done": done})


def _job_path(job_id: str) -> str:
    return "/jobs/" + quote(job_id, safe="")


def retry(request: Request, form: FormData, board: Dashboard) -> str:
    """Queue a Failed or Cancelled job again."""
    job_id = request.path_params["job_id"]
    _queue(board).retry(job_id)
    return _back(board, request, _job_path(job_id), f"Job {job_id} is queued again.")


def cancel(request: Request, form: FormData, board: Dashboard) -> str:
    """Cancel a Queued job, or ask a Running one's worker to stop it."""
    job_id = request.path_params["job_id"]
    job = _queue(board).cancel(job_id)
    said = "cancelled" if not job.status.is_live else "asked to stop (its worker ends it)"
    return _back(board, request, _job_path(job_id), f"Job {job_id} {said}.")


def requeue(request: Request, form: FormData, board: Dashboard) -> str:
    """Enqueue a finished job again, as a new job with the same type and payload."""
    queue = _queue(board)
    job_id = request.path_params["job_id"]
    job = queue.get(job_id)
    if job is None:
        raise JobNotFound(job_id, queue.dir)
    if job.status.is_live:
        raise JobConflict(f"job {job_id} is {job.status.value}: only a finished job is requeued")
    # A new id: the payload's own job_id field, if it had one, would name the old job.
    payload = {k: v for k, v in job.raw.items() if k != "job_id"}
    payload["type"] = job.type
    new_id = queue.enqueue(payload, priority=job.priority, max_attempts=job.max_attempts)
    return _back(board, request, _job_path(new_id), f"Enqueued {new_id}, a copy of {job_id}.")


def prune(request: Request, form: FormData, board: Dashboard) -> str:
    """Delete the finished jobs older than the form's ``older_than`` (``7d``, ``12h``)."""
    text = str(form.get("older_than") or "").strip()
    try:
        age = parse_duration(text)
    except (ValueError, JobLedgerError) as exc:
        raise HTTPException(400, f"older_than: {exc}") from exc
    n = _queue(board).prune(age)
    return _back(board, request, "/queue/history", f"Pruned {n} finished jobs older than {text}.")


def bulk_retry(request: Request, form: FormData, board: Dashboard) -> str:
    """Retry every Failed or Cancelled job matching the form's filter (up to BULK_LIMIT)."""
    queue = _queue(board)
    fields = {
        k: str(form.get(k) or "") or None for k in ("status", "type", "queue", "since", "until")
    }
    statuses = [fields["status"]] if fields["status"] else ["Failed", "Cancelled"]
    if any(s not in ("Failed", "Cancelled") for s in statuses):
        raise HTTPException(400, "only Failed or Cancelled jobs can be retried")
    n = 0
    before = None
    while n < BULK_LIMIT:
        page = queue.history(
            status=statuses,
            type=fields["type"],
            queue=fields["queue"],
            since=fields["since"],
            until=fields["until"],
            limit=min(500, BULK_LIMIT - n),
            before=before,
        )
        if not page:
            break
        for job in page:
            try:
                queue.retry(job.job_id)
                n += 1
            except (JobConflict, JobNotFound):
                pass  # changed or gone since it was read: not this action's to redo
        last = page[-1]
        before = (last.finished or "", last.job_id)
    kept = {k: v for k, v in fields.items() if v}
    where = (
        board.url(request, "/queue/history")
        + "?"
        + urlencode({**kept, "done": f"Retried {n} jobs."})
    )
    return where


def bulk_cancel(request: Request, form: FormData, board: Dashboard) -> str:
    """Cancel every Queued job of the form's ``type`` and ``queue`` (empty: any), up to
    BULK_LIMIT, read a page of the Queued jobs at a time in serving order."""
    queue = _queue(board)
    kind = str(form.get("type") or "").strip() or None
    name = str(form.get("queue") or "").strip() or None
    n = offset = 0
    while n < BULK_LIMIT:
        page = queue.live_page("Queued", limit=500, offset=offset).jobs
        if not page:
            break
        kept = 0  # the jobs left Queued on this page: the next page starts after them
        for job in page:
            if (kind is None or job.type == kind) and (name is None or job.queue == name):
                try:
                    queue.cancel(job.job_id)
                    n += 1
                except (JobConflict, JobNotFound):
                    pass  # gone or finished since it was read: no longer Queued either
                continue
            kept += 1
        offset += kept
    what = " of type " + kind if kind else ""
    where = " in queue " + name if name else ""
    return _back(board, request, "/queue", f"Cancelled {n} queued jobs{what}{where}.")


def routes() -> list[BaseRoute]:
    """The actions' routes (POST only)."""
    return [
        Route("/actions/jobs/{job_id:path}/retry", csrf_post(retry), methods=["POST"]),
        Route("/actions/jobs/{job_id:path}/cancel", csrf_post(cancel), methods=["POST"]),
        Route("/actions/jobs/{job_id:path}/requeue", csrf_post(requeue), methods=["POST"]),
        Route("/actions/prune", csrf_post(prune), methods=["POST"]),
        Route("/actions/bulk/retry", csrf_post(bulk_retry), methods=["POST"]),
        Route("/actions/bulk/cancel", csrf_post(bulk_cancel), methods=["POST"]),
    ]
