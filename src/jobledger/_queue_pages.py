"""The queue's bounded reads, for pages and dashboards: a page of live jobs, a filtered
page of history, finishes per minute. :class:`QueuePages` is a base of ``JobQueue``.

Each reads what it returns and no more (``backends/_history.py``): on a folder, a page of
history reads the files of the jobs on it, not the 100,000 others. Reads only: nothing is
locked, recovered, repaired, created or migrated.
"""

from __future__ import annotations

import builtins
import datetime as dt
import threading
from collections.abc import Callable, Iterable
from typing import NamedTuple

from ._clock import Clock, iso_utc
from ._durations import to_timedelta
from ._errors import ConfigError
from ._job_fields import JobStatus
from ._job_record import JobRecord
from ._job_view import Job
from .backends._contract import JobBackend
from .backends._history import HistoryFilter, HistoryReads, open_history

__all__ = ["LivePage", "QueuePages"]


class LivePage(NamedTuple):
    """A page of one status's live jobs (serving order), how many there are in all, the
    queue's jobs per status, and per queue and status (queues that have some)."""

    jobs: builtins.list[Job]
    total: int
    counts: dict[str, int]
    by_queue: dict[str, dict[str, int]]


def _time(value: dt.datetime | str | None, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ConfigError(f"{what} must be an aware datetime (UTC or with its zone)")
    return iso_utc(value)


def _statuses(status: JobStatus | str | Iterable[JobStatus | str] | None) -> frozenset[str] | None:
    if status is None:
        return None
    given = [status] if isinstance(status, (str, JobStatus)) else builtins.list(status)
    out = frozenset(JobStatus(s).value for s in given)
    live = sorted(s for s in out if JobStatus(s).is_live)
    if live:
        raise ConfigError(f"history holds finished jobs only, not {', '.join(live)}")
    return out


class QueuePages:
    """Bounded reads (a base of ``JobQueue``, which provides what is declared here)."""

    clock: Clock
    _job: Callable[[JobRecord], Job]
    _history_reads: HistoryReads | None = None
    _history_guard = threading.Lock()

    def _bounded(self) -> HistoryReads:
        with self._history_guard:
            if self._history_reads is None:
                self._history_reads = open_history(self._reader_backend(), self.clock)
            return self._history_reads

    def _reader_backend(self) -> JobBackend:
        raise NotImplementedError  # JobQueue's: its read-only twin

    def _close_reads(self) -> None:
        with self._history_guard:
            reads, self._history_reads = self._history_reads, None
        if reads is not None:
            reads.close()

    def live_page(self, status: JobStatus | str, limit: int = 50, offset: int = 0) -> LivePage:
        """``limit`` of the Queued or Running jobs from ``offset``, in serving order,
        with how many there are and the jobs per status and per queue. Reads only those
        jobs (the counts: a folder's index, or one aggregate query)."""
        wanted = JobStatus(status)
        if not wanted.is_live:
            raise ConfigError(f"live_page lists Queued or Running jobs, not {wanted.value}")
        reads = self._bounded()
        by_queue = reads.counts_by_queue()
        counts = {s.value: 0 for s in JobStatus}
        for per in by_queue.values():
            for s, n in per.items():
                counts[s] = counts.get(s, 0) + n
        records = reads.live_page(wanted, max(0, limit), max(0, offset)) if limit > 0 else []
        jobs = [self._job(r) for r in records]
        return LivePage(jobs, counts.get(wanted.value, 0), counts, by_queue)

    def history(
        self,
        *,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        type: str | None = None,
        queue: str | None = None,
        since: dt.datetime | str | None = None,
        until: dt.datetime | str | None = None,
        limit: int = 50,
        before: tuple[str, str] | None = None,
    ) -> builtins.list[Job]:
        """Finished jobs, latest finish first: at most ``limit`` of those of ``status``
        (Completed, Failed, Cancelled, or several), ``type`` and ``queue`` that finished
        in [``since``, ``until``) (aware datetimes or ISO UTC strings). The next page:
        ``before=(job.finished, job.job_id)`` of the last job of this one. Reads only the
        jobs it returns (a folder keeps a summary of its finished jobs in memory, brought
        up to date from the queue's journal)."""
        where = HistoryFilter(
            statuses=_statuses(status),
            type=type,
            queue=queue,
            since=_time(since, "since"),
            until=_time(until, "until"),
        )
        records = self._bounded().history(where, max(0, limit), before)
        return [self._job(r) for r in records]

    def finished_per_minute(self, last: dt.timedelta | float = 3600) -> dict[str, dict[str, int]]:
        """How many jobs finished in each minute (``"YYYY-MM-DDTHH:MM"``, UTC) of the
        ``last`` (a timedelta or seconds), per finished status; minutes without any are
        left out. Reads no job."""
        since = iso_utc(self.clock.now() - to_timedelta(last, "last"))
        return self._bounded().finished_per_minute(since)
