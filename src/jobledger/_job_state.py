"""JobState: where task sets live and how they are kept; the door to each TaskSet.

It opens task sets (:class:`TaskSet`, in ``_taskset.py``, holds the policy of one), reads
many sets at once without writing, and maintains the state (cleanup, reset, doctor).
Storage is reached only through the thin backend contract in ``backends/_contract.py``.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from ._clock import Clock, SystemClock, resolve_timezone, today_in
from ._config import DEFAULT_DIR, DURABILITIES, read_config
from ._durations import to_days, to_timedelta, to_wait
from ._errors import ConfigError, LeaseHolder
from ._inputs import check_name
from ._location import Location, classify, is_postgres_url, shown
from ._log import verbose_from_env
from ._taskset import TaskSet
from ._taskset_record import RunLease, TaskSetKey, TaskSetRecord, parse_date
from .backends import open_taskset_backend
from .backends._contract import Finding, TaskSetBackend
from .backends._null import NullTaskSetBackend

__all__ = ["JobState"]


def _one_place(dir: str | os.PathLike[str] | None, url: str | None) -> Location | None:
    """The PostgreSQL URL a JobState uses (classified), or None for a folder; ConfigError
    for both a ``dir`` and a ``url``, for a ``url`` that is not a PostgreSQL URL naming a
    database, and for a ``dir`` that looks like another kind of URL."""
    if url is not None:
        if dir is not None:
            raise ConfigError(
                "JobState got both dir and url: give the folder (dir=...) or the PostgreSQL "
                "URL (url=...), not both"
            )
        if not isinstance(url, str) or not is_postgres_url(url):
            shown_url = shown(url) if isinstance(url, str) else repr(url)
            raise ConfigError(
                f"JobState's url must be a PostgreSQL URL such as "
                f"postgresql://user@host:5432/dbname, got {shown_url!r}; for a folder, "
                "give dir=... instead"
            )
        return classify(url, "JobState's url")
    if dir is None:
        return None
    where = classify(dir, "JobState's dir")
    return where if where.is_url else None


class JobState:
    """Where task sets live and how they are kept.

    ``JobState(dir=None, enabled=True, timezone=None, durability="fsync", url=None)``

    - ``dir``: the state folder (created on first write); ``None`` (not given) or ``""``
      means ``sessions/job-state`` under the current directory. Relative paths are
      resolved now. A ``postgresql://`` URL here is taken as ``url``; a string that looks
      like another URL (``mysql://...``, ``postgresql:/host/db``) raises ConfigError.
    - ``enabled=False``: every call works, nothing is read or written, every task pending.
    - ``timezone``: IANA name that decides what "today" is; ``None`` is local time.
    - ``durability``: ``"fsync"`` (survives power loss) or ``"flush"`` (survives a
      process crash, not an OS crash; no fsync).
    - ``url``: a ``postgresql://`` URL naming a database: keep the task sets in
      PostgreSQL instead of a folder (psycopg 3; from a clone, ``pip install -e
      '.[postgres]'``); the password never appears in messages. Giving both ``dir`` and
      ``url`` raises ConfigError: one place or the other, never a silent choice.
    - ``clock``: an object with ``now()`` and ``monotonic()``, for tests.

    Constructing a JobState reads and writes nothing. Its reading methods (``keys``,
    ``records``, ``holder``, ``usage``) never write either: they go through a read-only
    twin of the backend, which reports a corrupt file (and shows its last good generation)
    without moving or restoring it, and never migrates a database. Opening a set with
    :meth:`taskset` to work on it repairs as before.
    """

    def __init__(
        self,
        dir: str | os.PathLike[str] | None = None,
        enabled: bool = True,
        timezone: str | None = None,
        durability: str = "fsync",
        *,
        clock: Clock | None = None,
        backend: TaskSetBackend | None = None,
        url: str | None = None,
    ) -> None:
        if durability not in DURABILITIES:
            raise ConfigError(f"durability must be 'fsync' or 'flush', got {durability!r}")
        if not isinstance(enabled, bool):
            raise ConfigError(f"enabled must be True or False, got {enabled!r}")
        verbose_from_env()
        self.enabled = enabled
        self.durability = durability
        self.timezone = timezone
        self._tz = resolve_timezone(timezone)
        self.clock: Clock = clock or SystemClock()
        in_db = _one_place(dir, url)
        if in_db is not None:
            dir = None
        self.dir = os.path.abspath(os.fspath(dir or "") or DEFAULT_DIR)
        # Where the backends open: the classified URL, or the folder.
        self._location: Location = in_db or Location("folder", self.dir, self.dir)
        self._reader: TaskSetBackend | None = None
        self._reader_guard = threading.Lock()
        if backend is not None:
            self.backend: TaskSetBackend = backend
            self._reader = backend  # a backend given as is: it is its own reader
        elif not enabled:
            self.backend = NullTaskSetBackend()
            self._reader = self.backend
        else:
            self.backend = self._make_backend(read_only=False)

    def _make_backend(self, *, read_only: bool) -> TaskSetBackend:
        return open_taskset_backend(
            self._location,
            fsync=self.durability == "fsync",
            clock=self.clock,
            read_only=read_only,
        )

    def _reading(self) -> TaskSetBackend:
        """The read-only twin of the backend (built on first read): it never moves,
        repairs, migrates or creates anything."""
        with self._reader_guard:
            if self._reader is None:
                self._reader = self._make_backend(read_only=True)
            return self._reader

    def close(self) -> None:
        """Release the backends' connections (a database's; a folder holds none open).
        The JobState stays usable: they are opened again on next use."""
        for backend in {id(b): b for b in (self.backend, self._reader) if b is not None}.values():
            close = getattr(backend, "close", None)
            if callable(close):
                close()

    @classmethod
    def from_config(
        cls, source: str | os.PathLike[str] | Mapping[str, Any], *, clock: Clock | None = None
    ) -> JobState:
        """A JobState from a config's ``jobState`` block: a JSON file path or a parsed mapping.

        Reads ``{"jobState": {"enabled": ..., "dir": ..., "timezone": ..., "durability": ...,
        "url": ...}}`` (``url``: a PostgreSQL URL, given instead of ``dir``); an unknown
        key, a wrong type or value, both ``dir`` and ``url``, or an unreadable file raises
        :class:`ConfigError` naming the file. A file without a ``jobState`` block is read
        as every default, with a warning naming it.
        """
        cfg = read_config(source)
        return cls(
            dir=cfg.dir if cfg.url is None else None,
            enabled=cfg.enabled,
            timezone=cfg.timezone,
            durability=cfg.durability,
            clock=clock,
            url=cfg.url,
        )

    def __repr__(self) -> str:
        return f"JobState({self.backend.location!r}, enabled={self.enabled})"

    def today(self) -> dt.date:
        """Today in the configured time zone."""
        return today_in(self.clock, self._tz)

    def _date(self, date: dt.date | str | None) -> str:
        if date is None:
            return self.today().isoformat()
        try:
            return parse_date(date)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    def taskset(
        self,
        account: str,
        type: str,
        tasks: Iterable[str] | None = None,
        date: dt.date | str | None = None,
        *,
        wait: bool | dt.timedelta | float = False,
    ) -> TaskSet:
        """Open the task set of ``account`` and ``type`` for ``date`` (default: today).

        ``tasks`` plans the list; planning again appends new tasks and never forgets
        completed ones. The date is fixed now, so a run that crosses midnight stays on its
        day. Use ``with`` to hold the run lease; ``wait`` says how long ``with`` waits for
        another live holder (False: raise AlreadyRunning at once; True: forever; a
        timedelta or seconds).
        """
        key = TaskSetKey(check_name(account, "account"), check_name(type, "type"), self._date(date))
        planned = None if tasks is None else [check_name(t, "task") for t in tasks]
        return TaskSet(self, key, planned, to_wait(wait))

    # -- reading many sets ----------------------------------------------------------------

    def keys(self, account: str | None = None) -> list[TaskSetKey]:
        """Every stored set's (account, type, date), sorted. Reads only."""
        if account is not None:
            check_name(account, "account")
        return sorted(self._reading().keys(account))

    def records(
        self,
        account: str | None = None,
        since: dt.date | str | None = None,
        until: dt.date | str | None = None,
    ) -> list[TaskSetRecord]:
        """The stored records (of one account, dated ``since`` to ``until``, both
        inclusive and both optional), sorted by key. Only the records of those days are
        read (on PostgreSQL in one query), so a window of days costs what it holds, not
        the whole history. A record read before and unchanged since is not parsed again:
        the same object is returned, so treat the records as read-only (``copy()`` one to
        change it).

        Reads only: a corrupt file is named in a warning and its last good generation
        (``.bak``) returned in its place; nothing is moved or restored (``doctor`` does
        that, as does opening the set with :meth:`taskset` to work on it)."""
        if account is not None:
            check_name(account, "account")
        first = self._bound(since, "since") if since is not None else "0001-01-01"
        last = self._bound(until, "until") if until is not None else "9999-12-31"
        if first > last:
            return []
        return sorted(self._reading().load_range(first, last, account), key=lambda r: r.key)

    @staticmethod
    def _bound(value: dt.date | str, what: str) -> str:
        try:
            return parse_date(value)
        except ValueError as exc:
            raise ConfigError(f"{what}: {exc}") from exc

    def holder(self, key: TaskSetKey) -> LeaseHolder | None:
        """Who holds the run lease of a set now, or None. Reads only."""
        return self._reading().holder(key)

    def leases(self) -> list[RunLease]:
        """Every run lease stored now, sorted by key: those of live runs, and those left
        by a holder that died without giving it back (``alive`` False: killed, or its
        PostgreSQL session lost), until the set's next run takes it or ``doctor`` repairs.
        Reads only: no lease is taken or removed."""
        return sorted(self._reading().leases(), key=lambda lease: lease.key)

    # -- maintenance ----------------------------------------------------------------------

    def cleanup(
        self,
        older_than: dt.timedelta | float | None = None,
        dry_run: bool = False,
        *,
        days: float | None = None,
    ) -> list[TaskSetKey]:
        """Delete sets whose date is more than ``older_than`` before today. Returns the
        keys deleted (or that would be, with ``dry_run``).

        Pass a ``datetime.timedelta`` (``cleanup(timedelta(days=7))``) or ``days=7``. A bare
        number as ``older_than`` still means days, as it always has here, but is
        deprecated (DeprecationWarning): a future release reads it as seconds, like every
        other duration of the API (``JobQueue.prune``).
        """
        if (older_than is None) == (days is None):
            raise ConfigError(
                "cleanup needs exactly one of older_than (a datetime.timedelta) or days=, "
                f"got older_than={older_than!r}, days={days!r}"
            )
        if days is not None:
            age = dt.timedelta(days=to_days(days, "days"))
        elif isinstance(older_than, dt.timedelta):
            age = to_timedelta(older_than, "older_than")
        else:  # a bare number: days, deprecated
            assert older_than is not None
            age = dt.timedelta(days=to_days(older_than, "older_than"))
            warnings.warn(
                f"JobState.cleanup({older_than!r}): a bare number is read as days for now, "
                "but a future release will read it as seconds (like JobQueue.prune); pass "
                f"a timedelta, e.g. cleanup(datetime.timedelta(days={older_than!r})), or "
                f"cleanup(days={older_than!r})",
                DeprecationWarning,
                stacklevel=2,
            )
        cutoff = (self.today() - age).isoformat()
        doomed = [k for k in sorted(self.backend.keys()) if k.date < cutoff]
        if not dry_run:
            for key in doomed:
                self.backend.delete(key)
        return doomed

    def reset(
        self,
        account: str | None = None,
        *,
        type: str | None = None,
        date: dt.date | str | None = None,
    ) -> list[TaskSetKey]:
        """Delete every set of ``account`` (every set when None), or only those of one
        ``type`` and/or one ``date``: ``reset("alice", type="daily", date="2025-01-20")``
        resets that one set, whose next run starts it anew. If any of them has its run
        lease held by a live process, AlreadyRunning names it and nothing is deleted. (A
        run that starts while the others are being deleted still keeps its own set.)"""
        if account is not None:
            check_name(account, "account")
        if type is not None:
            check_name(type, "type")
        day = self._bound(date, "date") if date is not None else None
        keys = sorted(
            k
            for k in self.backend.keys(account)
            if (type is None or k.type == type) and (day is None or k.date == day)
        )
        for key in keys:
            if self.backend.holder(key) is not None:
                self.backend.delete(key)  # refused under the live lease: AlreadyRunning
        deleted = []
        for key in keys:
            self.backend.delete(key)
            deleted.append(key)
        return deleted

    def usage(self) -> tuple[int, int]:
        """(bytes, files) the state takes up. Reads only."""
        return self._reading().usage()

    def doctor(self, repair: bool = True) -> list[Finding]:
        """Check every stored file; repair corrupt files, stray temp files, stale leases
        (with ``repair``). A corrupt file set aside, now or earlier, is reported as a
        ``note`` finding (never repaired: a person inspects it, then deletes it)."""
        return self.backend.check(repair)
