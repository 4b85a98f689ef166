"""A files queue's job files, ``<dir>/jobs/<job_id>.json``: naming, reading, listing them,
and the helpers of the backend's batched writes (the writes themselves are the backend's:
``FilesJobBackend._write``).
"""

from __future__ import annotations

import datetime as dt
import errno
import functools
import logging
import os
from collections.abc import Callable, Iterator

from ..._errors import StorageError
from ..._job_record import JobRecord
from ._atomic_write import Prepared, prepare, sync_prepared
from ._index_format import job_id_of_file
from ._names import encode
from ._reading import RefusedFile, read_bytes
from ._set_aside import set_aside

__all__ = [
    "discard",
    "file_name",
    "holds",
    "job_ids_changed_since",
    "presync",
    "read_job_file",
    "read_listed",
    "reraise",
]

log = logging.getLogger("jobledger")


@functools.lru_cache(maxsize=4096)
def file_name(job_id: str) -> str:
    """The name of ``job_id``'s file: ``encode`` makes any id one safe name component."""
    # Every operation on a job builds its path two or three times; the encoding checks
    # each character, so the recent ones are kept.
    return encode(job_id, "job id") + ".json"


def read_job_file(
    path: str, job_id: str, *, read_only: bool, now: Callable[[], dt.datetime]
) -> JobRecord | None:
    """The record in job file ``path``; None if there is none. A damaged one (or a link,
    FIFO, device or oversize file) is set aside with a warning and reads as None; a
    ``read_only`` reader only warns. A folder in its place raises (see ``read_listed``)."""
    try:
        data = read_bytes(path)
        if data is None:
            return None
        record = JobRecord.loads(data)
        if record.job_id != job_id:
            raise ValueError(f"the file holds job id {record.job_id!r}, not {job_id!r}")
    except (ValueError, RefusedFile) as exc:
        if isinstance(exc, RefusedFile) and exc.errno == errno.EISDIR:
            raise  # a folder is never set aside: see read_listed
        # A link, FIFO, device or oversize file is no job file: treated as a corrupt
        # one (set aside renames the entry itself, never what a link points to).
        why = exc.reason if isinstance(exc, RefusedFile) else f"is corrupt ({exc})"
        if read_only:
            log.warning(
                "Job file %s %s; job %s is left out. Nothing was changed: "
                "the queue's next write sets the file aside.",
                path,
                why,
                job_id,
            )
            return None
        aside = set_aside(path, now())
        log.warning(
            "Job file %s %s; moved it aside to %s. Job %s is left "
            "out of the queue until the file is repaired and put back.",
            path,
            why,
            aside,
            job_id,
        )
        return None
    return record


def read_listed(read: Callable[[str], JobRecord | None], job_id: str) -> JobRecord | None:
    """``read(job_id)`` for the paths that go over many jobs (opening, claiming, listing,
    pruning): a folder where a job file should be leaves that job out, with a warning,
    rather than stopping the whole queue. Any other read error is raised: an unreadable
    file still holds its job, which must not be forgotten."""
    try:
        return read(job_id)
    except StorageError as exc:
        if exc.errno != errno.EISDIR:
            raise
        log.warning("Job %s is left out of the queue: %s", job_id, exc)
        return None


def job_ids_changed_since(jobs_dir: str, mtime_ns: int) -> Iterator[str]:
    """The ids of the job files in ``jobs_dir`` changed (or arrived) since ``mtime_ns``;
    every one for 0."""
    try:
        entries = os.scandir(jobs_dir)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError("list the job files in", jobs_dir, exc) from exc
    with entries:
        for entry in entries:
            name = entry.name
            if not name.endswith(".json") or name.startswith("."):
                continue
            try:
                # The entry itself: a link (to a folder, a FIFO, a file elsewhere, or
                # nowhere) is listed, and reading it refuses it by name.
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError("read", entry.path, exc) from exc
            # ctime too: a file put back with its old mtime kept (cp -p, rsync -a,
            # tar) is new here; its ctime says when it arrived.
            if max(st.st_mtime_ns, st.st_ctime_ns) < mtime_ns:
                continue
            job_id = job_id_of_file(name[: -len(".json")])
            if job_id is not None:
                yield job_id


def presync(items: list[tuple[str, bytes]]) -> list[Prepared]:
    """Write every (path, data) to its temp file, then sync them all at once
    (``sync_prepared``), so that the disk shares its flushes among them."""
    prepared: list[Prepared] = []
    try:
        for path, data in items:
            prepared.append(prepare(path, data))
    except BaseException:
        discard(prepared)
        raise
    sync_prepared(prepared)
    return prepared


def discard(prepared: list[Prepared]) -> None:
    """Remove the temp files of ``prepared`` left unused."""
    for item in prepared:
        item.discard()  # a no-op for the ones written


def holds(path: str, data: bytes) -> bool:
    """Whether the file at ``path`` holds ``data`` (a failed save that got as far as its
    replace); False when that cannot be read."""
    try:
        return read_bytes(path) == data
    except StorageError:
        return False


def reraise(exc: BaseException) -> None:
    """Raise ``exc`` (a sync step that reports an error found earlier)."""
    raise exc
