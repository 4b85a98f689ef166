"""A files queue's history: counting jobs by status, pruning finished jobs, clearing it all.

Functions over the queue's index (``_queue_index.py``), called by the backend under its
queue lock; they take what they need (the index, a job file reader, paths) and nothing
else.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from ..._errors import JobLedgerError, StorageError
from ..._faults import point
from ..._job_record import JobStatus
from ._atomic_write import remove
from ._queue_index import QueueIndex, Read

__all__ = ["clear", "counts", "prune"]


def counts(index: QueueIndex) -> dict[str, int]:
    """Jobs per status, from the index only (never reads history)."""
    out = {
        JobStatus.QUEUED.value: len(index.order.queued),
        JobStatus.RUNNING.value: len(index.order.running),
    }
    out.update(index.finished)
    return out


def prune(index: QueueIndex, cutoff: str, read: Read, job_path: Callable[[str], str]) -> int:
    """Delete finished jobs that finished before ``cutoff`` (ISO UTC); how many.

    Reads every unlisted job file: the ``finished`` time comes from the queue's clock,
    which file mtimes (the disk's clock) cannot stand in for: an injected clock, a
    network file system's clock or a restored file would make a job never pruned."""
    doomed = sorted(
        (
            r
            for r in index.unlisted_records(read)
            if not r.status.is_live and (r.finished or "") < cutoff
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
        value = record.status.value
        index.move_counts({value: -1})
        deltas[value] = deltas.get(value, 0) - 1
        if record.unique_key is not None:
            index.forget_key(record.unique_key, record.job_id)
            forgotten[record.job_id] = record.unique_key
        n += 1
    # Closes the prune begun by the mark; other processes forget the pruned jobs' keys.
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
