"""Waiting for a job's outcome: ``JobQueue.wait`` and ``AsyncJobQueue.wait``.

A wait is a read: it reads the job (through the queue's read-only reader until the queue
has written), returns the result of a Completed job, raises :class:`JobFailed` for a
Failed one and :class:`JobCancelled` for a Cancelled one, and otherwise waits to be woken
and reads again, until its timeout (:class:`WaitTimeout`). Nothing is written or repaired.

What wakes it (:class:`FinishWaiters`, one per queue, callbacks by job id):

- a job finished through the same queue object: at once, in any storage;
- on PostgreSQL, a job finished by any process: the finished jobs' notification
  (``backends/postgres/_listen.py``), heard by one listener per queue (a thread for
  ``JobQueue``, a task on the event loop for ``AsyncJobQueue``);
- and a poll: where the storage cannot tell (a folder), the wait reads again after 10 ms,
  then 20, 40... doubling up to ``poll_interval`` (1 s by default): another process's
  completion is seen within about ``poll_interval`` at worst (plus one read of the job's
  file). Where it can (PostgreSQL), it reads again only every ``poll_interval``, in case
  notifications are lost (a listener that cannot connect through a pooler).

Every wake-up is followed by a read: the wake-up only says "look", the job as stored says
what happened, so a lost, doubled or spurious wake-up costs a read, never a wrong answer.
The waiter registers before its first read, and every listener calls back once it listens
(again): no finish falls between a read and the wait that follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ._durations import to_seconds
from ._errors import ConfigError, JobCancelled, JobFailed, JobNotFound, WaitTimeout
from ._job_fields import JobStatus
from ._job_record import JobRecord

__all__ = [
    "DEFAULT_POLL",
    "FIRST_POLL",
    "FinishWaiters",
    "FinishWatch",
    "Pending",
    "outcome",
    "wait_async",
    "wait_limits",
    "wait_sync",
]

#: The first pause of a polling wait (seconds), doubled after each read.
FIRST_POLL = 0.01
#: The longest pause between two reads of a wait, unless ``poll_interval`` says otherwise.
DEFAULT_POLL = 1.0


def wait_limits(
    timeout: dt.timedelta | float | None, poll_interval: dt.timedelta | float
) -> tuple[float | None, float]:
    """A wait's ``timeout`` (None: none) and ``poll_interval`` as seconds, checked."""
    limit = None if timeout is None else to_seconds(timeout, "timeout")
    poll = to_seconds(poll_interval, "poll_interval")
    if poll <= 0:
        raise ConfigError(f"poll_interval must be more than 0 seconds, got {poll_interval!r}")
    return limit, poll


class Pending:
    """What :func:`outcome` returns for a job that is still Queued or Running."""

    def __init__(self, status: JobStatus) -> None:
        self.status = status


def outcome(record: JobRecord | None, job_id: str, where: str) -> Any:
    """The result of a Completed job; :class:`Pending` for a live one. Raises
    :class:`JobNotFound` (no such job), :class:`JobFailed` or :class:`JobCancelled`."""
    if record is None:
        raise JobNotFound(job_id, where)
    status = record.status
    if status is JobStatus.COMPLETED:
        return record.result
    if status is JobStatus.FAILED:
        raise JobFailed(job_id, record.error_message, record.traceback, record.attempts, where)
    if status is JobStatus.CANCELLED:
        raise JobCancelled(job_id, where)
    return Pending(status)


class FinishWaiters:
    """The waits of one queue: callbacks by job id, called when that job may have
    finished. Thread-safe; :meth:`wake` costs one attribute read while nobody waits."""

    def __init__(self) -> None:
        self._by_id: dict[str, list[Callable[[], None]]] = {}
        self._guard = threading.Lock()

    def add(self, job_id: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` when ``job_id`` may have finished; returns the remover."""
        with self._guard:
            self._by_id.setdefault(job_id, []).append(callback)

        def remove() -> None:
            with self._guard:
                callbacks = self._by_id.get(job_id, [])
                if callback in callbacks:
                    callbacks.remove(callback)
                if not callbacks:
                    self._by_id.pop(job_id, None)

        return remove

    def wake(self, job_ids: Iterable[str | None]) -> None:
        """Call the waiters of ``job_ids`` (None among them: every waiter), outside the
        lock (a callback may add or remove)."""
        if not self._by_id:
            return
        with self._guard:
            callbacks: list[Callable[[], None]] = []
            for job_id in job_ids:
                if job_id is None:
                    callbacks = [c for cs in self._by_id.values() for c in cs]
                    break
                callbacks.extend(self._by_id.get(job_id, ()))
        for callback in callbacks:
            callback()

    def wake_one(self, job_id: str | None) -> None:
        """:meth:`wake` for one job id (None: everyone): a listener's callback."""
        self.wake((job_id,))

    def wake_finished(self, records: Iterable[JobRecord]) -> None:
        """Wake the waiters of those of ``records`` that are finished."""
        if self._by_id:
            self.wake(r.job_id for r in records if not r.status.is_live)


#: Starts a backend's listener for finished jobs (``JobBackend.watch_finished``): the
#: function that stops it, or None when the storage cannot tell.
Listen = Callable[[Callable[[str | None], None]], Callable[[], None] | None]


class FinishWatch:
    """A queue's waiters, and the one backend listener (started by the first wait, kept
    until :meth:`close`) that feeds them."""

    def __init__(self) -> None:
        self.waiters = FinishWaiters()
        self._guard = threading.Lock()
        self._started = False
        self._stop: Callable[[], None] | None = None

    def listening(self, listen: Listen) -> bool:
        """Start the listener with ``listen`` unless started; whether the storage tells
        of finished jobs (a wait then reads again only every ``poll_interval``)."""
        with self._guard:
            if not self._started:
                self._stop = listen(self.waiters.wake_one)
                self._started = True
            return self._stop is not None

    def close(self) -> None:
        """Stop the listener (a later wait starts one again)."""
        with self._guard:
            stop, self._stop, self._started = self._stop, None, False
        if stop is not None:
            stop()


class _Pauses:
    """The pauses between a wait's reads: doubling from :data:`FIRST_POLL` up to
    ``poll`` when nothing notifies, ``poll`` each time when the storage notifies."""

    def __init__(self, poll: float, notified: bool) -> None:
        self._poll = poll
        self._next = poll if notified else min(FIRST_POLL, poll)

    def next(self) -> float:
        pause = self._next
        self._next = min(self._next * 2, self._poll)
        return pause


def _remaining(
    deadline: float | None, record: Pending, job_id: str, timeout: float | None, where: str
) -> float | None:
    """Seconds left before ``deadline`` (None: no deadline); :class:`WaitTimeout` when
    none are."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise WaitTimeout(job_id, timeout or 0.0, record.status.value, where)
    return left


def wait_sync(
    job_id: str,
    read: Callable[[], JobRecord | None],
    watch: FinishWatch,
    listen: Listen,
    *,
    timeout: float | None,
    poll: float,
    where: str,
) -> Any:
    """``JobQueue.wait``: block this thread until the job finishes (see the module)."""
    woken = threading.Event()
    remove = watch.waiters.add(job_id, woken.set)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        pauses: _Pauses | None = None
        while True:
            woken.clear()  # before the read: a finish after it wakes the wait below
            found = outcome(read(), job_id, where)
            if not isinstance(found, Pending):
                return found
            left = _remaining(deadline, found, job_id, timeout, where)
            if pauses is None:
                # Only a job still to finish needs the listener. One that finishes before
                # it listens is read again: it calls back once it listens.
                pauses = _Pauses(poll, watch.listening(listen))
            pause = pauses.next()
            woken.wait(pause if left is None else min(pause, left))
    finally:
        remove()


async def wait_async(
    job_id: str,
    read: Callable[[], Awaitable[JobRecord | None]],
    waiters: FinishWaiters,
    listening: Callable[[], bool],
    *,
    timeout: float | None,
    poll: float,
    where: str,
) -> Any:
    """``AsyncJobQueue.wait``: :func:`wait_sync` as a coroutine; ``read`` never blocks
    the event loop, and neither does the wait between reads. ``listening()`` starts the
    listener that feeds ``waiters``, if any, and says whether there is one."""
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def wake() -> None:  # from any thread: a worker thread, a listener's
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(woken.set)

    remove = waiters.add(job_id, wake)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        pauses: _Pauses | None = None
        while True:
            woken.clear()
            found = outcome(await read(), job_id, where)
            if not isinstance(found, Pending):
                return found
            left = _remaining(deadline, found, job_id, timeout, where)
            if pauses is None:
                pauses = _Pauses(poll, listening())
            pause = pauses.next()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(woken.wait(), pause if left is None else min(pause, left))
    finally:
        remove()
