"""The backend of a disabled JobState: nothing is read or written.

Changes live in memory for the life of one opened task set, so that a loop's ``pending()``
still moves on; opening the set again starts it fresh, as a disabled run would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .._errors import LeaseHolder
from .._taskset_record import RunLease, TaskSetKey, TaskSetRecord
from ._contract import Finding, Lease

__all__ = ["NullTaskSetBackend"]


class _NoLease:
    def release(self) -> None:
        """Nothing to give back."""


class NullTaskSetBackend:
    """Stores nothing; see the module docstring."""

    location = "(disabled: nothing is stored)"

    def __init__(self) -> None:
        self._memory: dict[TaskSetKey, TaskSetRecord] = {}

    def load(self, key: TaskSetKey) -> TaskSetRecord | None:
        """Always None: a disabled state has no history. Forgets this run's changes."""
        self._memory.pop(key, None)
        return None

    def update(
        self, key: TaskSetKey, change: Callable[[TaskSetRecord | None], TaskSetRecord]
    ) -> TaskSetRecord:
        """Apply ``change`` in memory only."""
        record = change(self._memory.get(key))
        self._memory[key] = record
        return record

    def lease(self, key: TaskSetKey, since: str, wait: bool | float) -> Lease:
        """A lease that guards nothing."""
        return _NoLease()

    def holder(self, key: TaskSetKey) -> LeaseHolder | None:
        """Nobody."""
        return None

    def keys(self, account: str | None = None) -> Iterator[TaskSetKey]:
        """Nothing is stored."""
        return iter(())

    def load_range(self, first: str, last: str, account: str | None = None) -> list[TaskSetRecord]:
        """Nothing is stored."""
        return []

    def leases(self) -> list[RunLease]:
        """No lease is ever held."""
        return []

    def delete(self, key: TaskSetKey) -> None:
        """Nothing to delete."""
        self._memory.pop(key, None)

    def usage(self) -> tuple[int, int]:
        """Nothing stored."""
        return 0, 0

    def check(self, repair: bool) -> list[Finding]:
        """Nothing to check."""
        return []
