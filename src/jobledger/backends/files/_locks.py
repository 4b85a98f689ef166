"""Process locks on lock files: liveness is known from the OS, never guessed from timestamps.

A held lock means a live holder. When the holder dies, by SIGKILL or power cut alike, the
OS drops the lock, so the next process takes it at once. The lock file holds a line of JSON
naming the holder (pid, host, since) for error messages; it is advisory text, the lock is
the truth.

The holder unlinks its lock file when it releases, so folders do not fill with them. That
is safe because a taker checks, after locking, that the file it locked is still the one at
the path (same inode); if not, it locked a file someone just unlinked, and tries again.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

from ..._errors import LeaseHolder, StorageError
from .._identity import HOST
from ._atomic_write import make_dirs
from ._reading import MAX_LOCK_FILE_BYTES, read_regular

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    from ._locks_windows import lock as _lock
    from ._locks_windows import try_lock as _try_lock
    from ._locks_windows import unlock as _unlock
else:
    from ._locks_unix import lock as _lock
    from ._locks_unix import try_lock as _try_lock
    from ._locks_unix import unlock as _unlock

__all__ = [
    "HOST",
    "ProcessLock",
    "holder_alive",
    "is_held",
    "live_holder",
    "lock_fd",
    "pid_alive",
    "read_holder",
    "unlock_fd",
]

#: Lock and unlock an already open file (for locks held around short critical sections).
lock_fd = _lock
unlock_fd = _unlock

_POLL = 0.05


class ProcessLock:
    """An exclusive lock on ``path`` held by this process until :meth:`release`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = os.getpid()

    def _forked(self) -> bool:
        # A child of fork() inherits the descriptor, and the lock with it, but the lock is
        # the parent's: the child must neither count on it nor release it.
        if self._fd is not None and self._pid != os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)  # the child's copy only; the parent keeps its lock
            self._fd = None
            return True
        return False

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now (in this process)."""
        self._forked()
        return self._fd is not None

    def acquire(self, since: str | None, wait: bool | float = False) -> bool:
        """Take the lock; ``wait`` is False (try once), True (forever) or seconds.

        Returns False when another live process holds it and the wait ran out. ``since``
        is written into the file with this process's pid and host (None: write nothing).
        """
        self._forked()
        if self._fd is not None:
            return True
        deadline = None if isinstance(wait, bool) else time.monotonic() + float(wait)
        while True:
            fd = self._open()
            if wait is True:
                _lock(fd)
                got = True
            else:
                got = _try_lock(fd)
            if got and self._same_file(fd):
                self._fd = fd
                self._pid = os.getpid()
                if since is not None:
                    self._write_holder(fd, since)
                return True
            os.close(fd)
            if got:
                continue  # we locked a file its holder had just unlinked; take the new one
            if wait is False or (deadline is not None and time.monotonic() >= deadline):
                return False
            time.sleep(_POLL)

    def release(self, unlink: bool = True) -> None:
        """Drop the lock and (by default) remove the lock file."""
        if self._forked():
            return
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if unlink:
            # Still under our lock, see the module docstring. Windows cannot unlink an open
            # file: there the file stays, unlocked.
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        try:
            _unlock(fd)
        finally:
            os.close(fd)

    def _open(self) -> int:
        try:
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                make_dirs(os.path.dirname(self.path), fsync=False)
                return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError("open the lock file", self.path, exc) from exc

    def _same_file(self, fd: int) -> bool:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (mine.st_ino, mine.st_dev) == (on_disk.st_ino, on_disk.st_dev)

    @staticmethod
    def _write_holder(fd: int, since: str) -> None:
        text = json.dumps({"pid": os.getpid(), "host": HOST, "since": since}) + "\n"
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, text.encode())


def read_holder(path: str) -> LeaseHolder:
    """Who the lock file says holds it (best effort: the text may be mid-write)."""
    try:
        # Only a regular file, never blocking (a FIFO here would hang `status`).
        raw = read_regular(path, MAX_LOCK_FILE_BYTES, "a lock file") or b""
        data = json.loads(raw.split(b"\n", 1)[0] or b"{}")
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    pid = data.get("pid")
    host = data.get("host")
    since = data.get("since")
    return LeaseHolder(
        pid=pid if isinstance(pid, int) else None,
        host=host if isinstance(host, str) else None,
        since=since if isinstance(since, str) else None,
    )


def is_held(path: str) -> bool:
    """Whether a live process holds the lock at ``path`` (False if there is no file)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        if _try_lock(fd):
            _unlock(fd)
            return False
        return True
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (True when it cannot be told)."""
    if os.name == "nt":  # pragma: no cover - os.kill(pid, 0) would terminate it on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_holder(path: str) -> LeaseHolder | None:
    """The holder named in a lock file, or None if there is no file or its holder is dead.

    Reads only: it never takes the lock (taking it, even for an instant, could make a real
    taker fail). A holder on another host is taken as alive.
    """
    if not os.path.exists(path):
        return None
    holder = read_holder(path)
    return holder if holder_alive(holder) else None


def holder_alive(holder: LeaseHolder) -> bool:
    """Whether the process a lock file names lives: False only for a process of this host
    that is gone (one on another host cannot be asked, and counts as alive)."""
    return not (holder.host == HOST and holder.pid is not None and not pid_alive(holder.pid))
