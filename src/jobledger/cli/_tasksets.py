"""Read-only task-set commands: ``status``, ``show``, ``list``, ``stats``.

They only read the state and render it: a corrupt file met on the way is named in a
warning and its last good generation shown, but nothing is moved, restored or migrated
(``doctor`` repairs). Figures for ``stats`` come from :mod:`jobledger._stats`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable

import click
from click.core import ParameterSource
from rich.console import RenderableType
from rich.table import Table

from .._job_state import JobState
from .._stats import Completion, compute_stats
from .._taskset_record import TaskSetRecord, parse_date
from .._words import plural
from ..backends.files.tasksets import FilesTaskSetBackend
from ._app import App, pass_app, state_options
from ._live import run_live
from ._options import check_output_flags, interval_option, plain_option
from ._render import (
    bar,
    describe_holder,
    done_total,
    human_seconds,
    percent,
    plain_lines,
    plain_time,
    short_time,
    signed_percent,
    table,
)
from ._watch import StatusView

__all__ = ["register"]


def _day(value: str | None, state: JobState) -> str:
    if value is None:
        return state.today().isoformat()
    try:
        return parse_date(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date; write it as YYYY-MM-DD", param_hint="'--date'"
        ) from None


def _on(state: JobState, date: str, account: str | None = None) -> list[TaskSetRecord]:
    return [r for r in state.records(account, since=date) if r.date == date]


def _holder(state: JobState, record: TaskSetRecord) -> str | None:
    """Who runs the set now (its since-time written as every CLI time), or None."""
    return describe_holder(state.holder(record.key))


def _holder_text(state: JobState, record: TaskSetRecord) -> str:
    return _holder(state, record) or "-"


def _tally(record: TaskSetRecord) -> tuple[int, int, int]:
    """A set's tasks done, in all, and failed (not completed since), as ``status`` shows."""
    done, total = done_total(record)
    return done, total, sum(1 for task in record.failures if task not in record.completed)


#: The columns of ``status --plain``.
PLAIN_STATUS_COLUMNS = (
    "account",
    "type",
    "date",
    "done",
    "total",
    "failed",
    "last_update",
    "running_in",
)


@click.command()
@plain_option(", ".join(PLAIN_STATUS_COLUMNS))
@click.option(
    "--watch",
    is_flag=True,
    help="Show it live, refreshed every --interval, with the tasks in progress and the "
    "failed ones; q or Ctrl-C quits. When stdout is not a terminal: one frame.",
)
@interval_option("--watch")
@state_options
@pass_app
def status(app: App, plain: bool, watch: bool, interval: float) -> None:
    """Today's task sets per account, with their progress."""
    ctx = click.get_current_context()
    if not watch and ctx.get_parameter_source("interval") == ParameterSource.COMMANDLINE:
        raise click.UsageError("--interval is the refresh of --watch: add --watch")
    if watch:
        if plain:
            raise click.UsageError("pass --watch or --plain, not both")
        state = app.state  # a missing folder is a usage error before the view starts
        run_live(app.out, StatusView(state, app.where, interval).frame, interval)
        return
    state = app.state
    today = state.today().isoformat()
    records = _on(state, today)
    if plain:
        lines = []
        for rec in records:
            done, total, failed = _tally(rec)
            lines.append(
                (
                    rec.account,
                    rec.type,
                    rec.date,
                    done,
                    total,
                    failed,
                    plain_time(rec.last_update),
                    _holder(state, rec),
                )
            )
        click.echo(plain_lines(PLAIN_STATUS_COLUMNS, lines))
        return
    if not records:
        app.out.print(f"No task sets for {today} in {app.where}.", markup=False)
        return
    t = table(
        f"Task sets for {today} ({app.where})",
        "Account",
        "Type",
        "Done",
        "Progress",
        "Failed",
        "Last update",
        "Running in",
        fold=("Running in",),
        optional=("Progress",),
    )
    for rec in records:
        done, total, failed = _tally(rec)
        t.add_row(
            rec.account,
            rec.type,
            f"{done}/{total}",
            bar(done, total),
            str(failed),
            short_time(rec.last_update),
            _holder_text(state, rec),
        )
    app.out.print(t)


#: The columns of ``show --plain``: one line per task.
PLAIN_SHOW_COLUMNS = (
    "account",
    "type",
    "date",
    "task",
    "status",
    "failed_attempts",
    "last_error",
    "progress_done",
    "progress_total",
    "duration_seconds",
)


def _plain_task_rows(rec: TaskSetRecord) -> Iterable[tuple[object, ...]]:
    running = rec.running.get("task") if rec.running else None
    for task in [*rec.completed, *rec.remaining]:
        failure = rec.failures.get(task)
        p = rec.progress.get(task)
        if task in rec.completed:
            state = "done"
        else:
            state = "running" if task == running else "failed" if failure else "remaining"
        yield (
            rec.account,
            rec.type,
            rec.date,
            task,
            state,
            failure.attempts if failure else 0,
            failure.error if failure and task not in rec.completed else None,
            p.done if p else None,
            p.total if p else None,
            rec.durations.get(task),
        )


def _task_rows(rec: TaskSetRecord) -> Iterable[tuple[str, str, str, str, str, str]]:
    for task in rec.completed:
        failure = rec.failures.get(task)
        p = rec.progress.get(task)
        yield (
            task,
            "done",
            str(failure.attempts) if failure else "0",
            "-",
            f"{p.done}/{p.total}" if p else "-",
            human_seconds(rec.durations[task]) if task in rec.durations else "-",
        )
    running = rec.running.get("task") if rec.running else None
    for task in rec.remaining:
        failure = rec.failures.get(task)
        p = rec.progress.get(task)
        state = "running" if task == running else "failed" if failure else "remaining"
        yield (
            task,
            state,
            str(failure.attempts) if failure else "0",
            failure.error if failure else "-",
            f"{p.done}/{p.total}" if p else "-",
            "-",
        )


@click.command()
@state_options
@click.argument("account")
@click.option("--type", "type_", metavar="TYPE", help="Only sets of this type (e.g. daily-set).")
@click.option("--date", metavar="YYYY-MM-DD", help="The day (default: today).")
@click.option("--json", "as_json", is_flag=True, help="Print the records as a JSON list.")
@plain_option(", ".join(PLAIN_SHOW_COLUMNS) + " (one line per task)")
@pass_app
def show(
    app: App, account: str, type_: str | None, date: str | None, as_json: bool, plain: bool
) -> None:
    """One account's task sets for a day: each task, its failures, progress and duration."""
    check_output_flags(as_json, plain)
    state = app.state
    day = _day(date, state)
    records = [r for r in _on(state, day, account) if type_ is None or r.type == type_]
    if as_json:
        click.echo(json.dumps([r.to_json() for r in records], indent=2, ensure_ascii=False))
        return
    if plain:
        rows = [row for rec in records for row in _plain_task_rows(rec)]
        click.echo(plain_lines(PLAIN_SHOW_COLUMNS, rows))
        return
    if not records:
        what = f"of type {type_!r} " if type_ else ""
        app.out.print(
            f"No task sets {what}for account {account!r} on {day} in {app.where}.",
            markup=False,
        )
        return
    for rec in records:
        done, total = done_total(rec)
        t = table(
            None,
            "Task",
            "Status",
            "Failed attempts",
            "Last error",
            "Progress",
            "Duration",
            fold=("Last error",),
        )
        for row in _task_rows(rec):
            t.add_row(*row)
        head = Table.grid(padding=(0, 1))
        head.add_row(
            f"{rec.account} / {rec.type} / {rec.date}:", f"{done}/{total} done", bar(done, total)
        )
        app.out.print(head)
        app.out.print(
            f"last update {short_time(rec.last_update)}, running in {_holder_text(state, rec)}",
            markup=False,
        )
        if rec.durations:
            total_s = sum(rec.durations.values())
            app.out.print(f"time spent on completed tasks: {human_seconds(total_s)}", markup=False)
        app.out.print(t)


def _relpath(state: JobState, rec: TaskSetRecord) -> str:
    """The record's file, relative to the state folder (a folder's state only)."""
    assert isinstance(state.backend, FilesTaskSetBackend)
    return os.path.relpath(state.backend.path(rec.key), state.dir)


#: The columns of ``list --plain`` (``file`` is empty for a database).
PLAIN_LIST_COLUMNS = ("account", "type", "date", "done", "total", "last_update", "file")


@click.command("list")
@plain_option(
    ", ".join(PLAIN_LIST_COLUMNS) + " (file: relative to the state folder; empty for a database)"
)
@state_options
@pass_app
def list_(app: App, plain: bool) -> None:
    """Every stored task set (state file, or database row), oldest day first."""
    state = app.state
    records = sorted(state.records(), key=lambda r: (r.date, r.account, r.type))
    if plain:
        files = not app.in_database
        click.echo(
            plain_lines(
                PLAIN_LIST_COLUMNS,
                (
                    (
                        r.account,
                        r.type,
                        r.date,
                        *done_total(r),
                        plain_time(r.last_update),
                        _relpath(state, r) if files else None,
                    )
                    for r in records
                ),
            )
        )
        return
    if not records:
        app.out.print(f"No task sets in {app.where}.", markup=False)
        return
    files = not app.in_database  # a database row has no file to name
    t = table(
        f"{plural(len(records), 'task set')} in {app.where}",
        "Account",
        "Type",
        "Date",
        "Done",
        "Last update",
        *(("File",) if files else ()),
        fold=("File",),
    )
    for rec in records:
        done, total = done_total(rec)
        t.add_row(
            rec.account,
            rec.type,
            rec.date,
            f"{done}/{total}",
            short_time(rec.last_update),
            *((_relpath(state, rec),) if files else ()),
        )
    app.out.print(t)


def _completion_table(title: str, first: str, rows: list[Completion]) -> RenderableType:
    t = table(title, first, "Sets complete", "Tasks done", "Rate")
    for c in rows:
        t.add_row(
            c.name,
            f"{c.complete_sets}/{c.sets} ({percent(c.set_rate)})",
            f"{c.tasks_done}/{c.tasks_total}",
            percent(c.task_rate),
        )
    return t


@click.command()
@state_options
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=7,
    show_default=True,
    help="How many days, ending today, to look at.",
)
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, hidden=True)
@pass_app
def stats(app: App, days: int, top: int) -> None:
    """Completion rates, the tasks that fail most, and task durations with their trend."""
    state = app.state
    today = state.today()
    result = compute_stats(
        state.records(since=today - dt.timedelta(days=days - 1)), today=today, days=days
    )
    out = app.out
    out.print(
        f"Task-set statistics, {result.start} to {result.end} ({plural(days, 'day')}, "
        f"{plural(result.sets, 'set')}) in {app.where}",
        markup=False,
    )
    if not result.sets:
        out.print("No task sets in that period.")
        return
    out.print(_completion_table("Completion by account", "Account", result.by_account))
    out.print(_completion_table("Completion by type", "Type", result.by_type))
    if result.failing:
        t = table(
            "Tasks that fail most",
            "Task",
            "Type",
            "Failed attempts",
            "Sets",
            "Unresolved",
            "Last error",
            fold=("Last error",),
        )
        for f in result.failing[:top]:
            t.add_row(f.task, f.type, str(f.attempts), str(f.sets), str(f.unresolved), f.last_error)
        out.print(t)
    else:
        out.print("No failed tasks.")
    if result.durations:
        t = table("Task durations", "Task", "Type", "Runs", "Median", "p95", "Trend")
        for d in result.durations:
            t.add_row(
                d.task,
                d.type,
                str(d.runs),
                human_seconds(d.median),
                human_seconds(d.p95),
                signed_percent(d.trend),
            )
        out.print(t)
        out.print("Trend: median of the newer half of the days vs the older half.")


def register(group: click.Group) -> None:
    """Add the read-only state commands to ``group``."""
    for command in (status, show, list_, stats):
        group.add_command(command)
