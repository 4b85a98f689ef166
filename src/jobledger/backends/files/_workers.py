"""The files queue's workers: one OS lock per live worker process.

``<dir>/workers/<worker>.lock`` is held (flock on POSIX, msvcrt on Windows) for as long as
the worker's process lives; the OS drops it when the process dies, so a worker's liveness
is known, not guessed from a timestamp.
"""

from __future__ import annotations

import os

from ..._errors import InvalidNameError, StorageError
from ._atomic_write import is_temp_name
from ._locks import ProcessLock, is_held
from ._names import decode, encode, inside

__all__ = ["WorkerLocks", "usable_worker"]


def usable_worker(worker: object) -> bool:
    """Whether ``worker``, as read from a job file or the journal, can name a worker's
    lock file: a non-empty string short enough for a file name. A Running job whose
    worker is anything else (damaged, or edited by hand) belongs to no worker that could
    be alive: it is recovered as a dead worker's job."""
    if not isinstance(worker, str):
        return False
    try:
        encode(worker, "worker id")
    except InvalidNameError:
        return False
    return True


class WorkerLocks:
    """The liveness locks of a files queue's workers, in ``workers_dir``: taken by a
    worker's process, asked about by any process, and removed once free."""

    def __init__(self, workers_dir: str) -> None:
        self.workers_dir = workers_dir

    def _worker_lock_path(self, worker: str) -> str:
        return inside(self.workers_dir, encode(worker, "worker id") + ".lock")

    def register_worker(self, worker: str, since: str) -> ProcessLock:
        """Take the worker's liveness lock; held until released or the process dies."""
        lock = ProcessLock(self._worker_lock_path(worker))
        try:
            lock.acquire(since, wait=True)
        except OSError as exc:
            lock.release()  # taken, but its holder line could not be written (disk full)
            if isinstance(exc, StorageError):
                raise
            raise StorageError("register the worker in", lock.path, exc) from exc
        return lock

    def worker_alive(self, worker: str) -> bool:
        """Whether the worker's process still holds its liveness lock (False for a
        worker id no lock file can have: see ``usable_worker``)."""
        if not usable_worker(worker):
            return False
        return is_held(self._worker_lock_path(worker))

    def forget_worker(self, worker: str) -> None:
        """Remove a dead worker's lock file (only if its lock is free)."""
        if not usable_worker(worker):
            return  # it has no lock file
        lock = ProcessLock(self._worker_lock_path(worker))
        if lock.acquire(None, wait=False):
            lock.release()

    def live_workers(self) -> list[str]:
        """The workers whose liveness lock is held now."""
        try:
            names = os.listdir(self.workers_dir)
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if name.endswith(".lock") and not is_temp_name(name):
                worker = decode(name[: -len(".lock")])
                if self.worker_alive(worker):
                    out.append(worker)
        return sorted(out)
