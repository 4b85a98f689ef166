"""Bounded reads of a queue for the pages that show it: a page of live jobs, a filtered
page of history, finishes per minute. Each reads what it shows and no more, on every
backend (``files/_history.py``, ``postgres/_history.py``); :func:`open_history` opens
the one of a job backend.

Reads only: nothing here locks, recovers, repairs, creates or migrates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .._clock import Clock
from .._job_record import JobRecord, JobStatus
from ._contract import JobBackend

__all__ = ["HistoryFilter", "HistoryReads", "open_history", "queue_of"]


def queue_of(meta: dict[str, object]) -> str:
    """The named queue a job is in, from its file's ``_jobledger`` fields (a file written
    before named queues has none: ``"default"``)."""
    value = meta.get("queue")
    return value if isinstance(value, str) else "default"


@dataclass(frozen=True)
class HistoryFilter:
    """Which finished jobs a history page shows. ``statuses``: finished statuses (None:
    all three); ``since``/``until``: ISO UTC bounds of ``finished`` (inclusive,
    exclusive)."""

    statuses: frozenset[str] | None = None
    type: str | None = None
    queue: str | None = None
    since: str | None = None
    until: str | None = None


class HistoryReads(Protocol):
    """What a queue's pages read, each bounded by what it shows."""

    def counts(self) -> dict[str, int]:
        """Jobs per status, without reading history."""
        ...

    def counts_by_queue(self) -> dict[str, dict[str, int]]:
        """Jobs per queue and status (queues that have some), without reading a job."""
        ...

    def live_page(self, status: JobStatus, limit: int, offset: int) -> list[JobRecord]:
        """The live jobs of ``status`` in serving order, ``limit`` of them from ``offset``."""
        ...

    def history(
        self, where: HistoryFilter, limit: int, before: tuple[str, str] | None
    ) -> list[JobRecord]:
        """Finished jobs matching ``where``, latest finish first (then job id, descending),
        at most ``limit``, all of them ordered after ``before`` ((finished, job_id) of the
        last job of the previous page). Jobs without a finish time are left out."""
        ...

    def finished_per_minute(self, since: str) -> dict[str, dict[str, int]]:
        """Jobs finished at or after ``since`` (ISO UTC): per minute (``YYYY-MM-DDTHH:MM``)
        how many ended in each finished status."""
        ...

    def close(self) -> None:
        """Release what the reads hold."""
        ...


def open_history(backend: JobBackend, clock: Clock) -> HistoryReads:
    """The bounded reads of ``backend``'s queue (a folder's keep an index of their own,
    brought up to date from the queue's journal at each read)."""
    from .files.jobs import FilesJobBackend

    if isinstance(backend, FilesJobBackend):
        from .files._history import FilesHistory

        return FilesHistory(backend.root, clock)
    from .postgres.jobs import PostgresJobBackend

    if isinstance(backend, PostgresJobBackend):
        from .postgres._history import PostgresHistory

        return PostgresHistory(backend)
    raise TypeError(f"no history reads for {type(backend).__name__}")
