"""``.queue.journal``: one line per change of a files queue's index, appended, never synced.

This module does the journal's I/O for the index (``_queue_index.py``), which decides what
the lines say and when the journal is replaced. Lines are read and checked by
``parse_line`` (``_index_format.py``); a damaged line is reported, never applied.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from typing import Any

from ..._errors import JobLedgerError, StorageError
from ._atomic_write import remove
from ._index_format import parse_line
from ._reading import MAX_JOURNAL_BYTES, RefusedFile, open_regular

__all__ = ["Journal"]

log = logging.getLogger("jobledger")


class Journal:
    """This process's descriptor of the journal, and how far into it the index has read.

    - ``open()`` opens it (a writer creates it; a read-only one opens it for reading, or
      goes without it), ``close()`` releases it, ``after_fork()`` opens a descriptor of
      this process's own, ``rotate()`` starts a new, empty one.
    - ``append(data)`` adds whole lines: all or nothing.
    - ``read_all()`` yields every whole line; ``read_new()`` the lines appended since.

    Invariants: ``off`` is the end of the last whole line read or appended (a torn last
    line beyond it is cut by the next append); ``at_end`` says the file was seen to end at
    ``off`` under the lock held now (whoever takes the lock clears it); a different file
    at the path (its inode) means the journal was replaced since it was opened.
    """

    def __init__(self, root: str, *, read_only: bool) -> None:
        self.root = root
        self.path = os.path.join(root, ".queue.journal")
        self.read_only = read_only
        self.fd: int | None = None
        self._id: tuple[int, int] | None = None  # its (inode, device), once read
        self.off = 0  # bytes of the journal applied to the in-memory index
        # The journal was seen to end at off under the lock held now (set by each read of
        # it, cleared when the lock is taken): an append need not look again.
        self.at_end = False
        self.damaged = False  # the last read_all() skipped a damaged line
        # A refused append could not be cut back: what the file holds past off is unknown.
        self.in_doubt = False

    def open(self) -> None:
        """(Re)open the journal at its path, to be read from its start."""
        self.close()
        try:
            # Only a regular file, opened without blocking (a FIFO would hang a reader).
            if self.read_only:
                self.fd = open_regular(self.path)
            else:
                self.fd = open_regular(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            self.fd = None
            if self.read_only and isinstance(exc, RefusedFile):
                log.warning(
                    "The queue journal %s %s; reading the queue without it (from queue.json "
                    "and the job files). Nothing was changed.",
                    self.path,
                    exc.reason,
                )
            elif isinstance(exc, RefusedFile):
                raise
            elif not (self.read_only and isinstance(exc, FileNotFoundError)):
                raise StorageError("open the queue journal", self.path, exc) from exc
            # A reader creates nothing: no journal, no lines.
        self.off = 0
        self.at_end = False
        self.in_doubt = False

    def close(self) -> None:
        """Release the descriptor (the offset is meaningless until the next open)."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = None
        self._id = None

    def after_fork(self) -> None:
        """In a forked child: let go of the descriptor inherited from the parent and open
        one of this process's own, reading on from where the index is."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = None
        self._id = None
        self._fd()

    def _fd(self) -> int:
        """The descriptor; a writer whose journal is not open (a forked child's) opens it."""
        if self.fd is None:
            if self.read_only:
                raise JobLedgerError(
                    f"a read-only view of the queue in {self.root} cannot change it (a bug: "
                    "writes go through the queue's own backend)"
                )
            try:
                # Read as well as appended to: only a regular file (see _reading.py).
                self.fd = open_regular(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            except RefusedFile:
                raise
            except OSError as exc:
                raise StorageError("open the queue journal", self.path, exc) from exc
            self._id = None
        return self.fd

    def append(self, data: bytes) -> None:
        """Append whole lines; StorageError if the disk refuses, with none of them left."""
        fd = self._fd()
        try:
            # Known to end where we stop when the journal was just read under this lock.
            if not self.at_end and os.fstat(fd).st_size != self.off:
                os.ftruncate(fd, self.off)  # a torn last line from a crashed writer
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            # All or nothing: no line of a refused append stays (other processes must not
            # apply half of it).
            self.at_end = False
            try:
                os.ftruncate(fd, self.off)
            except OSError:
                self.in_doubt = True  # cannot tell what is in the journal: reload it
            raise StorageError("append to the queue journal", self.path, exc) from exc
        self.off += len(data)

    def read_new(self) -> list[dict[str, Any]] | None:
        """The lines other processes appended since ``off`` (which moves past them). None
        if the journal was replaced (a new snapshot) or is damaged: reload the index."""
        fd = self._fd()
        try:
            on_disk = os.lstat(self.path)  # a link in its place: reload, refused
        except FileNotFoundError:
            return None
        if self._id is None:
            mine = os.fstat(fd)
            self._id = (mine.st_ino, mine.st_dev)
        if (on_disk.st_ino, on_disk.st_dev) != self._id:
            return None  # replaced by a compaction; our open file keeps its inode unique
        size = on_disk.st_size  # the path's file is ours: one stat tells both
        if size < self.off or size > MAX_JOURNAL_BYTES:
            return None  # the reload refuses an oversize journal by name
        if size == self.off:
            self.at_end = True
            return []
        data = os.pread(fd, size - self.off, self.off)
        end = data.rfind(b"\n") + 1
        lines = []
        for raw in data[:end].splitlines():
            line = parse_line(raw)
            if line is None:
                log.warning(
                    "The queue journal %s has a damaged line (%r); reloading the "
                    "index from the job files",
                    self.path,
                    raw[:80],
                )
                return None
            lines.append(line)
        self.off += end
        self.at_end = end == len(data)  # else a crashed writer's torn line
        return lines

    def read_all(self) -> Iterator[dict[str, Any]]:
        """Every whole line of the journal; ``off`` is set to their end (a torn last line
        is left out, and cut by the next append). ``damaged`` says whether a line was
        skipped."""
        self.damaged = False
        if self.read_only and self.fd is None:
            self.off = 0
            return
        fd = self._fd()
        size = os.fstat(fd).st_size
        if size > MAX_JOURNAL_BYTES:
            refused = RefusedFile(
                self.path,
                f"is larger than the {MAX_JOURNAL_BYTES >> 20} MiB limit for the queue journal",
                errno.EFBIG,
                "remove it: queue.json and the job files hold the queue, and a new journal "
                "is started",
            )
            if not self.read_only:
                raise refused
            log.warning("%s Reading the queue without it.", refused)
            self.off = 0
            return
        data = os.pread(fd, size, 0) if size else b""
        self.off = data.rfind(b"\n") + 1
        self.at_end = self.off == size
        for raw in data[: self.off].splitlines():
            line = parse_line(raw)
            if line is None:
                log.warning(
                    "The queue journal %s has a damaged line (%r); the index is counted "
                    "from the job files",
                    self.path,
                    raw[:80],
                )
                self.damaged = True
                continue
            yield line

    def rotate(self) -> None:
        """Start an empty journal (a new file, so other processes notice the new snapshot)."""
        tmp = os.path.join(self.root, f".queue.journal.tmp-{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        except OSError as exc:
            raise StorageError("start a new queue journal at", self.path, exc) from exc
        try:
            os.replace(tmp, self.path)
        except OSError as exc:
            os.close(fd)
            remove(tmp)
            raise StorageError("start a new queue journal at", self.path, exc) from exc
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd, self._id = fd, None
        self.off = 0
