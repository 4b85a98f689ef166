"""The one door to storage: a location (a folder or a PostgreSQL URL) in, a backend out.

:class:`~jobledger.JobQueue`, :class:`~jobledger.JobState`, the CLI and ``jobledger
export`` open their backends here and nowhere else, so a folder and a URL are told apart
once (by :func:`jobledger._location.classify`, whose errors are kept) and every caller gets
the same backend for the same location. The backends are imported on first use: the
PostgreSQL ones need psycopg, which a folder never does.
"""

from __future__ import annotations

import os

from .._clock import Clock
from .._errors import ConfigError
from .._location import Location, classify
from ._contract import JobBackend, TaskSetBackend

__all__ = ["open_job_backend", "open_taskset_backend"]


def _where(location: str | os.PathLike[str] | Location, what: str) -> Location:
    return location if isinstance(location, Location) else classify(location, what)


def open_job_backend(
    location: str | os.PathLike[str] | Location,
    *,
    fsync: bool,
    clock: Clock,
    read_only: bool = False,
    worker_lease: float | None = None,
    what: str = "the location",
) -> JobBackend:
    """The job backend of ``location``: a queue folder, or a ``postgresql://`` URL naming a
    database (nothing is read, written or connected until first use).

    ``fsync=False`` is ``durability="flush"``. A ``read_only`` backend never locks,
    recovers, repairs, creates or migrates anything. ``worker_lease`` (seconds) is how long
    a PostgreSQL worker that stopped renewing counts as alive (None: the default); a folder
    refuses one, since its workers' liveness is an OS lock. ``what`` names the setting in
    messages. ConfigError for a location that is neither (see ``classify``)."""
    where = _where(location, what)
    if where.is_url:
        from .postgres import job_backend

        return job_backend(
            where.value, fsync=fsync, clock=clock, worker_lease=worker_lease, read_only=read_only
        )
    if worker_lease is not None:
        raise ConfigError(
            "worker_lease applies to a PostgreSQL queue only: in a folder, a "
            "worker's liveness is its OS lock, which needs no lease"
        )
    from .files.jobs import FilesJobBackend

    return FilesJobBackend(where.value, fsync=fsync, clock=clock, read_only=read_only)


def open_taskset_backend(
    location: str | os.PathLike[str] | Location,
    *,
    fsync: bool,
    clock: Clock,
    read_only: bool = False,
    what: str = "the location",
) -> TaskSetBackend:
    """The task-set backend of ``location``: a state folder, or a ``postgresql://`` URL
    naming a database (nothing is read, written or connected until first use).

    ``fsync=False`` is ``durability="flush"``. A ``read_only`` backend never moves,
    repairs, creates or migrates anything. ``what`` names the setting in messages.
    ConfigError for a location that is neither (see ``classify``)."""
    where = _where(location, what)
    if where.is_url:
        from .postgres import taskset_backend

        return taskset_backend(where.value, fsync=fsync, clock=clock, read_only=read_only)
    from .files.tasksets import FilesTaskSetBackend

    return FilesTaskSetBackend(where.value, fsync=fsync, clock=clock, read_only=read_only)
