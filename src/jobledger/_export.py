"""Copying task sets and jobs between backends: ``jobledger export``.

:func:`export` opens both sides through the one door (:mod:`jobledger.backends`) and works
through the backend contracts only: task sets with ``keys()`` and ``load()`` on the source
and ``update(key, lambda _: record)`` on the target; jobs with ``all_records()`` on the
source and ``import_records()`` on the target, which stores them exactly as given (a
queue folder's index is rebuilt by the files backend itself).

A location is a folder or a ``postgresql://`` URL. A folder is a task-set state folder for
``what="tasksets"`` and a queue folder for ``what="jobs"``; ``what="all"`` needs two URLs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ._clock import SystemClock
from ._errors import ConfigError, JobLedgerError
from ._location import Location, classify
from ._taskset_record import TaskSetKey, TaskSetRecord
from ._words import plural
from .backends import open_job_backend, open_taskset_backend
from .backends._contract import TaskSetBackend

__all__ = ["WHATS", "ExportReport", "export"]

#: The values of ``what``.
WHATS = ("tasksets", "jobs", "all")


@dataclass
class ExportReport:
    """What :func:`export` copied, and what it kept because the target had it already."""

    tasksets: int = 0
    jobs: int = 0
    kept_tasksets: list[TaskSetKey] = field(default_factory=list)
    kept_jobs: list[str] = field(default_factory=list)


def export(source: str, target: str, what: str = "all", *, merge: bool = False) -> ExportReport:
    """Copy the task sets and/or jobs (``what``) of ``source`` into ``target`` as stored.

    Refuses (JobLedgerError) a target that already holds any of them unless ``merge``;
    with ``merge`` the target's existing task sets and jobs are kept and reported.
    """
    if what not in WHATS:
        raise ConfigError(f"what must be one of {', '.join(WHATS)}, got {what!r}")
    # A look-alike URL or one without a database is refused before anything is read or
    # written: it would otherwise become a folder of that name.
    src, dst = classify(source, "--from"), classify(target, "--to")
    from_url, to_url = src.is_url, dst.is_url
    if what == "all" and not (from_url and to_url):
        raise ConfigError(
            "a folder is either a task-set state folder or a queue folder: "
            "give --what tasksets or --what jobs when --from or --to is a folder"
        )
    if os.path.abspath(source) == os.path.abspath(target) or source == target:
        raise ConfigError(f"--from and --to are the same place: {source}")
    if not from_url and not os.path.isdir(source):
        raise ConfigError(
            f"the source folder {os.path.abspath(source)} does not exist; give an existing "
            "folder or a postgresql:// URL as --from"
        )
    report = ExportReport()
    if what in ("tasksets", "all"):
        _export_tasksets(_tasksets(src), _tasksets(dst), merge, report)
    if what in ("jobs", "all"):
        _export_jobs(src, dst, merge, report)
    return report


def _export_tasksets(
    src: TaskSetBackend, dst: TaskSetBackend, merge: bool, report: ExportReport
) -> None:
    existing = set(dst.keys())
    if existing and not merge:
        raise JobLedgerError(
            f"the target {dst.location} already holds {plural(len(existing), 'task set')}; "
            "export into an empty one, or give --merge to keep them and add the others"
        )
    for key in sorted(src.keys()):
        if key in existing:
            report.kept_tasksets.append(key)
            continue
        record = src.load(key)
        if record is None:
            continue  # deleted meanwhile
        dst.update(key, _replacement(record))
        report.tasksets += 1


def _replacement(record: TaskSetRecord) -> Callable[[TaskSetRecord | None], TaskSetRecord]:
    """A change for ``update`` that stores ``record`` as it is."""
    return lambda _old: record


def _tasksets(where: Location) -> TaskSetBackend:
    return open_taskset_backend(where, fsync=True, clock=SystemClock())


def _export_jobs(source: Location, target: Location, merge: bool, report: ExportReport) -> None:
    clock = SystemClock()
    src = open_job_backend(source, fsync=False, clock=clock)
    try:
        records = sorted(src.all_records(), key=lambda r: r.seq)
    finally:
        src.close()
    dst = open_job_backend(target, fsync=True, clock=clock)
    try:
        existing = {r.job_id for r in dst.all_records()}
        if existing and not merge:
            raise JobLedgerError(
                f"the target {dst.location} already holds {plural(len(existing), 'job')}; "
                "export into an empty one, or give --merge to keep them and add the others"
            )
        new = [r for r in records if r.job_id not in existing]
        report.kept_jobs.extend(r.job_id for r in records if r.job_id in existing)
        kept = set(dst.import_records(new))
        report.kept_jobs.extend(i for i in kept)
        report.jobs += len(new) - len(kept)
    finally:
        dst.close()
