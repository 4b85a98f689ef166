"""The files queue's workers: one OS lock per live worker process.

``<dir>/workers/<worker>.lock`` is held (flock on POSIX, msvcrt on Windows) for as long as
the worker's process lives; the OS drops it when the process dies, so a worker's liveness
is known, not guessed from a timestamp.
"""

from __future__ import annotations

import os

from ..._errors import StorageError
from ._atomic import is_temp_name
from ._locks import HOST, ProcessLock, is_held
from ._names import decode, encode, inside

__all__ = ["WorkerLocks", "new_worker_id"]


def new_worker_id(pid: int) -> str:
    """A unique worker id: host, pid and a random part (pids are reused)."""
    return f"{HOST}-{pid}-{os.urandom(4).hex()}"


class WorkerLocks:
    """The worker primitives of the files job backend (a mixin: it needs ``workers_dir``)."""

    workers_dir: str

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
        """Whether the worker's process still holds its liveness lock."""
        return is_held(self._worker_lock_path(worker))

    def forget_worker(self, worker: str) -> None:
        """Remove a dead worker's lock file (only if its lock is free)."""
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
