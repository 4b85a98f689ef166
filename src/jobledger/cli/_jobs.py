"""Job-queue commands: ``jobledger jobs list|show|counts|enqueue|retry|cancel|prune|clear``.

Each opens a :class:`~jobledger.JobQueue` on ``--dir``/``--url`` (its own, else the global
one, else the ``JOBLEDGER_QUEUE_DIR`` environment variable), a folder or a
``postgresql://`` URL; the folder must exist (``enqueue --create`` makes it). It calls
one of the queue's methods and only decides what to print and which exit code to give. A
missing job (JobNotFound) or a job in the wrong state (JobConflict) exits 1 with the
library's message, through the app's error handling.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import click
from rich.table import Table

from .._clock import SystemClock, iso_utc
from .._errors import JobLedgerError, JobNotFound
from .._job_fields import JobStatus
from .._job_view import Job
from .._location import classify, is_postgres_url
from .._queue import JobQueue
from .._words import plural
from . import _maint
from ._app import App, location_options, pass_app, require_folder
from ._options import AGE, check_output_flags, plain_option
from ._render import (
    FitTable,
    human_count,
    human_size,
    plain_lines,
    plain_time,
    short_time,
    table,
)

__all__ = [
    "QUEUE_DIR_ENV",
    "jobs",
    "open_queue",
    "queue_dir_option",
    "queue_table",
    "require_queue_folder",
]

#: The environment variable ``--dir`` falls back to.
QUEUE_DIR_ENV = "JOBLEDGER_QUEUE_DIR"

F = TypeVar("F", bound=Callable[..., Any])
_STATUSES = [s.value for s in JobStatus]


def queue_dir_option(*, must_exist: bool = True, creatable: bool = False) -> Callable[[F], F]:
    """The queue commands' ``--dir`` (env ``JOBLEDGER_QUEUE_DIR``) and ``--url``: a folder
    or a ``postgresql://`` URL, passed on as ``queue_dir``.

    The command's own option wins, then the global ``--dir``/``--url`` (before the
    command name), then the environment variable; none is a usage error. A folder that
    does not exist is an error (exit 2) naming it, so that a mistyped path never becomes a
    new empty queue; with ``creatable`` the command gets a ``--create`` flag that allows
    it. (A database's tables are created on first use.) ``must_exist=False`` leaves the
    folder check to the command.
    """

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def run(*args: Any, location: str | None, **kwargs: Any) -> Any:
            create = bool(kwargs.pop("create", False)) if creatable else False
            if location is None:
                raise click.UsageError(
                    f"Missing option '--dir': give the queue folder or a postgresql:// URL "
                    f"with --dir (before or after the command name) or ${QUEUE_DIR_ENV}"
                )
            if must_exist and not create:
                require_queue_folder(location, creatable=creatable)
            return f(*args, queue_dir=location, **kwargs)

        if creatable:
            run = click.option(
                "--create",
                is_flag=True,
                help="Make the queue folder if it does not exist (without it, a missing "
                "folder is an error).",
            )(run)
        return location_options("queue", envvar=QUEUE_DIR_ENV)(cast(F, run))

    return decorate


def require_queue_folder(location: str, *, creatable: bool = False) -> None:
    """ConfigError (exit 2) naming the folder if ``location`` is a folder that does not
    exist; the hint says how to make a new queue (``--create`` when ``creatable``)."""
    if classify(location, "").is_url:
        return
    hint = (
        "check the path, or add --create to make a new queue there"
        if creatable
        else "check the path; a new queue is made by "
        "'jobledger jobs enqueue --create --dir PATH TYPE'"
    )
    require_folder(location, "the queue folder", hint)


def open_queue(queue_dir: str, durability: str = "fsync") -> JobQueue:
    """The JobQueue of ``queue_dir``, a folder or a URL (nothing is read until its first
    use)."""
    return JobQueue(queue_dir, durability=durability)


def _jobs_n(n: int) -> str:
    return plural(n, "job")


def _counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{status} {human_count(n)}" for status, n in counts.items())


def _document(queue: JobQueue, job_id: str) -> dict[str, Any] | None:
    """The job file's document as stored (None if the job is gone); reads only."""
    record = queue.reader.get(job_id)  # the CLI's queues only read here
    return record.to_json() if record is not None else None


def _status(value: str | None) -> JobStatus | None:
    if value is None:
        return None
    for status in JobStatus:
        if status.value.lower() == value.lower():
            return status
    raise AssertionError(value)  # pragma: no cover - click.Choice checked it


#: The columns of ``jobs list --plain``, in order.
PLAIN_JOB_COLUMNS = (
    "job_id",
    "type",
    "status",
    "attempts",
    "max_attempts",
    "priority",
    "created",
    "started",
    "finished",
    "run_after",
    "worker",
    "error",
)


@click.group("jobs")
def jobs() -> None:
    """Inspect and change the job queue (the "Job Persistence System" folder or database).

    Every command takes --dir DIR_OR_URL (a folder or a postgresql:// URL) or --url URL,
    after its name or before 'jobs' (jobledger --dir Q jobs list), or reads it from
    $JOBLEDGER_QUEUE_DIR. The folder must exist, except for 'enqueue --create'.
    """


# -- reading ---------------------------------------------------------------------------------


@jobs.command("list")
@queue_dir_option(must_exist=True)
@click.option(
    "--status",
    "status_name",
    type=click.Choice(_STATUSES, case_sensitive=False),
    help="Only jobs with this status.",
)
@click.option("--queue", "queue_name", metavar="NAME", help="Only jobs of this named queue.")
@click.option("--json", "as_json", is_flag=True, help="Print the job files' documents as JSON.")
@plain_option(", ".join(PLAIN_JOB_COLUMNS))
@pass_app
def list_(
    app: App,
    queue_dir: str,
    status_name: str | None,
    queue_name: str | None,
    as_json: bool,
    plain: bool,
) -> None:
    """Jobs in serving order (Running, then Queued), then finished ones by finish time.

    Listing finished jobs reads every job file of the history; --status Queued or
    --status Running reads only the live ones. A Run after column appears when a listed
    job has a run_after time (enqueued with --delay, or waiting to be retried), a Progress
    column when one reported progress (its last report: 3/10 30%). A Running job whose
    cancel was asked of its worker shows as "Running (cancel asked)". A Queue column
    appears when a listed job waits in a named queue (not "default").
    """
    check_output_flags(as_json, plain)
    status = _status(status_name)
    with open_queue(queue_dir) as queue:
        listed = queue.list(status)
        if queue_name is not None:
            listed = [job for job in listed if job.queue == queue_name]
        if as_json:
            docs = [d for d in (_document(queue, j.job_id) for j in listed) if d is not None]
            click.echo(json.dumps(docs, indent=2, ensure_ascii=False))
            return
        if plain:
            click.echo(plain_lines(PLAIN_JOB_COLUMNS, (_plain_job(j) for j in listed)))
            return
        counts = queue.counts()
    where = queue.dir
    noun = f"{status.value} job" if status is not None else "job"
    if not listed:
        app.out.print(f"No {noun}s in {where}.", markup=False)
    else:
        delayed = any(job.run_after for job in listed)
        progress = any(job.progress_info for job in listed)
        named = any(job.queue != "default" for job in listed)
        t = table(
            f"{plural(len(listed), noun)} in {where}",
            "Job id",
            *(("Queue",) if named else ()),
            "Type",
            "Status",
            "Attempts",
            "Priority",
            *(("Progress",) if progress else ()),
            *(("Run after",) if delayed else ()),
            "Error",
            fold=("Error",),
        )
        for job in listed:
            t.add_row(
                job.job_id,
                *((job.queue,) if named else ()),
                job.type,
                _status_text(job),
                f"{job.attempts}/{job.max_attempts}",
                str(job.priority),
                *((_progress_cell(job),) if progress else ()),
                *((short_time(job.run_after),) if delayed else ()),
                job.error_message or "-",
            )
        app.out.print(t)
    app.out.print(f"Counts: {_counts_line(counts)}", markup=False)


def _status_text(job: Job) -> str:
    """The status, and for a Running job whose cancel was asked, that it was."""
    if job.status is JobStatus.RUNNING and job.cancel_requested_at:
        return "Running (cancel asked)"
    return str(job.status.value)


def _progress_cell(job: Job) -> str:
    return job.progress_info.short() if job.progress_info is not None else "-"


def _progress_text(job: Job) -> str:
    """``3/10 30% (epoch 3) at 2025-01-20T10:30:00Z``, or ``-``."""
    report = job.progress_info
    if report is None:
        return "-"
    note = f" ({report.note})" if report.note else ""
    return f"{report.short()}{note} at {short_time(report.at)}"


#: A checkpoint longer than this (characters of JSON) is not printed by ``jobs show``.
_SHOWN_CHECKPOINT = 4000


def _plain_job(job: Job) -> tuple[object, ...]:
    return (
        job.job_id,
        job.type,
        job.status.value,
        job.attempts,
        job.max_attempts,
        job.priority,
        plain_time(job.created),
        plain_time(job.started),
        plain_time(job.finished),
        plain_time(job.run_after),
        job.worker,
        job.error_message,
    )


def _show_table(job: Job) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    rows = [
        ("Job id", job.job_id),
        ("Type", job.type),
        *((("Queue", job.queue),) if job.queue != "default" else ()),
        ("Status", _status_text(job)),
        ("Attempts", f"{job.attempts}/{job.max_attempts}"),
        ("Priority", str(job.priority)),
        ("Worker", job.worker or "-"),
        ("Created", short_time(job.created)),
        ("Started", short_time(job.started)),
        ("Finished", short_time(job.finished)),
        ("Run after", short_time(job.run_after)),
        ("Progress", _progress_text(job)),
        *(
            (("Cancel asked", short_time(job.cancel_requested_at)),)
            if job.cancel_requested_at
            else ()
        ),
        ("Checkpoint", f"stored at {short_time(job.checkpoint_at)}" if job.checkpoint_at else "-"),
        *((("Unique key", job.unique_key),) if job.unique_key is not None else ()),
        *((("Rate key", job.rate_key),) if job.rate_key is not None else ()),
        ("Error", job.error_message or "-"),
    ]
    for name, value in rows:
        grid.add_row(name, value)
    return grid


@jobs.command()
@queue_dir_option(must_exist=True)
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job file's document as JSON.")
@pass_app
def show(app: App, queue_dir: str, job_id: str, as_json: bool) -> None:
    """One job: its status, attempts, times, progress (its last report, with its time),
    error, payload, result, last checkpoint and the traceback of its last failed attempt
    (``--json``: under ``_jobledger.traceback``)."""
    with open_queue(queue_dir) as queue:
        job = queue.get(job_id)
        doc = _document(queue, job_id) if as_json else None
    if job is None or (as_json and doc is None):
        raise JobNotFound(job_id, queue.dir)
    if as_json:
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    app.out.print(_show_table(job))
    app.out.print("Payload:", markup=False)
    app.out.print(json.dumps(job.raw, indent=2, ensure_ascii=False), markup=False)
    if job.result is not None:
        app.out.print("Result:", markup=False)
        app.out.print(json.dumps(job.result, indent=2, ensure_ascii=False), markup=False)
    if job.checkpoint_at is not None:
        text = json.dumps(job.checkpoint_data, indent=2, ensure_ascii=False)
        if len(text) > _SHOWN_CHECKPOINT:
            text = f"({human_size(len(text.encode()))} of JSON; --json shows it)"
        app.out.print("Checkpoint (what the next attempt resumes from):", markup=False)
        app.out.print(text, markup=False)
    if job.traceback is not None:
        app.out.print("Traceback of the last failed attempt:", markup=False)
        app.out.print(job.traceback.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)


@jobs.command()
@queue_dir_option(must_exist=True)
@click.option(
    "--by-queue",
    is_flag=True,
    help="Count per named queue: --json prints queue -> status -> n, --plain a line per "
    "queue and status.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as a JSON object.")
@plain_option("status, jobs (with --by-queue: queue, status, jobs)")
@pass_app
def counts(app: App, queue_dir: str, by_queue: bool, as_json: bool, plain: bool) -> None:
    """How many jobs have each status (from the index: history is not read), and, when
    jobs wait in named queues, how many in each queue."""
    check_output_flags(as_json, plain)
    with open_queue(queue_dir) as queue:
        per_status = queue.counts()
        per_queue = queue.counts_by_queue()
    if as_json:
        click.echo(json.dumps(per_queue if by_queue else per_status, indent=2))
        return
    if plain:
        if by_queue:
            rows = [(q, s, n) for q, c in per_queue.items() for s, n in c.items()]
            click.echo(plain_lines(("queue", "status", "jobs"), rows))
        else:
            click.echo(plain_lines(("status", "jobs"), per_status.items()))
        return
    t = table(f"Jobs in {queue.dir}", "Status", "Jobs")
    for status, n in per_status.items():
        t.add_row(status, human_count(n))
    t.add_row("Total", human_count(sum(per_status.values())))
    app.out.print(t)
    if by_queue or set(per_queue) - {"default"}:
        app.out.print(queue_table(f"Jobs per queue in {queue.dir}", per_queue, {}))


def queue_table(
    title: str, per_queue: dict[str, dict[str, int]], limits: dict[str, int]
) -> FitTable:
    """A table of the jobs per queue and status (and each queue's limit, if any)."""
    statuses = [s.value for s in JobStatus]
    t = table(title, "Queue", *(("Limit",) if limits else ()), *statuses)
    for name in sorted(set(per_queue) | set(limits)):
        n = per_queue.get(name, {})
        limit = (str(limits[name]) if name in limits else "-",) if limits else ()
        t.add_row(name, *limit, *(human_count(n.get(s, 0)) for s in statuses))
    return t


# -- changing --------------------------------------------------------------------------------


@jobs.command()
@queue_dir_option(must_exist=True)
@click.argument("job_id")
@pass_app
def retry(app: App, queue_dir: str, job_id: str) -> None:
    """Queue a Failed or Cancelled job again, with a fresh attempt count."""
    with open_queue(queue_dir) as queue:
        job = queue.retry(job_id)
    app.out.print(
        f"Job {job.job_id} ({job.type}) is {job.status.value} again in {queue.dir}, "
        f"with 0 of {job.max_attempts} attempts used.",
        markup=False,
    )


@jobs.command()
@queue_dir_option(must_exist=True)
@click.argument("job_id")
@pass_app
def cancel(app: App, queue_dir: str, job_id: str) -> None:
    """Cancel a Queued job at once, or ask the worker of a Running job to stop it.

    A Running job stays Running until its worker ends the attempt: its handler sees
    job.cancel_requested (job.check() raises JobCancelled), and the job is then Cancelled,
    never retried. The worker hears of it at once on PostgreSQL (NOTIFY), within about a
    second on a folder. A handler that returns a result anyway completes the job.
    """
    with open_queue(queue_dir) as queue:
        job = queue.cancel(job_id)
    if job.status is JobStatus.RUNNING:
        app.out.print(
            f"Asked worker {job.worker} to stop job {job.job_id} ({job.type}) in "
            f"{queue.dir}: it stays Running until its handler stops, then is Cancelled "
            "(never retried). `jobledger jobs show` follows it.",
            markup=False,
        )
        return
    app.out.print(f"Cancelled job {job.job_id} ({job.type}) in {queue.dir}.", markup=False)


def _by_status(found: Iterable[Job]) -> str:
    per: dict[str, int] = {}
    for job in found:
        per[job.status.value] = per.get(job.status.value, 0) + 1
    return ", ".join(f"{status} {human_count(n)}" for status, n in sorted(per.items()))


@jobs.command()
@queue_dir_option(must_exist=True)
@click.option(
    "--older-than",
    "age",
    required=True,
    type=AGE,
    metavar="AGE",
    help="Delete jobs that finished more than AGE ago: 30s, 15m, 36h, 7d, 2w or 1h30m. "
    "The unit is required (a bare number used to mean days here).",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@pass_app
def prune(app: App, queue_dir: str, age: dt.timedelta, dry_run: bool) -> None:
    """Delete finished jobs (Completed, Failed, Cancelled) older than an age.

    Queued and Running jobs are never pruned. It deletes in batches, beside running
    workers; Ctrl-C stops it between two batches, keeping what it deleted (exit 130).
    """
    cutoff = iso_utc(SystemClock().now() - age)
    when = short_time(cutoff)
    deleted: list[int] = []
    with open_queue(queue_dir) as queue:
        if dry_run:
            old = queue.prunable(age)
            n = len(old)
        else:
            try:
                n = queue.prune(age, on_batch=deleted.append)
            except KeyboardInterrupt:
                app.err.print(
                    f"Interrupted: pruned {_jobs_n(sum(deleted))} finished before {when} from "
                    f"{queue.dir}; the rest are kept. Run the command again to go on.",
                    markup=False,
                )
                sys.exit(130)
    if not n:
        app.out.print(
            f"Nothing to prune: no job finished before {when} in {queue.dir}.", markup=False
        )
        return
    if dry_run:
        app.out.print(
            f"Would prune {_jobs_n(n)} finished before {when} from {queue.dir} "
            f"({_by_status(old)}). Nothing was deleted (--dry-run).",
            markup=False,
        )
    else:
        app.out.print(f"Pruned {_jobs_n(n)} finished before {when} from {queue.dir}.", markup=False)


@jobs.command()
@queue_dir_option(must_exist=True)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def clear(app: App, queue_dir: str, yes: bool) -> None:
    """Delete every job (and a folder's index). Refused while any worker of the queue is
    alive."""
    with open_queue(queue_dir) as queue:
        alive = queue.live_workers()
        if alive:
            raise JobLedgerError(
                f"refusing to clear the queue in {queue.dir}: "
                f"{'worker' if len(alive) == 1 else 'workers'} {', '.join(alive)} "
                f"{'is' if len(alive) == 1 else 'are'} alive. Stop them first (Ctrl-C or "
                "SIGTERM gives their running jobs back to the queue), then run clear again."
            )
        total = sum(queue.counts().values())
        if not total:
            app.out.print(f"The queue in {queue.dir} is already empty.", markup=False)
            return
        if not yes:
            if not _maint.stdin_is_tty():
                raise click.UsageError(
                    f"clear would delete {_jobs_n(total)} in {queue.dir}; stdin is not a "
                    "terminal to confirm it, so pass --yes to go ahead"
                )
            click.confirm(f"Delete {_jobs_n(total)} in {queue.dir}?", abort=True, err=True)
        deleted = queue.clear()
    index = "" if is_postgres_url(queue.dir) else " and queue.json"
    app.out.print(
        f"Cleared the queue in {queue.dir}: deleted {_jobs_n(deleted)}{index}.", markup=False
    )
