"""flock(2): the lock belongs to the open file, and the kernel drops it when the process dies."""

from __future__ import annotations

import fcntl


def try_lock(fd: int) -> bool:
    """Take an exclusive lock without waiting; False if another open file holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lock(fd: int) -> None:
    """Take an exclusive lock, waiting as long as it takes."""
    fcntl.flock(fd, fcntl.LOCK_EX)


def unlock(fd: int) -> None:
    """Drop the lock (closing the file drops it too)."""
    fcntl.flock(fd, fcntl.LOCK_UN)
