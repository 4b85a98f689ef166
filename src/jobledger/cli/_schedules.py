"""Schedule commands: ``jobledger schedules [list]`` (a read) and ``schedules remove NAME``.

Each opens a :class:`~jobledger.JobQueue` on ``--dir``/``--url`` as the ``jobs`` commands
do (its own, else the global one, else ``$JOBLEDGER_QUEUE_DIR``). ``list`` reads through
the queue's read-only twin: it creates, locks, repairs and migrates nothing (a damaged
schedules.json is reported, not moved). Schedules are stored by ``JobQueue.schedule`` or
a Worker's ``schedules=``; none is made here.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from .._clock import iso_utc
from .._cron import CRON_EXTRA
from .._errors import ConfigError, JobLedgerError
from .._schedules import StoredSchedule
from .._words import plural
from ._app import App, location_options, pass_app
from ._jobs import QUEUE_DIR_ENV, open_queue, queue_dir_option
from ._options import check_output_flags, plain_option
from ._render import plain_lines, plain_time, short_time, table

__all__ = ["schedules"]

#: The columns of ``schedules list --plain``, in order.
PLAIN_SCHEDULE_COLUMNS = (
    "name",
    "cron",
    "timezone",
    "job_type",
    "catch_up",
    "next_run_local",
    "next_run_utc",
    "last",
)


def _next_run(schedule: StoredSchedule, now: dt.datetime) -> dt.datetime | None:
    """The next occurrence, or None when croniter is missing (said once, below)."""
    try:
        return schedule.next_run(now)
    except ConfigError:
        return None


def _local(moment: dt.datetime | None, zone: str) -> str:
    """``2025-01-21 07:00 CET``: the time in the schedule's zone, or ``-``."""
    if moment is None:
        return "-"
    from zoneinfo import ZoneInfo

    local = moment.astimezone(ZoneInfo(zone))
    return local.strftime("%Y-%m-%d %H:%M") + f" {local.tzname()}"


@click.group("schedules", invoke_without_command=True)
@location_options("queue", envvar=QUEUE_DIR_ENV)
@click.pass_context
def schedules(ctx: click.Context, location: str | None) -> None:
    """The queue's periodic jobs: 'schedules' alone (or 'schedules list') lists them,
    'schedules remove NAME' deletes one.

    Schedules are stored by JobQueue.schedule(...) or a Worker's schedules=[...], and a
    running worker of the queue enqueues each occurrence once. Every command takes
    --dir DIR_OR_URL (or the global --dir, or $JOBLEDGER_QUEUE_DIR).
    """
    app = ctx.find_object(App)
    if location is not None and app is not None:
        app.location = location  # what the subcommand falls back to
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_)


@schedules.command("list")
@queue_dir_option(must_exist=True)
@click.option("--json", "as_json", is_flag=True, help="Print the stored schedules as JSON.")
@plain_option(", ".join(PLAIN_SCHEDULE_COLUMNS))
@pass_app
def list_(app: App, queue_dir: str, as_json: bool, plain: bool) -> None:
    """Each schedule: its cron and time zone, the job it enqueues, the next run (in its
    zone and in UTC) and the last occurrence enqueued. Reads only."""
    check_output_flags(as_json, plain)
    with open_queue(queue_dir) as queue:
        stored = queue.schedules()
    now = dt.datetime.now(dt.timezone.utc)
    upcoming = {s.name: _next_run(s, now) for s in stored}
    if as_json:
        docs: list[dict[str, Any]] = []
        for s in stored:
            nxt = upcoming[s.name]
            docs.append({"name": s.name, **s.to_json(), "next_run": iso_utc(nxt) if nxt else None})
        click.echo(json.dumps(docs, indent=2, ensure_ascii=False))
        return
    if plain:
        rows = (
            (
                s.name,
                s.cron,
                s.timezone,
                s.job_type,
                s.catch_up,
                _local(n, s.timezone) if (n := upcoming[s.name]) else None,
                plain_time(iso_utc(n)) if n else None,
                plain_time(s.last),
            )
            for s in stored
        )
        click.echo(plain_lines(PLAIN_SCHEDULE_COLUMNS, rows))
        return
    if not stored:
        app.out.print(f"No schedules in {queue.dir}.", markup=False)
        return
    t = table(
        f"{plural(len(stored), 'schedule')} in {queue.dir}",
        "Name",
        "Cron",
        "Time zone",
        "Job",
        "Catch-up",
        "Next run (local)",
        "Next run (UTC)",
        "Last enqueued",
    )
    for s in stored:
        nxt = upcoming[s.name]
        t.add_row(
            s.name,
            s.cron,
            s.timezone,
            s.job_type,
            s.catch_up,
            _local(nxt, s.timezone),
            short_time(iso_utc(nxt)) if nxt else "-",
            short_time(s.last),
        )
    app.out.print(t)
    if any(n is None for n in upcoming.values()):
        app.err.print(
            f"note: the next runs need croniter, which is not installed: {CRON_EXTRA}",
            markup=False,
        )


@schedules.command()
@queue_dir_option(must_exist=True)
@click.argument("name")
@pass_app
def remove(app: App, queue_dir: str, name: str) -> None:
    """Delete the schedule NAME: no occurrence is enqueued any more (the jobs already
    enqueued stay). A Worker that declares it in schedules=[...] stores it again when it
    starts: remove it there too."""
    with open_queue(queue_dir) as queue:
        found = queue.unschedule(name)
    if not found:
        raise JobLedgerError(
            f"no schedule {name!r} in {queue.dir}; 'jobledger schedules' lists them"
        )
    app.out.print(f"Removed schedule {name} from {queue.dir}.", markup=False)
