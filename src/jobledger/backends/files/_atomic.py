"""Crash-safe file replacement, the one way every jobledger file reaches the disk.

Invariant: a state file on disk is always a complete document (or absent), never half
written. A save writes a temp file in the same folder, flushes, fsyncs, renames it over the
target with ``os.replace`` (atomic on POSIX and Windows) and fsyncs the folder so the rename
itself survives a power loss. With ``fsync=False`` both fsyncs are skipped: the result still
survives a process crash (the kernel has the data), not an OS crash.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os

from ..._errors import StorageError
from ..._faults import point

__all__ = [
    "TEMP_MARK",
    "fsync_dir",
    "is_temp_name",
    "mount_of",
    "orders_rename_over",
    "read_bytes",
    "remove",
    "set_aside",
    "write_atomic",
]

#: Every temp file's name contains this, so that `doctor` can find strays left by a crash.
TEMP_MARK = ".tmp-"
_counter = itertools.count()
_CAN_FSYNC_DIR = os.name != "nt"  # Windows cannot open a folder for fsync.


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temp file written by :func:`write_atomic`."""
    return name.startswith(".") and TEMP_MARK in name


def fsync_dir(folder: str) -> None:
    """Make renames and creations inside ``folder`` durable."""
    if not _CAN_FSYNC_DIR:
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(folder: str, fsync: bool) -> None:
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


def write_atomic(
    path: str,
    data: bytes,
    *,
    fsync: bool = True,
    backup: str | None = None,
    sync_data: bool = False,
) -> os.stat_result:
    """Replace ``path`` with ``data`` atomically; on error the old file is left as it was.

    ``backup``, when given, receives the previous version of ``path`` (a hard link, so the
    bytes are not written twice) just before the replace: the last good generation.
    ``sync_data`` (with ``fsync=False``) fsyncs the file's data but not the folder: the
    rename may be lost in a power cut, but never lands before the data it names.
    Returns the new file's stat (for change detection); raises :class:`StorageError`
    naming the path on any OS error.
    """
    folder = os.path.dirname(path) or "."
    tmp = os.path.join(
        folder, f".{os.path.basename(path)}{TEMP_MARK}{os.getpid()}-{next(_counter)}"
    )
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            _make_dirs(folder, fsync)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            point("files.temp_written")
            if fsync or sync_data:
                os.fsync(fd)
            point("files.temp_fsynced")
            stat = os.fstat(fd)
        finally:
            os.close(fd)
        if backup is not None:
            _link_backup(path, backup)
            point("files.backup_linked")
        os.replace(tmp, path)
        point("files.replaced")
        if fsync:
            fsync_dir(folder)
        point("files.dir_fsynced")
    except OSError as exc:
        remove(tmp)
        raise StorageError("write", path, exc) from exc
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
        try:
            with open(path, "rb") as src:
                content = src.read()
        except FileNotFoundError:
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


def mount_of(path: str) -> tuple[str, str, list[str]]:
    """(mount point, file system type, mount options) of the mount holding ``path``, from
    /proc/mounts; ``("", "", [])`` where that cannot be read (not Linux)."""
    real = os.path.realpath(path)
    best: tuple[str, str, list[str]] = ("", "", [])
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 4:
                    continue
                mount = parts[1]
                holds = real == mount or real.startswith(mount.rstrip("/") + "/")
                if holds and len(mount) > len(best[0]):
                    best = (mount, parts[2], parts[3].split(","))
    except OSError:
        pass
    return best


def orders_rename_over(path: str) -> bool:
    """Whether the file system holding ``path`` writes a file's data before a rename over
    an existing file takes effect, even without fsync (ext4's default ``auto_da_alloc``).
    Where it cannot be told, False: then callers fsync the data to be safe."""
    _, fstype, options = mount_of(path)
    return fstype == "ext4" and "noauto_da_alloc" not in options


def read_bytes(path: str) -> bytes | None:
    """The file's bytes, or ``None`` if it does not exist. Other errors raise StorageError."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError("read", path, exc) from exc
    # os-level reads: this runs before every save, and buffered io costs several times more.
    try:
        chunks = []
        size = os.fstat(fd).st_size + 1  # one more byte, to notice a file still growing
        while True:
            chunk = os.read(fd, max(size, 65536))
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise StorageError("read", path, exc) from exc
    finally:
        os.close(fd)


def remove(path: str) -> None:
    """Delete ``path`` if it can; a missing file or a failure is not an error (best effort)."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def set_aside(path: str, now: dt.datetime) -> str:
    """Rename a corrupt file to ``<name>.corrupt-<timestamp>`` and return the new path."""
    stamp = now.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + (
        f"{now.microsecond // 1000:03d}Z"
    )
    target = f"{path}.corrupt-{stamp}"
    n = 1
    while os.path.exists(target):
        n += 1
        target = f"{path}.corrupt-{stamp}-{n}"
    try:
        os.replace(path, target)
        fsync_dir(os.path.dirname(path) or ".")
    except OSError as exc:
        raise StorageError("set aside the corrupt file", path, exc) from exc
    return target
