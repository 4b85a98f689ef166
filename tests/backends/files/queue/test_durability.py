"""Which queue writes are fsynced (README: "Which writes are fsynced")."""

from __future__ import annotations

import errno
import json
import os
from typing import Any

import pytest

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from jobledger import JobQueue, StorageError


@pytest.fixture
def fsyncs(monkeypatch):
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


@pytest.mark.parametrize("ordered", [True, False])
def test_enqueue_and_complete_are_durable_and_a_claim_never_leaves_an_empty_file(
    tmp_path, fsyncs, ordered
):
    q = JobQueue(tmp_path, durability="fsync")
    q.backend._rename_ordered = ordered  # as on ext4 with a journal / as elsewhere
    q.enqueue({"type": "T"}, job_id="a")
    q.counts()
    fsyncs.clear()
    q.enqueue({"type": "T"}, job_id="b")
    assert len(fsyncs) == 2  # the job file, then its folder
    fsyncs.clear()
    q.claim()
    # Not durable (a lost claim just runs the job again), but where the file system does
    # not order a rename after the data, the data is synced so the file is never empty.
    assert len(fsyncs) == (0 if ordered else 1)
    fsyncs.clear()
    q.complete("a")
    assert len(fsyncs) == 2


def test_flush_durability_never_fsyncs(tmp_path, fsyncs):
    q = JobQueue(tmp_path, durability="flush")
    q.backend._rename_ordered = False
    q.enqueue({"type": "T"}, job_id="a")
    q.claim()
    q.complete("a")
    assert fsyncs == []


def _queue_lock_is_free(root) -> bool:
    fd = os.open(os.path.join(root, ".queue.lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops a lock this descriptor took
    return True


@pytest.mark.skipif(fcntl is None, reason="flock is POSIX")
@pytest.mark.parametrize("ordered", [True, False])
def test_a_completion_is_synced_before_it_returns_in_the_order_the_file_system_allows(
    tmp_path, monkeypatch, ordered
):
    q = JobQueue(tmp_path, durability="fsync")
    q.backend._rename_ordered = ordered
    q.enqueue({"type": "T"}, job_id="a")
    q.claim()
    job_file = tmp_path / "jobs" / "a.json"
    seen: list[tuple[str, bool]] = []
    real = os.fsync

    def watching(fd: int) -> None:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            seen.append(("folder", _queue_lock_is_free(tmp_path)))
        else:
            status = json.loads(job_file.read_text("utf-8"))["status"]
            seen.append((status, _queue_lock_is_free(tmp_path)))
        real(fd)

    monkeypatch.setattr(os, "fsync", watching)
    q.complete("a")
    monkeypatch.setattr(os, "fsync", real)
    if ordered:
        # Renamed first, synced after (one journal commit on ext4 with a journal), and
        # outside the queue lock, so that other writers' syncs can share the commit; but
        # before returning.
        assert seen == [("Completed", True), ("folder", True)]
    else:
        # Synced before the rename: the file still reads Running while its temp is synced;
        # the folder after the lock, as for a batch, whose folder is synced once.
        assert seen == [("Running", False), ("folder", True)]
    q.close()


def test_a_batch_enqueue_syncs_each_file_and_their_folder_once(tmp_path, monkeypatch):
    q = JobQueue(tmp_path, durability="fsync")
    q.counts()
    synced: list[str] = []
    real = os.fsync

    def watching(fd: int) -> None:
        synced.append("folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", watching)
    q.enqueue_many([{"type": "T"}] * 3, job_ids=["a", "b", "c"])
    monkeypatch.setattr(os, "fsync", real)
    assert synced == ["file", "file", "file", "folder"]  # a, b, c, then jobs/ once
    assert sorted(os.listdir(tmp_path / "jobs")) == ["a.json", "b.json", "c.json"]
    q.close()


def _job_file_of(name: str) -> str:
    return name[1:].split(".tmp-")[0] if ".tmp-" in name else name


def _watch_fsyncs(monkeypatch, fail_on: str | None = None) -> list[str]:
    """Record, in order, "folder" or the job file's name for each fsync and "renamed X"
    for each rename of a job file (fsyncs may run on several threads at once; a list's
    append is atomic); refuse (EIO) the fsync of the file named ``fail_on``."""
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        # A temp file synced before its rename is named for the job file it becomes.
        name = "folder" if os.path.isdir(target) else _job_file_of(os.path.basename(target))
        events.append(name)
        if name == fail_on:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        if os.path.basename(os.path.dirname(dst)) == "jobs":
            events.append("renamed " + os.path.basename(dst))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


FILES = ["a.json", "b.json", "c.json"]
RENAMES = ["renamed a.json", "renamed b.json", "renamed c.json"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names descriptors via /proc")
@pytest.mark.parametrize("ordered", [True, False])
def test_a_batch_completion_syncs_its_files_at_once_then_their_folder_once(
    tmp_path, monkeypatch, ordered
):
    q = JobQueue(tmp_path, durability="fsync")
    q.backend._rename_ordered = ordered  # rename, then sync / sync, then rename
    q.enqueue_many([{"type": "T"}] * 3, job_ids=["a", "b", "c"])
    q.claim_many(3)
    events = _watch_fsyncs(monkeypatch)
    q.complete_many([("a", 1), ("b", 2), ("c", 3)])
    monkeypatch.undo()
    # The three files' fsyncs run together (in any order), so that the disk can share its
    # flushes; one fsync of the folder, last, makes all three renames durable.
    if ordered:
        assert events[:3] == RENAMES and sorted(events[3:6]) == FILES
    else:  # every file synced before any rename
        assert sorted(events[:3]) == FILES and events[3:6] == RENAMES
    assert events[6:] == ["folder"]
    assert [j.status.value for j in q.list()] == ["Completed"] * 3
    q.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names descriptors via /proc")
def test_a_batch_claim_syncs_its_files_at_once_where_the_claim_must_sync(tmp_path, monkeypatch):
    q = JobQueue(tmp_path, durability="fsync")
    q.backend._rename_ordered = False  # a claim syncs its data before its rename
    q.enqueue_many([{"type": "T"}] * 3, job_ids=["a", "b", "c"])
    events = _watch_fsyncs(monkeypatch)
    assert [j.job_id for j in q.claim_many(3)] == ["a", "b", "c"]
    monkeypatch.undo()
    assert sorted(events[:3]) == FILES and events[3:] == RENAMES  # no folder: not durable
    assert temp_files(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names descriptors via /proc")
@pytest.mark.parametrize("ordered", [True, False])
def test_a_refused_fsync_in_a_batch_completion_is_reported_and_leaves_no_temp(
    tmp_path, monkeypatch, ordered
):
    q = JobQueue(tmp_path, durability="fsync")
    q.backend._rename_ordered = ordered
    q.enqueue_many([{"type": "T"}] * 3, job_ids=["a", "b", "c"])
    q.claim_many(3)
    events = _watch_fsyncs(monkeypatch, fail_on="b.json")
    with pytest.raises(StorageError) as info:
        q.complete_many([("a", 1), ("b", 2), ("c", 3)])
    monkeypatch.undo()
    assert "b.json" in str(info.value)
    if ordered:
        # b was renamed before its refused fsync: every completion is in place (only b's
        # durability is unsure), and the others and the folder were still synced.
        assert events[:3] == RENAMES and sorted(events[3:6]) == FILES
        assert events[6:] == ["folder"]
        expected = {"a": "Completed", "b": "Completed", "c": "Completed"}
    else:
        # Every file synced before any rename: b refused, so neither b nor c is renamed.
        assert "previous state was left intact" in str(info.value)
        assert sorted(events[:3]) == FILES
        assert events[3:] == ["renamed a.json", "folder"]
        expected = {"a": "Completed", "b": "Running", "c": "Running"}
    assert {j.job_id: j.status.value for j in q.list()} == expected
    assert temp_files(tmp_path) == []
    q.close()


def temp_files(root) -> list[str]:
    return [n for n in os.listdir(os.path.join(root, "jobs")) if ".tmp-" in n]
