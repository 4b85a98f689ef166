"""A files queue's limits: ``<dir>/limits.json`` and ``<dir>/rate_starts.json``, each
written whole, under the queue lock.

``limits.json`` (``JobQueue.set_limit``, ``set_rate_limit``)::

    {"queues": {"gpu": 4}, "rates": {"Report": {"n": 5, "per": 60.0, "key_field": "account"}}}

Replaced atomically (temp file, fsync, rename, folder fsync under ``durability="fsync"``)
under the queue lock. Every claim looks at it under that lock, by a stat: it is read again
only when its stat changed, so a claim in a queue without limits pays one stat of a
missing file, and one with limits reads nothing new either while they stay as they are.

``rate_starts.json``: the starts of rate-limited jobs still within their window::

    {"starts": {"Report": {"acct-1": ["2025-01-20T10:31:00.000Z", ...]}}}

written by the claims that start such jobs (the older starts dropped), under the queue
lock, not fsynced, as a claim's job file is not: a power cut that loses it loses only the
starts of claims whose workers died with the power, which may then start again early.

A file that is not what this library writes is set aside (``<name>.corrupt-<stamp>``) with
a warning by a writer, and the queue goes on without limits (or recent starts) until
they are stored again; a reader reports it and moves nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from ..._clock import Clock
from ..._json import dumps_indented
from ..._limits import Limits
from ._atomic_write import write_atomic
from ._index_format import parse_json
from ._reading import MAX_INDEX_BYTES, RefusedFile, read_bytes
from ._set_aside import set_aside
from ._sync_plan import SyncPlan

__all__ = ["LimitsFile", "RateStarts", "Starts"]

log = logging.getLogger("jobledger")

Stamp = tuple[int, int, int, int]
#: Recent starts: (job type, rate key) -> their times (ISO UTC).
Starts = dict[tuple[str, str], list[str]]


_NO_LIMITS = Limits()  # never changed: what a folder without limits.json reads


class _JsonFile:
    """One JSON document of the queue folder, cached by its stat (see the module
    docstring)."""

    name = ""

    def __init__(self, root: str, *, fsync: bool, clock: Clock, read_only: bool) -> None:
        self.path = os.path.join(root, self.name)
        self._fsync = fsync
        self._clock = clock
        self._read_only = read_only
        self._cached: tuple[Stamp, Any] | None = None

    def _doc(self, parse: Callable[[Any], Any], empty: Any) -> Any:
        """The parsed document (``empty`` when there is none), from the cache while the
        file's stat is unchanged: one stat per call (every claim makes one)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._cached = None
            return empty
        except OSError:
            stamp: Stamp | None = None  # read_bytes says what is wrong with it
        else:
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if self._cached is not None and self._cached[0] == stamp:
                return self._cached[1]
        try:
            data = read_bytes(self.path, MAX_INDEX_BYTES, self.name)
        except RefusedFile as exc:
            return self._damaged(exc.reason, empty)
        if data is None:
            return empty
        try:
            value = parse(parse_json(data))
        except ValueError as exc:
            return self._damaged(f"is corrupt ({exc})", empty)
        if stamp is not None:
            self._cached = (stamp, value)
        return value

    def _damaged(self, reason: str, empty: Any) -> Any:
        self._cached = None
        if self._read_only:
            log.warning(
                "%s %s; reading nothing from it. Nothing was changed: the queue's next "
                "write sets it aside.",
                self.path,
                reason,
            )
            return empty
        aside = set_aside(self.path, self._clock.now())
        log.warning("%s %s; moved it aside to %s.", self.path, reason, aside)
        return empty

    def _write(self, doc: Any, plan: SyncPlan, sync_later: list[Callable[[], None]] | None) -> None:
        write_atomic(self.path, dumps_indented(doc), plan, sync_later=sync_later)
        self._cached = None


class LimitsFile(_JsonFile):
    """``limits.json``: the queue's stored limits."""

    name = "limits.json"

    def read(self) -> Limits:
        """The stored limits (none when the file does not exist)."""
        limits: Limits = self._doc(Limits.from_json, _NO_LIMITS)
        return limits

    def write(self, limits: Limits, sync_later: list[Callable[[], None]] | None) -> None:
        """Replace the file (the caller holds the queue lock; syncs go to ``sync_later``)."""
        plan = SyncPlan.SYNC_BEFORE_RENAME if self._fsync else SyncPlan.NONE
        self._write(limits.to_json(), plan, sync_later)


def _starts_of(doc: Any) -> Starts:
    if not isinstance(doc, dict) or not isinstance(doc.get("starts"), dict):
        raise ValueError("it is not an object with a 'starts' object")
    out: Starts = {}
    for job_type, keys in doc["starts"].items():
        if not isinstance(keys, dict):
            raise ValueError(f"the starts of {job_type!r} are not an object")
        for key, times in keys.items():
            if not (isinstance(times, list) and all(isinstance(t, str) for t in times)):
                raise ValueError(f"the starts of {job_type!r}, key {key!r}, are not times")
            out[(job_type, key)] = list(times)
    return out


class RateStarts(_JsonFile):
    """``rate_starts.json``: the recent starts of rate-limited jobs."""

    name = "rate_starts.json"

    def read(self) -> Starts:
        """The recent starts by (type, key)."""
        starts: Starts = self._doc(_starts_of, {})
        return {k: list(v) for k, v in starts.items()}

    def write(self, starts: Starts, sync_later: list[Callable[[], None]] | None) -> None:
        """Replace the file (under the queue lock; not fsynced: see the module docstring)."""
        doc: dict[str, dict[str, list[str]]] = {}
        for (job_type, key), times in sorted(starts.items()):
            if times:
                doc.setdefault(job_type, {})[key] = sorted(times)
        self._write({"starts": doc}, SyncPlan.NONE, sync_later)
