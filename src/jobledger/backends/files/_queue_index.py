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

import collections
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from ..._clock import Clock
from ..._errors import StorageError
from ..._faults import point
from ..._job_record import JobRecord, JobStatus
from ..._json import dumps_indented, encode_compact
from ..._limits import DEFAULT_QUEUE
from ._atomic_write import remove, write_atomic
from ._index_snapshot import load_snapshot
from ._job_files import job_ids_changed_since
from ._queue_journal import Journal
from ._serving import Entry, ServingOrder
from ._sync_plan import SyncPlan

__all__ = ["FINISHED", "QueueIndex", "Read", "finished_deltas", "finished_key"]

log = logging.getLogger("jobledger")

_LIGHT_USE = 32  # changes a second up to which queue.json is rewritten on every change
_BURST_SNAPSHOT_EVERY = 0.2  # seconds between snapshots of a small, busy queue
_ROTATE_AT = 4 << 20  # journal bytes (about 30,000 lines) after which a snapshot empties it
_MTIME_SLACK_NS = 2_000_000_000  # file-system timestamps can be coarse; look a bit further back
# JobStatus.FINISHED in declaration order: the order counts() lists them in.
FINISHED = tuple(s for s in JobStatus if s in JobStatus.FINISHED)

Read = Callable[[str], JobRecord | None]  # a job's record from its file (read_listed)


def finished_key(record: JobRecord) -> str:
    """The key of the finished counts that counts ``record`` (finished): its status, and
    for a named queue's job, ``"<status>:<queue>"``."""
    if record.queue == DEFAULT_QUEUE:
        return str(record.status)
    return f"{record.status}:{record.queue}"


def finished_deltas(old: JobRecord, new: JobRecord) -> dict[str, int]:
    """How a change of a job from ``old`` to ``new`` moves the finished counts."""
    deltas: dict[str, int] = {}
    if not old.status.is_live:
        deltas[finished_key(old)] = -1
    if not new.status.is_live:
        key = finished_key(new)
        deltas[key] = deltas.get(key, 0) + 1
    return {k: v for k, v in deltas.items() if v}


class QueueIndex:
    """The in-memory index of a files queue, with its journal and snapshot (``queue.json``).

    Owned by the files backend, and used under its queue lock only. It never reads a job
    file itself: the methods that must are given ``read`` (the backend's ``_read_listed``).

    Opening and catching up:
      ``open(read, scan=True)`` loads queue.json, replays the journal and reconciles both
      with the job files (which win), or rebuilds from every job file when either is
      damaged; ``sync(read)`` applies the lines other processes appended since (or opens
      afresh if the journal was replaced); ``close()`` releases the journal and forgets the
      index, writing nothing; ``after_fork()`` gives a forked child its own descriptor.
    Changing (each applied in memory by ``_change``, the one place where a change lands,
    be it a record's or a journal line's):
      ``update(record, deltas)``, ``remove(job_id)``, ``move_counts(deltas)``; then
      ``log(job_ids, deltas)`` appends their lines (StorageError: none appended),
      ``log_quietly`` for a change the job files already hold, and ``mark_pruning()``.
    The snapshot: ``behind()``, ``save()``, ``clear()`` (an empty index, a new journal).

    State the backend reads: ``order`` (the live jobs, in serving order), ``finished``
    (counts by status), ``last_seq``, ``written`` (see ``__init__``) and ``opened``.

    Invariants:
    - ``revision`` is the number of the last journal line applied or written, and lines
      are numbered without gaps: a refused append gives its numbers back.
    - queue.json's ``revision`` says which lines it holds; ``behind()`` is true whenever
      this index holds a change that the last queue.json written or read does not.
    - ``finished`` counts never go below 0; a listed (live) job is never in them.
    - While ``opened``, a writer's journal descriptor is open and ``journal.off`` is the
      end of the lines applied.
    """

    def __init__(self, root: str, jobs_dir: str, *, clock: Clock, read_only: bool) -> None:
        self.root = root
        self.jobs_dir = jobs_dir
        self.index_path = os.path.join(root, "queue.json")
        self._clock = clock
        # A read-only index: computed in memory, nothing written, set aside, created or
        # locked; the journal is opened for reading only.
        self._read_only = read_only
        self.journal = Journal(root, read_only=read_only)
        self.order = ServingOrder()
        self.finished: dict[str, int] = {s.value: 0 for s in FINISHED}
        self.opened = False
        self.last_seq = 0
        self.revision = 0  # the last journal line number applied
        self._since_snapshot = 0  # journal lines written since queue.json was
        self._snapshot_revision = 0  # the revision of the last queue.json written or read
        self._snapshot_at = 0.0
        self._recent: collections.deque[float] = collections.deque()  # change times, 1 s
        self._prune_unfinished = False  # the last journal line read marks a prune begun
        # A change the job files hold is missing from queue.json and the journal (the disk
        # refused the index write): write queue.json at the next chance.
        self._index_behind = False
        # Live jobs this process wrote last, as written (with the file's stat then). Under
        # the queue lock a job file changes only through a transition that also appends a
        # journal line, so such a record stays true until a line from another process
        # names it (or a reload); the next transition then needs no read. A write whose
        # line never landed belongs to an operation that never returned, so nothing
        # acknowledged is missed.
        self.written: dict[str, tuple[tuple[int, int, int], JobRecord]] = {}
        # Unique keys: each key's latest job (its seq and id), live or finished. The live
        # ones are always known (``order.by_key`` too); the finished ones only once
        # ``keys_complete``: the journal says which key a job takes when it becomes live,
        # but a process that reloads its index (a rotated journal) may have missed jobs
        # that came and finished meanwhile, so ``complete_keys`` reads every job file
        # once, when an enqueue with ``unique_for`` first needs them. Never written to
        # queue.json: its size follows the live queue, not history.
        self.keys: dict[str, tuple[int, str]] = {}
        self.keys_complete = False

    # -- changes in memory ----------------------------------------------------------------

    def _change(self, job_id: str | None, entry: Entry | None, deltas: dict[str, int]) -> None:
        """The one way a change lands in the index, from a record or a journal line: move
        the finished counts, then place the job's entry, or drop the job (no entry)."""
        for status, delta in deltas.items():
            self.finished[status] = max(0, self.finished.get(status, 0) + delta)
        if entry is not None:
            self.last_seq = max(self.last_seq, entry.key[2])
            self.order.place(entry)
        elif job_id is not None:
            self.order.drop(job_id)

    def update(self, record: JobRecord, deltas: dict[str, int] | None = None) -> None:
        """Put a record's state (and moves of the finished counts) into the index."""
        self.last_seq = max(self.last_seq, record.seq)
        entry = Entry.of(record) if record.status.is_live else None
        self._change(record.job_id, entry, deltas or {})
        if record.unique_key is not None:
            self.note_key(record.unique_key, record.seq, record.job_id)

    def note_key(self, key: str, seq: int, job_id: str) -> None:
        """``job_id`` (served as ``seq``) has the unique key: it is the key's latest job
        unless a later one (a higher seq) has it too."""
        known = self.keys.get(key)
        if known is None or (seq, job_id) >= known:
            self.keys[key] = (seq, job_id)

    def forget_key(self, key: str, job_id: str) -> None:
        """The job is gone (pruned): the key is no longer its."""
        known = self.keys.get(key)
        if known is not None and known[1] == job_id:
            del self.keys[key]

    def complete_keys(self, read: Read) -> None:
        """Learn the unique key of every job file (reads them all, once: see ``keys``)."""
        for job_id in job_ids_changed_since(self.jobs_dir, 0):
            if job_id in self.order.entries:
                continue  # live: known already
            record = read(job_id)
            if record is not None and record.unique_key is not None:
                self.note_key(record.unique_key, record.seq, record.job_id)
        self.keys_complete = True

    def remove(self, job_id: str) -> None:
        """Take a job out of the index (its file is gone, or was never written)."""
        self._change(job_id, None, {})

    def move_counts(self, deltas: dict[str, int]) -> None:
        """Move the finished counts alone (a prune)."""
        self._change(None, None, deltas)

    def _apply(self, line: dict[str, Any]) -> bool:
        """Apply one journal line, checked by ``parse_line``; False if the index already
        holds it (in the snapshot, or this process's own)."""
        n = int(line["n"])
        if n <= self.revision:
            return False
        self.revision = n
        self._prune_unfinished = bool(line.get("pruning"))
        job_id = line.get("id")
        if job_id is not None:
            self.written.pop(str(job_id), None)  # another process changed that job
        deltas = {str(k): int(v) for k, v in (line.get("f") or {}).items()}
        live = line.get("s") in (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
        entry = Entry.of_line(line) if job_id is not None and live else None
        self._change(None if job_id is None else str(job_id), entry, deltas)
        key = line.get("u")
        if key is not None and job_id is not None:
            if entry is not None:
                self.note_key(str(key), entry.key[2], str(job_id))
            else:
                self.forget_key(str(key), str(job_id))  # pruned
        return True

    def _reset(self) -> None:
        """Forget every job and count (the revision and ``last_seq`` carry on)."""
        self.written.clear()
        self.order.clear()
        self.finished = {s.value: 0 for s in FINISHED}
        self._prune_unfinished = False

    # -- the journal ----------------------------------------------------------------------

    def log(
        self,
        job_ids: list[str],
        deltas: dict[str, int] | None = None,
        forgotten: dict[str, str] | None = None,
    ) -> None:
        """Append one journal line per job (its index entry now, or its removal), then
        write the snapshot if the journal has grown as large as the live queue.
        ``forgotten``: the unique keys of removed jobs (by id) that are gone for good
        (pruned), which other processes forget too."""
        first = self.revision + 1
        lines = []
        for i, job_id in enumerate(job_ids):
            self.revision += 1
            d = deltas if (deltas and i == 0) else {}
            entry = self.order.entries.get(job_id)
            if entry is not None:
                lines.append(entry.line(self.revision, d))
            else:
                line: dict[str, Any] = {"n": self.revision, "id": job_id, "s": None}
                if forgotten and job_id in forgotten:
                    line["u"] = forgotten[job_id]
                if d:
                    line["f"] = d
                lines.append(encode_compact(line))
        if not job_ids and deltas is not None:
            self.revision += 1
            lines.append(encode_compact({"n": self.revision, "f": deltas}))
        if lines:
            self._append(lines, first)

    def log_quietly(
        self,
        job_ids: list[str],
        deltas: dict[str, int] | None = None,
        forgotten: dict[str, str] | None = None,
    ) -> None:
        """``log`` for a change the job files already hold. The files are the truth: if
        the journal refuses the line, the change still stands (and this process's index
        has it); it is written out in queue.json as soon as the disk allows, which is how
        other processes then learn of it."""
        try:
            self.log(job_ids, deltas, forgotten)
        except StorageError as exc:
            self._index_refused(exc)
            self._save_quietly()

    def _index_refused(self, exc: StorageError) -> None:
        if not self._index_behind:
            log.warning(
                "%s The job files hold every change; queue.json is rewritten as soon as the "
                "disk allows (until then other processes sharing the queue may lag behind).",
                str(exc).removesuffix(" The previous state was left intact."),
            )
        self._index_behind = True

    def mark_pruning(self) -> None:
        """Say in the journal that a prune starts: its deletes and the line that lowers
        the finished counts cannot be one write, so a reader that finds this line last
        (the pruning process died in between) recounts them from the job files."""
        self.revision += 1
        # No snapshot here: the mark must stay in the journal until the prune's own line.
        line = encode_compact({"n": self.revision, "pruning": True})
        self._append([line], self.revision, snapshot=False)

    def _append(self, lines: list[str], first: int, snapshot: bool = True) -> None:
        """Append journal lines (JSON texts) numbered from ``first``."""
        try:
            self.journal.append(("\n".join(lines) + "\n").encode())
        except StorageError:
            # The next line reuses these numbers (a gap would make this process skip
            # another's lines numbered in it).
            self.revision = first - 1
            if self.journal.in_doubt:
                self.opened = False  # cannot tell what is in the journal: reload it
            raise
        self._since_snapshot += len(lines)
        point("queue.journal_appended")
        if snapshot and self._snapshot_due():
            # The journal holds the change: a snapshot the disk refuses is only late.
            self._save_quietly()

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
        live = len(self.order.entries)
        if self._since_snapshot >= max(256, live):
            return True
        return live <= 1000 and now - self._snapshot_at >= _BURST_SNAPSHOT_EVERY

    # -- the snapshot ---------------------------------------------------------------------

    def behind(self) -> bool:
        """Whether queue.json lacks a change this index holds (ours, or read from the
        journal), or the disk refused the last write of it."""
        return bool(
            self._since_snapshot or self._index_behind or self.revision > self._snapshot_revision
        )

    def _save_quietly(self, rotate: bool = False) -> None:
        """Write queue.json if the disk allows; else say so once, and try again later.
        Nothing is lost meanwhile: the journal (or the job files) hold what it lacks.
        A read-only index writes nothing: the next writer's opening does."""
        if self._read_only:
            return
        try:
            self.save(rotate)
        except StorageError as exc:
            self._index_refused(exc)

    def save(self, rotate: bool = False) -> None:
        """Write queue.json from the in-memory index. The journal is replaced by an empty
        one only when asked (a repair) or once it is large (``_ROTATE_AT``): a new journal
        makes every other process reload its index from queue.json, which reads every
        live job's file, so rotating at each snapshot made two busy processes reload each
        other all the time. queue.json's ``revision`` says which lines it already holds."""
        doc = {
            "running": self.order.running_in_order(),
            "queued": self.order.queued_ids(),
            "finished": self.finished,
            "revision": self.revision,
        }
        # Each step raises StorageError naming its own file. A failure leaves a consistent
        # pair: the old queue.json with the journal, or the new one with lines it holds.
        write_atomic(self.index_path, dumps_indented(doc), SyncPlan.NONE)
        point("queue.snapshot_written")
        self._snapshot_revision = self.revision
        self._since_snapshot = 0
        self._snapshot_at = time.monotonic()
        if rotate or self.journal.off >= _ROTATE_AT:
            self.journal.rotate()
            point("queue.journal_rotated")
        self._index_behind = False

    def clear(self) -> None:
        """An empty index: queue.json removed, and a new journal (other open queues notice,
        and reload an empty index). The job files are the caller's to remove, first."""
        remove(self.index_path)
        self._reset()
        self.keys.clear()
        self.keys_complete = True
        self.revision = 0
        self.journal.rotate()
        self._since_snapshot = 0
        self._snapshot_revision = 0
        self.opened = False

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.index_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    # -- opening and catching up ----------------------------------------------------------

    def close(self) -> None:
        """Release the journal and forget the index (writes nothing: the backend's
        ``close`` checkpoints first)."""
        self.journal.close()
        self.opened = False

    def after_fork(self) -> None:
        """In a forked child: a journal descriptor of its own (the index read so far
        stays, and catches up at the next ``sync``)."""
        self.journal.after_fork()

    def sync(self, read: Read) -> None:
        """Catch up with other processes: their journal lines, or their new snapshot."""
        self._prune_unfinished = False
        lines = self.journal.read_new()
        if lines is None:
            self.open(read, scan=False)
            return
        for line in lines:
            self._apply(line)
        if self._prune_unfinished:
            self._recount_finished(read)
            self._save_quietly(rotate=True)  # the counts are in no journal line

    def open(self, read: Read, scan: bool = True) -> None:
        """Load the snapshot and replay the journal, reconcile them with the job files
        (the files win), and write a fresh snapshot if anything was behind. ``scan``: also
        look for job files changed since queue.json was written."""
        self._reset()
        # What this index knew of finished jobs' keys stays (each is checked against its
        # job file before use); what came and went while it was not looking is unknown.
        self.keys_complete = False
        stamp = self._stamp()
        doc = load_snapshot(self.index_path, self._clock, read_only=self._read_only)
        if doc is None:
            self._rebuild(read)
            return
        # Every value checked by index_problem: what this library writes, nothing else.
        self.revision = doc["revision"]
        self._snapshot_revision = self.revision
        self.finished.update(doc["finished"])  # per queue too: "Completed:gpu"
        listed = list(dict.fromkeys(doc["running"] + doc["queued"]))
        listed_set, running = set(listed), set(doc["running"])
        self._open_journal()
        # The lines newer than the snapshot, applied as another process's are: the counts
        # move, and the jobs they name are placed or dropped.
        named: dict[str, None] = {}  # the jobs they name, in order
        replayed = 0
        for line in self.journal.read_all():
            if self._apply(line):
                replayed += 1
                if line.get("id") is not None:
                    named[str(line["id"])] = None
        if self.journal.damaged:
            # A change in a damaged line would be lost (a job made live, a count moved):
            # the job files hold every change, so the index is counted from them.
            self._rebuild(read)
            return
        pruning = self._prune_unfinished
        # Each job the snapshot and the lines leave live (and whether Running) is checked
        # against its file, and placed as the file says.
        entries = self.order.entries
        said = {i: i in running for i in listed if i not in named}
        said.update((i, entries[i].status is JobStatus.RUNNING) for i in named if i in entries)
        said = {i: said[i] for i in [*listed, *named] if i in said}  # the snapshot's first
        self.order.clear()
        repaired = False  # changed what no journal line says: others must reload
        for job_id, was_running in said.items():
            record = read(job_id)
            if record is None:
                log.warning(
                    "queue.json lists job %s but it has no readable job file; "
                    "dropping it from the index",
                    job_id,
                )
                repaired = True
                continue
            if not record.status.is_live:
                self.update(record, {finished_key(record): 1})
                repaired = True
                continue
            if (record.status is JobStatus.RUNNING) != was_running:
                repaired = True
            self.update(record)
        if scan:
            # Job files written after the snapshot (a crash between a job write and its
            # journal line, or a power cut that lost unsynced index writes).
            since = (stamp[2] - _MTIME_SLACK_NS) if stamp is not None else 0
            for job_id in job_ids_changed_since(self.jobs_dir, since):
                if job_id in entries or job_id in named or job_id in listed_set:
                    continue
                record = read(job_id)
                if record is not None and record.status.is_live:
                    log.warning(
                        "Job %s (%s) was missing from queue.json; added it back",
                        job_id,
                        record.status.value,
                    )
                    self.update(record)
                    repaired = True
        if pruning:
            self._recount_finished(read)
            repaired = True
        self.opened = True
        if repaired or replayed or stamp is None:
            # Opening only reads: on a full disk the queue stays readable, and queue.json
            # catches up later (the journal, read up to its offset, is kept meanwhile).
            # A repair is in no journal line: a new journal makes other processes reload.
            self._save_quietly(rotate=repaired)

    def _open_journal(self) -> None:
        self.journal.open()
        self._since_snapshot = 0

    def rebuild(self, read: Read) -> None:
        """Rebuild the index from every job file now (after job files were written behind
        its back, as ``import_records`` does), and write it out."""
        self._rebuild(read)

    def _rebuild(self, read: Read) -> None:
        """Rebuild the index from every job file (the slow path, after index damage)."""
        self._reset()
        self.keys.clear()
        for job_id in job_ids_changed_since(self.jobs_dir, 0):
            record = read(job_id)
            if record is not None:
                live = record.status.is_live
                self.update(record, None if live else {finished_key(record): 1})
        self.keys_complete = True
        # Number the next journal lines after every line the journal holds (processes
        # still reading it skip a line numbered at or below what they have applied), so
        # that it can go on from here should the disk refuse queue.json.
        self._open_journal()
        for line in self.journal.read_all():
            self.revision = max(self.revision, line["n"])
        self._save_quietly(rotate=True)  # rebuilt: every other process must reload
        self.opened = True
        running, queued = len(self.order.running), len(self.order.queued)
        if self._read_only:
            log.warning(
                "The index of %s (queue.json, .queue.journal) is missing or damaged; "
                "counted the jobs from the job files (%d running, %d queued). Nothing was "
                "written: the queue's next write rebuilds it.",
                self.root,
                running,
                queued,
            )
        elif self.order.entries or any(self.finished.values()):
            log.warning(
                "Rebuilt queue.json from the job files in %s: %d running, %d queued",
                self.jobs_dir,
                running,
                queued,
            )

    def _recount_finished(self, read: Read) -> None:
        """Count the finished jobs from their files (reads history: only after a prune
        that died between its deletes and its count line)."""
        self._prune_unfinished = False
        counts = {s.value: 0 for s in FINISHED}
        for job_id in job_ids_changed_since(self.jobs_dir, 0):
            if job_id in self.order.entries:
                continue
            record = read(job_id)
            if record is not None and not record.status.is_live:
                key = finished_key(record)
                counts[key] = counts.get(key, 0) + 1
        log.warning(
            "A prune of %s was interrupted; recounted the finished jobs from the job files",
            self.jobs_dir,
        )
        self.finished = counts
