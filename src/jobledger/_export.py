"""Copying task sets and jobs between backends: ``jobledger export``.

:func:`export` works through the backend contracts: task sets with ``keys()`` and
``load()`` on the source and ``update(key, lambda _: record)`` on the target; jobs with
``all_records()`` on the source, and on the target either the backend's
``import_records`` (PostgreSQL, :class:`~jobledger.backends._contract.JobImporter`) or, for
a queue folder, job files written with ``write_atomic`` + ``JobRecord.dumps()`` into
``<dir>/jobs/``, after which ``queue.json`` is removed and rebuilt by opening the queue.

A location is a folder or a ``postgresql://`` URL. A folder is a task-set state folder for
``what="tasksets"`` and a queue folder for ``what="jobs"``; ``what="all"`` needs two URLs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ._errors import ConfigError, JobLedgerError
from ._jobs import JobRecord
from ._location import classify
from ._queue import JobQueue
from ._records import TaskSetKey, TaskSetRecord
from ._tasksets import JobState
from ._words import plural
from .backends._contract import JobBackend, JobImporter, TaskSetBackend
from .backends.files._atomic_write import write_atomic
from .backends.files._names import encode

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


def _tasksets(location: str) -> TaskSetBackend:
    if classify(location).is_url:
        return JobState(url=location).backend
    return JobState(dir=location).backend


def export(source: str, target: str, what: str = "all", *, merge: bool = False) -> ExportReport:
    """Copy the task sets and/or jobs (``what``) of ``source`` into ``target`` as stored.

    Refuses (JobLedgerError) a target that already holds any of them unless ``merge``;
    with ``merge`` the target's existing task sets and jobs are kept and reported.
    """
    if what not in WHATS:
        raise ConfigError(f"what must be one of {', '.join(WHATS)}, got {what!r}")
    # A look-alike URL or one without a database is refused before anything is read or
    # written: it would otherwise become a folder of that name.
    from_url = classify(source, "--from").is_url
    to_url = classify(target, "--to").is_url
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
        _export_tasksets(_tasksets(source), _tasksets(target), merge, report)
    if what in ("jobs", "all"):
        _export_jobs(source, target, merge, report)
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


def _export_jobs(source: str, target: str, merge: bool, report: ExportReport) -> None:
    src = JobQueue(source, durability="flush")
    try:
        records = sorted(src.backend.all_records(), key=lambda r: r.seq)
    finally:
        src.backend.close()
    dst = JobQueue(target)
    try:
        existing = {r.job_id for r in dst.backend.all_records()}
        if existing and not merge:
            raise JobLedgerError(
                f"the target {dst.dir} already holds {plural(len(existing), 'job')}; export into "
                "an empty one, or give --merge to keep them and add the others"
            )
        new = [r for r in records if r.job_id not in existing]
        report.kept_jobs.extend(r.job_id for r in records if r.job_id in existing)
        if isinstance(dst.backend, JobImporter):
            kept = set(dst.backend.import_records(new))
            report.kept_jobs.extend(i for i in kept)
            report.jobs += len(new) - len(kept)
        else:
            _write_job_files(dst.backend, dst.dir, new)
            report.jobs += len(new)
    finally:
        dst.backend.close()
    if new and not isinstance(dst.backend, JobImporter):
        # A missing queue.json is rebuilt from the job files on the queue's next opening.
        rebuilt = JobQueue(target)
        try:
            rebuilt.backend.checkpoint()  # opens the queue: queue.json rebuilt from the files
        finally:
            rebuilt.backend.close()


def _write_job_files(backend: JobBackend, root: str, records: list[JobRecord]) -> None:
    """Write each record as ``<root>/jobs/<job_id>.json``, then drop ``queue.json``."""
    jobs_dir = os.path.join(root, "jobs")
    os.makedirs(jobs_dir, exist_ok=True)
    for record in records:
        path = os.path.join(jobs_dir, encode(record.job_id, "job id") + ".json")
        write_atomic(path, record.dumps())
    if records:
        backend.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(root, "queue.json"))
