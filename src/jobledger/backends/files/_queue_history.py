"""A files queue's history: counting jobs by status, pruning finished jobs, clearing it all.

Functions over the queue's index (``_queue_index.py``), called by the backend under its
queue lock (but ``prunable_ids``, which reads history without it); they take what they
need (the index, a job file reader, paths) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from ..._errors import JobLedgerError, StorageError
from ..._faults import point
from ..._job_record import JobRecord, JobStatus
from ..._limits import DEFAULT_QUEUE
from ._atomic_write import remove
from ._job_files import job_ids_changed_since
from ._queue_index import QueueIndex, Read, finished_key
from ._reading import read_bytes

__all__ = ["clear", "counts", "counts_by_queue", "prunable_ids", "prune"]


def counts(index: QueueIndex) -> dict[str, int]:
    """Jobs per status, from the index only (never reads history)."""
    out = {
        JobStatus.QUEUED.value: len(index.order.queued),
        JobStatus.RUNNING.value: len(index.order.running),
    }
    for key, n in index.finished.items():  # "Completed", "Completed:gpu"...
        status = key.partition(":")[0]
        out[status] = out.get(status, 0) + n
    return out


def counts_by_queue(index: QueueIndex) -> dict[str, dict[str, int]]:
    """Jobs per queue and status, from the index only: the live ones by their entries,
    the finished ones by their counts (kept per queue)."""
    out: dict[str, dict[str, int]] = {}
    for queue, live in index.order.live_by_queue().items():
        out[queue] = {s.value: live.get(s.value, 0) for s in JobStatus}
    for key, n in index.finished.items():
        status, _, queue = key.partition(":")
        if n:
            counts = out.setdefault(queue or DEFAULT_QUEUE, {s.value: 0 for s in JobStatus})
            counts[status] += n
    return dict(sorted(out.items()))


def prunable_ids(jobs_dir: str, path_of: Callable[[str], str], cutoff: str) -> list[str]:
    """The ids of the job files that may hold a job finished before ``cutoff`` (ISO UTC),
    sorted: read WITHOUT the queue lock, which a prune must not hold while it reads all
    of history (20,000 job files: 0.8 s). A file is only a candidate here: ``prune``
    reads it again under the lock, and a file that cannot be read or parsed now is a
    candidate too, for that read to deal with as every other does (set aside, warn)."""
    out = []
    for job_id in job_ids_changed_since(jobs_dir, 0):
        try:
            data = read_bytes(path_of(job_id))
            if data is None:
                continue  # gone since it was listed
            record = JobRecord.loads(data)
        except (StorageError, ValueError):
            out.append(job_id)
            continue
        if not record.status.is_live and (record.finished or "") < cutoff:
            out.append(job_id)
    out.sort()
    return out


def prune(
    index: QueueIndex,
    job_ids: list[str],
    cutoff: str,
    read: Read,
    job_path: Callable[[str], str],
) -> int:
    """Delete those of ``job_ids`` whose job finished before ``cutoff`` (ISO UTC); how
    many. Under the queue lock, with the index in sync: each file is read again, since the
    job may have been retried (the index lists it) or changed since it was found.

    The ``finished`` time comes from the job file, never its mtime: the queue's clock
    wrote it, which file mtimes (the disk's clock) cannot stand in for: an injected clock,
    a network file system's clock or a restored file would make a job never pruned."""
    doomed = sorted(
        (
            r
            for r in map(read, (i for i in job_ids if i not in index.order.entries))
            if r is not None and not r.status.is_live and (r.finished or "") < cutoff
        ),
        key=lambda r: r.job_id,
    )
    if not doomed:
        return 0
    n = 0
    deltas: dict[str, int] = {}
    forgotten: dict[str, str] = {}  # job id -> its unique key, for the journal
    index.mark_pruning()
    refused: StorageError | None = None
    try:
        for record in doomed:
            path = job_path(record.job_id)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass  # gone already: still counted until now
            except OSError as exc:
                # Stop here, kept and counted as it is; what is deleted is counted out.
                refused = StorageError("delete", path, exc)
                break
            point("queue.pruned_file")
            value = finished_key(record)
            index.move_counts({value: -1})
            deltas[value] = deltas.get(value, 0) - 1
            if record.unique_key is not None:
                index.forget_key(record.unique_key, record.job_id)
                forgotten[record.job_id] = record.unique_key
            n += 1
    finally:
        # Closes the prune begun by the mark, however the loop ended (a refusal, a
        # KeyboardInterrupt): the counts of what went are written down, and other
        # processes forget the pruned jobs' keys.
        index.log_quietly(list(forgotten), deltas, forgotten)
    if refused is not None:
        raise refused
    return n


def clear(index: QueueIndex, workers_dir: str, alive: list[str]) -> int:
    """Delete every job file, the workers' lock files and the index; refuses while a
    worker is ``alive``. How many job files were deleted."""
    if alive:
        raise JobLedgerError(
            f"refusing to clear the queue in {index.root}: worker(s) {', '.join(alive)} "
            "are alive. Stop them first (the folder may be cleared only when no worker "
            "runs)."
        )
    n = 0
    for folder in (index.jobs_dir, workers_dir):
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(folder):
                remove(os.path.join(folder, name))
                n += folder == index.jobs_dir
    index.clear()
    return n
