"""Disk errors: a refused write raises StorageError, and nothing else changes.

After a failed ``mark_done``: the error names the path and says what to check, the file
on disk is the previous one (and parses), no temp file is left, and the TaskSet in memory
still reports the previous completed list (the failed mark is not counted as done).
Tests run as root in CI, where chmod does not stop writes: there the refusal is injected.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

import jobledger
from jobledger.backends.files import _atomic_write
from tests.crash._harness import temp_files

ACCOUNT = "user@email.com"
TYPE = "daily-set"
DATE = "2025-01-20"
PLAN = ["daily-check-in", "quiz-1", "poll-1"]


def opened(root: Path, clock) -> tuple[jobledger.TaskSet, Path]:
    state = jobledger.JobState(root, timezone="UTC", durability="fsync", clock=clock)
    ts = state.taskset(ACCOUNT, TYPE, PLAN, date=DATE)
    ts.mark_done("daily-check-in")
    return ts, root / ACCOUNT / f"{TYPE}-{DATE}.json"


def assert_nothing_changed(ts: jobledger.TaskSet, path: Path, before: bytes) -> None:
    assert path.read_bytes() == before
    assert json.loads(before)["completed"] == ["daily-check-in"]
    assert temp_files(path.parent.parent) == []
    assert ts.completed == ["daily-check-in"]
    assert ts.remaining == ["quiz-1", "poll-1"]
    assert not ts.is_complete


def refuse(monkeypatch, call: str, err: int, when=lambda *a: True) -> list[str]:
    """Make ``os.<call>`` as used by the atomic writer fail with ``err``."""
    real = getattr(os, call)
    seen: list[str] = []

    def fake(*args, **kwargs):
        if when(*args):
            seen.append(str(args[0]))
            raise OSError(err, os.strerror(err), str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(_atomic_write.os, call, fake)
    return seen


def is_temp(path, *rest) -> bool:
    return isinstance(path, str) and _atomic_write.TEMP_MARK in path


def test_a_read_only_folder(tmp_path, clock, monkeypatch):
    ts, path = opened(tmp_path / "state", clock)
    before = path.read_bytes()
    folder = path.parent
    folder.chmod(0o555)
    try:
        if os.geteuid() == 0 or os.access(folder, os.W_OK):
            # root ignores permissions: refuse the temp file's creation as the OS would.
            refuse(monkeypatch, "open", errno.EACCES, is_temp)
        with pytest.raises(jobledger.StorageError) as info:
            ts.mark_done("quiz-1")
    finally:
        folder.chmod(0o755)
    error = info.value
    assert error.errno == errno.EACCES
    assert error.path == str(path)
    assert str(path) in str(error)
    assert "permissions" in str(error)
    assert "previous state was left intact" in str(error)
    assert isinstance(error, OSError)
    monkeypatch.undo()
    assert_nothing_changed(ts, path, before)
    # Once writable again, the same mark goes through.
    ts.mark_done("quiz-1")
    assert json.loads(path.read_text())["completed"] == ["daily-check-in", "quiz-1"]


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EDQUOT, errno.EIO])
def test_a_write_refused_half_way(tmp_path, clock, monkeypatch, err):
    ts, path = opened(tmp_path / "state", clock)
    before = path.read_bytes()
    real_write = os.write
    calls = []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:10]))  # a short write first, then the disk fills
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(_atomic_write.os, "write", write)
    with pytest.raises(jobledger.StorageError) as info:
        ts.mark_done("quiz-1")
    monkeypatch.undo()
    assert len(calls) == 2
    assert info.value.errno == err
    assert str(path) in str(info.value)
    if err == errno.ENOSPC:
        assert "disk is full" in str(info.value)
    assert_nothing_changed(ts, path, before)


@pytest.mark.parametrize("ordered", [False, True], ids=["sync-first", "rename-first"])
@pytest.mark.parametrize("call", ["fsync", "replace"])
def test_a_failing_fsync_or_rename(tmp_path, clock, monkeypatch, call, ordered):
    # ordered: the file system orders renames after data, so a save renames, then syncs.
    monkeypatch.setattr(
        "jobledger.backends.files.tasksets.orders_rename_over", lambda path: ordered
    )
    ts, path = opened(tmp_path / "state", clock)
    before = path.read_bytes()
    # fsync: the state file's, the first one; replace: the one onto the state file.
    refuse(monkeypatch, call, errno.EIO, lambda *a: call == "fsync" or a[1] == str(path))
    with pytest.raises(jobledger.StorageError) as info:
        ts.mark_done("quiz-1")
    monkeypatch.undo()
    assert str(path) in str(info.value)
    if call == "replace" or not ordered:
        assert "previous state was left intact" in str(info.value)
        assert_nothing_changed(ts, path, before)
        return
    # The sync failed after the rename: the new content is in place and the error says it
    # may not be durable; the mark was not acknowledged, and marking again records it once.
    assert "new content is in place but may not survive a power cut" in str(info.value)
    assert json.loads(path.read_bytes())["completed"] == ["daily-check-in", "quiz-1"]
    assert temp_files(path.parent.parent) == []
    assert ts.completed == ["daily-check-in"]
    ts.mark_done("quiz-1")
    assert ts.completed == ["daily-check-in", "quiz-1"]
    assert json.loads(path.read_bytes())["completed"] == ["daily-check-in", "quiz-1"]


def test_a_failure_while_keeping_the_previous_generation(tmp_path, clock, monkeypatch):
    # The .bak is renamed into place from a temp hard link; when that rename fails (a full
    # directory block, a folder in the way), the hard link must not be left behind.
    ts, path = opened(tmp_path / "state", clock)
    before = path.read_bytes()
    refuse(monkeypatch, "replace", errno.ENOSPC, lambda src, dst: str(dst).endswith(".bak"))
    with pytest.raises(jobledger.StorageError) as info:
        ts.mark_done("quiz-1")
    monkeypatch.undo()
    assert str(path) in str(info.value)
    assert_nothing_changed(ts, path, before)


def test_a_folder_where_the_state_file_should_be(tmp_path, clock):
    state = jobledger.JobState(tmp_path / "state", timezone="UTC", clock=clock)
    ts = state.taskset(ACCOUNT, TYPE, date=DATE)  # nothing planned, nothing saved yet
    path = tmp_path / "state" / ACCOUNT / f"{TYPE}-{DATE}.json"
    path.mkdir(parents=True)
    with pytest.raises(jobledger.StorageError) as info:
        ts.mark_done("quiz-1")
    assert info.value.errno == errno.EISDIR
    assert str(path) in str(info.value)
    assert "a folder stands where a file should be" in str(info.value)
    assert ts.completed == []
    assert path.is_dir()
    assert list(path.iterdir()) == []
    assert temp_files(tmp_path) == []
    # Opening it again says the same thing, rather than treating the folder as corrupt.
    with pytest.raises(jobledger.StorageError, match="folder stands where a file"):
        state.taskset(ACCOUNT, TYPE, date=DATE)


def test_a_folder_in_place_of_a_saved_state_file(tmp_path, clock):
    ts, path = opened(tmp_path / "state", clock)
    path.unlink()
    path.mkdir()
    with pytest.raises(jobledger.StorageError) as info:
        ts.mark_done("quiz-1")
    assert str(path) in str(info.value)
    assert "folder" in str(info.value)
    assert ts.completed == ["daily-check-in"]
    assert temp_files(tmp_path) == []
    assert path.is_dir()


def test_a_file_where_the_account_folder_should_be(tmp_path, clock):
    root = tmp_path / "state"
    root.mkdir()
    (root / ACCOUNT).write_text("not a folder")
    state = jobledger.JobState(root, timezone="UTC", clock=clock)
    with pytest.raises(jobledger.StorageError) as info:
        state.taskset(ACCOUNT, TYPE, PLAN, date=DATE)
    assert info.value.errno == errno.ENOTDIR
    assert ACCOUNT in str(info.value)
    assert "a file stands where a folder should be" in str(info.value)
    assert (root / ACCOUNT).read_text() == "not a folder"


def test_an_unreadable_state_file(tmp_path, clock, monkeypatch):
    ts, path = opened(tmp_path / "state", clock)
    before = path.read_bytes()
    real_open = os.open

    def fake_open(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    with pytest.raises(jobledger.StorageError) as info:
        jobledger.JobState(tmp_path / "state", clock=clock).taskset(ACCOUNT, TYPE, date=DATE)
    monkeypatch.undo()
    assert "could not read" in str(info.value)
    assert str(path) in str(info.value)
    # An unreadable file is not a corrupt one: it is not moved aside.
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if ".corrupt-" in p.name] == []
    assert ts.completed == ["daily-check-in"]


def test_state_folder_created_on_first_write_only(tmp_path, clock):
    root = tmp_path / "deep" / "er" / "state"
    state = jobledger.JobState(root, timezone="UTC", clock=clock)
    ts = state.taskset(ACCOUNT, TYPE, date=DATE)
    assert not (tmp_path / "deep").exists()
    assert ts.completed == []
    ts.mark_done("quiz-1")
    assert json.loads((root / ACCOUNT / f"{TYPE}-{DATE}.json").read_text())["completed"] == [
        "quiz-1"
    ]


def test_without_hard_links_the_previous_generation_is_copied(tmp_path, clock, monkeypatch):
    ts, path = opened(tmp_path / "state", clock)
    refuse(monkeypatch, "link", errno.EPERM)  # e.g. FAT or some network mounts
    ts.mark_done("quiz-1")
    ts.mark_done("poll-1")
    bak = path.with_name(path.name + ".bak")
    assert json.loads(bak.read_text())["completed"] == ["daily-check-in", "quiz-1"]
    assert os.stat(bak).st_ino != os.stat(path).st_ino
    assert temp_files(tmp_path) == []
