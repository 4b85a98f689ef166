"""Daily runs across accounts: where task sets and the job queue meet.

:func:`daily_run` ties one task-set type (say ``daily-set``) to a queue. Each day at
``at`` in ``timezone`` a stored schedule enqueues one *fan-out* job (type
``daily:<type>:fan-out``), which enqueues one *account job* per account (type
``daily:<type>``, payload ``{"account": ..., "day": ...}``). Its id, which is also its
unique key, is ``daily:<type>:<account>:<day>``: however many processes enqueue a day's
jobs, and however often (a fan-out retried, a catch-up, ``enqueue_day`` by hand), each
(account, type, day) is one job, ever; a finished one is not enqueued again (a Failed one
is run again by ``JobQueue.retry``).

An account job opens that account's task set for its day, takes its run lease, plans the
tasks and runs each pending one through the handler, marking each done (the task-set API
as it is). A worker killed in the middle of an account dies with its lease (an OS lock
on a folder, a database session's advisory lock on PostgreSQL); the queue gives its job
back to another worker, which takes the lease over and resumes at the task the dead one
had not finished: a task whose completion was stored is never run again.

The day is the schedule's day in its time zone, taken from the occurrence (the fan-out
job's id ``daily:<type>@<occurrence>``), not from when the job happens to run: a fan-out
or an account job that runs after midnight still works on its own day.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._cron import check_timezone
from ._daily_pacing import ACCOUNT_FIELD, apply_rate_limit, check_rate_limit
from ._durations import to_seconds
from ._errors import AlreadyRunning, ConfigError, JobLedgerError
from ._inputs import check_name
from ._log import log
from ._schedules import CATCH_UPS, StoredSchedule, parse_time
from ._snooze import Snooze
from ._taskset_record import parse_date

if TYPE_CHECKING:
    from ._job_state import JobState
    from ._job_view import Job
    from ._queue import JobQueue
    from ._taskset import TaskSet

__all__ = ["DailyRun", "DailyTask", "daily_run"]

_AT = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class DailyTask:
    """One task of one account's daily run, as a daily run's handler gets it.

    ``account``, ``type``, ``day`` (the run's day in the schedule's time zone, which a
    job that runs after midnight still works for), ``task`` (its name) and ``attempt``
    (1 for its first run, 2 after one recorded failure, ...). ``job`` is the running
    account job (``job.check()`` between steps of a long task raises on a cancel or a
    timeout), ``taskset`` the open set (``taskset.progress(task, done, total)`` records
    how far a countable task has got, for a resume within the task). A handler that
    raises ``jobledger.Snooze(seconds)`` (a service asking to come back later) snoozes
    the account's job: the task stays remaining, no failure recorded, and the job's next
    run starts there."""

    account: str
    type: str
    day: dt.date
    task: str
    attempt: int
    job: Job = field(repr=False, compare=False)
    taskset: TaskSet = field(repr=False, compare=False)


#: What a daily run's handler is: called once per task run, with that task.
TaskHandler = Callable[[DailyTask], Any]


def _cron_of(at: str) -> str:
    match = _AT.match(at) if isinstance(at, str) else None
    if match is None:
        raise ConfigError(f"at must be a time of day 'HH:MM' (00:00 to 23:59), got {at!r}")
    return f"{int(match.group(2))} {int(match.group(1))} * * *"


def _accounts(accounts: Iterable[str]) -> tuple[str, ...]:
    if isinstance(accounts, str):
        raise ConfigError(
            f"accounts must be a list of account names, got the string {accounts!r}; "
            f"write [{accounts!r}] for one account"
        )
    names = tuple(check_name(a, "account") for a in accounts)
    if not names:
        raise ConfigError("a daily run needs at least one account")
    twice = sorted({a for a in names if names.count(a) > 1})
    if twice:
        raise ConfigError(f"a daily run's accounts name {', '.join(twice)} more than once")
    return names


class DailyRun:
    """A daily run of one task-set type across accounts; made by :func:`daily_run`.

    Give :attr:`handlers` to the workers (``Worker(queue, {**daily.handlers, ...})``);
    :attr:`schedule` is the stored schedule (None when made with ``at=None``);
    :meth:`enqueue_day` enqueues a day's account jobs now."""

    def __init__(
        self,
        state: JobState,
        queue: JobQueue,
        accounts: Iterable[str],
        type: str,
        tasks: Sequence[str] | Callable[[str], Iterable[str]],
        handler: TaskHandler,
        *,
        timezone: str = "UTC",
        max_attempts: int = 3,
        lease_wait: dt.timedelta | float = 10.0,
        busy_snooze: dt.timedelta | float = 60.0,
    ) -> None:
        self.state = state
        self.queue = queue
        #: The accounts, in the order their jobs are enqueued.
        self.accounts = _accounts(accounts)
        #: The task-set type each account's set has.
        self.type = check_name(type, "type")
        if "@" in self.type:
            raise ConfigError(
                f"a daily run's type {self.type!r} holds '@', which its schedule's job ids "
                "use to separate the name from the occurrence; pick a type without it"
            )
        if isinstance(tasks, str):
            raise ConfigError(f"tasks must be a list of task names, got the string {tasks!r}")
        if not callable(tasks):
            tasks = tuple(check_name(t, "task") for t in tasks)
        self._tasks = tasks
        if not callable(handler):
            raise ConfigError(f"a daily run's handler must be callable, got {handler!r}")
        self.handler = handler
        self.timezone = timezone
        self._tz = check_timezone(timezone)
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {max_attempts!r}")
        self.max_attempts = max_attempts
        #: How long an account job waits for its set's run lease (seconds): a dead
        #: holder's lease can take a moment to be let go of (its database session ends
        #: once the server notices the process died).
        self.lease_wait = to_seconds(lease_wait, "lease_wait")
        #: How long an account job snoozes when a live process holds its set's lease.
        self.busy_snooze = to_seconds(busy_snooze, "busy_snooze")
        #: The account jobs' type: ``daily:<type>``.
        self.account_job_type = f"daily:{self.type}"
        #: The fan-out jobs' type (what the schedule enqueues): ``daily:<type>:fan-out``.
        self.fan_out_job_type = f"daily:{self.type}:fan-out"
        #: The schedule's name: ``daily:<type>``.
        self.schedule_name = f"daily:{self.type}"
        #: The stored schedule, or None (``at=None``: days are enqueued by hand).
        self.schedule: StoredSchedule | None = None

    @property
    def handlers(self) -> dict[str, Callable[[Job], Any]]:
        """Job type -> handler, for ``Worker(queue, handlers)`` (merge it with others)."""
        return {self.fan_out_job_type: self.fan_out, self.account_job_type: self.run_account}

    def tasks_for(self, account: str) -> list[str]:
        """The tasks planned for ``account``: the list given, or what the callable
        given returns for it."""
        if callable(self._tasks):
            return [check_name(t, "task") for t in self._tasks(account)]
        return list(self._tasks)

    def job_id(self, account: str, day: dt.date | str) -> str:
        """The id (and unique key) of ``account``'s job for ``day``."""
        return f"daily:{self.type}:{check_name(account, 'account')}:{_day(day)}"

    def today(self) -> dt.date:
        """Today in the daily run's time zone, by the queue's clock."""
        return self.queue.clock.now().astimezone(self._tz).date()

    # -- enqueueing ----------------------------------------------------------------------

    def enqueue_day(self, day: dt.date | str | None = None) -> list[str]:
        """Enqueue ``day``'s account jobs now (default: today in the run's time zone),
        one per account, in one batch; their ids, in the accounts' order. A job that
        exists already (live or finished) is returned, not stored again, however many
        processes do this at once."""
        return self._enqueue(_day(day if day is not None else self.today()), self.accounts)

    def _enqueue(self, day: str, accounts: Sequence[str]) -> list[str]:
        ids = [self.job_id(a, day) for a in accounts]
        return self.queue.enqueue_many(
            [{"type": self.account_job_type, ACCOUNT_FIELD: a, "day": day} for a in accounts],
            job_ids=ids,
            unique_keys=ids,
            max_attempts=self.max_attempts,
        )

    def fan_out(self, job: Job) -> dict[str, Any]:
        """The fan-out job's handler: enqueue its day's account jobs."""
        payload = job.raw
        accounts = _accounts(payload.get("accounts") or ())
        if "day" in payload:
            day = _day(payload["day"])
        else:
            _, at, occurrence = job.job_id.rpartition("@")
            if not at:
                raise JobLedgerError(
                    f"fan-out job {job.job_id} has no day: a schedule's job has the id "
                    "<name>@<occurrence>; one enqueued by hand needs a 'day' in its payload"
                )
            day = parse_time(occurrence).astimezone(self._tz).date().isoformat()
        ids = self._enqueue(day, accounts)
        log.info("Daily run %s for %s: %d account jobs", self.type, day, len(ids))
        return {"day": day, "jobs": ids}

    # -- running an account --------------------------------------------------------------

    def run_account(self, job: Job) -> Any:
        """The account job's handler: run the account's pending tasks for its day under
        the set's run lease. A task that raises is recorded as failed by the set and fails
        the job (the queue retries it per ``max_attempts``, resuming at that task). When
        a live process holds the lease (the set being run by hand, say), the job snoozes
        for ``busy_snooze`` seconds: it is not run twice, nor counted as an attempt."""
        payload = job.raw
        account = check_name(payload.get(ACCOUNT_FIELD), "account")
        day = dt.date.fromisoformat(_day(payload.get("day")))
        ts = self.state.taskset(account, self.type, self.tasks_for(account), date=day)
        try:
            ts.acquire(wait=self.lease_wait)
        except AlreadyRunning as exc:
            log.warning("Daily run of %s for %s snoozes: %s", account, day, exc)
            return Snooze(self.busy_snooze)
        try:
            total = len(ts.completed) + len(ts.remaining)
            if ts.completed:
                log.info(
                    "Daily run of %s for %s resumes: %d done, %d remaining",
                    account,
                    day,
                    len(ts.completed),
                    len(ts.remaining),
                )
            for name in ts.pending():
                job.check()
                self._run_task(
                    DailyTask(account, self.type, day, name, _attempt(ts, name), job, ts)
                )
                if job.attempt is not None and job.attempt.on_progress is not None:
                    job.progress(len(ts.completed), total, name)
            return {"account": account, "day": day.isoformat(), "completed": ts.completed}
        finally:
            ts.release()

    def _run_task(self, task: DailyTask) -> None:
        """What ``with ts.task(name)`` does, but for a :class:`Snooze` the handler raises:
        that is no failure of the task, which stays remaining, untried, for the job's
        next run (the Worker snoozes the job)."""
        ts, clock = task.taskset, self.state.clock
        log.info("Starting task: %s", task.task)
        started = clock.monotonic()
        try:
            self.handler(task)
        except Snooze:
            log.info("Task %s of %s snoozes: it stays remaining", task.task, task.account)
            raise
        except Exception as exc:
            ts.mark_failed(task.task, exc)
            raise
        ts.mark_done(task.task, duration=clock.monotonic() - started)


def _attempt(ts: TaskSet, task: str) -> int:
    """Which run of ``task`` this is: 1, or one more than its recorded failures."""
    failure = ts.failed.get(task)
    return (failure.attempts if failure else 0) + 1


def _day(day: object) -> str:
    try:
        return parse_date(day)  # type: ignore[arg-type]  # refused with its message
    except ValueError as exc:
        raise ConfigError(f"a daily run's day: {exc}") from None


def daily_run(
    state: JobState,
    queue: JobQueue,
    accounts: Iterable[str],
    type: str,
    tasks: Sequence[str] | Callable[[str], Iterable[str]],
    handler: TaskHandler,
    *,
    at: str | None = "07:00",
    timezone: str = "UTC",
    rate_limit: tuple[int, float] | None = None,
    catch_up: str = "latest",
    max_attempts: int = 3,
    lease_wait: dt.timedelta | float = 10.0,
    busy_snooze: dt.timedelta | float = 60.0,
) -> DailyRun:
    """Run ``tasks`` of task-set type ``type`` for every account, every day at ``at``.

    Stores a schedule (``daily:<type>``: ``at``, ``"HH:MM"``, in ``timezone``, an IANA
    name; missed days follow ``catch_up`` as a schedule's do) whose job enqueues the
    day's account jobs, one per (account, type, day) with the id and unique key
    ``daily:<type>:<account>:<day>``. Each account job runs that account's pending tasks
    of the day under its set's run lease, calling ``handler(DailyTask)`` once per task
    run; a worker killed mid-account is resumed by another at the task it had not
    finished. ``tasks`` is a list of names, or a callable giving an account's list.
    ``at=None`` stores no schedule: days are enqueued by :meth:`DailyRun.enqueue_day`.

    Pass :attr:`DailyRun.handlers` to the workers (threads: a bound method is not
    importable by a process-isolated Worker's child). ``rate_limit=(n, per_seconds)``
    starts at most ``n`` account jobs per ``per_seconds``. ``max_attempts`` is each
    account job's; ``lease_wait`` how long a job waits for its set's lease to be let go of
    (a dead worker's), ``busy_snooze`` how long it snoozes when a live process holds it.
    Needs croniter for the schedule (``pip install -e '.[cron]'``).
    """
    if catch_up not in CATCH_UPS:
        raise ConfigError(f"catch_up must be 'latest', 'all' or 'none', got {catch_up!r}")
    cron = None if at is None else _cron_of(at)
    limit = check_rate_limit(rate_limit)
    run = DailyRun(
        state,
        queue,
        accounts,
        type,
        tasks,
        handler,
        timezone=timezone,
        max_attempts=max_attempts,
        lease_wait=lease_wait,
        busy_snooze=busy_snooze,
    )
    apply_rate_limit(queue, run.account_job_type, limit)
    if cron is not None:
        run.schedule = queue.schedule(
            run.schedule_name,
            cron,
            job={"type": run.fan_out_job_type, "accounts": list(run.accounts)},
            timezone=timezone,
            catch_up=catch_up,
        )
    return run
