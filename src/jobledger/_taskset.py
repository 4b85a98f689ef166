"""TaskSet: one account's tasks of one type on one day, resumed after a crash.

The task-set policy, once, above the backend contract: planning and merging task lists
(completed tasks are never forgotten, whatever is planned later), resume order, failures,
progress, durations, logging, and the run lease. Opened by :meth:`JobState.taskset`.

Invariants:
- a ``mark_done`` that returned is stored (fsynced under ``durability="fsync"``);
- a task runs again only if its process died before its completion was recorded.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, TypeAlias

from ._clock import iso_utc
from ._durations import to_wait
from ._inputs import check_name, storable_text
from ._log import log
from ._taskset_record import Failure, Progress, TaskSetKey, TaskSetRecord
from .backends._contract import Lease

if TYPE_CHECKING:
    from ._job_state import JobState

__all__ = ["TaskRun", "TaskSet"]

# Spelled here because inside TaskSet the name `type` is the set's type property.
_ExcType: TypeAlias = type[BaseException] | None


def _error_text(error: BaseException | str) -> str:
    if isinstance(error, BaseException):
        text = str(error)
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    else:
        text = str(error)
    return storable_text(text)  # recorded whatever it holds: escaped, never refused


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
        check_name(task, "task")
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
        tasks = [check_name(t, "task") for t in tasks]
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
        self._done(check_name(task, "task"), duration, None)

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
        check_name(task, "task")
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

    def retry_failed(self) -> list[str]:
        """Forget the failures of the tasks that failed and are not completed, so that the
        next run takes them up again, even one that skips failed tasks
        (``pending(retry_failed=False)``); their attempts count from zero again. Returns
        those tasks, in planned order (nothing is written when there are none).

        Done under the run lease, taken for the change unless this object holds it:
        AlreadyRunning when another live process runs the set."""
        lease = None
        if self._lease is None:
            lease = self._backend.lease(self.key, iso_utc(self._clock.now()), False)
        try:
            with self._lock:
                fresh = self._backend.load(self.key)
                if fresh is not None and lease is not None:
                    self._record = fresh
                done = set(self._record.completed)
                failed = [t for t in self._record.failures if t not in done]
                if not failed:
                    return []

                def change(rec: TaskSetRecord) -> None:
                    for task in failed:
                        rec.failures.pop(task, None)
                        if task not in rec.remaining and task not in rec.completed:
                            rec.remaining.append(task)

                self._commit(change)
                order = {t: i for i, t in enumerate(self._record.remaining)}
                failed.sort(key=lambda t: order.get(t, len(order)))
        finally:
            if lease is not None:
                lease.release()
        log.info("Failures forgotten, to be retried: %s", ", ".join(failed))
        return failed

    @contextmanager
    def task(self, name: str, *, reraise: bool = True) -> Iterator[TaskRun]:
        """Run one task: ``with ts.task("quiz-2"): ...``.

        Logs the start; when the block succeeds, marks the task done with its duration
        (stored before the code after the block runs). When it raises, records the failure
        and re-raises, or with ``reraise=False`` swallows the exception so a loop carries on
        with the next task. KeyboardInterrupt and SystemExit are never swallowed nor
        counted as failures: the task simply stays remaining.
        """
        check_name(name, "task")
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
