"""Disk trouble in the job queue: a refused write raises StorageError, and nothing is lost.

Every queue write (enqueue, enqueue_many, claim, complete, fail, cancel, retry, prune, the
journal append and the queue.json snapshot) is refused at each of its write points (the
temp file's creation, its write, its fsync, the rename, the folder's fsync, the journal
line, the snapshot) with ENOSPC, EDQUOT, EIO or EACCES, for both orders of a durable
replace (sync then rename; rename then sync, as on ext4 with a journal). After each: the
error names the path and says what to check; no temp file is left; a new JobQueue on the
folder reads every job as it was (or, for a failure after the rename, as the message says:
the new content); counts() agrees with list() and with the job files; and once the fault
is gone the same operation goes through and every job is served exactly once.

Three outcomes, by where the write was refused:

- refused: before the job file changed (or before the index listed a job about to be
  written): StorageError, "the previous state was left intact", and it is.
- in place: after the rename, while making it durable: StorageError, "the new content is
  in place but may not survive a power cut", and the queue follows the new content.
- index late: the job file (the truth) holds the change, only queue.json or the journal
  line after it was refused: the change stands, a warning names the file and what to
  check, and queue.json catches up once the disk allows.

Also: a completion a Worker records with its next claim, whose claim alone the disk
refuses (the completion stands); a read-only folder (tests run as root in CI, where chmod
does not stop writes: there the refusal is injected), a folder where a job file or
queue.json should be, a file where jobs/ should be, and a real full disk (a small tmpfs)
where the machine lets a test mount one. No sleeping, no timing assertions.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import jobledger
from jobledger import JobQueue, JobStatus
from jobledger.backends.files import _atomic_write
from tests.crash._harness import temp_files

TEMP_MARK = _atomic_write.TEMP_MARK
INTACT = "The previous state was left intact."
IN_PLACE = "The new content is in place but may not survive a power cut."
HINTS = {
    errno.ENOSPC: "the disk is full; free some space",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EIO: "check the path, its permissions and free space",
    errno.EACCES: "check that this user may write to the folder (permissions, ownership)",
}


# -- a disk that refuses ------------------------------------------------------------------


@dataclass
class Rule:
    call: str
    err: int
    where: Callable[[str], bool]
    skip: int  # matching calls let through first
    times: int  # then refused this many times
    first_line: bool = False  # a write first lands up to its first newline, then fails


class Disk:
    """Refuses chosen OS calls as a troubled disk would.

    Installed before the queue opens anything, so that it knows which file each
    descriptor is (writes and fsyncs name a descriptor, not a path), renames included:
    the fsync of a job file renamed before it is synced (rename first, sync after) is
    still that job file's."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: dict[int, str] = {}
        self.rules: list[Rule] = []
        self.read_only: list[str] = []
        self.refused: list[tuple[str, str]] = []
        real = {n: getattr(os, n) for n in ("open", "close", "write", "fsync", "replace")}
        real.update({n: getattr(os, n) for n in ("unlink", "mkdir")})

        def open_(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
            path = os.path.abspath(os.fspath(path))
            creating = bool(flags & os.O_CREAT) and not os.path.lexists(path)
            self._check("open", path, entry=creating)
            fd: int = real["open"](path, flags, mode, dir_fd=dir_fd)
            self.paths[fd] = path
            return fd

        def close(fd: int) -> None:
            self.paths.pop(fd, None)
            real["close"](fd)

        def write(fd: int, data: Any) -> int:
            path = self.path_of(fd)
            for rule in self.rules:
                if rule.first_line and rule.call == "write" and rule.where(path):
                    rule.first_line = False  # a short write: one whole line lands
                    cut = bytes(data).find(b"\n") + 1
                    if 0 < cut < len(data):
                        landed: int = real["write"](fd, bytes(data)[:cut])
                        return landed
            self._check("write", path)
            n: int = real["write"](fd, data)
            return n

        def fsync(fd: Any) -> None:
            self._check("fsync", self.path_of(fd))
            real["fsync"](fd)

        def replace(src: Any, dst: Any, **kwargs: Any) -> None:
            src, dst = os.path.abspath(os.fspath(src)), os.path.abspath(os.fspath(dst))
            self._check("replace", src, dst, entry=True)
            real["replace"](src, dst, **kwargs)
            for fd, path in list(self.paths.items()):
                if path == src:
                    self.paths[fd] = dst

        def unlink(path: Any, **kwargs: Any) -> None:
            self._check("unlink", os.path.abspath(os.fspath(path)), entry=True)
            real["unlink"](path, **kwargs)

        def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
            self._check("mkdir", os.path.abspath(os.fspath(path)), entry=True)
            real["mkdir"](path, *args, **kwargs)

        fakes = {"open": open_, "close": close, "write": write, "fsync": fsync}
        fakes.update({"replace": replace, "unlink": unlink, "mkdir": mkdir})
        for name, fake in fakes.items():
            monkeypatch.setattr(_atomic_write.os, name, fake)  # the os module, for everyone

    def path_of(self, fd: Any) -> str:
        fd = fd if isinstance(fd, int) else fd.fileno()
        return self.paths.get(fd, f"<fd {fd}>")

    def refuse(
        self,
        call: str,
        err: int,
        where: Callable[[str], bool],
        *,
        skip: int = 0,
        times: int = 1,
        first_line: bool = False,
    ) -> None:
        """Refuse ``os.<call>`` on the paths ``where`` accepts with ``err``."""
        self.rules.append(Rule(call, err, where, skip, times, first_line))

    def make_read_only(self, folder: Path) -> None:
        """Refuse with EACCES what a folder without write permission refuses: creating,
        renaming or deleting an entry in it (files already there stay writable)."""
        self.read_only.append(os.path.abspath(folder))

    def heal(self) -> None:
        self.rules.clear()
        self.read_only.clear()

    def _check(self, call: str, *paths: str, entry: bool = False) -> None:
        if entry and any(os.path.dirname(p) in self.read_only for p in paths):
            self._refuse(call, errno.EACCES, paths)
        for rule in self.rules:
            if rule.call != call or rule.times == 0 or not any(map(rule.where, paths)):
                continue
            if rule.skip:
                rule.skip -= 1
                continue
            rule.times -= 1
            self._refuse(call, rule.err, paths)

    def _refuse(self, call: str, err: int, paths: tuple[str, ...]) -> None:
        self.refused.append((call, paths[-1]))
        raise OSError(err, os.strerror(err), paths[-1])


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    return Disk(monkeypatch)


def base(path: str) -> str:
    return os.path.basename(path)


def temp_of(name: str) -> Callable[[str], bool]:
    """The temp file of ``name`` (a job file, queue.json or the journal)."""
    return lambda p: base(p).startswith(f".{name}{TEMP_MARK}")


def job_file(job_id: str) -> Callable[[str], bool]:
    """A job's file or its temp (an fsync after the rename names the file itself)."""
    name = f"{job_id}.json"
    return lambda p: base(p) == name or temp_of(name)(p)


def named(path: Path) -> Callable[[str], bool]:
    real = os.path.realpath(path)
    return lambda p: os.path.realpath(p) == real


# -- the queue before the fault -----------------------------------------------------------


def opened(root: Path, clock: Any, ordered: bool = True) -> JobQueue:
    """A queue with one job of each kind (durability="fsync"):

    done   Completed two hours ago (what prune deletes)
    dead   Failed for good (what retry queues again)
    run    Running under this queue's worker (what complete and fail finish)
    next   Queued, served first (what claim takes and cancel cancels)
    later  Queued
    """
    q = JobQueue(root, durability="fsync", clock=clock, retry_delay=60)
    # As on ext4 with a journal (rename, then sync) / elsewhere (sync, then rename).
    q.backend._rename_ordered = ordered
    q.enqueue({"type": "T"}, job_id="done", priority=9)
    assert q.claim().job_id == "done"
    q.complete("done", "old")
    clock.advance(hours=2)
    q.enqueue({"type": "T"}, job_id="dead", priority=9, max_attempts=1)
    assert q.claim().job_id == "dead"
    q.fail("dead", "boom")
    q.enqueue({"type": "T"}, job_id="run", priority=9)
    assert q.claim().job_id == "run"
    q.enqueue({"type": "T"}, job_id="next", priority=5)
    q.enqueue({"type": "T"}, job_id="later")
    return q


State = dict[str, tuple[str, int]]


def files_state(root: Path) -> State:
    """Every job file, straight from disk: job id -> (status, attempts)."""
    out = {}
    for p in (root / "jobs").glob("*.json"):
        if p.is_file():
            doc = json.loads(p.read_bytes())
            out[doc["job_id"]] = (doc["status"], doc["_jobledger"]["attempts"])
    return out


def file_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "jobs").iterdir() if p.is_file()}


def view(q: JobQueue, root: Path) -> State:
    """What the queue reports: job id -> (status, attempts), checked for consistency:
    no job listed twice, counts() the same as list(), list() the same as the files."""
    jobs = q.list()
    ids = [j.job_id for j in jobs]
    assert len(ids) == len(set(ids)), f"a job is listed twice: {ids}"
    counts = {status: n for status, n in q.counts().items() if n}
    assert counts == dict(Counter(j.status.value for j in jobs)), "counts() disagrees"
    state = {j.job_id: (j.status.value, j.attempts) for j in jobs}
    assert state == files_state(root), "the queue does not list what the job files hold"
    return state


@contextlib.contextmanager
def fresh(root: Path) -> Iterator[JobQueue]:
    """A new JobQueue on the folder, opened as a restarted writer opens it (its first use
    recovers and repairs; a queue that only reads would leave the folder as it is)."""
    q = JobQueue(root, durability="fsync")
    try:
        q.recover()
        yield q
    finally:
        q.close()


def check_error(error: BaseException, err: int, path: Path, outcome: str) -> None:
    assert isinstance(error, jobledger.StorageError)
    assert isinstance(error, jobledger.JobLedgerError)
    assert isinstance(error, OSError)
    assert error.errno == err
    assert os.path.realpath(error.path) == os.path.realpath(path)
    assert error.path in str(error)
    assert HINTS[err] in str(error)
    assert outcome in str(error)


def check_index(q: JobQueue, root: Path) -> None:
    """queue.json, once brought up to date, lists the live jobs in serving order and
    counts the finished ones."""
    q.checkpoint()
    doc = json.loads((root / "queue.json").read_bytes())
    live = [j for j in q.list() if j.status.is_live]
    assert doc["running"] + doc["queued"] == [j.job_id for j in live]
    finished = {s: n for s, n in doc["finished"].items() if n}
    assert finished == dict(Counter(j.status.value for j in q.list() if not j.status.is_live))


def drain(q: JobQueue, clock: Any) -> list[str]:
    """Finish this worker's Running jobs, then claim and complete until nothing is due."""
    clock.advance(hours=1)  # past any retry backoff (and time to look for dead workers)
    for job in q.list(JobStatus.RUNNING):
        if job.worker == q.worker_id:
            q.complete(job.job_id, "drained")
    served = []
    while (job := q.claim()) is not None:
        served.append(job.job_id)
        q.complete(job.job_id, "drained")
    assert len(served) == len(set(served)), f"a job was served twice: {served}"
    return served


def check_nothing_lost(q: JobQueue, root: Path, clock: Any, ids: set[str]) -> None:
    """Every job is there once and the queue still serves: drained, all are finished."""
    drain(q, clock)
    state = view(q, root)
    assert set(state) == ids
    assert all(status in ("Completed", "Failed", "Cancelled") for status, _ in state.values())
    with fresh(root) as again:
        assert view(again, root) == state
    check_index(q, root)
    assert temp_files(root) == []


# -- every queue write, refused at each of its write points ---------------------------------


@dataclass(frozen=True)
class Op:
    run: Callable[[JobQueue], object]
    target: str  # the job whose file the operation writes (or deletes)
    changes: dict[str, tuple[str, int] | None]  # None: deleted
    index_first: bool  # its journal line goes before the job file (enqueue, retry, prune)
    kept: tuple[str, ...] = ()  # new jobs of the batch renamed before the target's refusal


OPS = {
    "enqueue": Op(
        lambda q: q.enqueue({"type": "T"}, job_id="new"),
        "new",
        {"new": ("Queued", 0)},
        index_first=True,
    ),
    "enqueue_many": Op(
        lambda q: q.enqueue_many(
            [{"type": "T", "i": i} for i in range(3)], job_ids=["new1", "new2", "new3"]
        ),
        "new2",
        {"new1": ("Queued", 0), "new2": ("Queued", 0), "new3": ("Queued", 0)},
        index_first=True,
        kept=("new1",),
    ),
    "claim": Op(lambda q: q.claim(), "next", {"next": ("Running", 1)}, index_first=False),
    "complete": Op(
        lambda q: q.complete("run", {"ok": True}),
        "run",
        {"run": ("Completed", 1)},
        index_first=False,
    ),
    "fail": Op(lambda q: q.fail("run", "boom"), "run", {"run": ("Queued", 1)}, index_first=False),
    "cancel": Op(lambda q: q.cancel("next"), "next", {"next": ("Cancelled", 0)}, index_first=False),
    "retry": Op(lambda q: q.retry("dead"), "dead", {"dead": ("Queued", 0)}, index_first=True),
    "prune": Op(lambda q: q.prune(3600), "done", {"done": None}, index_first=True),
}

# Where each write can be refused, and the errors a disk gives there.
FILE_POINTS = {
    "create": (errno.ENOSPC, errno.EDQUOT, errno.EACCES),  # the temp file's creation
    "write": (errno.ENOSPC, errno.EDQUOT, errno.EIO),  # its data
    "fsync": (errno.EIO, errno.ENOSPC),  # the job file's fsync (before or after the rename)
    "replace": (errno.ENOSPC, errno.EACCES, errno.EIO),  # the rename over the job file
    "dirsync": (errno.EIO,),  # the fsync of jobs/, which makes the rename durable
}
INDEX_POINTS = {
    "journal": (errno.ENOSPC, errno.EDQUOT, errno.EIO),  # the operation's journal line
    "snapshot": (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EIO),  # queue.json
}
PRUNE_POINTS = {
    "journal": (errno.ENOSPC, errno.EIO),  # the "pruning" mark, before any delete
    "unlink": (errno.EACCES, errno.EIO),  # the delete of the job file
    "journal-after": (errno.ENOSPC,),  # the line that counts the deletes out
    "snapshot": (errno.ENOSPC, errno.EACCES),
}


def outcome_of(name: str, point: str, ordered: bool) -> str | None:
    """refused, in place or index late (see the module docstring); None: not reached."""
    op = OPS[name]
    if point in ("snapshot", "journal-after"):
        return "index late"
    if point == "journal":
        return "refused" if op.index_first else "index late"
    if point in ("create", "write", "replace", "unlink"):
        return "refused"
    if name == "claim":  # not durable: syncs the data only where renames are not ordered
        return "refused" if point == "fsync" and not ordered else None
    if point == "fsync" and (name.startswith("enqueue") or not ordered):
        return "refused"  # a new file, or sync first: the fsync comes before the rename
    return "in place"


def fault(root: Path, name: str, point: str, err: int) -> tuple[str, Callable[[str], bool], int]:
    """(call, which paths, matching calls let through first) for a fault at ``point``."""
    target = f"{OPS[name].target}.json"
    if point == "create":
        return "open", temp_of(target), 0
    if point == "write":
        return "write", temp_of(target), 0
    if point == "fsync":
        return "fsync", job_file(OPS[name].target), 0
    if point == "replace":
        return "replace", temp_of(target), 0
    if point == "dirsync":  # a batch syncs the folder once, after its last file
        return "fsync", named(root / "jobs"), 0
    if point == "unlink":
        return "unlink", job_file(OPS[name].target), 0
    if point == "journal":
        return "write", named(root / ".queue.journal"), 0
    if point == "journal-after":
        return "write", named(root / ".queue.journal"), 1
    assert point == "snapshot"
    # Permission is refused when creating the temp file; the others when writing it.
    return ("open" if err == errno.EACCES else "write"), temp_of("queue.json"), 0


def refused_path(root: Path, name: str, point: str) -> Path:
    if point in ("journal", "journal-after"):
        return root / ".queue.journal"
    if point == "snapshot":
        return root / "queue.json"
    if point == "dirsync" and name == "enqueue_many":
        return root / "jobs" / "new3.json"  # the batch's folder sync names its last file
    return root / "jobs" / f"{OPS[name].target}.json"


def cases() -> list[Any]:
    return list(_cases())


def _cases() -> Iterator[Any]:
    for name in OPS:
        points = PRUNE_POINTS if name == "prune" else {**FILE_POINTS, **INDEX_POINTS}
        for point, errs in points.items():
            for ordered in (False, True):
                if outcome_of(name, point, ordered) is None:
                    continue
                order = "rename-first" if ordered else "sync-first"
                for err in errs:
                    yield pytest.param(
                        name,
                        point,
                        ordered,
                        err,
                        id=f"{name}-{point}-{order}-{errno.errorcode[err]}",
                    )


def applied(state: State, changes: dict[str, tuple[str, int] | None]) -> State:
    out = dict(state)
    for job_id, change in changes.items():
        if change is None:
            out.pop(job_id, None)
        else:
            out[job_id] = change
    return out


@pytest.mark.parametrize(("name", "point", "ordered", "err"), cases())
def test_a_refused_queue_write(tmp_path, clock, disk, caplog, name, point, ordered, err):
    op = OPS[name]
    root = tmp_path / "q"
    q = opened(root, clock, ordered)
    before = view(q, root)
    bytes_before = file_bytes(root)
    outcome = outcome_of(name, point, ordered)
    call, where, skip = fault(root, name, point, err)
    disk.refuse(call, err, where, skip=skip)
    caplog.set_level(logging.WARNING, logger="jobledger")

    if outcome == "index late":
        op.run(q)  # the job file holds the change: the operation stands
    else:
        with pytest.raises(jobledger.StorageError) as info:
            op.run(q)
    assert disk.refused, f"the fault at {point} was never reached"
    disk.heal()
    assert temp_files(root) == []
    after = applied(before, op.changes)

    if outcome == "refused":
        check_error(info.value, err, refused_path(root, name, point), INTACT)
        # A batch writes (and syncs) every temp file before it renames any: a temp file
        # refused leaves the whole batch out; a refused sync or rename, what came before.
        before_any_rename = point == "journal" or point in ("create", "write")
        kept = {} if before_any_rename else {i: op.changes[i] for i in op.kept}
        as_before = applied(before, kept)
        assert view(q, root) == as_before
        with fresh(root) as again:
            assert view(again, root) == as_before
        if not kept:
            assert file_bytes(root) == bytes_before
        # Once the disk allows, the same call goes through (a batch stores the rest).
        op.run(q)
    elif outcome == "in place":
        check_error(info.value, err, refused_path(root, name, point), IN_PLACE)
    else:
        path = str(refused_path(root, name, point))
        assert path in caplog.text and HINTS[err] in caplog.text
    assert view(q, root) == after
    with fresh(root) as again:
        assert view(again, root) == after
    check_index(q, root)
    check_nothing_lost(q, root, clock, set(after))


def test_the_matrix_covers_every_write_and_error():
    params = [p.values for p in cases()]
    assert {name for name, *_ in params} == set(OPS)
    assert {err for *_, err in params} == set(HINTS)
    outcomes = {(name, outcome_of(name, point, ordered)) for name, point, ordered, _ in params}
    for name in OPS:
        assert (name, "refused") in outcomes and (name, "index late") in outcomes
    for name in ("enqueue", "enqueue_many", "complete", "fail", "cancel", "retry"):
        assert (name, "in place") in outcomes


# -- a batch claim, a prune and a worker stopped half-way ------------------------------------


def test_a_batch_claim_hands_out_the_jobs_it_claimed_before_the_disk_refused(
    tmp_path, clock, disk, caplog
):
    root = tmp_path / "q"
    q = opened(root, clock)
    disk.refuse("open", errno.ENOSPC, temp_of("later.json"))
    caplog.set_level(logging.WARNING, logger="jobledger")
    # The first job is Running under this worker: kept back, it would wait for this
    # process to die. It is handed out, and the refusal said in a warning.
    assert [j.job_id for j in q.claim_many(3)] == ["next"]
    disk.heal()
    assert "Claimed 1 job(s), and no more" in caplog.text
    assert str(root / "jobs" / "later.json") in caplog.text and "disk is full" in caplog.text
    assert temp_files(root) == []
    state = view(q, root)
    assert state["next"] == ("Running", 1) and state["later"] == ("Queued", 0)
    assert [j.job_id for j in q.claim_many(3)] == ["later"]
    check_nothing_lost(q, root, clock, set(state))


def test_a_completion_recorded_with_a_claim_the_disk_refuses_stands(tmp_path, clock, disk, caplog):
    # A Worker's group commit: the completion is written (and synced) under the same hold
    # of the lock as the claim that follows; the disk refuses the claim's write only.
    root = tmp_path / "q"
    q = opened(root, clock)
    disk.refuse("open", errno.ENOSPC, temp_of("next.json"), times=2)
    caplog.set_level(logging.WARNING, logger="jobledger")
    assert q._record_and_claim([("run", "ok")], 1, None) == ([], 1, None)
    assert "Recorded 1 job(s), and claimed none" in caplog.text
    assert str(root / "jobs" / "next.json") in caplog.text and "disk is full" in caplog.text
    with pytest.raises(jobledger.StorageError):
        q.claim()  # the next claim meets the trouble again, and says so
    disk.heal()
    assert temp_files(root) == []
    state = view(q, root)
    assert state["run"] == ("Completed", 1) and state["next"] == ("Queued", 0)
    assert q.get("run").result == "ok"
    assert q.claim().job_id == "next"
    check_nothing_lost(q, root, clock, set(state))


def test_a_prune_refused_half_way_deletes_and_counts_out_only_what_it_deleted(
    tmp_path, clock, disk
):
    root = tmp_path / "q"
    q = opened(root, clock)
    q.cancel("later")
    clock.advance(hours=2)  # done, dead and later are all over an hour old
    disk.refuse("unlink", errno.EIO, job_file("done"))  # the second of dead, done, later
    with pytest.raises(jobledger.StorageError) as info:
        q.prune(3600)
    disk.heal()
    check_error(info.value, errno.EIO, root / "jobs" / "done.json", INTACT)
    state = view(q, root)
    assert "dead" not in state
    assert state["done"] == ("Completed", 1) and state["later"] == ("Cancelled", 0)
    with fresh(root) as again:
        assert view(again, root) == state
    assert q.prune(3600) == 2
    assert set(view(q, root)) == {"run", "next"}
    check_nothing_lost(q, root, clock, {"run", "next"})


def test_a_worker_whose_lock_cannot_be_written_gets_a_storage_error(tmp_path, clock, disk):
    root = tmp_path / "q"
    q = JobQueue(root, durability="fsync", clock=clock)
    q.enqueue({"type": "T"}, job_id="a")
    disk.refuse("write", errno.ENOSPC, lambda p: os.sep + "workers" + os.sep in p)
    with pytest.raises(jobledger.StorageError) as info:
        q.claim()  # the first claim registers the worker: its lock file names it
    disk.heal()
    error = info.value
    assert error.errno == errno.ENOSPC and HINTS[errno.ENOSPC] in str(error)
    assert os.path.dirname(error.path) == str(root / "workers") and error.path in str(error)
    assert os.listdir(root / "workers") == []  # taken and given back, not left behind
    assert view(q, root) == {"a": ("Queued", 0)}
    assert q.claim().job_id == "a"
    check_nothing_lost(q, root, clock, {"a"})


# -- queue.json and the journal --------------------------------------------------------------

SNAPSHOT_FAULTS = {
    # the new queue.json: its temp file's creation, its data, its rename
    "create": ("open", temp_of("queue.json"), errno.EACCES, "queue.json"),
    "write": ("write", temp_of("queue.json"), errno.ENOSPC, "queue.json"),
    "replace": ("replace", temp_of("queue.json"), errno.EIO, "queue.json"),
    # the empty journal that follows it
    "new-journal": ("open", temp_of("queue.journal"), errno.ENOSPC, ".queue.journal"),
    "journal-replace": ("replace", temp_of("queue.journal"), errno.EIO, ".queue.journal"),
}


@pytest.mark.parametrize("point", SNAPSHOT_FAULTS)
def test_a_refused_snapshot_loses_nothing_and_checkpoint_says_so(
    tmp_path, clock, disk, caplog, point, monkeypatch
):
    if "journal" in point:
        # The journal is emptied only once it is large: make every snapshot empty it.
        monkeypatch.setattr("jobledger.backends.files._queue_index._ROTATE_AT", 0)
    root = tmp_path / "q"
    q = opened(root, clock)
    call, where, err, name = SNAPSHOT_FAULTS[point]
    disk.refuse(call, err, where, times=1_000_000)  # until healed
    caplog.set_level(logging.WARNING, logger="jobledger")
    q.complete("run", "ok")  # the job file and the journal line hold it
    assert q.claim().job_id == "next"
    state = view(q, root)
    assert state["run"] == ("Completed", 1) and state["next"] == ("Running", 1)
    assert caplog.text.count(str(root / name)) == 1  # said once, not at every change
    # Asked for explicitly, the snapshot raises.
    with pytest.raises(jobledger.StorageError) as info:
        q.checkpoint()
    check_error(info.value, err, root / name, INTACT)
    assert temp_files(root) == []
    # A new queue reads it all (the journal holds what queue.json lacks), and closing
    # releases its files without raising.
    with fresh(root) as again:
        assert view(again, root) == state
    q.close()
    assert q.backend._lock.fd is None and q.backend._index.journal.fd is None
    assert "was not brought up to date on closing" in caplog.text
    disk.heal()
    # Closing ended this worker: its Running job goes back to the queue, served first.
    with fresh(root) as again:
        assert view(again, root) == {**state, "next": ("Queued", 1)}
        check_index(again, root)
    check_nothing_lost(q, root, clock, set(state))


def test_a_journal_line_refused_half_way_is_all_or_nothing_for_other_queues(tmp_path, clock, disk):
    root = tmp_path / "q"
    a = opened(root, clock)
    b = JobQueue(root, durability="fsync", clock=clock)  # another process, in effect
    before = view(b, root)
    # The batch's journal append lands one whole line, then the disk is full.
    disk.refuse("write", errno.ENOSPC, named(root / ".queue.journal"), first_line=True)
    with pytest.raises(jobledger.StorageError) as info:
        a.enqueue_many([{"type": "T"}, {"type": "T"}], job_ids=["new1", "new2"])
    disk.heal()
    check_error(info.value, errno.ENOSPC, root / ".queue.journal", INTACT)
    # b never sees half of the batch, and a sees b's next change (numbered after the
    # lines a could not write, not skipped as one a already has).
    assert view(b, root) == before
    b.enqueue({"type": "T"}, job_id="from-b")
    assert view(a, root) == {**before, "from-b": ("Queued", 0)}
    assert view(b, root) == view(a, root)
    b.close()
    check_nothing_lost(a, root, clock, {*before, "from-b"})


def test_on_a_full_disk_every_write_is_refused_and_everything_reads(tmp_path, clock, disk):
    root = tmp_path / "q"
    q = opened(root, clock)
    before = view(q, root)
    bytes_before = file_bytes(root)
    disk.refuse("write", errno.ENOSPC, lambda p: p.startswith(str(root)), times=1_000_000)
    for call in (
        lambda: q.enqueue({"type": "T"}, job_id="new"),
        lambda: q.claim(),
        lambda: q.complete("run"),
        lambda: q.fail("run", "boom"),
        lambda: q.cancel("next"),
        lambda: q.retry("dead"),
    ):
        with pytest.raises(jobledger.StorageError) as info:
            call()
        assert info.value.errno == errno.ENOSPC and INTACT in str(info.value)
    # Reading needs no space: this queue and a new one (whose opening cannot write
    # queue.json either) read every job as it was.
    assert view(q, root) == before
    with fresh(root) as again:
        assert view(again, root) == before
    assert file_bytes(root) == bytes_before
    assert temp_files(root) == []
    disk.heal()
    q.enqueue({"type": "T"}, job_id="new")
    check_nothing_lost(q, root, clock, {*before, "new"})


# -- read-only folders ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["enqueue", "claim", "complete", "fail", "cancel", "retry", "prune"]
)
def test_a_read_only_jobs_folder(tmp_path, clock, disk, name):
    op = OPS[name]
    root = tmp_path / "q"
    q = opened(root, clock)
    before = view(q, root)
    bytes_before = file_bytes(root)
    folder = root / "jobs"
    folder.chmod(0o555)
    try:
        if os.geteuid() == 0 or os.access(folder, os.W_OK):
            # root ignores permissions: refuse what the folder's mode refuses, as the OS would.
            disk.make_read_only(folder)
        with pytest.raises(jobledger.StorageError) as info:
            op.run(q)
    finally:
        folder.chmod(0o755)
    disk.heal()
    check_error(info.value, errno.EACCES, root / "jobs" / f"{op.target}.json", INTACT)
    assert temp_files(root) == []
    assert file_bytes(root) == bytes_before
    assert view(q, root) == before
    with fresh(root) as again:
        assert view(again, root) == before
    # Writable again: the same call goes through.
    op.run(q)
    after = applied(before, op.changes)
    assert view(q, root) == after
    check_nothing_lost(q, root, clock, set(after))


def test_a_read_only_queue_folder_leaves_queue_json_behind_and_loses_nothing(
    tmp_path, clock, disk, caplog
):
    root = tmp_path / "q"
    q = opened(root, clock)
    caplog.set_level(logging.WARNING, logger="jobledger")
    root.chmod(0o555)  # jobs/ stays writable: the job files (the truth) can be written
    try:
        if os.geteuid() == 0 or os.access(root, os.W_OK):
            disk.make_read_only(root)
        q.enqueue({"type": "T"}, job_id="new")
        assert q.claim().job_id == "next"
        q.complete("run", "ok")
        state = view(q, root)
        said = caplog.text
        with fresh(root) as again:
            assert view(again, root) == state
    finally:
        root.chmod(0o755)
    disk.heal()
    assert state["new"] == ("Queued", 0) and state["run"] == ("Completed", 1)
    assert str(root / "queue.json") in said and HINTS[errno.EACCES] in said
    assert said.count("queue.json is rewritten as soon as the disk allows") == 1  # not per change
    assert temp_files(root) == []
    check_index(q, root)
    check_nothing_lost(q, root, clock, set(state))


# -- a folder where a file should be, and a file where a folder should be -------------------

FOLDER_IN_THE_WAY = "a folder stands where a file should be; move it away"


def folder_in_place_of(path: Path) -> bytes:
    saved = path.read_bytes()
    path.unlink()
    path.mkdir()
    (path / "someone's.txt").write_text("kept")
    return saved


def file_back_in_place_of(path: Path, saved: bytes) -> None:
    assert (path / "someone's.txt").read_text() == "kept"  # never touched
    shutil.rmtree(path)
    path.write_bytes(saved)


def test_a_folder_where_a_job_file_should_be(tmp_path, clock, caplog):
    root = tmp_path / "q"
    q = opened(root, clock)
    caplog.set_level(logging.WARNING, logger="jobledger")

    # A Running job: finishing it says what is wrong, and works once the file is back.
    run = root / "jobs" / "run.json"
    saved = folder_in_place_of(run)
    for call in (lambda: q.complete("run"), lambda: q.fail("run", "x"), lambda: q.get("run")):
        with pytest.raises(jobledger.StorageError) as info:
            call()
        assert info.value.errno == errno.EISDIR and info.value.path == str(run)
        assert str(run) in str(info.value) and FOLDER_IN_THE_WAY in str(info.value)
    file_back_in_place_of(run, saved)
    q.complete("run", "ok")

    # A Queued job: its own calls say what is wrong; the rest of the queue goes on.
    path = root / "jobs" / "next.json"
    saved = folder_in_place_of(path)
    for call in (
        lambda: q.get("next"),
        lambda: q.cancel("next"),
        lambda: q.enqueue({"type": "T"}, job_id="next"),
    ):
        with pytest.raises(jobledger.StorageError) as info:
            call()
        assert info.value.errno == errno.EISDIR and info.value.path == str(path)
        assert FOLDER_IN_THE_WAY in str(info.value)
    assert q.claim().job_id == "later"  # next is served first, but cannot be read
    assert f"Job next is left out of the queue: could not read {path}" in caplog.text
    q.complete("later")
    state = view(q, root)
    assert "next" not in state
    with fresh(root) as again:
        assert view(again, root) == state
        assert again.claim() is None
    assert temp_files(root) == []

    # The file put back (restored after queue.json was last written): found again.
    file_back_in_place_of(path, saved)
    with fresh(root) as again:
        assert again.get("next").status is JobStatus.QUEUED
        assert view(again, root) == {**state, "next": ("Queued", 0)}
    check_nothing_lost(q, root, clock, {*state, "next"})


def test_a_folder_where_queue_json_should_be(tmp_path, clock, caplog):
    root = tmp_path / "q"
    q = opened(root, clock)
    index = root / "queue.json"
    folder_in_place_of(index)
    caplog.set_level(logging.WARNING, logger="jobledger")
    # The open queue goes on: the job files and the journal hold every change.
    q.enqueue({"type": "T"}, job_id="new")
    assert q.claim().job_id == "next"
    q.complete("next")
    q.complete("run")
    state = view(q, root)
    assert caplog.text.count(FOLDER_IN_THE_WAY) == 1 and str(index) in caplog.text
    with pytest.raises(jobledger.StorageError, match=FOLDER_IN_THE_WAY):
        q.checkpoint()
    # A new queue says what is wrong rather than taking the folder for a damaged index
    # (one that only reads, too).
    with JobQueue(root) as again, pytest.raises(jobledger.StorageError) as info:
        again.counts()
    assert info.value.errno == errno.EISDIR and info.value.path == str(index)
    assert FOLDER_IN_THE_WAY in str(info.value)
    assert temp_files(root) == []
    # Moved away: queue.json is rebuilt from the job files, nothing lost.
    shutil.rmtree(index)
    with fresh(root) as again:
        assert view(again, root) == state
    check_nothing_lost(q, root, clock, set(state))


def test_a_file_where_the_jobs_folder_should_be(tmp_path, clock):
    root = tmp_path / "q"
    q = opened(root, clock)
    before = view(q, root)
    jobs = root / "jobs"
    jobs.rename(root / "jobs-aside")
    jobs.write_text("not a folder")
    for call in (
        lambda: q.claim(),
        lambda: q.enqueue({"type": "T"}, job_id="new"),
        lambda: q.get("later"),
        lambda: q.list(),
        lambda: q.complete("run"),
        lambda: q.prune(3600),
    ):
        with pytest.raises(jobledger.StorageError) as info:
            call()
        assert info.value.errno == errno.ENOTDIR
        assert str(jobs) in info.value.path and info.value.path in str(info.value)
        assert "a file stands where a folder should be; move it away" in str(info.value)
    with JobQueue(root) as again, pytest.raises(jobledger.StorageError) as info:
        again.counts()  # only reads: the job file it reads through the file is refused
    assert info.value.errno == errno.ENOTDIR and str(jobs) in info.value.path
    assert "a file stands where a folder should be" in str(info.value)
    assert jobs.read_text() == "not a folder"
    jobs.unlink()
    (root / "jobs-aside").rename(jobs)
    assert view(q, root) == before
    check_nothing_lost(q, root, clock, set(before))


# -- a real full disk ------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, where the machine lets the tests mount one (root in a VM)."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if not sys.platform.startswith("linux") or mount is None or umount is None:
        pytest.skip(
            "mounting a small tmpfs needs Linux and mount(8); "
            "the injected ENOSPC cases cover a full disk"
        )
    where = tmp_path / "small"
    where.mkdir()
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(
            "this machine does not let the tests mount a small tmpfs "
            f"({(done.stderr or done.stdout).strip() or done.returncode}); "
            "the injected ENOSPC cases cover a full disk"
        )
    try:
        yield where
    finally:
        if subprocess.run([umount, str(where)], check=False).returncode != 0:
            subprocess.run([umount, "-l", str(where)], check=False)  # still busy: detach


def test_a_real_full_disk(small_disk, clock):
    root = small_disk / "q"
    filler = small_disk / "filler"
    filler.write_bytes(bytes(64 * 1024))  # the space given back at the end
    q = JobQueue(root, durability="fsync", clock=clock)
    try:
        pad = "x" * 700  # one page per job file
        acked: list[str] = []
        for i in range(10_000):
            job_id = f"job-{i:05d}"
            try:
                acked.append(q.enqueue({"type": "T", "pad": pad}, job_id=job_id))
            except jobledger.StorageError as exc:
                error, refused = exc, job_id
                break
        else:
            pytest.fail("256 KiB never filled up")
        assert acked, "full before the first job"
        assert error.errno == errno.ENOSPC and HINTS[errno.ENOSPC] in str(error)
        assert error.path.startswith(str(root)) and error.path in str(error)
        assert INTACT in str(error)
        # The refused job left nothing half-written.
        assert temp_files(small_disk) == []
        assert not (root / "jobs" / f"{refused}.json").exists()
        assert q.get(refused) is None
        # Everything acknowledged reads back, still on the full disk, from this queue and
        # from a new one (whose opening cannot write queue.json).
        assert [j.job_id for j in q.list()] == acked
        assert view(q, root) == dict.fromkeys(acked, ("Queued", 0))
        with fresh(root) as again:
            assert [j.job_id for j in again.list()] == acked
            assert view(again, root) == dict.fromkeys(acked, ("Queued", 0))
        # Space given back: the refused job goes in, and every job is served once.
        filler.unlink()
        assert q.enqueue({"type": "T", "pad": pad}, job_id=refused) == refused
        acked.append(refused)
        served = drain(q, clock)
        assert sorted(served) == sorted(acked)
        state = view(q, root)
        assert state == dict.fromkeys(acked, ("Completed", 1))
        with fresh(root) as again:
            assert view(again, root) == state
        assert temp_files(small_disk) == []
    finally:
        q.close()
