"""What every backend implements: thin storage primitives, no policy.

Policy (planning, resume, failures, durations, logging) lives once, in ``jobledger._tasksets``,
and reaches storage only through these methods. The contract test suite in
``tests/contract`` holds every backend to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from .._errors import LeaseHolder
from .._records import TaskSetKey, TaskSetRecord

__all__ = ["Finding", "Lease", "TaskSetBackend"]


class Lease(Protocol):
    """A held run lease; dies with its process even if never released."""

    def release(self) -> None:
        """Give the lease back. Idempotent."""
        ...


@dataclass(frozen=True)
class Finding:
    """One problem a health check found, and what was done about it."""

    kind: str  # "corrupt", "temp", "stale-lease", "unreadable", "stray"
    where: str
    detail: str
    repaired: bool


class TaskSetBackend(Protocol):
    """Storage of task-set records, one per (account, type, date)."""

    #: Where the data lives, for messages (a folder, or a URL without its password).
    location: str

    def load(self, key: TaskSetKey) -> TaskSetRecord | None:
        """The stored record, or None. Never takes a lock. A corrupt record is set aside,
        reported, and replaced by the last good generation where one exists."""
        ...

    def update(
        self, key: TaskSetKey, change: Callable[[TaskSetRecord | None], TaskSetRecord]
    ) -> TaskSetRecord:
        """Apply ``change`` to the latest stored record and store the result durably
        (as the backend's durability setting says) before returning it. ``change`` must not
        modify its argument. On error nothing stored changes."""
        ...

    def lease(self, key: TaskSetKey, since: str, wait: bool | float) -> Lease:
        """Take the run lease of ``key``; raise AlreadyRunning if a live holder keeps it
        beyond ``wait`` (False: do not wait; True: wait forever; a number: seconds)."""
        ...

    def holder(self, key: TaskSetKey) -> LeaseHolder | None:
        """Who holds the run lease of ``key`` now, or None. Never takes the lease."""
        ...

    def keys(self, account: str | None = None) -> Iterator[TaskSetKey]:
        """Every stored task set (of one account if given), in no particular order."""
        ...

    def delete(self, key: TaskSetKey) -> None:
        """Remove a task set and everything stored with it (generations, lease)."""
        ...

    def usage(self) -> tuple[int, int]:
        """(bytes, number of files or rows) the state takes up."""
        ...

    def check(self, repair: bool) -> list[Finding]:
        """Check every stored item; repair what can be repaired when asked."""
        ...
