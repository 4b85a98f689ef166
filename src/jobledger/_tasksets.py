"""JobState and TaskSet: resumable named tasks per account per day.

All policy lives here (planning and merging, resume order, failures, durations, logging);
storage is reached only through the thin backend contract in ``backends/_contract.py``.

Invariants:
- a ``mark_done`` that returned is stored (fsynced under ``durability="fsync"``);
- a task runs again only if its process died before its completion was recorded;
- completed tasks are never forgotten, whatever is planned later.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeAlias

from ._clock import Clock, SystemClock, iso_utc, resolve_timezone, today_in
from ._config import DEFAULT_DIR, DURABILITIES, read_config
from ._durations import to_days, to_timedelta, to_wait
from ._errors import ConfigError, LeaseHolder
from ._inputs import check_name, storable_text
from ._location import Location, classify, is_postgres_url, shown
from ._log import log, verbose_from_env
from ._taskset_record import Failure, Progress, TaskSetKey, TaskSetRecord, parse_date
from .backends import open_taskset_backend
from .backends._contract import Finding, Lease, TaskSetBackend
from .backends._null import NullTaskSetBackend

__all__ = ["JobState", "TaskRun", "TaskSet", "parse_age"]

# Spelled here because inside TaskSet the name `type` is the set's type property.
_ExcType: TypeAlias = type[BaseException] | None


# Accounts, set types and tasks: non-empty storable text without NUL, on every backend.
_check_name = check_name


def _error_text(error: BaseException | str) -> str:
    if isinstance(error, BaseException):
        text = str(error)
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    else:
        text = str(error)
    return storable_text(text)  # recorded whatever it holds: escaped, never refused


def _one_place(dir: str | os.PathLike[str] | None, url: str | None) -> Location | None:
    """The PostgreSQL URL a JobState uses (classified), or None for a folder; ConfigError
    for both a ``dir`` and a ``url``, for a ``url`` that is not a PostgreSQL URL naming a
    database, and for a ``dir`` that looks like another kind of URL."""
    if url is not None:
        if dir is not None:
            raise ConfigError(
                "JobState got both dir and url: give the folder (dir=...) or the PostgreSQL "
                "URL (url=...), not both"
            )
        if not isinstance(url, str) or not is_postgres_url(url):
            shown_url = shown(url) if isinstance(url, str) else repr(url)
            raise ConfigError(
                f"JobState's url must be a PostgreSQL URL such as "
                f"postgresql://user@host:5432/dbname, got {shown_url!r}; for a folder, "
                "give dir=... instead"
            )
        return classify(url, "JobState's url")
    if dir is None:
        return None
    where = classify(dir, "JobState's dir")
    return where if where.is_url else None


class JobState:
    """Where task sets live and how they are kept.

    ``JobState(dir=None, enabled=True, timezone=None, durability="fsync", url=None)``

    - ``dir``: the state folder (created on first write); ``None`` (not given) or ``""``
      means ``sessions/job-state`` under the current directory. Relative paths are
      resolved now. A ``postgresql://`` URL here is taken as ``url``; a string that looks
      like another URL (``mysql://...``, ``postgresql:/host/db``) raises ConfigError.
    - ``enabled=False``: every call works, nothing is read or written, every task pending.
    - ``timezone``: IANA name that decides what "today" is; ``None`` is local time.
    - ``durability``: ``"fsync"`` (survives power loss) or ``"flush"`` (survives a
      process crash, not an OS crash; no fsync).
    - ``url``: a ``postgresql://`` URL naming a database: keep the task sets in
      PostgreSQL instead of a folder (psycopg 3; from a clone, ``pip install -e
      '.[postgres]'``); the password never appears in messages. Giving both ``dir`` and
      ``url`` raises ConfigError: one place or the other, never a silent choice.
    - ``clock``: an object with ``now()`` and ``monotonic()``, for tests.

    Constructing a JobState reads and writes nothing. Its reading methods (``keys``,
    ``records``, ``holder``, ``usage``) never write either: they go through a read-only
    twin of the backend, which reports a corrupt file (and shows its last good generation)
    without moving or restoring it, and never migrates a database. Opening a set with
    :meth:`taskset` to work on it repairs as before.
    """

    def __init__(
        self,
        dir: str | os.PathLike[str] | None = None,
        enabled: bool = True,
        timezone: str | None = None,
        durability: str = "fsync",
        *,
        clock: Clock | None = None,
        backend: TaskSetBackend | None = None,
        url: str | None = None,
    ) -> None:
        if durability not in DURABILITIES:
            raise ConfigError(f"durability must be 'fsync' or 'flush', got {durability!r}")
        if not isinstance(enabled, bool):
            raise ConfigError(f"enabled must be True or False, got {enabled!r}")
        verbose_from_env()
        self.enabled = enabled
        self.durability = durability
        self.timezone = timezone
        self._tz = resolve_timezone(timezone)
        self.clock: Clock = clock or SystemClock()
        in_db = _one_place(dir, url)
        if in_db is not None:
            dir = None
        self.dir = os.path.abspath(os.fspath(dir or "") or DEFAULT_DIR)
        # Where the backends open: the classified URL, or the folder.
        self._location: Location = in_db or Location("folder", self.dir, self.dir)
        self._reader: TaskSetBackend | None = None
        self._reader_guard = threading.Lock()
        if backend is not None:
            self.backend: TaskSetBackend = backend
            self._reader = backend  # a backend given as is: it is its own reader
        elif not enabled:
            self.backend = NullTaskSetBackend()
            self._reader = self.backend
        else:
            self.backend = self._make_backend(read_only=False)

    def _make_backend(self, *, read_only: bool) -> TaskSetBackend:
        return open_taskset_backend(
            self._location,
            fsync=self.durability == "fsync",
            clock=self.clock,
            read_only=read_only,
        )

    def _reading(self) -> TaskSetBackend:
        """The read-only twin of the backend (built on first read): it never moves,
        repairs, migrates or creates anything."""
        with self._reader_guard:
            if self._reader is None:
                self._reader = self._make_backend(read_only=True)
            return self._reader

    def close(self) -> None:
        """Release the backends' connections (a database's; a folder holds none open).
        The JobState stays usable: they are opened again on next use."""
        for backend in {id(b): b for b in (self.backend, self._reader) if b is not None}.values():
            close = getattr(backend, "close", None)
            if callable(close):
                close()

    @classmethod
    def from_config(
        cls, source: str | os.PathLike[str] | Mapping[str, Any], *, clock: Clock | None = None
    ) -> JobState:
        """A JobState from a config's ``jobState`` block: a JSON file path or a parsed mapping.

        Reads ``{"jobState": {"enabled": ..., "dir": ..., "timezone": ..., "durability": ...,
        "url": ...}}`` (``url``: a PostgreSQL URL, given instead of ``dir``); an unknown
        key, a wrong type or value, both ``dir`` and ``url``, or an unreadable file raises
        :class:`ConfigError` naming the file. A file without a ``jobState`` block is read
        as every default, with a warning naming it.
        """
        cfg = read_config(source)
        return cls(
            dir=cfg.dir if cfg.url is None else None,
            enabled=cfg.enabled,
            timezone=cfg.timezone,
            durability=cfg.durability,
            clock=clock,
            url=cfg.url,
        )

    def __repr__(self) -> str:
        return f"JobState({self.backend.location!r}, enabled={self.enabled})"

    def today(self) -> dt.date:
        """Today in the configured time zone."""
        return today_in(self.clock, self._tz)

    def _date(self, date: dt.date | str | None) -> str:
        if date is None:
            return self.today().isoformat()
        try:
            return parse_date(date)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    def taskset(
        self,
        account: str,
        type: str,
        tasks: Iterable[str] | None = None,
        date: dt.date | str | None = None,
        *,
        wait: bool | dt.timedelta | float = False,
    ) -> TaskSet:
        """Open the task set of ``account`` and ``type`` for ``date`` (default: today).

        ``tasks`` plans the list; planning again appends new tasks and never forgets
        completed ones. The date is fixed now, so a run that crosses midnight stays on its
        day. Use ``with`` to hold the run lease; ``wait`` says how long ``with`` waits for
        another live holder (False: raise AlreadyRunning at once; True: forever; a
        timedelta or seconds).
        """
        key = TaskSetKey(
            _check_name(account, "account"), _check_name(type, "type"), self._date(date)
        )
        planned = None if tasks is None else [_check_name(t, "task") for t in tasks]
        return TaskSet(self, key, planned, to_wait(wait))

    # -- reading many sets ----------------------------------------------------------------

    def keys(self, account: str | None = None) -> list[TaskSetKey]:
        """Every stored set's (account, type, date), sorted. Reads only."""
        if account is not None:
            _check_name(account, "account")
        return sorted(self._reading().keys(account))

    def records(
        self, account: str | None = None, since: dt.date | str | None = None
    ) -> list[TaskSetRecord]:
        """The stored records (of one account, from a date on), sorted by key.

        Reads only: a corrupt file is named in a warning and its last good generation
        (``.bak``) returned in its place; nothing is moved or restored (``doctor`` does
        that, as does opening the set with :meth:`taskset` to work on it)."""
        start = parse_date(since) if since is not None else ""
        reader = self._reading()
        out = []
        for key in sorted(reader.keys(account)):
            if key.date >= start:
                record = reader.load(key)
                if record is not None:
                    out.append(record)
        return out

    def holder(self, key: TaskSetKey) -> LeaseHolder | None:
        """Who holds the run lease of a set now, or None. Reads only."""
        return self._reading().holder(key)

    # -- maintenance ----------------------------------------------------------------------

    def cleanup(
        self,
        older_than: dt.timedelta | float | None = None,
        dry_run: bool = False,
        *,
        days: float | None = None,
    ) -> list[TaskSetKey]:
        """Delete sets whose date is more than ``older_than`` before today. Returns the
        keys deleted (or that would be, with ``dry_run``).

        Pass a ``datetime.timedelta`` (``cleanup(timedelta(days=7))``) or ``days=7``. A bare
        number as ``older_than`` still means days, as it always has here, but is
        deprecated (DeprecationWarning): a future release reads it as seconds, like every
        other duration of the API (``JobQueue.prune``).
        """
        if (older_than is None) == (days is None):
            raise ConfigError(
                "cleanup needs exactly one of older_than (a datetime.timedelta) or days=, "
                f"got older_than={older_than!r}, days={days!r}"
            )
        if days is not None:
            age = dt.timedelta(days=to_days(days, "days"))
        elif isinstance(older_than, dt.timedelta):
            age = to_timedelta(older_than, "older_than")
        else:  # a bare number: days, deprecated
            assert older_than is not None
            age = dt.timedelta(days=to_days(older_than, "older_than"))
            warnings.warn(
                f"JobState.cleanup({older_than!r}): a bare number is read as days for now, "
                "but a future release will read it as seconds (like JobQueue.prune); pass "
                f"a timedelta, e.g. cleanup(datetime.timedelta(days={older_than!r})), or "
                f"cleanup(days={older_than!r})",
                DeprecationWarning,
                stacklevel=2,
            )
        cutoff = (self.today() - age).isoformat()
        doomed = [k for k in sorted(self.backend.keys()) if k.date < cutoff]
        if not dry_run:
            for key in doomed:
                self.backend.delete(key)
        return doomed

    def reset(self, account: str | None = None) -> list[TaskSetKey]:
        """Delete every set of ``account`` (every set when None). If any of them has its
        run lease held by a live process, AlreadyRunning names it and nothing is deleted.
        (A run that starts while the others are being deleted still keeps its own set.)"""
        keys = sorted(self.backend.keys(account))
        for key in keys:
            if self.backend.holder(key) is not None:
                self.backend.delete(key)  # refused under the live lease: AlreadyRunning
        deleted = []
        for key in keys:
            self.backend.delete(key)
            deleted.append(key)
        return deleted

    def usage(self) -> tuple[int, int]:
        """(bytes, files) the state takes up. Reads only."""
        return self._reading().usage()

    def doctor(self, repair: bool = True) -> list[Finding]:
        """Check every stored file; repair corrupt files, stray temp files, stale leases
        (with ``repair``). A corrupt file set aside, now or earlier, is reported as a
        ``note`` finding (never repaired: a person inspects it, then deletes it)."""
        return self.backend.check(repair)


@dataclass(frozen=True)
class TaskRun:
    """The task a ``with ts.task(name)`` block runs."""

    name: str
    attempt: int


class TaskSet:
    """One account's tasks of one type on one day; see :meth:`JobState.taskset`.

    Loaded when opened; kept in memory afterwards (reads do not touch the disk). Every
    change is saved before the method returns. Safe to use from several threads.
    """

    def __init__(
        self, state: JobState, key: TaskSetKey, planned: list[str] | None, wait: bool | float
    ) -> None:
        self._state = state
        self._backend = state.backend
        self._clock = state.clock
        self.key = key
        self._wait = wait
        self._lease: Lease | None = None
        self._lock = threading.RLock()
        self._started: dict[str, float] = {}
        if state.enabled:
            log.info("Loading job state for %s (%s)", key.account, key.type)
        self._record = self._backend.load(key) or self._fresh()
        if planned:
            self.plan(planned)
        if state.enabled:
            log.info(
                "Found %d completed tasks, %d remaining",
                len(self._record.completed),
                len(self._record.remaining),
            )

    def _fresh(self) -> TaskSetRecord:
        return TaskSetRecord(self.key.date, self.key.account, self.key.type)

    # -- reading ---------------------------------------------------------------------------

    @property
    def account(self) -> str:
        """The account (partition key)."""
        return self.key.account

    @property
    def type(self) -> str:
        """The set's type, e.g. ``daily-set``."""
        return self.key.type

    @property
    def date(self) -> dt.date:
        """The day this set belongs to, fixed when it was opened."""
        return dt.date.fromisoformat(self.key.date)

    @property
    def completed(self) -> list[str]:
        """Completed tasks, in completion order."""
        return list(self._record.completed)

    @property
    def remaining(self) -> list[str]:
        """Planned tasks not yet completed, in planned order (failed ones included)."""
        return list(self._record.remaining)

    @property
    def failed(self) -> dict[str, Failure]:
        """Tasks that failed and are not completed: task -> (attempts, error, at)."""
        done = set(self._record.completed)
        return {t: f for t, f in self._record.failures.items() if t not in done}

    @property
    def durations(self) -> dict[str, float]:
        """Seconds each completed task took (those run through :meth:`task`)."""
        return dict(self._record.durations)

    @property
    def is_complete(self) -> bool:
        """True when nothing remains and at least one task was completed."""
        return not self._record.remaining and bool(self._record.completed)

    @property
    def last_update(self) -> str | None:
        """When the set was last saved (ISO 8601 UTC), or None if never."""
        return self._record.last_update

    @property
    def record(self) -> TaskSetRecord:
        """A copy of the whole stored record."""
        return self._record.copy()

    def pending(self, *, retry_failed: bool = True) -> Iterator[str]:
        """The remaining tasks, in planned order, logging each completed one it skips.

        A task completed while the loop runs (by the loop body, or another thread) is not
        yielded. With ``retry_failed=False`` tasks that failed before are skipped too.
        """
        with self._lock:
            completed = list(self._record.completed)
            todo = list(self._record.remaining)
        for task in completed:
            log.info("Skipping completed task: %s", task)
        for task in todo:
            with self._lock:
                if task not in self._record.remaining:
                    continue
                if not retry_failed and task in self._record.failures:
                    log.info("Skipping failed task: %s", task)
                    continue
            yield task

    def progress(
        self, task: str, done: int | None = None, total: int | None = None
    ) -> Progress | None:
        """Record (with ``done`` and ``total``) or read how far a countable task has got.

        A search session saves ``progress("search", 12, 30)`` and, after a crash, resumes
        from ``progress("search").done``. Reaching ``total`` marks the task done.
        """
        _check_name(task, "task")
        if done is None and total is None:
            return self._record.progress.get(task)
        if done is None or total is None or not (done >= 0) or total < 0:
            raise ValueError(
                f"progress of task {task!r} needs done >= 0 and total >= 0, "
                f"got done={done!r}, total={total!r}"
            )
        if done >= total:
            self._done(task, None, Progress(done, total))
            return Progress(done, total)

        def change(rec: TaskSetRecord) -> None:
            rec.progress[task] = Progress(done, total)
            if task not in rec.remaining and task not in rec.completed:
                rec.remaining.append(task)

        self._commit(change)
        return Progress(done, total)

    # -- writing ---------------------------------------------------------------------------

    def _commit(self, change: Callable[[TaskSetRecord], None]) -> None:
        """Apply ``change`` to a copy of the latest record, stamp and store it."""
        now = iso_utc(self._clock.now())

        def apply(current: TaskSetRecord | None) -> TaskSetRecord:
            if current is not None and current.last_update != self._record.last_update:
                log.warning(
                    "Task set %s of %s for %s was changed by another process (lastUpdate %s, "
                    "this one had %s): it appears to be running twice. Open it with `with` "
                    "to hold its run lease.",
                    self.key.type,
                    self.key.account,
                    self.key.date,
                    current.last_update,
                    self._record.last_update,
                )
            record = (current or self._fresh()).copy()
            # Whatever this process saw completed stays completed, even if the stored record
            # went back (a corrupt file restored from its previous generation): forgetting
            # it would run those tasks again. When the stored record is the one this process
            # last saw, this adds nothing (no backend need hand back the same object).
            done = set(record.completed)
            for task in self._record.completed:
                if task not in done:
                    record.completed.append(task)
                    if task in record.remaining:
                        record.remaining.remove(task)
            change(record)
            record.last_update = now
            return record

        with self._lock:
            self._record = self._backend.update(self.key, apply)

    def plan(self, tasks: Iterable[str]) -> None:
        """Append tasks not yet known; completed and already planned ones are kept as they
        are. Saves only if something was added."""
        tasks = [_check_name(t, "task") for t in tasks]
        with self._lock:
            known = set(self._record.completed) | set(self._record.remaining)
            if all(t in known for t in tasks):
                return

            def change(rec: TaskSetRecord) -> None:
                seen = set(rec.completed) | set(rec.remaining)
                for t in tasks:
                    if t not in seen:
                        rec.remaining.append(t)
                        seen.add(t)

            self._commit(change)

    def mark_done(self, task: str, *, duration: float | None = None) -> None:
        """Record ``task`` as completed; stored before this returns. Idempotent."""
        self._done(_check_name(task, "task"), duration, None)

    def _done(self, task: str, duration: float | None, progress: Progress | None) -> None:
        with self._lock:
            if task in self._record.completed and progress is None:
                return

            def change(rec: TaskSetRecord) -> None:
                if task not in rec.completed:
                    rec.completed.append(task)
                if task in rec.remaining:
                    rec.remaining.remove(task)
                if duration is not None:
                    rec.durations[task] = round(duration, 6)
                if progress is not None:
                    rec.progress[task] = progress

            self._commit(change)
        if duration is not None:
            log.info("Completed task: %s (%.3fs)", task, duration)
        else:
            log.info("Completed task: %s", task)

    def mark_failed(self, task: str, error: BaseException | str) -> Failure:
        """Record a failed attempt of ``task`` (it stays remaining, so a rerun retries it)."""
        _check_name(task, "task")
        text = _error_text(error)
        at = iso_utc(self._clock.now())
        with self._lock:

            def change(rec: TaskSetRecord) -> None:
                previous = rec.failures.get(task)
                rec.failures[task] = Failure((previous.attempts if previous else 0) + 1, text, at)
                if task not in rec.remaining and task not in rec.completed:
                    rec.remaining.append(task)

            self._commit(change)
            failure = self._record.failures[task]
        log.warning("Task failed: %s (attempt %d): %s", task, failure.attempts, text)
        return failure

    @contextmanager
    def task(self, name: str, *, reraise: bool = True) -> Iterator[TaskRun]:
        """Run one task: ``with ts.task("quiz-2"): ...``.

        Logs the start; when the block succeeds, marks the task done with its duration
        (stored before the code after the block runs). When it raises, records the failure
        and re-raises, or with ``reraise=False`` swallows the exception so a loop carries on
        with the next task. KeyboardInterrupt and SystemExit are never swallowed nor
        counted as failures: the task simply stays remaining.
        """
        _check_name(name, "task")
        previous = self._record.failures.get(name)
        run = TaskRun(name, (previous.attempts if previous else 0) + 1)
        if name in self._record.completed:
            log.info("Task %s was already completed; running it again", name)
        log.info("Starting task: %s", name)
        started = self._clock.monotonic()
        try:
            yield run
        except Exception as exc:
            self.mark_failed(name, exc)
            if reraise:
                raise
        except BaseException:
            log.info("Interrupted task: %s (it stays remaining)", name)
            raise
        else:
            self.mark_done(name, duration=self._clock.monotonic() - started)

    # -- the run lease ---------------------------------------------------------------------

    def __enter__(self) -> TaskSet:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: _ExcType,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self, wait: bool | dt.timedelta | float | None = None) -> None:
        """Take the run lease (what ``with`` does); raises AlreadyRunning. ``wait`` (a
        timedelta or seconds, True or False) overrides the set's own."""
        if self._lease is None:
            since = iso_utc(self._clock.now())
            self._lease = self._backend.lease(
                self.key, since, self._wait if wait is None else to_wait(wait)
            )
            # Another run may have saved between our load and the lease: start from its state.
            fresh = self._backend.load(self.key)
            if fresh is not None:
                with self._lock:
                    self._record = fresh

    def release(self) -> None:
        """Give the run lease back (what leaving ``with`` does)."""
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()

    def __repr__(self) -> str:
        return (
            f"TaskSet({self.key.account!r}, {self.key.type!r}, {self.key.date}, "
            f"completed={len(self._record.completed)}, "
            f"remaining={len(self._record.remaining)})"
        )


_DURATION = re.compile(r"^\s*(\d+)\s*([dhw]?)\s*$")


def parse_age(text: str) -> dt.timedelta:
    """``7d``, ``2w``, ``36h`` or a bare number of days, as a timedelta."""
    m = _DURATION.match(text)
    if m is None:
        raise ConfigError(f"cannot read the age {text!r}; write it as 7d, 2w, 36h or 7")
    n = int(m[1])
    unit = m[2] or "d"
    return {"d": dt.timedelta(days=n), "w": dt.timedelta(weeks=n), "h": dt.timedelta(hours=n)}[unit]
