"""msvcrt.locking: released by Windows when the process dies.

Windows locks are mandatory, so the lock covers one byte far past the holder text, which
stays readable by other processes.
"""

from __future__ import annotations

import os
import sys
import time

assert sys.platform == "win32"  # also tells mypy to check this module for Windows only
import msvcrt  # noqa: E402

_FAR = 1 << 30


def try_lock(fd: int) -> bool:
    """Take an exclusive lock without waiting; False if another process holds it."""
    os.lseek(fd, _FAR, os.SEEK_SET)
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def lock(fd: int) -> None:
    """Take an exclusive lock, waiting as long as it takes."""
    while not try_lock(fd):
        time.sleep(0.05)


def unlock(fd: int) -> None:
    """Drop the lock."""
    os.lseek(fd, _FAR, os.SEEK_SET)
    msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
