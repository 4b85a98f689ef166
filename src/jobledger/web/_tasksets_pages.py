"""The task-set pages (``/tasksets``...) and their two actions: their routes.

Each page reads through ``dashboard_of(request).state`` (a :class:`jobledger.JobState`,
or None when the dashboard shows a queue only), through its read-only reads, once per
request, and only the days it shows: the heat map and the charts read their window of
days (``JobState.records(since=, until=)``, one query on PostgreSQL), a set's page its
one day of one account. The figures come from ``_taskset_views.py``, the charts' shapes
from ``_svg.py``; each page is a template ``tasksets_*.html`` extending ``base.html``.

The actions (retry a set's failed tasks, reset a set) are POSTs whose CSRF token is
checked before anything else (``require_csrf``), their routes in :func:`action_routes`,
which ``create_app(read_only=True)`` does not mount (and no page shows their forms).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from .._durations import human_seconds
from .._errors import AlreadyRunning, JobLedgerError
from .._inputs import check_name
from .._job_state import JobState
from .._taskset_record import TaskSetKey, TaskSetRecord, parse_date
from . import _svg
from . import _taskset_views as views
from ._context import Dashboard, dashboard_of
from ._security import require_csrf

__all__ = ["DEFAULT_DAYS", "MAX_DAYS", "action_routes", "routes"]

#: The days a windowed page shows unless asked (``?days=``), and the most it shows.
DEFAULT_DAYS = 14
MAX_DAYS = 92

T = TypeVar("T")


def _state(board: Dashboard) -> JobState:
    if board.state is None:
        raise HTTPException(404, "this dashboard shows no task sets")
    return board.state


def _param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value else None


def _window(request: Request, state: JobState) -> tuple[list[str], int, str]:
    """The days a page shows: ``?days=N`` (1..MAX_DAYS) ending ``?end=YYYY-MM-DD``
    (today by default); 400 for anything else."""
    raw_days = _param(request, "days") or str(DEFAULT_DAYS)
    if not raw_days.isdigit() or not 1 <= int(raw_days) <= MAX_DAYS:
        raise HTTPException(400, f"days must be a whole number from 1 to {MAX_DAYS}")
    count = int(raw_days)
    end = _param(request, "end")
    try:
        last = dt.date.fromisoformat(parse_date(end)) if end else state.today()
    except ValueError:
        raise HTTPException(400, "end must be a date written YYYY-MM-DD") from None
    first = last - dt.timedelta(days=count - 1)
    return views.days_between(first, last), count, last.isoformat()


def _name(value: str | None, what: str) -> str:
    try:
        return check_name(value, what)
    except JobLedgerError:
        raise HTTPException(400, f"{what} is missing or not a name") from None


def _date(value: str | None) -> str:
    try:
        return parse_date(value or "")
    except ValueError:
        raise HTTPException(400, "date must be written YYYY-MM-DD") from None


def _read(board: Dashboard, request: Request, read: Callable[[], T]) -> T | Response:
    """``read()``, or the page saying why the task sets could not be read."""
    try:
        return read()
    except JobLedgerError as exc:
        return board.render(
            request,
            "tasksets_error.html",
            {"title": "Task sets", "problem": str(exc)},
            status_code=503,
        )


def _window_records(
    request: Request, board: Dashboard
) -> tuple[list[str], int, str, list[TaskSetRecord]] | Response:
    """The window's days, their count and last day (:func:`_window`) and the sets recorded
    over them; or the page saying why the sets could not be read (404 for a dashboard
    without task sets)."""
    state = _state(board)
    days, count, end = _window(request, state)
    records = _read(board, request, lambda: state.records(since=days[0], until=days[-1]))
    if isinstance(records, Response):
        return records
    return days, count, end, records


def _base(request: Request, title: str, page: str, **values: Any) -> dict[str, Any]:
    return {"title": title, "nav": "tasksets", "page": page, **values}


# -- pages ---------------------------------------------------------------------------------


def heat_page(request: Request) -> Response:
    """Accounts x days: how complete each account's sets were each day."""
    board = dashboard_of(request)
    if board.state is None:
        return board.render(request, "tasksets_error.html", {"title": "Task sets"})
    window = _window_records(request, board)
    if isinstance(window, Response):
        return window
    days, count, end, records = window
    type_ = _param(request, "type")
    heat = views.heat_map(records, days, type_)
    grid = _svg.heat_grid(heat)
    chosen = [r for r in records if type_ is None or r.type == type_]
    totals = {
        "sets": len(chosen),
        "complete": sum(1 for r in chosen if r.completed and not r.remaining),
        "failed": sum(1 for r in chosen for t in r.failures if t not in r.completed),
        "accounts": len(heat.accounts),
    }
    context = _base(
        request,
        "Task sets",
        "heat",
        heat=heat,
        grid=grid,
        cells=_svg.heat_cells(grid, board.url(request, "")),
        fills=_svg.HEAT_FILLS,
        types=sorted({r.type for r in records}),
        type=type_,
        days=count,
        end=end,
        totals=totals,
    )
    return board.render(request, "tasksets_heatmap.html", context)


def _one(state: JobState, key: TaskSetKey) -> TaskSetRecord | None:
    found = state.records(key.account, since=key.date, until=key.date)
    return next((r for r in found if r.type == key.type), None)


def _key_of(values: Any) -> TaskSetKey:
    return TaskSetKey(
        _name(values.get("account"), "account"),
        _name(values.get("type"), "type"),
        _date(values.get("date")),
    )


def _set_context(
    board: Dashboard, state: JobState, record: TaskSetRecord, **values: Any
) -> dict[str, Any]:
    done = set(record.completed)
    failed = {t: f for t, f in record.failures.items() if t not in done}
    holder = state.holder(record.key)
    return {
        "record": record,
        "key": record.key,
        "failed": failed,
        "holder": holder,
        "progress": sorted(record.progress.items()),
        "durations": sorted(record.durations.items()),
        "raw": json.dumps(record.to_json(), indent=2, ensure_ascii=False),
        "seconds": human_seconds,
        "query": urlencode({"account": record.account, "type": record.type, "date": record.date}),
        **values,
    }


_DONE = {
    "retry": "The failures of {n} task(s) were forgotten: the set's next run retries them.",
    "none": "No task of this set has failed: nothing to retry.",
}


def set_page(request: Request) -> Response:
    """One set: counters, completed, remaining, failed with errors, progress, durations,
    the raw JSON, who runs it now; its actions."""
    board = dashboard_of(request)
    state = _state(board)
    key = _key_of(request.query_params)
    record = _read(board, request, lambda: _one(state, key))
    if isinstance(record, Response):
        return record
    if record is None:
        raise HTTPException(404, "no such task set")
    done = _param(request, "done")
    n = _param(request, "n") or "0"
    flash = _DONE[done].format(n=int(n) if n.isdigit() else 0) if done in _DONE else None
    context = _set_context(board, state, record, flash=flash)
    title = f"{key.type} of {key.account}, {key.date}"
    return board.render(request, "tasksets_set.html", _base(request, title, "set", **context))


def day_page(request: Request) -> Response:
    """One account's sets of one day (a heat-map cell)."""
    board = dashboard_of(request)
    state = _state(board)
    account = _name(request.query_params.get("account"), "account")
    date = _date(request.query_params.get("date"))
    records = _read(board, request, lambda: state.records(account, since=date, until=date))
    if isinstance(records, Response):
        return records
    flash = None
    if _param(request, "done") == "reset":
        flash = f"Task set {request.query_params.get('type', '')} was reset (deleted)."
    context = _base(
        request,
        f"{account}, {date}",
        "day",
        account=account,
        date=date,
        records=records,
        flash=flash,
    )
    return board.render(request, "tasksets_day.html", context)


def rates_page(request: Request) -> Response:
    """Completion per type over the window's days, a chart each."""
    board = dashboard_of(request)
    window = _window_records(request, board)
    if isinstance(window, Response):
        return window
    days, count, end, records = window
    charts = []
    for rates in views.rates_by_type(records, days):
        values = []
        for day, c in rates.days:
            rate = c.task_rate if c is not None else None
            title = (
                f"{day}: {c.tasks_done}/{c.tasks_total} tasks, {c.complete_sets}/{c.sets} "
                "sets complete"
                if c is not None
                else f"{day}: no set"
            )
            values.append((day[5:], rate, title))
        charts.append((rates, _svg.bar_chart(values)))
    context = _base(request, "Completion per type", "rates", charts=charts, days=count, end=end)
    return board.render(request, "tasksets_rates.html", context)


def failing_page(request: Request) -> Response:
    """The tasks that fail most over the window, with their last error."""
    board = dashboard_of(request)
    window = _window_records(request, board)
    if isinstance(window, Response):
        return window
    _days, count, end, records = window
    failing = views.most_failing(records)
    context = _base(request, "Failing tasks", "failing", failing=failing, days=count, end=end)
    return board.render(request, "tasksets_failing.html", context)


def durations_page(request: Request) -> Response:
    """Each task's p50 and p95 duration per day over the window, a chart each."""
    board = dashboard_of(request)
    window = _window_records(request, board)
    if isinstance(window, Response):
        return window
    days, count, end, records = window
    type_ = _param(request, "type")
    charts = []
    for trend in views.duration_trends(records, type_):
        p50 = {d.date: d.p50 for d in trend.days}
        p95 = {d.date: d.p95 for d in trend.days}
        chart = _svg.line_chart(days, [("p50", "#2457c5", p50), ("p95", "#b3261e", p95)])
        charts.append((trend, chart))
    context = _base(
        request,
        "Durations",
        "durations",
        charts=charts,
        types=sorted({r.type for r in records}),
        type=type_,
        days=count,
        end=end,
    )
    return board.render(request, "tasksets_durations.html", context)


def _runs(board: Dashboard, state: JobState) -> list[views.Run]:
    leases = state.leases()
    today = state.today()
    first = (today - dt.timedelta(days=DEFAULT_DAYS - 1)).isoformat()
    history = state.records(since=first, until=today.isoformat()) if leases else []
    by_key = {r.key: r for r in history}
    for lease in leases:
        if lease.key not in by_key:  # an older (or future) set: read its own day only
            found = _one(state, lease.key)
            if found is not None:
                by_key[found.key] = found
    return views.runs(leases, by_key, history, board.now())


def runs_page(request: Request) -> Response:
    """The runs holding a lease now, and the stuck ones with the reason."""
    board = dashboard_of(request)
    state = _state(board)
    runs = _read(board, request, lambda: _runs(board, state))
    if isinstance(runs, Response):
        return runs
    context = _base(
        request,
        "Runs",
        "runs",
        live=[r for r in runs if r.alive],
        stuck=[r for r in runs if r.stuck],
        dead=[r for r in runs if not r.alive and not r.stuck],
        seconds=human_seconds,
        factor=views.STUCK_FACTOR,
        floor=views.STUCK_FLOOR,
        window=DEFAULT_DAYS,
    )
    return board.render(request, "tasksets_runs.html", context)


# -- actions -------------------------------------------------------------------------------


async def _action_key(request: Request) -> tuple[Dashboard, JobState, TaskSetKey]:
    board = dashboard_of(request)
    form = await require_csrf(request, board.secret)
    return board, _state(board), _key_of(form)


def _refused(
    board: Dashboard, request: Request, state: JobState, key: TaskSetKey, exc: AlreadyRunning
) -> Response:
    record = _one(state, key)
    if record is None:
        raise HTTPException(404, "no such task set")
    title = f"{key.type} of {key.account}, {key.date}"
    context = _set_context(board, state, record, problem=str(exc))
    return board.render(
        request, "tasksets_set.html", _base(request, title, "set", **context), status_code=409
    )


async def retry_action(request: Request) -> Response:
    """Forget the failures of a set's failed tasks, so that its next run retries them."""
    board, state, key = await _action_key(request)

    def retry() -> list[str] | None:
        if _one(state, key) is None:
            return None
        return state.taskset(key.account, key.type, date=key.date).retry_failed()

    try:
        retried = await run_in_threadpool(retry)
    except AlreadyRunning as exc:
        return await run_in_threadpool(_refused, board, request, state, key, exc)
    if retried is None:
        raise HTTPException(404, "no such task set")
    done = {"done": "retry", "n": str(len(retried))} if retried else {"done": "none"}
    query = urlencode({"account": key.account, "type": key.type, "date": key.date, **done})
    return RedirectResponse(board.url(request, f"/tasksets/set?{query}"), status_code=303)


async def reset_action(request: Request) -> Response:
    """Delete a set: its next run starts it anew (refused while a live run holds it)."""
    board, state, key = await _action_key(request)

    def reset() -> list[TaskSetKey]:
        return state.reset(key.account, type=key.type, date=key.date)

    try:
        deleted = await run_in_threadpool(reset)
    except AlreadyRunning as exc:
        return await run_in_threadpool(_refused, board, request, state, key, exc)
    if not deleted:
        raise HTTPException(404, "no such task set")
    query = urlencode({"account": key.account, "date": key.date, "type": key.type, "done": "reset"})
    return RedirectResponse(board.url(request, f"/tasksets/day?{query}"), status_code=303)


def routes() -> list[BaseRoute]:
    """The task-set pages' routes."""
    return [
        Route("/tasksets", heat_page, name="tasksets"),
        Route("/tasksets/set", set_page, name="taskset"),
        Route("/tasksets/day", day_page, name="taskset_day"),
        Route("/tasksets/rates", rates_page, name="taskset_rates"),
        Route("/tasksets/failing", failing_page, name="taskset_failing"),
        Route("/tasksets/durations", durations_page, name="taskset_durations"),
        Route("/tasksets/runs", runs_page, name="taskset_runs"),
    ]


def action_routes() -> list[BaseRoute]:
    """The task-set actions' routes (``create_app`` mounts none with ``read_only``)."""
    return [
        Route("/tasksets/set/retry", retry_action, methods=["POST"], name="taskset_retry"),
        Route("/tasksets/set/reset", reset_action, methods=["POST"], name="taskset_reset"),
    ]
