"""The queue's index: what ``queue.json`` and ``.queue.journal`` hold, kept in memory.

- ``queue.json`` lists only live jobs (``running``, then ``queued`` in serving order), so its
  size follows the live queue, not history. Its extra key ``finished`` counts finished jobs
  by status, so ``counts()`` never reads history, and ``revision`` says which journal lines
  it already holds.
- Every change appends one line to ``.queue.journal`` (no rename, no fsync): that is how
  the processes sharing a queue keep their in-memory indexes in step, each reading the
  lines it has not seen when it takes the lock. ``queue.json`` is the snapshot of the
  index, rewritten on every change under light use (up to 32 changes a second), so that it
  is exact whenever anyone could be looking. In a burst it is rewritten every 200 ms
  (queues of up to 1,000 live jobs) or once the journal holds as many new lines as the
  queue has live jobs (at least 256), and always when a queue is opened or closed, when a
  worker finds nothing to do, and at interpreter exit. Rewriting all of ``queue.json`` on
  every change of a busy queue would cost a rename and O(live jobs) bytes per operation,
  more than the durable job write itself.
- The journal is replaced by an empty one only once it is large (``_ROTATE_AT``), or when
  the index was repaired from the job files (a change no line describes). A new journal is
  a new file: every process keeps its journal open, so the old inode cannot be reused,
  and a different inode at the path means "reload from queue.json", which reads every live
  job's file; emptying it at each snapshot made processes sharing a busy queue reload each
  other all the time (two workers drained 25 times slower than one).
- ``queue.json`` and the journal are never fsynced: they can always be rebuilt from the
  job files, which win any disagreement.
- Every value read from them is checked first (``_index_format.py``): a ``queue.json``
  that is not exactly what this library writes is rebuilt from the job files (a reader
  counts them in memory), and a damaged journal line makes the index count from them too.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import errno
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from ..._clock import Clock
from ..._errors import StorageError
from ..._faults import point
from ..._job_record import JobRecord, JobStatus
from ..._json import dumps_indented, encode_compact, encode_str
from ._atomic import read_bytes, remove, set_aside, write_atomic
from ._index_format import index_problem, job_id_of_file, parse_json, parse_line
from ._reading import MAX_INDEX_BYTES, MAX_JOURNAL_BYTES, RefusedFile, open_regular

__all__ = ["FINISHED", "QueueIndex"]

log = logging.getLogger("jobledger")

_LIGHT_USE = 32  # changes a second up to which queue.json is rewritten on every change
_BURST_SNAPSHOT_EVERY = 0.2  # seconds between snapshots of a small, busy queue
_ROTATE_AT = 4 << 20  # journal bytes (about 30,000 lines) after which a snapshot empties it
_MTIME_SLACK_NS = 2_000_000_000  # file-system timestamps can be coarse; look a bit further back
# JobStatus.FINISHED in declaration order: the order counts() lists them in.
FINISHED = tuple(s for s in JobStatus if s in JobStatus.FINISHED)
_FINISHED = FINISHED


class _Entry:
    """What the index keeps of a live job: enough to order and pick it without reading."""

    __slots__ = ("key", "run_after", "status", "type", "worker")

    def __init__(
        self,
        key: tuple[int, int, int, str],
        status: JobStatus,
        worker: str | None,
        run_after: str | None,
        type_: str,
    ) -> None:
        self.key = key
        self.status = status
        self.worker = worker
        self.run_after = run_after
        self.type = type_

    @classmethod
    def of(cls, record: JobRecord) -> _Entry:
        return cls(
            (*record.sort_key(), record.job_id),
            record.status,
            record.worker,
            record.run_after,
            record.type,
        )

    def line(self, n: int, deltas: dict[str, int]) -> str:
        """This entry as a journal line: ``{"n", "id", "s", "k", "a", "t", "w"[, "f"]}``,
        formatted here (every change writes one; a dict through the encoder cost 5x)."""
        p, r, seq, job_id = self.key
        text = (
            f'{{"n":{n},"id":{encode_str(job_id)},"s":"{self.status.value}",'
            f'"k":[{p},{r},{seq}],"a":{_opt_str(self.run_after)},"t":{encode_str(self.type)},'
            f'"w":{_opt_str(self.worker)}'
        )
        return f'{text},"f":{encode_compact(deltas)}}}' if deltas else text + "}"


def _opt_str(value: str | None) -> str:
    return "null" if value is None else encode_str(value)


class QueueIndex:
    """The in-memory index of live jobs, its journal and its snapshot (``queue.json``).

    The files backend derives from it; it reads job files through ``_read`` and opens the
    journal through ``_lock_file``, both the backend's.
    """

    root: str
    jobs_dir: str
    _clock: Clock

    def __init__(self, root: str) -> None:
        self.index_path = os.path.join(root, "queue.json")
        # A read-only index (set by the backend): computed in memory, nothing written,
        # set aside, created or locked; the journal is opened for reading only.
        self._read_only = False
        self.journal_path = os.path.join(root, ".queue.journal")
        self._entries: dict[str, _Entry] = {}
        self._queued: list[tuple[int, int, int, str]] = []  # sorted serving order
        self._running: list[str] = []
        self._finished: dict[str, int] = {s.value: 0 for s in _FINISHED}
        self._opened = False
        self._last_seq = 0
        self._journal_fd: int | None = None
        self._journal_id: tuple[int, int] | None = None  # its (inode, device), once read
        self._journal_off = 0  # bytes of the journal applied to the in-memory index
        # The journal was seen to end at _journal_off under the lock held now (set by each
        # read of it, cleared when the lock is taken): an append need not look again.
        self._journal_at_end = False
        self._revision = 0  # the last journal line number applied
        self._since_snapshot = 0  # journal lines written since queue.json was
        self._snapshot_revision = 0  # the revision of the last queue.json written or read
        self._snapshot_at = 0.0
        self._recent: collections.deque[float] = collections.deque()  # change times, 1 s
        self._prune_unfinished = False  # the last journal line read marks a prune begun
        self._journal_damaged = False  # the last read of the whole journal skipped a line
        # A change the job files hold is missing from queue.json and the journal (the disk
        # refused the index write): write queue.json at the next chance.
        self._index_behind = False
        # Live jobs this process wrote last, as written (with the file's stat then). Under
        # the queue lock a job file changes only through a transition that also appends a
        # journal line, so such a record stays true until a line from another process
        # names it (or a reload); the next transition then needs no read. A write whose
        # line never landed belongs to an operation that never returned, so nothing
        # acknowledged is missed.
        self._written: dict[str, tuple[tuple[int, int, int], JobRecord]] = {}

    def _read(self, job_id: str) -> JobRecord | None:
        raise NotImplementedError

    def _lock_file(self) -> int:
        raise NotImplementedError

    def _read_listed(self, job_id: str) -> JobRecord | None:
        """``_read`` for the paths that go over many jobs (opening, claiming, listing,
        pruning): a folder where a job file should be leaves that job out, with a warning,
        rather than stopping the whole queue. Any other read error is raised: an unreadable
        file still holds its job, which must not be forgotten."""
        try:
            return self._read(job_id)
        except StorageError as exc:
            if exc.errno != errno.EISDIR:
                raise
            log.warning("Job %s is left out of the queue: %s", job_id, exc)
            return None

    def _snapshot_behind(self) -> bool:
        """Whether the index holds changes (ours or read from the journal) that the last
        queue.json this process wrote or loaded does not."""
        return self._revision > self._snapshot_revision

    # -- the index ------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.index_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _set(self, record: JobRecord) -> None:
        """Put a record's state into the in-memory index."""
        self._last_seq = max(self._last_seq, record.seq)
        if record.status.is_live:
            self._place(_Entry.of(record))
        else:
            self._drop(record.job_id)

    def _place(self, entry: _Entry) -> None:
        job_id = entry.key[-1]
        self._drop(job_id)
        self._entries[job_id] = entry
        if entry.status is JobStatus.RUNNING:
            self._running.append(job_id)
        else:
            bisect.insort(self._queued, entry.key)

    def _running_in_order(self) -> list[str]:
        """The Running jobs in serving order (recovered, priority, FIFO), as PostgreSQL
        lists them: the order they were served in, whatever order the index learnt them."""
        return sorted(self._running, key=lambda job_id: self._entries[job_id].key)

    def _drop(self, job_id: str) -> None:
        entry = self._entries.pop(job_id, None)
        if entry is None:
            return
        if entry.status is JobStatus.RUNNING:
            self._running.remove(job_id)
        else:
            i = bisect.bisect_left(self._queued, entry.key)
            if i < len(self._queued) and self._queued[i] == entry.key:
                del self._queued[i]

    # -- the journal ----------------------------------------------------------------------

    def _log(self, job_ids: list[str], deltas: dict[str, int] | None = None) -> None:
        """Append one journal line per job (its index entry now, or its removal), then
        write the snapshot if the journal has grown as large as the live queue."""
        first = self._revision + 1
        lines = []
        for i, job_id in enumerate(job_ids):
            self._revision += 1
            d = deltas if (deltas and i == 0) else {}
            entry = self._entries.get(job_id)
            if entry is not None:
                lines.append(entry.line(self._revision, d))
            else:
                line: dict[str, Any] = {"n": self._revision, "id": job_id, "s": None}
                if d:
                    line["f"] = d
                lines.append(encode_compact(line))
        if not job_ids and deltas is not None:
            self._revision += 1
            lines.append(encode_compact({"n": self._revision, "f": deltas}))
        if lines:
            self._append(lines, first)

    def _log_quietly(self, job_ids: list[str], deltas: dict[str, int] | None = None) -> None:
        """``_log`` for a change the job files already hold. The files are the truth: if
        the journal refuses the line, the change still stands (and this process's index
        has it); it is written out in queue.json as soon as the disk allows, which is how
        other processes then learn of it."""
        try:
            self._log(job_ids, deltas)
        except StorageError as exc:
            self._index_refused(exc)
            self._snapshot_quietly()

    def _index_refused(self, exc: StorageError) -> None:
        if not self._index_behind:
            log.warning(
                "%s The job files hold every change; queue.json is rewritten as soon as the "
                "disk allows (until then other processes sharing the queue may lag behind).",
                str(exc).removesuffix(" The previous state was left intact."),
            )
        self._index_behind = True

    def _snapshot_quietly(self, rotate: bool = False) -> None:
        """Write queue.json if the disk allows; else say so once, and try again later.
        Nothing is lost meanwhile: the journal (or the job files) hold what it lacks.
        A read-only index writes nothing: the next writer's opening does."""
        if self._read_only:
            return
        try:
            self._save_index(rotate)
        except StorageError as exc:
            self._index_refused(exc)

    def _mark_pruning(self) -> None:
        """Say in the journal that a prune starts: its deletes and the line that lowers
        the finished counts cannot be one write, so a reader that finds this line last
        (the pruning process died in between) recounts them from the job files."""
        self._revision += 1
        # No snapshot here: the mark must stay in the journal until the prune's own line.
        line = encode_compact({"n": self._revision, "pruning": True})
        self._append([line], self._revision, snapshot=False)

    def _append(self, lines: list[str], first: int, snapshot: bool = True) -> None:
        """Append journal lines (JSON texts) numbered from ``first``."""
        data = ("\n".join(lines) + "\n").encode()
        fd = self._journal()
        try:
            # Known to end where we stop when the journal was just read under this lock.
            if not self._journal_at_end and os.fstat(fd).st_size != self._journal_off:
                os.ftruncate(fd, self._journal_off)  # a torn last line from a crashed writer
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            # All or nothing: no line of a refused append stays (other processes must not
            # apply half of it), and the next line reuses these numbers (a gap would make
            # this process skip another's lines numbered in it).
            self._revision = first - 1
            self._journal_at_end = False
            try:
                os.ftruncate(fd, self._journal_off)
            except OSError:
                self._opened = False  # cannot tell what is in the journal: reload it
            raise StorageError("append to the queue journal", self.journal_path, exc) from exc
        self._journal_off += len(data)
        self._since_snapshot += len(lines)
        point("queue.journal_appended")
        if snapshot and self._snapshot_due():
            # The journal holds the change: a snapshot the disk refuses is only late.
            self._snapshot_quietly()

    def _snapshot_due(self) -> bool:
        """Whether to rewrite queue.json now. Under light use, always, so that queue.json
        is exact whenever anyone looks; in a burst, every 200 ms for a small queue and
        otherwise once the journal is as long as the live queue (amortised O(1))."""
        now = time.monotonic()
        recent = self._recent
        recent.append(now)
        while recent and now - recent[0] > 1.0:
            recent.popleft()
        if len(recent) <= _LIGHT_USE or self._index_behind:
            return True
        if self._since_snapshot >= max(256, len(self._entries)):
            return True
        return len(self._entries) <= 1000 and now - self._snapshot_at >= _BURST_SNAPSHOT_EVERY

    def _journal(self) -> int:
        if self._journal_fd is None:
            self._lock_file()
        assert self._journal_fd is not None
        return self._journal_fd

    def _read_journal(self) -> bool:
        """Apply the lines other processes appended. False if the journal was replaced
        (a new snapshot) or is damaged: the caller then reloads from queue.json."""
        fd = self._journal()
        try:
            on_disk = os.lstat(self.journal_path)  # a link in its place: reload, refused
        except FileNotFoundError:
            return False
        if self._journal_id is None:
            mine = os.fstat(fd)
            self._journal_id = (mine.st_ino, mine.st_dev)
        if (on_disk.st_ino, on_disk.st_dev) != self._journal_id:
            return False  # replaced by a compaction; our open file keeps its inode unique
        size = on_disk.st_size  # the path's file is ours: one stat tells both
        if size < self._journal_off or size > MAX_JOURNAL_BYTES:
            return False  # the reload refuses an oversize journal by name
        if size == self._journal_off:
            self._journal_at_end = True
            return True
        data = os.pread(fd, size - self._journal_off, self._journal_off)
        end = data.rfind(b"\n") + 1
        for raw in data[:end].splitlines():
            line = parse_line(raw)
            if line is None:
                log.warning(
                    "The queue journal %s has a damaged line (%r); reloading the "
                    "index from the job files",
                    self.journal_path,
                    raw[:80],
                )
                return False
            self._apply(line)
        self._journal_off += end
        self._journal_at_end = end == len(data)  # else a crashed writer's torn line
        return True

    def _apply(self, line: dict[str, Any]) -> None:
        """Apply one journal line, checked by ``parse_line``."""
        n = int(line["n"])
        if n <= self._revision:
            return  # already in the snapshot, or ours
        self._revision = n
        self._prune_unfinished = bool(line.get("pruning"))
        if line.get("id") is not None:
            self._written.pop(str(line["id"]), None)  # another process changed that job
        for status, delta in (line.get("f") or {}).items():
            self._finished[status] = max(0, self._finished.get(status, 0) + int(delta))
        job_id = line.get("id")
        if job_id is None:
            return
        status = line.get("s")
        if status in (JobStatus.QUEUED.value, JobStatus.RUNNING.value):
            k = line["k"]
            key = (int(k[0]), int(k[1]), int(k[2]), str(job_id))
            self._last_seq = max(self._last_seq, key[2])
            self._place(
                _Entry(key, JobStatus(status), line.get("w"), line.get("a"), str(line.get("t")))
            )
        else:
            self._drop(str(job_id))

    def _rotate_journal(self) -> None:
        """Start an empty journal (a new file, so other processes notice the new snapshot)."""
        tmp = os.path.join(self.root, f".queue.journal.tmp-{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        except OSError as exc:
            raise StorageError("start a new queue journal at", self.journal_path, exc) from exc
        try:
            os.replace(tmp, self.journal_path)
        except OSError as exc:
            os.close(fd)
            remove(tmp)
            raise StorageError("start a new queue journal at", self.journal_path, exc) from exc
        if self._journal_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._journal_fd)
        self._journal_fd, self._journal_id = fd, None
        self._journal_off = 0
        self._since_snapshot = 0

    # -- the snapshot ---------------------------------------------------------------------

    def _save_index(self, rotate: bool = False) -> None:
        """Write queue.json from the in-memory index. The journal is replaced by an empty
        one only when asked (``clear``) or once it is large (``_ROTATE_AT``): a new journal
        makes every other process reload its index from queue.json, which reads every
        live job's file, so rotating at each snapshot made two busy processes reload each
        other all the time. queue.json's ``revision`` says which lines it already holds."""
        doc = {
            "running": self._running_in_order(),
            "queued": [k[-1] for k in self._queued],
            "finished": self._finished,
            "revision": self._revision,
        }
        # Each step raises StorageError naming its own file. A failure leaves a consistent
        # pair: the old queue.json with the journal, or the new one with lines it holds.
        write_atomic(self.index_path, dumps_indented(doc), fsync=False)
        point("queue.snapshot_written")
        self._snapshot_revision = self._revision
        self._since_snapshot = 0
        self._snapshot_at = time.monotonic()
        if rotate or self._journal_off >= _ROTATE_AT:
            self._rotate_journal()
            point("queue.journal_rotated")
        self._index_behind = False

    def _load_index(self) -> dict[str, Any] | None:
        try:
            data = read_bytes(self.index_path, MAX_INDEX_BYTES, "queue.json")
        except RefusedFile as exc:
            if exc.errno == errno.EISDIR:
                raise  # a folder in the way is reported, never taken for a damaged index
            self._index_refused_file(exc)
            return None
        if data is None:
            return None
        try:
            doc = parse_json(data)
            problem = index_problem(doc)
            if problem is not None:
                raise ValueError(problem)
        except ValueError as exc:
            if self._read_only:
                log.warning(
                    "queue.json %s is torn or corrupt (%s); counting from the job files. "
                    "Nothing was changed: the queue's next write rebuilds it.",
                    self.index_path,
                    exc,
                )
                return None
            aside = set_aside(self.index_path, self._clock.now())
            log.warning(
                "queue.json %s is torn or corrupt (%s); moved it aside to %s and "
                "rebuilding it from the job files",
                self.index_path,
                exc,
                aside,
            )
            return None
        checked: dict[str, Any] = doc  # index_problem found it an object of our shape
        return checked

    def _index_refused_file(self, exc: RefusedFile) -> None:
        """queue.json is a link, FIFO, device or too large: no index, like a corrupt one
        (a writer renames the entry itself aside, never what a link points to)."""
        if self._read_only:
            log.warning(
                "queue.json %s %s; counting from the job files. Nothing was changed: the "
                "queue's next write sets it aside and rebuilds it.",
                self.index_path,
                exc.reason,
            )
            return
        aside = set_aside(self.index_path, self._clock.now())
        log.warning(
            "queue.json %s %s; moved it aside to %s and rebuilding it from the job files",
            self.index_path,
            exc.reason,
            aside,
        )

    def _sync_index(self) -> None:
        """Catch up with other processes: their journal lines, or their new snapshot."""
        self._prune_unfinished = False
        if not self._read_journal():
            self._open(scan=False)
        elif self._prune_unfinished:
            self._recount_finished()
            self._snapshot_quietly(rotate=True)  # the counts are in no journal line

    def _recount_finished(self) -> None:
        """Count the finished jobs from their files (reads history: only after a prune
        that died between its deletes and its count line)."""
        self._prune_unfinished = False
        counts = {s.value: 0 for s in _FINISHED}
        for job_id in self._job_ids_changed_since(0):
            if job_id in self._entries:
                continue
            record = self._read_listed(job_id)
            if record is not None and not record.status.is_live:
                counts[record.status.value] += 1
        log.warning(
            "A prune of %s was interrupted; recounted the finished jobs from the job files",
            self.jobs_dir,
        )
        self._finished = counts

    def _open(self, scan: bool = True) -> None:
        """Load the snapshot and the journal, reconcile them with the job files (the
        files win), and write a fresh snapshot if anything was behind."""
        self._written.clear()
        self._entries.clear()
        self._queued.clear()
        self._running.clear()
        self._finished = {s.value: 0 for s in _FINISHED}
        stamp = self._stamp()
        doc = self._load_index()
        if doc is None:
            self._rebuild()
            self._opened = True
            return
        # Every value checked by index_problem: what this library writes, nothing else.
        self._revision = doc["revision"]
        self._snapshot_revision = self._revision
        for s in _FINISHED:
            self._finished[s.value] = doc["finished"][s.value]
        listed = list(dict.fromkeys(doc["running"] + doc["queued"]))
        running = set(doc["running"])
        # Journal lines newer than the snapshot: which jobs they made live or removed.
        latest: dict[str, str | None] = {}
        replayed = 0
        self._journal_fd_reopen()
        pruning = False
        self._journal_damaged = False
        for line in self._journal_lines():
            if int(line.get("n", 0)) <= self._revision:
                continue
            self._revision = int(line["n"])
            replayed += 1
            pruning = bool(line.get("pruning"))
            for status, delta in (line.get("f") or {}).items():
                self._finished[status] = max(0, self._finished.get(status, 0) + int(delta))
            if line.get("id") is not None:
                latest[str(line["id"])] = line.get("s")
                if line.get("s") == JobStatus.RUNNING.value:
                    running.add(str(line["id"]))
                else:
                    running.discard(str(line["id"]))
        if self._journal_damaged:
            # A change in a damaged line would be lost (a job made live, a count moved):
            # the job files hold every change, so the index is counted from them.
            self._rebuild()
            self._opened = True
            return
        live_states = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
        ids = [i for i in listed if latest.get(i, "Queued") in live_states]
        ids += [i for i, st in latest.items() if st in live_states and i not in set(listed)]
        repaired = False  # changed what no journal line says: others must reload
        for job_id in ids:
            record = self._read_listed(job_id)
            if record is None:
                log.warning(
                    "queue.json lists job %s but it has no readable job file; "
                    "dropping it from the index",
                    job_id,
                )
                repaired = True
                continue
            if not record.status.is_live:
                self._finished[record.status.value] += 1
                repaired = True
            elif (record.status is JobStatus.RUNNING) != (job_id in running):
                repaired = True
            self._set(record)
        if scan:
            # Job files written after the snapshot (a crash between a job write and its
            # journal line, or a power cut that lost unsynced index writes).
            since = (stamp[2] - _MTIME_SLACK_NS) if stamp is not None else 0
            for job_id in self._job_ids_changed_since(since):
                if job_id in self._entries or job_id in latest or job_id in set(listed):
                    continue
                record = self._read_listed(job_id)
                if record is not None and record.status.is_live:
                    log.warning(
                        "Job %s (%s) was missing from queue.json; added it back",
                        job_id,
                        record.status.value,
                    )
                    self._set(record)
                    repaired = True
        if pruning:
            self._recount_finished()
            repaired = True
        self._opened = True
        if repaired or replayed or stamp is None:
            # Opening only reads: on a full disk the queue stays readable, and queue.json
            # catches up later (the journal, read up to _journal_off, is kept meanwhile).
            # A repair is in no journal line: a new journal makes other processes reload.
            self._snapshot_quietly(rotate=repaired)

    def _journal_fd_reopen(self) -> None:
        if self._journal_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._journal_fd)
        self._journal_id = None
        try:
            # Only a regular file, opened without blocking (a FIFO would hang a reader).
            if self._read_only:
                self._journal_fd = open_regular(self.journal_path)
            else:
                self._journal_fd = open_regular(
                    self.journal_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644
                )
        except OSError as exc:
            self._journal_fd = None
            if self._read_only and isinstance(exc, RefusedFile):
                log.warning(
                    "The queue journal %s %s; reading the queue without it (from queue.json "
                    "and the job files). Nothing was changed.",
                    self.journal_path,
                    exc.reason,
                )
            elif isinstance(exc, RefusedFile):
                raise
            elif not (self._read_only and isinstance(exc, FileNotFoundError)):
                raise StorageError("open the queue journal", self.journal_path, exc) from exc
            # A reader creates nothing: no journal, no lines.
        self._journal_off = 0
        self._journal_at_end = False
        self._since_snapshot = 0

    def _journal_lines(self) -> Iterator[dict[str, Any]]:
        """Every whole line of the journal; ``_journal_off`` is set to their end (a torn
        last line is left out, and cut by the next append)."""
        if self._read_only and self._journal_fd is None:
            self._journal_off = 0
            return
        fd = self._journal()
        size = os.fstat(fd).st_size
        if size > MAX_JOURNAL_BYTES:
            refused = RefusedFile(
                self.journal_path,
                f"is larger than the {MAX_JOURNAL_BYTES >> 20} MiB limit for the queue journal",
                errno.EFBIG,
                "remove it: queue.json and the job files hold the queue, and a new journal "
                "is started",
            )
            if not self._read_only:
                raise refused
            log.warning("%s Reading the queue without it.", refused)
            self._journal_off = 0
            return
        data = os.pread(fd, size, 0) if size else b""
        self._journal_off = data.rfind(b"\n") + 1
        self._journal_at_end = self._journal_off == size
        for raw in data[: self._journal_off].splitlines():
            line = parse_line(raw)
            if line is None:
                log.warning(
                    "The queue journal %s has a damaged line (%r); the index is counted "
                    "from the job files",
                    self.journal_path,
                    raw[:80],
                )
                self._journal_damaged = True
                continue
            yield line

    def _job_ids_changed_since(self, mtime_ns: int) -> Iterator[str]:
        try:
            entries = os.scandir(self.jobs_dir)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError("list the job files in", self.jobs_dir, exc) from exc
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

    def _rebuild(self) -> None:
        """Rebuild the index from every job file (the slow path, after index damage)."""
        self._written.clear()
        self._entries.clear()
        self._queued.clear()
        self._running.clear()
        self._finished = {s.value: 0 for s in _FINISHED}
        for job_id in self._job_ids_changed_since(0):
            record = self._read_listed(job_id)
            if record is None:
                continue
            if record.status.is_live:
                self._set(record)
            else:
                self._finished[record.status.value] += 1
                self._last_seq = max(self._last_seq, record.seq)
        # Number the next journal lines after every line the journal holds (processes
        # still reading it skip a line numbered at or below what they have applied), so
        # that it can go on from here should the disk refuse queue.json.
        self._journal_fd_reopen()
        for line in self._journal_lines():
            self._revision = max(self._revision, line["n"])
        self._snapshot_quietly(rotate=True)  # rebuilt: every other process must reload
        if self._read_only:
            log.warning(
                "The index of %s (queue.json, .queue.journal) is missing or damaged; "
                "counted the jobs from the job files (%d running, %d queued). Nothing was "
                "written: the queue's next write rebuilds it.",
                self.root,
                len(self._running),
                len(self._queued),
            )
        elif self._entries or any(self._finished.values()):
            log.warning(
                "Rebuilt queue.json from the job files in %s: %d running, %d queued",
                self.jobs_dir,
                len(self._running),
                len(self._queued),
            )
