"""Crash-safe file replacement, the one way every jobledger file reaches the disk.

Invariant: a state file on disk is always a complete document (or absent), never half
written. A save writes a temp file in the same folder, flushes, fsyncs, renames it over the
target with ``os.replace`` (atomic on POSIX and Windows) and fsyncs the folder so the rename
itself survives a power loss. Which fsyncs a save does, and in what order, is its
:class:`SyncPlan` (``_sync_plan.plan_sync``); with ``SyncPlan.NONE`` none: the result still
survives a process crash (the kernel has the data), not an OS crash.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Sequence

from ..._errors import StorageError
from ..._faults import point
from ._reading import MAX_TASKSET_FILE_BYTES, read_regular
from ._sync_plan import SyncPlan
from ._syncs import FolderSync, SyncAfterRename, fsync_dir, fsync_each

__all__ = [
    "TEMP_MARK",
    "Prepared",
    "is_temp_name",
    "make_dirs",
    "prepare",
    "remove",
    "sync_prepared",
    "write_atomic",
]

#: Every temp file's name contains this, so that `doctor` can find strays left by a crash.
TEMP_MARK = ".tmp-"
_counter = itertools.count()


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temp file written by :func:`write_atomic`."""
    return name.startswith(".") and TEMP_MARK in name


def remove(path: str) -> None:
    """Delete ``path`` if it can; a missing file or a failure is not an error (best effort)."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def make_dirs(folder: str, fsync: bool) -> None:
    """Create ``folder`` and its missing parents, each made durable in its own parent."""
    missing = []
    current = folder
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
        if fsync:
            fsync_dir(os.path.dirname(path) or ".")


class Prepared:
    """The first half of a save: ``data`` written to a temp file beside ``path``, not yet
    renamed (:func:`prepare`). A caller saving many files syncs them all at once
    (:func:`sync_prepared`), then renames each with ``write_atomic(..., prepared=...)``;
    :meth:`discard` removes one left unused."""

    __slots__ = ("data", "error", "fd", "path", "synced", "tmp")

    def __init__(self, path: str, data: bytes, tmp: str, fd: int) -> None:
        self.path = path
        self.data = data
        self.tmp = tmp
        self.fd = fd
        self.synced = False  # by sync_prepared: write_atomic does not sync it again
        self.error: OSError | None = None  # the fsync's, if it failed

    def discard(self) -> None:
        """Remove the temp file unless it was used (a no-op then)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
            remove(self.tmp)


def _temp_path(path: str) -> str:
    folder = os.path.dirname(path) or "."
    return os.path.join(
        folder, f".{os.path.basename(path)}{TEMP_MARK}{os.getpid()}-{next(_counter)}"
    )


def _create_temp(tmp: str, fsync: bool) -> int:
    try:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileNotFoundError:
        make_dirs(os.path.dirname(tmp) or ".", fsync)
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def prepare(path: str, data: bytes) -> Prepared:
    """Write ``data`` to a new temp file beside ``path`` (see :class:`Prepared`); raises
    :class:`StorageError` naming ``path``, leaving no temp file, on any OS error."""
    tmp = _temp_path(path)
    fd = -1
    try:
        fd = _create_temp(tmp, True)
        _write_all(fd, data)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        remove(tmp)
        raise StorageError("write", path, exc) from exc
    point("files.temp_written")
    return Prepared(path, data, tmp, fd)


def sync_prepared(prepared: Sequence[Prepared]) -> None:
    """fsync every prepared temp file, several at once; a failure is kept on its item and
    raised by the ``write_atomic`` that would have renamed it."""
    for item, error in zip(prepared, fsync_each([p.fd for p in prepared]), strict=True):
        item.synced = True
        item.error = error


def write_atomic(
    path: str,
    data: bytes,
    plan: SyncPlan = SyncPlan.SYNC_BEFORE_RENAME,
    *,
    backup: str | None = None,
    sync_later: list[Callable[[], None]] | None = None,
    prepared: Prepared | None = None,
) -> os.stat_result:
    """Replace ``path`` with ``data`` atomically; on error the old file is left as it was.

    ``plan`` says which fsyncs the save does, and in what order (:class:`SyncPlan`, chosen
    by ``plan_sync``). ``backup``, when given, receives the previous version of ``path``
    (a hard link, so the bytes are not written twice) just before the replace: the last
    good generation.

    ``sync_later`` receives what is left of a durable save after its rename as a callable
    instead of running it: with ``SYNC_AFTER_RENAME`` the file's and the folder's fsyncs,
    with ``SYNC_BEFORE_RENAME`` the folder's (other plans leave nothing). A caller can
    then release its locks first, letting syncs of several writers share a journal
    commit, and sync a folder once for a batch of saves (``run_syncs``); it must run them
    before reporting the saves as durable.

    ``prepared`` (from :func:`prepare`, for ``path``) holds ``data`` in its temp file
    already: only the rest is done here. Synced by :func:`sync_prepared`, it is not
    synced again, and that sync's failure is raised here, before the rename.

    Returns the new file's stat (for change detection); raises :class:`StorageError`
    naming the path on any OS error.
    """
    folder = os.path.dirname(path) or "."
    late = plan.syncs_after_rename
    if prepared is not None:
        if prepared.path != path:
            raise ValueError(f"{prepared.tmp} was prepared for {prepared.path}, not {path}")
        tmp, fd, prepared.fd = prepared.tmp, prepared.fd, -1  # this call uses it up
    else:
        tmp, fd = _temp_path(path), -1
    try:
        if prepared is None:
            fd = _create_temp(tmp, plan.durable)
            _write_all(fd, data)
            point("files.temp_written")
        elif prepared.error is not None:
            raise prepared.error
        if not late:
            if plan.syncs_before_rename and (prepared is None or not prepared.synced):
                os.fsync(fd)
            point("files.temp_fsynced")
        stat = os.fstat(fd)
        if backup is not None:
            _link_backup(path, backup)
            point("files.backup_linked")
        os.replace(tmp, path)
        point("files.replaced")
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        remove(tmp)
        raise StorageError("write", path, exc) from exc
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise
    if late:
        sync = SyncAfterRename(fd, path)
        if sync_later is None:
            sync()
        else:
            sync_later.append(sync)
        return stat
    os.close(fd)
    if plan.syncs_folder:
        if sync_later is not None:
            sync_later.append(FolderSync(path))  # once per folder for a batch: run_syncs
            return stat
        try:
            fsync_dir(folder)
        except OSError as exc:
            raise StorageError("sync the folder of", path, exc, replaced=True) from exc
    point("files.dir_fsynced")
    return stat


def _link_backup(path: str, backup: str) -> None:
    # A hard link to a temp name, renamed over the old backup: the backup is never absent
    # or half-written, and the current file keeps its inode until os.replace swaps it.
    tmp = f"{backup}{TEMP_MARK}{os.getpid()}-{next(_counter)}"
    tmp = os.path.join(os.path.dirname(tmp), "." + os.path.basename(tmp))
    try:
        os.link(path, tmp)
    except FileNotFoundError:
        return  # first save: nothing to keep yet
    except OSError:
        # File systems without hard links (some network or FAT mounts): copy instead.
        content = read_regular(path, MAX_TASKSET_FILE_BYTES, "a task-set file")
        if content is None:
            return
        try:
            with open(tmp, "wb") as dst:
                dst.write(content)
        except OSError:
            remove(tmp)
            raise
    try:
        os.replace(tmp, backup)
    except OSError:
        remove(tmp)  # never leave the temp link behind
        raise
