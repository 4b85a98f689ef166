"""Only regular files inside the folder are read (issue 12, point 3).

A symbolic link (to a job document elsewhere, to a FIFO, to ``/dev/zero``...), a FIFO, a
device, a folder or an oversize file where jobledger expects one of its files is refused
by name, without blocking and without reading more than the file's limit, and handled as
a corrupt file: left out (a writer renames the entry itself aside, never what a link
points to), the rest going on. Every operation runs under a watchdog: a regression fails
here instead of hanging the suite (or reading ``/dev/zero`` until memory runs out).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import jobledger
from jobledger import JobQueue, JobState
from jobledger.backends.files._reading import (
    MAX_CONFIG_BYTES,
    MAX_JOB_FILE_BYTES,
    MAX_TASKSET_FILE_BYTES,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX: FIFOs and links")

ACCOUNT = "user@email.com"
TYPE = "daily-set"
DATE = "2025-01-20"
WATCHDOG = 20.0  # seconds: far more than any operation here takes, finite if one hangs


class Hung(Exception):
    """An operation did not finish before the watchdog fired."""


@contextlib.contextmanager
def watchdog(what: str) -> Iterator[None]:
    """Interrupt the block if it runs longer than WATCHDOG (a blocked open of a FIFO, or
    an endless read of /dev/zero, is interrupted by the signal's exception)."""

    def fire(signum: int, frame: Any) -> None:
        raise Hung(f"{what} did not finish within {WATCHDOG} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, WATCHDOG)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run(what: str, call: Callable[[], Any]) -> Any:
    """``call()`` under the watchdog; a JobLedgerError is returned, not raised (where an
    operation raises, it raises nothing else)."""
    with watchdog(what):
        try:
            return call()
        except jobledger.JobLedgerError as exc:
            return exc


# -- what stands where a file should be ----------------------------------------------------


def _symlink_outside(path: Path, outside: Path) -> None:
    """A link to the very document that was there, moved out of the folder: what the old
    code served as the job."""
    target = outside / path.name
    shutil.move(str(path), target)
    path.symlink_to(target)


def _fifo(path: Path, outside: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _symlink_to_fifo(path: Path, outside: Path) -> None:
    path.unlink()
    os.mkfifo(outside / "fifo")
    path.symlink_to(outside / "fifo")


def _link_to(device: str) -> Callable[[Path, Path], None]:
    def make(path: Path, outside: Path) -> None:
        path.unlink()
        path.symlink_to(device)

    return make


def _dangling(path: Path, outside: Path) -> None:
    path.unlink()
    path.symlink_to(outside / "nothing-here.json")


def _folder(path: Path, outside: Path) -> None:
    path.unlink()
    path.mkdir()


def _oversize(limit: int) -> Callable[[Path, Path], None]:
    def make(path: Path, outside: Path) -> None:
        with open(path, "r+b") as fh:
            fh.truncate(limit + 1)  # sparse: nothing is written

    return make


LINK = "is a symbolic link"
JOB_KINDS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "symlink-outside": (_symlink_outside, LINK),
    "fifo": (_fifo, "is a FIFO, not a regular file"),
    "symlink-to-fifo": (_symlink_to_fifo, LINK),
    "symlink-to-dev-zero": (_link_to("/dev/zero"), LINK),
    "symlink-to-dev-null": (_link_to("/dev/null"), LINK),
    "dangling-symlink": (_dangling, LINK),
    "folder": (_folder, "a folder stands where a file should be"),
    "oversize": (_oversize(MAX_JOB_FILE_BYTES), "is larger than the 64 MiB limit for a job file"),
}


def entry_kind(path: Path) -> str:
    """What the entry itself is (never following a link)."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return f"link to {os.readlink(path)}"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISDIR(mode):
        return "folder"
    return f"file of {os.lstat(path).st_size} bytes"


def outside_bytes(outside: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in outside.iterdir() if p.is_file()}


# -- the job queue ------------------------------------------------------------------------


def queue_with_a_bad_job(tmp_path: Path, kind: str, listed: bool) -> tuple[Path, Path, Path]:
    """A queue whose first job in serving order, ``bad``, has something else than a job
    file at jobs/bad.json; ``a`` and ``b`` are intact. ``listed``: queue.json lists it;
    else queue.json is gone, so the index is rebuilt by reading every job file."""
    root = tmp_path.resolve() / "q"
    outside = tmp_path.resolve() / "outside"
    outside.mkdir()
    with JobQueue(root) as q:
        q.enqueue({"type": "T"}, job_id="bad", priority=9)
        q.enqueue({"type": "T"}, job_id="a")
        q.enqueue({"type": "T"}, job_id="b")
    path = root / "jobs" / "bad.json"
    JOB_KINDS[kind][0](path, outside)
    if not listed:
        (root / "queue.json").unlink()
    return root, path, outside


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "unlisted"])
@pytest.mark.parametrize("kind", list(JOB_KINDS))
def test_a_writer_leaves_out_what_is_not_a_job_file(tmp_path, caplog, kind, listed):
    root, path, outside = queue_with_a_bad_job(tmp_path, kind, listed)
    reason = JOB_KINDS[kind][1]
    caplog.set_level(logging.WARNING, logger="jobledger")
    entry, kept = entry_kind(path), outside_bytes(outside)

    q = JobQueue(root)
    claimed = []
    for _ in range(4):
        job = run("claim", q.claim)
        assert not isinstance(job, Exception), job
        if job is None:
            break
        claimed.append(job.job_id)
    assert claimed == ["a", "b"]  # the intact jobs, served once each; never "bad"
    assert str(path) in caplog.text and reason in caplog.text

    listing = run("list", q.list)
    assert sorted(j.job_id for j in listing) == ["a", "b"]
    assert run("counts", q.counts)["Running"] == 2
    got = run("get", lambda: q.get("bad"))
    if kind == "folder":  # as it always was: its own calls say what is wrong
        assert isinstance(got, jobledger.StorageError) and str(path) in str(got)
    else:
        assert got is None
    assert run("close", q.close) is None

    # Nothing is followed, moved or rewritten outside the folder.
    assert outside_bytes(outside) == kept
    if kind != "folder":
        # The entry itself was set aside, as a corrupt job file is: the link renamed, not
        # what it points to; the FIFO renamed, not opened.
        (aside,) = (root / "jobs").glob("bad.json.corrupt-*")
        assert entry_kind(aside) == entry
        assert not os.path.lexists(path)
    # A restarted queue still knows only the intact jobs.
    with JobQueue(root) as again:
        assert sorted(j.job_id for j in run("list again", again.list)) == ["a", "b"]


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "unlisted"])
@pytest.mark.parametrize("kind", list(JOB_KINDS))
def test_a_reader_warns_and_changes_nothing(tmp_path, caplog, kind, listed):
    root, path, outside = queue_with_a_bad_job(tmp_path, kind, listed)
    reason = JOB_KINDS[kind][1]
    caplog.set_level(logging.WARNING, logger="jobledger")
    entry, kept = entry_kind(path), outside_bytes(outside)
    names = sorted(p.name for p in root.rglob("*"))

    q = JobQueue(root)  # only reads: its read-only twin serves every call below
    assert [j.job_id for j in run("list", q.list)] == ["a", "b"]
    assert str(path) in caplog.text and reason in caplog.text
    counts = run("counts", q.counts)
    assert counts["Queued"] == 2 and counts["Running"] == 0
    assert [j.job_id for j in run("list queued", lambda: q.list("Queued"))] == ["a", "b"]
    got = run("get", lambda: q.get("bad"))
    if kind == "folder":
        assert isinstance(got, jobledger.StorageError) and str(path) in str(got)
    else:
        assert got is None
    assert run("get a", lambda: q.get("a")).job_id == "a"
    assert run("close", q.close) is None

    assert entry_kind(path) == entry  # a reader only warns
    assert outside_bytes(outside) == kept
    assert sorted(p.name for p in root.rglob("*")) == names


def test_a_symlinked_folder_named_like_a_job_file(tmp_path, caplog):
    """A link to a folder in jobs/: listed as the entry it is, and refused by name."""
    root, path, outside = queue_with_a_bad_job(tmp_path, "fifo", listed=False)
    path.unlink()
    (outside / "folder.json").mkdir()
    path.symlink_to(outside / "folder.json")
    caplog.set_level(logging.WARNING, logger="jobledger")
    q = JobQueue(root)
    assert [j.job_id for j in run("list", q.list)] == ["a", "b"]
    assert f"{path} {LINK}" in caplog.text
    assert [run("claim", q.claim).job_id for _ in range(2)] == ["a", "b"]
    assert run("claim", q.claim) is None
    q.close()
    assert (outside / "folder.json").is_dir()


@pytest.mark.parametrize("kind", ["fifo", "symlink-to-fifo", "symlink-to-dev-zero", "oversize"])
def test_queue_json_that_is_not_a_regular_file(tmp_path, caplog, kind):
    root, path, outside = queue_with_a_bad_job(tmp_path, "fifo", listed=True)
    path.unlink()  # "bad" has no file at all here: only queue.json is in question
    index = root / "queue.json"
    if kind == "oversize":
        index.unlink()
        with open(index, "wb") as fh:
            fh.truncate((256 << 20) + 1)
        reason = "is larger than the 256 MiB limit for queue.json"
    else:
        JOB_KINDS[kind][0](index, outside)
        reason = JOB_KINDS[kind][1]
    caplog.set_level(logging.WARNING, logger="jobledger")
    entry = entry_kind(index)

    reader = JobQueue(root)
    assert run("counts", reader.counts)["Queued"] == 2
    assert f"queue.json {index} {reason}" in caplog.text
    assert entry_kind(index) == entry  # read only: nothing moved
    reader.close()

    with JobQueue(root) as q:
        assert [run("claim", q.claim).job_id for _ in range(2)] == ["a", "b"]
        assert run("claim", q.claim) is None
    (aside,) = root.glob("queue.json.corrupt-*")
    assert entry_kind(aside) == entry
    assert json.loads(index.read_bytes())["running"] == ["a", "b"]


@pytest.mark.parametrize("kind", ["fifo", "symlink-to-fifo", "symlink-to-dev-zero", "oversize"])
def test_a_journal_that_is_not_a_regular_file(tmp_path, caplog, kind):
    root, path, outside = queue_with_a_bad_job(tmp_path, "fifo", listed=True)
    path.unlink()
    journal = root / ".queue.journal"
    if kind == "oversize":
        with open(journal, "r+b") as fh:
            fh.truncate((256 << 20) + 1)
        reason = "is larger than the 256 MiB limit for the queue journal"
    else:
        JOB_KINDS[kind][0](journal, outside)
        reason = JOB_KINDS[kind][1]
    caplog.set_level(logging.WARNING, logger="jobledger")

    reader = JobQueue(root)  # reads queue.json and the job files, without the journal
    assert run("counts", reader.counts)["Queued"] == 2
    assert str(journal) in caplog.text and reason in caplog.text
    reader.close()

    # A writer cannot append its changes to it: it says so, naming the file.
    q = JobQueue(root)
    error = run("claim", q.claim)
    assert isinstance(error, jobledger.StorageError)
    assert str(journal) in str(error) and reason in str(error)
    run("close", q.close)
    journal.unlink()
    with JobQueue(root) as q:
        assert run("claim", q.claim).job_id == "a"


# -- task sets -----------------------------------------------------------------------------


def state_with_a_set(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A task set with two tasks done (its .bak holds the first one done)."""
    root = tmp_path.resolve() / "state"
    outside = tmp_path.resolve() / "outside"
    outside.mkdir()
    ts = JobState(root, timezone="UTC").taskset(ACCOUNT, TYPE, ["t1", "t2", "t3"], date=DATE)
    ts.mark_done("t1")
    ts.mark_done("t2")
    return root, root / ACCOUNT / f"{TYPE}-{DATE}.json", outside


def _symlink_inside(path: Path, outside: Path) -> None:
    """A link to a copy of the document inside the folder: the real-path check passes."""
    copy = path.parent / "copy.txt"
    shutil.move(str(path), copy)
    path.symlink_to(copy)


def _symlink_to_fifo_inside(path: Path, outside: Path) -> None:
    path.unlink()
    os.mkfifo(path.parent / "fifo")
    path.symlink_to(path.parent / "fifo")


SET_KINDS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "fifo": (_fifo, "is a FIFO, not a regular file"),
    "symlink-inside": (_symlink_inside, LINK),
    "symlink-to-fifo-inside": (_symlink_to_fifo_inside, LINK),
    "oversize": (
        _oversize(MAX_TASKSET_FILE_BYTES),
        "is larger than the 64 MiB limit for a task-set file",
    ),
}


@pytest.mark.parametrize("kind", list(SET_KINDS))
def test_a_task_set_file_that_is_not_a_regular_file(tmp_path, caplog, kind):
    root, path, outside = state_with_a_set(tmp_path)
    SET_KINDS[kind][0](path, outside)
    reason = SET_KINDS[kind][1]
    caplog.set_level(logging.WARNING, logger="jobledger")
    entry = entry_kind(path)
    names = sorted(p.name for p in root.rglob("*"))

    # Reading: named, its last good generation shown, nothing moved.
    state = JobState(root, timezone="UTC")
    (record,) = run("records", state.records)
    assert record.completed == ["t1"]  # the .bak
    assert f"State file {path} {reason}" in caplog.text
    assert entry_kind(path) == entry
    assert sorted(p.name for p in root.rglob("*")) == names

    # Working on it: the entry itself set aside, the last good generation restored.
    ts = run("taskset", lambda: state.taskset(ACCOUNT, TYPE, ["t1", "t2", "t3"], date=DATE))
    assert not isinstance(ts, Exception), ts
    assert ts.completed == ["t1"]
    run("mark_done", lambda: ts.mark_done("t3"))
    (aside,) = path.parent.glob(f"{path.name}.corrupt-*")
    assert entry_kind(aside) == entry
    assert json.loads(path.read_bytes())["completed"] == ["t1", "t3"]  # a regular file
    assert sorted(run("records again", state.records)[0].completed) == ["t1", "t3"]


def test_a_task_set_whose_backup_is_a_fifo_too(tmp_path, caplog):
    root, path, outside = state_with_a_set(tmp_path)
    backup = Path(f"{path}.bak")
    _fifo(path, outside)
    _fifo(backup, outside)
    caplog.set_level(logging.WARNING, logger="jobledger")
    state = JobState(root, timezone="UTC")
    assert run("records", state.records) == []
    assert f"State file {path} is a FIFO" in caplog.text
    ts = run("taskset", lambda: state.taskset(ACCOUNT, TYPE, ["t1"], date=DATE))
    assert ts.completed == []  # no good generation: started empty, the FIFOs kept aside
    assert f"Its previous generation {backup} is a FIFO" in caplog.text
    assert len(list(path.parent.glob("*.corrupt-*"))) == 2


@pytest.mark.parametrize("target", ["outside", "/dev/zero"])
def test_a_task_set_file_linked_outside_the_folder(tmp_path, target):
    """The real-path check stays: a link leaving the folder is refused before any open."""
    root, path, outside = state_with_a_set(tmp_path)
    if target == "outside":
        _symlink_outside(path, outside)
    else:
        _link_to(target)(path, outside)
    state = JobState(root, timezone="UTC")
    for what, call in (
        ("records", state.records),
        ("taskset", lambda: state.taskset(ACCOUNT, TYPE, date=DATE)),
    ):
        error = run(what, call)
        assert isinstance(error, jobledger.InvalidNameError)
        assert str(path) in str(error)


def test_a_lease_file_that_is_a_fifo(tmp_path):
    root, path, _outside = state_with_a_set(tmp_path)
    os.mkfifo(path.parent / f".{TYPE}-{DATE}.lock")
    state = JobState(root, timezone="UTC")
    (record,) = state.records()
    holder = run("holder", lambda: state.holder(record.key))
    assert holder is None or holder.pid is None  # nobody known: never blocks to find out


def test_a_symlinked_account_folder_is_not_listed(tmp_path, caplog):
    root, path, outside = state_with_a_set(tmp_path)
    elsewhere = outside / "acct"
    shutil.copytree(path.parent, elsewhere)
    (root / "linked").symlink_to(elsewhere)
    caplog.set_level(logging.WARNING, logger="jobledger")
    state = JobState(root, timezone="UTC")
    assert [r.key.account for r in run("records", state.records)] == [ACCOUNT]
    assert f"Skipping {root / 'linked'}: a symbolic link" in caplog.text


# -- the config file -----------------------------------------------------------------------


def test_a_config_file_that_is_a_fifo(tmp_path):
    config = tmp_path / "config.json"
    os.mkfifo(config)
    error = run("from_config", lambda: JobState.from_config(config))
    assert isinstance(error, jobledger.ConfigError)
    assert str(config) in str(error) and "is a FIFO, not a regular file" in str(error)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("/dev/zero", "is a character device, not a regular file"),
        ("fifo", "is a FIFO, not a regular file"),
        ("big", "is larger than the 16 MiB limit for a config file"),
    ],
)
def test_a_config_file_linked_to_what_is_not_a_regular_file(tmp_path, target, reason):
    config = tmp_path / "config.json"
    if target == "fifo":
        os.mkfifo(tmp_path / "fifo")
    elif target == "big":
        with open(tmp_path / "big", "wb") as fh:
            fh.truncate(MAX_CONFIG_BYTES + 1)
    config.symlink_to(target if target.startswith("/") else tmp_path / target)
    error = run("from_config", lambda: JobState.from_config(config))
    assert isinstance(error, jobledger.ConfigError)
    assert str(config) in str(error) and reason in str(error)


def test_a_config_file_linked_to_a_regular_file_is_read(tmp_path):
    """Deployments link config files (a Kubernetes ConfigMap is a link): followed."""
    real = tmp_path / "real.json"
    real.write_text(json.dumps({"jobState": {"dir": str(tmp_path / "s"), "timezone": "UTC"}}))
    config = tmp_path / "config.json"
    config.symlink_to(real)
    state = run("from_config", lambda: JobState.from_config(config))
    assert isinstance(state, JobState)
    assert state.backend.location == str(tmp_path / "s")


def test_doctor_names_a_fifo_state_file_and_sets_it_aside(tmp_path):
    root, path, outside = state_with_a_set(tmp_path)
    _fifo(path, outside)
    state = JobState(root, timezone="UTC")
    found = run("doctor (check)", lambda: state.doctor(repair=False))
    assert any(f.where == str(path) and "is a FIFO" in f.detail for f in found), found
    assert stat.S_ISFIFO(os.lstat(path).st_mode)  # checking moves nothing
    run("doctor (repair)", lambda: state.doctor(repair=True))
    (aside,) = path.parent.glob(f"{path.name}.corrupt-*")
    assert stat.S_ISFIFO(os.lstat(aside).st_mode)
    assert json.loads(path.read_bytes())["completed"] == ["t1"]  # its last good generation
