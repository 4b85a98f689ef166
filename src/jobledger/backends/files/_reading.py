"""The one way jobledger opens a file to read it: only a regular file, of a bounded size.

Every file jobledger reads (job files, ``queue.json``, the queue journal, task-set files
and their ``.bak``, lease lock files, the config file) is opened here, with
``O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC``, then checked with ``fstat`` on the open
descriptor (so nothing can be swapped in between):

- a symbolic link is refused (``O_NOFOLLOW``): a link in ``jobs/`` to a job document
  elsewhere is not that job (the config file alone may be a link: see ``follow_symlinks``);
- a FIFO, socket, device or folder is refused without blocking (``O_NONBLOCK``: opening a
  FIFO for reading would otherwise wait for a writer, forever);
- at most ``limit + 1`` bytes are read: a file larger than its limit (or a link to
  ``/dev/zero``) is refused instead of filling the memory.

A refusal raises :class:`RefusedFile`, a :class:`StorageError` naming the path and why;
the callers handle it as they handle a corrupt file (left out, or set aside by a writer:
the link or FIFO itself is renamed, never what it points to). A folder keeps the errno
``EISDIR`` it always had, and callers keep treating it as before.
"""

from __future__ import annotations

import errno
import os
import stat

from ..._errors import StorageError

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_INDEX_BYTES",
    "MAX_JOB_FILE_BYTES",
    "MAX_JOURNAL_BYTES",
    "MAX_LOCK_FILE_BYTES",
    "MAX_TASKSET_FILE_BYTES",
    "RefusedFile",
    "open_regular",
    "read_bytes",
    "read_regular",
]

_MiB = 1 << 20

#: A job file holds one job: its payload, result and last error text. 64 MiB is far beyond
#: any sensible payload (large data belongs in files the job names), and small enough that
#: reading a whole queue's files cannot exhaust a machine's memory because of one file.
MAX_JOB_FILE_BYTES = 64 * _MiB
#: A task-set file lists one account's tasks of one type for one day (names and states):
#: 64 MiB is roughly a million tasks of 60-character names, more than a day's run holds.
MAX_TASKSET_FILE_BYTES = 64 * _MiB
#: ``queue.json`` lists the live jobs' ids, one line each (about 50 bytes for a UUID, at
#: most ~200 for the longest id): 256 MiB is over a million live jobs of the longest ids,
#: beyond what the files backend serves (opening a queue reads every live job's file).
MAX_INDEX_BYTES = 256 * _MiB
#: The journal is replaced by an empty one once it passes 4 MiB at a snapshot; it grows
#: past that only while the disk refuses ``queue.json``. 256 MiB (about 1.7 million
#: lines) leaves that case 64 times the room.
MAX_JOURNAL_BYTES = 256 * _MiB
#: The config file is the application's whole config document, jobledger's block a few
#: lines of it.
MAX_CONFIG_BYTES = 16 * _MiB
#: A lease or worker lock file holds one line: ``{"pid", "host", "since"}``.
MAX_LOCK_FILE_BYTES = 64 * 1024

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # POSIX; Windows has none
_FLAGS = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)

_KINDS = (
    (stat.S_ISFIFO, "is a FIFO, not a regular file"),
    (stat.S_ISSOCK, "is a socket, not a regular file"),
    (stat.S_ISCHR, "is a character device, not a regular file"),
    (stat.S_ISBLK, "is a block device, not a regular file"),
)


class RefusedFile(StorageError):
    """A path jobledger will not read: a symbolic link, a FIFO, socket, device or folder,
    or a file larger than its limit. ``reason`` says which ("is a symbolic link")."""

    def __init__(self, path: str, reason: str, code: int, hint: str) -> None:
        super().__init__("read", path, OSError(code, reason))
        self.reason = reason
        self.args = (code, f"could not read {self.path}: it {reason}; {hint}.")


def _size_text(limit: int) -> str:
    if limit >= _MiB and limit % _MiB == 0:
        return f"{limit // _MiB} MiB"
    return f"{limit // 1024} KiB"


def _refuse_kind(path: str, st: os.stat_result) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    if stat.S_ISDIR(st.st_mode):
        # The errno a read of a folder always gave: callers tell a folder apart by it.
        raise RefusedFile(
            path,
            "is a folder",
            errno.EISDIR,
            "a folder stands where a file should be; move it away",
        )
    if stat.S_ISLNK(st.st_mode):
        raise _link(path)
    reason = next((text for test, text in _KINDS if test(st.st_mode)), "is not a regular file")
    raise RefusedFile(
        path, reason, errno.EINVAL, "jobledger reads only regular files; move it away"
    )


def _link(path: str) -> RefusedFile:
    return RefusedFile(
        path,
        "is a symbolic link",
        errno.ELOOP,
        "jobledger reads only regular files inside its folder, never through a link; "
        "replace the link with the file itself",
    )


def open_regular(
    path: str, flags: int = os.O_RDONLY, mode: int = 0o644, *, follow_symlinks: bool = False
) -> int:
    """``os.open`` of a regular file, never blocking: a descriptor, or :class:`RefusedFile`
    for anything else (see the module docstring). Other OS errors are raised as they are
    (``FileNotFoundError``...): the caller words them.

    ``follow_symlinks`` lets the last component be a link to a regular file (the config
    file, which deployments commonly link to, and which is not inside a jobledger folder).
    Where the OS has no ``O_NOFOLLOW`` (Windows), the path is checked with ``lstat`` before
    opening and must name the same file after."""
    nofollow = not follow_symlinks
    before = None
    if nofollow and not _NOFOLLOW:
        try:
            before = os.lstat(path)
        except FileNotFoundError:
            if not flags & os.O_CREAT:
                raise
        else:
            if stat.S_ISLNK(before.st_mode):
                raise _link(path)
    try:
        fd = os.open(path, flags | _FLAGS | (_NOFOLLOW if nofollow else 0), mode)
    except OSError as exc:
        # O_NOFOLLOW on a link: ELOOP on Linux, EMLINK on FreeBSD, EFTYPE on NetBSD.
        refused = (errno.ELOOP, errno.EMLINK, getattr(errno, "EFTYPE", -1))
        if nofollow and exc.errno in refused and os.path.islink(path):
            raise _link(path) from None
        raise
    try:
        st = os.fstat(fd)
        if before is not None and (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise _link(path)  # swapped for something else between the two looks
        _refuse_kind(path, st)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(
    path: str, limit: int, what: str, *, follow_symlinks: bool = False
) -> bytes | None:
    """The bytes of the regular file at ``path``, or None if it does not exist.

    Refuses (:class:`RefusedFile`) what :func:`open_regular` refuses, and a file of more
    than ``limit`` bytes (``what`` names its kind in the message: "a job file"); at most
    ``limit + 1`` bytes are ever read. Other errors raise :class:`StorageError`."""
    try:
        fd = open_regular(path, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        return None
    except RefusedFile:
        raise
    except OSError as exc:
        raise StorageError("read", path, exc) from exc
    # os-level reads: this runs before every save, and buffered io costs several times more.
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise _too_large(path, limit, what)
        chunks = []
        total = 0
        while total <= limit:
            # One more byte than the size, to notice a file still growing.
            chunk = os.read(fd, min(limit + 1 - total, max(size + 1 - total, 65536)))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise _too_large(path, limit, what)
        return b"".join(chunks)
    except RefusedFile:
        raise
    except OSError as exc:
        raise StorageError("read", path, exc) from exc
    finally:
        os.close(fd)


def read_bytes(
    path: str, limit: int = MAX_JOB_FILE_BYTES, what: str = "a job file"
) -> bytes | None:
    """:func:`read_regular` with a job file's limit unless told: the bytes of the regular
    file at ``path``, or ``None`` if it does not exist."""
    return read_regular(path, limit, what)


def _too_large(path: str, limit: int, what: str) -> RefusedFile:
    return RefusedFile(
        path,
        f"is larger than the {_size_text(limit)} limit for {what}",
        errno.EFBIG,
        "no file jobledger writes grows that large; move it away",
    )
