"""How a worker finds, cheaply, which of its running jobs were asked to stop.

A cancel of a Running job rewrites its job file (``cancel_requested_at`` set): the worker
running it looks at its jobs' files every poll. A look is one ``lstat`` per job, with no
lock taken; a file is read again only when its (inode, size, mtime) changed since the
last look. Every write of a job file replaces it with a new file (a new inode, renamed
over it), so an unchanged stat means an unchanged file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from ..._job_record import JobRecord, JobStatus

__all__ = ["CancelLooks"]

_Stat = tuple[int, int, int]


class CancelLooks:
    """The last look at each job asked about: its file's stat and whether it was Running
    with a cancel request. Forgets the jobs no longer asked about."""

    def __init__(
        self, job_path: Callable[[str], str], read: Callable[[str], JobRecord | None]
    ) -> None:
        self._job_path = job_path
        self._read = read
        self._seen: dict[str, tuple[_Stat, bool]] = {}
        self._guard = threading.Lock()

    def requested(self, job_ids: list[str]) -> set[str]:
        """Those of ``job_ids`` Running with a cancel request stored."""
        with self._guard:
            seen = {j: self._seen[j] for j in job_ids if j in self._seen}
        out: set[str] = set()
        for job_id in job_ids:
            try:
                st = os.lstat(self._job_path(job_id))
            except OSError:
                seen.pop(job_id, None)  # gone (pruned, cleared): no request to act on
                continue
            stat = (st.st_ino, st.st_size, st.st_mtime_ns)
            last = seen.get(job_id)
            if last is None or last[0] != stat:
                record = self._read(job_id)
                asked = (
                    record is not None
                    and record.status is JobStatus.RUNNING
                    and record.cancel_requested_at is not None
                )
                last = (stat, asked)
                seen[job_id] = last
            if last[1]:
                out.add(job_id)
        with self._guard:
            self._seen = seen
        return out
