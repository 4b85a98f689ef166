"""A files queue's lock, ``<dir>/.queue.lock``: every change to the queue happens under it.

An OS lock on the file (flock on POSIX, msvcrt on Windows) excludes other processes, and a
thread lock inside the process excludes other threads; the holding thread may take it
again. Durable replaces made while it is held are synced once it is released (see
``write_atomic``'s ``sync_later``), so that the syncs of several holders share the disk's
journal commits instead of queueing behind each other.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable, Iterator

from ..._errors import StorageError
from ._locks import lock_fd, unlock_fd
from ._syncs import run_syncs

__all__ = ["QueueLock"]


class QueueLock:
    """The queue lock of one queue object.

    ``held(on_taken)`` holds it (``on_taken`` runs first, once the OS lock is ours; not
    when re-entered); ``syncs`` collects, while it is held, the syncs to run once it is
    released; ``mine()`` says whether this process has the lock file open; ``close()``
    releases it. In a forked child, the inherited descriptor is let go of (it shares the
    parent's lock: the two processes would not exclude each other) and ``after_fork``
    runs before a new one is opened.
    """

    def __init__(self, root: str, jobs_dir: str, *, after_fork: Callable[[], None]) -> None:
        self.path = os.path.join(root, ".queue.lock")
        self.jobs_dir = jobs_dir
        self.thread = threading.RLock()
        self.fd: int | None = None
        self._pid = os.getpid()
        self._depth = 0
        self._after_fork = after_fork
        self.syncs: list[Callable[[], None]] | None = None  # durable replaces to finish

    def mine(self) -> bool:
        """Whether this process opened the lock file (what it holds is its to write)."""
        return self.fd is not None and self._pid == os.getpid()

    @contextlib.contextmanager
    def held(self, on_taken: Callable[[], None]) -> Iterator[None]:
        """Hold the lock; the syncs of the durable replaces made inside run after it is
        released, before this returns: the caller still gets a durable write."""
        syncs: list[Callable[[], None]] = []
        failed = False
        try:
            with self.thread:
                if self._depth:  # re-entered by this thread: the OS lock is already ours
                    self._depth += 1
                    try:
                        yield
                    finally:
                        self._depth -= 1
                    return
                fd = self._file()
                lock_fd(fd)
                self._depth = 1
                self.syncs = syncs
                try:
                    on_taken()
                    yield
                finally:
                    self._depth = 0
                    self.syncs = None
                    unlock_fd(fd)
        except BaseException:
            failed = True
            raise
        finally:
            if failed:
                # The body's own error is the one to report; the syncs still run.
                with contextlib.suppress(Exception):
                    run_syncs(syncs)
            else:
                run_syncs(syncs)

    def _file(self) -> int:
        if self._pid != os.getpid():
            # Inherited through fork(): the descriptor shares the parent's lock, so the two
            # processes would not exclude each other. Open our own.
            self._pid = os.getpid()
            if self.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self.fd)
            self.fd = None
            self._after_fork()
        if self.fd is None:
            try:
                os.makedirs(self.jobs_dir, exist_ok=True)
            except OSError as exc:
                if isinstance(exc, FileExistsError):  # a file where jobs/ should be
                    exc = NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
                raise StorageError("create the folder", self.jobs_dir, exc) from exc
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StorageError("open the queue lock", self.path, exc) from exc
        return self.fd

    def close(self) -> None:
        """Release the lock file's descriptor."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = None
