"""A files queue's schedules: ``<dir>/schedules.json``, written whole, under the queue lock.

The document::

    {"schedules": {"<name>": {"cron": "0 7 * * *", "timezone": "Europe/Paris",
                              "job": {"type": "Report", "payload": {...}, "priority": 0,
                                      "max_attempts": 3, "timeout": null},
                              "catch_up": "latest", "since": "...Z", "last": "...Z"|null}}}

Every change replaces it atomically (``write_atomic``: temp file, fsync, rename, folder
fsync under ``durability="fsync"``), under the queue lock, so that firing a schedule (its
jobs put, then its ``last`` written) is one change for every other process. A worker asks
for the schedules every second: a stat of the file, read again only when it changed.

A ``schedules.json`` that is not what this library writes (not JSON, a schedule that does
not read back) is set aside as ``schedules.json.corrupt-<stamp>`` with a warning by a
writer, and the queue goes on without schedules until they are stored again; a reader
reports it and moves nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from ..._clock import Clock
from ..._json import dumps_indented
from ..._schedules import StoredSchedule
from ._atomic_write import write_atomic
from ._index_format import parse_json
from ._reading import MAX_INDEX_BYTES, RefusedFile, read_bytes
from ._set_aside import set_aside
from ._sync_plan import SyncPlan

__all__ = ["SchedulesFile"]

log = logging.getLogger("jobledger")

Stamp = tuple[int, int, int, int]


class SchedulesFile:
    """``schedules.json`` of one queue folder; see the module docstring."""

    def __init__(self, root: str, *, fsync: bool, clock: Clock, read_only: bool) -> None:
        self.path = os.path.join(root, "schedules.json")
        self._fsync = fsync
        self._clock = clock
        self._read_only = read_only
        self._cached: tuple[Stamp, dict[str, StoredSchedule]] | None = None

    def _stamp(self) -> Stamp | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError:
            return None  # read() reports it
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def read(self, *, fresh: bool = False) -> dict[str, StoredSchedule]:
        """The schedules by name (none when the file does not exist). From the last read
        when the file's stat is unchanged, unless ``fresh`` (under the lock, before a
        change)."""
        stamp = self._stamp()
        if stamp is None and not os.path.lexists(self.path):
            self._cached = None
            return {}
        if not fresh and stamp is not None and self._cached and self._cached[0] == stamp:
            return dict(self._cached[1])
        schedules = self._load()
        if stamp is not None:
            self._cached = (stamp, schedules)
        return dict(schedules)

    def _load(self) -> dict[str, StoredSchedule]:
        try:
            data = read_bytes(self.path, MAX_INDEX_BYTES, "schedules.json")
        except RefusedFile as exc:
            return self._damaged(exc.reason)
        if data is None:
            return {}
        try:
            doc = parse_json(data)
            if not isinstance(doc, dict) or not isinstance(doc.get("schedules"), dict):
                raise ValueError("it is not an object with a 'schedules' object")
            return {
                name: StoredSchedule.from_json(name, entry)
                for name, entry in doc["schedules"].items()
            }
        except ValueError as exc:
            return self._damaged(f"is corrupt ({exc})")

    def _damaged(self, reason: str) -> dict[str, StoredSchedule]:
        if self._read_only:
            log.warning(
                "%s %s; reading no schedules from it. Nothing was changed: the queue's "
                "next write sets it aside.",
                self.path,
                reason,
            )
            return {}
        aside = set_aside(self.path, self._clock.now())
        log.warning(
            "%s %s; moved it aside to %s. The queue has no schedules until they are "
            "stored again (JobQueue.schedule, or a Worker's schedules=); the file set "
            "aside holds the old ones.",
            self.path,
            reason,
            aside,
        )
        self._cached = None
        return {}

    def write(
        self, schedules: dict[str, StoredSchedule], sync_later: list[Callable[[], None]] | None
    ) -> None:
        """Replace the file with ``schedules`` (the caller holds the queue lock; the
        syncs go to ``sync_later``, run once it is released)."""
        doc = {"schedules": {name: s.to_json() for name, s in sorted(schedules.items())}}
        plan = SyncPlan.SYNC_BEFORE_RENAME if self._fsync else SyncPlan.NONE
        write_atomic(self.path, dumps_indented(doc), plan, sync_later=sync_later)
        self._cached = None
