"""How a save notices that another process changed the file since this one last saw it.

Two JobStates on one folder stand for two processes (each backend keeps its own cache).
A save must start from the file as it is on disk whenever someone else wrote it, even
when the file looks the same from the outside: same size, same modification time (file
systems with coarse timestamps: ext4 on most kernels ticks every few ms, HFS+ and FAT in
seconds) and the same inode number (freed generations are recycled: ext4 hands the same
three inodes round when a file is replaced with a kept .bak).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import jobledger
from jobledger.backends.files import _atomic_write
from jobledger.backends.files import tasksets as files_tasksets

ACCOUNT = "user@email.com"
TYPE = "daily-set"
DATE = "2025-01-20"
PLAN = [f"task-{i:02d}" for i in range(40)]  # names of equal length: equal file sizes


class _CoarseStat:
    """A stat result whose modification time ticks every 10 seconds (FAT ticks every 2)."""

    def __init__(self, st: os.stat_result) -> None:
        self._st = st

    def __getattr__(self, name: str) -> object:
        return getattr(self._st, name)

    @property
    def st_mtime_ns(self) -> int:
        return self._st.st_mtime_ns // 10**10 * 10**10

    @property
    def st_mtime(self) -> float:
        return self.st_mtime_ns / 1e9


class _CoarseOs:
    """The ``os`` module as the files backend sees it, on a file system with coarse times."""

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    @staticmethod
    def stat(*args, **kwargs):
        return _CoarseStat(os.stat(*args, **kwargs))

    @staticmethod
    def fstat(fd: int):
        return _CoarseStat(os.fstat(fd))


@pytest.fixture
def coarse_times(monkeypatch):
    for module in (_atomic_write, files_tasksets):
        monkeypatch.setattr(module, "os", _CoarseOs())


def two_processes(root: Path, clock) -> tuple[jobledger.TaskSet, jobledger.TaskSet]:
    def make() -> jobledger.JobState:
        return jobledger.JobState(root, timezone="UTC", durability="flush", clock=clock)

    a = make().taskset(ACCOUNT, TYPE, PLAN, date=DATE)
    b = make().taskset(ACCOUNT, TYPE, date=DATE)
    return a, b


def test_a_replaced_file_that_looks_unchanged_is_still_reread(tmp_path, clock, coarse_times):
    a, b = two_processes(tmp_path / "state", clock)
    path = tmp_path / "state" / ACCOUNT / f"{TYPE}-{DATE}.json"
    a.mark_done(PLAN[0])
    seen_by_a = os.stat(path)
    for task in PLAN[1:4]:  # three saves by the other process
        b.mark_done(task)
    now = os.stat(path)
    assert now.st_size == seen_by_a.st_size  # and the clock (most likely) did not tick
    a.mark_done(PLAN[4])
    doc = json.loads(path.read_text())
    assert doc["completed"] == PLAN[:5], (
        f"inode {seen_by_a.st_ino} -> {now.st_ino}: completions of the other process lost"
    )
    assert a.completed == PLAN[:5]


@pytest.mark.parametrize("theirs", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("ours", [1, 2])
def test_interleaved_bursts_of_two_writers_keep_every_completion(
    tmp_path, clock, coarse_times, ours, theirs
):
    # Bursts of saves by each writer on a file system with coarse times: some burst
    # lengths bring an inode number back to the other writer's last one.
    a, b = two_processes(tmp_path / "state", clock)
    path = tmp_path / "state" / ACCOUNT / f"{TYPE}-{DATE}.json"
    tasks = iter(PLAN)
    turn = 0
    last = a
    while True:
        writer, burst = (a, ours) if turn % 2 == 0 else (b, theirs)
        for _ in range(burst):
            task = next(tasks, None)
            if task is None:
                doc = json.loads(path.read_text())
                assert doc["completed"] == PLAN
                assert doc["remaining"] == []
                assert last.completed == PLAN
                return
            writer.mark_done(task)
            last = writer
        turn += 1


def test_an_unchanged_file_is_not_reparsed(tmp_path, clock, monkeypatch):
    # The fast path: a process that is the only writer does not parse its file per save.
    a, _ = two_processes(tmp_path / "state", clock)
    a.mark_done(PLAN[0])
    parsed = []
    real = jobledger.TaskSetRecord.loads

    def loads(data: bytes) -> jobledger.TaskSetRecord:
        parsed.append(len(data))
        return real(data)

    monkeypatch.setattr(jobledger.TaskSetRecord, "loads", staticmethod(loads))
    for task in PLAN[1:10]:
        a.mark_done(task)
    assert parsed == []
