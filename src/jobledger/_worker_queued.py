"""What a :class:`~jobledger.Worker` reads of the Queued jobs of the queues it serves (a
base class of it): a warning, once per type, about jobs no handler here serves, and, for
``run(until_empty=True)``, whether nothing is left for it to do."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from ._errors import JobLedgerError
from ._log import log
from ._queue import JobQueue
from ._words import plural
from ._worker_report import worker_log
from .backends._contract import QueuedCounts

__all__ = ["QueuedLooks"]


class QueuedLooks:
    """The reads of Queued jobs of :class:`~jobledger.Worker` (its base class)."""

    queue: JobQueue
    handlers: Mapping[str, object]
    queues: frozenset[str] | None
    delayed_left: tuple[int, str | None] | None
    _guard: threading.Lock
    _warned_types: set[str]
    _running: dict[str, threading.Thread]
    _claiming: int
    _wait_delayed: bool

    def _warn_unserved(self) -> None:
        """Warn, once per type, about Queued jobs no handler here serves: they would
        otherwise wait without a word."""
        try:
            queued = self._queued_by_type()
        except JobLedgerError as exc:  # only a warning: never stop serving for it
            log.debug("could not count queued jobs per type: %s", exc)
            return
        with self._guard:  # threads going idle together warn once between them
            new = [
                (job_type, counts)
                for job_type, counts in sorted(queued.items())
                if job_type not in self.handlers and job_type not in self._warned_types
            ]
            self._warned_types.update(job_type for job_type, _ in new)
        for job_type, counts in new:
            worker_log.warning(
                "%s of type %s %s for a handler: this worker serves only %s",
                plural(counts.due + counts.delayed, "queued job"),
                job_type,
                "waits" if counts.due + counts.delayed == 1 else "wait",
                ", ".join(sorted(self.handlers)),
            )

    def _drained(self, types: frozenset[str]) -> bool:
        """Nothing of ``types`` is due (nor, with ``wait_delayed``, delayed) and nothing
        runs here; the delayed jobs left behind go to ``delayed_left``."""
        with self._guard:
            busy = bool(self._running) or self._claiming > 0
        if busy or self._waiting(types) is None:
            return False
        # Nothing due, but a dead peer's job may still read Running, not yet recovered
        # (recovery while claiming waits for recover_every): recover before calling it empty.
        self.queue.recover()
        left = self._waiting(types)
        if left is None:
            return False
        self.delayed_left = left if left[0] else None
        return True

    def _waiting(self, types: frozenset[str]) -> tuple[int, str | None] | None:
        """None while a job of ``types`` is due (or delayed, with ``wait_delayed``); else
        how many are delayed and the earliest ``run_after`` of those. A due job that a
        limit may hold back (of a type with a rate limit, or in a limited queue served
        here) counts as delayed: the claim that found nothing left it for its window, or
        for another worker's job to end."""
        mine = {t: c for t, c in self._queued_by_type().items() if t in types}
        held = self._limited(frozenset(t for t, c in mine.items() if c.due))
        due = sum(c.due for t, c in mine.items() if t not in held)
        delayed = sum(c.delayed for c in mine.values()) + sum(mine[t].due for t in held)
        if due or (self._wait_delayed and delayed):
            return None
        return delayed, min((c.next_due for c in mine.values() if c.next_due), default=None)

    def _limited(self, types: frozenset[str]) -> frozenset[str]:
        """Those of ``types`` whose due jobs a stored limit may hold back here (the
        limits are read only when some job is due)."""
        if not types:
            return frozenset()
        limits = self.queue.limits()
        queue_limits, rates = limits.applying(self.queues, types)
        return types if queue_limits else frozenset(rates)

    def _queued_by_type(self) -> dict[str, QueuedCounts]:
        """The Queued jobs per type in the queues served."""
        if self.queues is None:
            return self.queue.queued_by_type()
        return self.queue.queued_by_type(self.queues)
