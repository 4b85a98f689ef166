"""fsyncs: of a folder, of many files at once, and the ones a save leaves for later.

A durable save (``_atomic_write.write_atomic``) may hand what is left of it after its
rename to the caller instead of running it: the folder's fsync (:class:`FolderSync`), or
the file's and the folder's (:class:`SyncAfterRename`). The caller releases its locks first
and then runs them all with :func:`run_syncs`, which syncs the files several at once
(:func:`fsync_each`, on a small thread pool) and each folder once.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..._errors import StorageError
from ..._faults import point

__all__ = [
    "PARALLEL_FSYNCS",
    "FolderSync",
    "SyncAfterRename",
    "fsync_dir",
    "fsync_each",
    "run_syncs",
]

_CAN_FSYNC_DIR = os.name != "nt"  # Windows cannot open a folder for fsync.


def fsync_dir(folder: str) -> None:
    """Make renames and creations inside ``folder`` durable."""
    if not _CAN_FSYNC_DIR:
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: fsyncs run at once by :func:`fsync_each`. Concurrent fsyncs share the disk's cache
#: flushes (and, on a journaling file system, journal commits): 50 durable writes went
#: from 960 to 1,530 a second on the development machine's ext4 without a journal with
#: 16 at once, and from 410 to 2,060 on an ext4 with a journal (a loop device on the
#: same disk).
PARALLEL_FSYNCS = 16
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _fsync_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(PARALLEL_FSYNCS, thread_name_prefix="jobledger-fsync")
        return _pool


def _forget_pool_in_child() -> None:
    # After fork() the parent's threads do not exist here: the inherited executor would
    # queue work no thread ever runs (and its lock may have been held mid-fork).
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def try_fsync(fd: int) -> OSError | None:
    """fsync ``fd``; its error, or None. Never raises an OSError."""
    try:
        os.fsync(fd)
    except OSError as exc:
        return exc
    return None


def fsync_each(fds: Sequence[int]) -> list[OSError | None]:
    """fsync every descriptor, several at once when there are several (the GIL is released
    while the kernel works); each one's error, or None. Never raises an OSError."""
    if len(fds) > 1:
        try:
            return list(_fsync_pool().map(try_fsync, fds))
        except RuntimeError:  # the interpreter is exiting: no new threads; one at a time
            pass
    return [try_fsync(fd) for fd in fds]


class FolderSync:
    """A folder's fsync, left for :func:`run_syncs` by a save that synced its file before
    the rename: run once for all the saves into that folder."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path  # the saved file, named in the error

    def __call__(self) -> None:
        self.sync_folder()

    def sync_folder(self) -> None:
        """fsync the folder that holds ``path``."""
        try:
            fsync_dir(os.path.dirname(self.path) or ".")
        except OSError as exc:
            raise StorageError("sync the folder of", self.path, exc, replaced=True) from exc
        point("files.dir_fsynced")


class SyncAfterRename(FolderSync):
    """The second half of a save that renames first (``SyncPlan.SYNC_AFTER_RENAME``):
    fsync the file, then its folder.

    Holds the temp file's descriptor (the inode now at ``path``) until run; runs once."""

    __slots__ = ("fd",)

    def __init__(self, fd: int, path: str) -> None:
        super().__init__(path)
        self.fd = fd

    def __call__(self) -> None:
        self.sync_file()
        self.sync_folder()

    def sync_file(self) -> None:
        """fsync the file and release its descriptor (a no-op once done)."""
        if self.fd >= 0:
            self.file_synced(try_fsync(self.fd))

    def file_synced(self, error: OSError | None) -> None:
        """Release the descriptor once its fsync is done (maybe alongside others, by
        :func:`run_syncs`); ``error``, the fsync's, is raised as the save's error."""
        fd, self.fd = self.fd, -1
        with contextlib.suppress(OSError):
            os.close(fd)
        if error is not None:
            raise StorageError("sync", self.path, error, replaced=True) from error
        point("files.replaced_fsynced")

    def __del__(self) -> None:
        # Never run (the caller failed before it could): do not leak the descriptor.
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)


def run_syncs(syncs: list[Callable[[], None]]) -> None:
    """Run the syncs ``write_atomic`` handed to ``sync_later``, each even after one fails,
    and raise the first failure.

    The files are synced first, several at once (:func:`fsync_each`), and then each folder
    once, after the last file renamed into it: one folder fsync makes all those renames
    durable, and each fsync costs the disk a cache flush (a bare batch of 50 replaces,
    renamed then synced, went from 1,700 to 2,050 a second on the development machine's
    ext4 with the folder synced once instead of 50 times). A folder whose file could not
    be synced is synced all the same: the other renames need it."""
    files = [s for s in syncs if isinstance(s, SyncAfterRename) and s.fd >= 0]
    synced = dict(zip(map(id, files), fsync_each([s.fd for s in files]), strict=True))
    error: BaseException | None = None
    folders: dict[str, FolderSync] = {}
    for sync in syncs:
        try:
            if isinstance(sync, FolderSync):
                folders[os.path.dirname(sync.path)] = sync
                if isinstance(sync, SyncAfterRename) and id(sync) in synced:
                    sync.file_synced(synced[id(sync)])
            else:
                sync()
        except BaseException as exc:  # re-raised below, once the others have run
            error = error or exc
    for last in folders.values():
        try:
            last.sync_folder()
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error
