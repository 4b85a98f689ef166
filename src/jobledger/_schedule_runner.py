"""A Worker's side of schedules: store the ones it declares, then enqueue due occurrences.

A running Worker enqueues its queue's due occurrences (``JobQueue.enqueue_due``) when it
starts, then on a thread of its own: it looks at the stored schedules at most once a
second (:data:`SCHEDULE_POLL`; a folder's look is a stat of schedules.json, PostgreSQL's
one query of a small table) and wakes for the next occurrence when that comes sooner. It
fires every stored schedule, declared here or not: whichever worker is up enqueues each
occurrence, once (see ``_schedules.py``).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable

from ._errors import JobLedgerError
from ._log import log
from ._queue import JobQueue
from ._schedules import Schedule

__all__ = ["SCHEDULE_POLL", "ScheduleRunner"]

#: Seconds between a running Worker's looks at its queue's schedules.
SCHEDULE_POLL = 1.0


class ScheduleRunner:
    """The schedules of one Worker's queue; ``start()`` stores the declared ones and fires
    what is due, ``stop()`` ends the thread."""

    def __init__(self, queue: JobQueue, declared: Iterable[Schedule]) -> None:
        self.queue = queue
        self.declared = list(declared)
        names = [s.name for s in self.declared]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise JobLedgerError(
                f"a Worker's schedules name {', '.join(duplicates)} more than once; give "
                "each schedule its own name"
            )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Store the declared schedules, enqueue what is due now, and start the thread."""
        for schedule in self.declared:
            self.queue.schedule(schedule)
        self.tick()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="jobledger-schedules", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread (an enqueue in progress finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def tick(self) -> float:
        """Enqueue the due occurrences now; seconds until the next look."""
        try:
            self.queue.enqueue_due()
            schedules = self.queue.schedules()
        except JobLedgerError as exc:
            # Never stop serving jobs for it: the next look tries again.
            log.warning("could not enqueue the schedules' due jobs: %s", exc)
            return SCHEDULE_POLL
        now = self.queue.clock.now()
        wait = SCHEDULE_POLL
        for schedule in schedules:
            try:
                upcoming = schedule.next_run(now)
            except JobLedgerError:
                continue
            wait = min(wait, (upcoming - now) / dt.timedelta(seconds=1))
        return max(wait, 0.0)

    def _loop(self) -> None:
        wait = SCHEDULE_POLL
        while not self._stop.wait(wait):
            wait = self.tick()
