"""The one choice of a save's fsyncs (``plan_sync``) and what ``write_atomic`` does with it.

Every save's fsyncs come from a :class:`SyncPlan` chosen in one place: a store without
fsync syncs nothing; a claim (not durable) syncs its data only where the file system does
not order a rename after it; a durable replace renames first where it does; the rest sync
before the rename. Each plan passes the fault points in ``POINTS`` order."""

from __future__ import annotations

import os

import pytest

from jobledger import _faults
from jobledger.backends.files import _atomic_write
from jobledger.backends.files._atomic_write import prepare, write_atomic
from jobledger.backends.files._sync_plan import SyncPlan, plan_sync
from jobledger.backends.files._syncs import run_syncs

S = SyncPlan


@pytest.mark.parametrize(
    ("fsync", "durable", "replacing", "ordered", "caller_folder", "expected"),
    [
        (False, True, True, True, False, S.NONE),
        (False, False, False, False, True, S.NONE),
        (True, False, True, True, False, S.NONE),  # a claim the file system orders
        (True, False, True, False, False, S.DATA_BEFORE_RENAME),
        (True, False, True, False, True, S.DATA_BEFORE_RENAME),
        (True, True, True, True, False, S.SYNC_AFTER_RENAME),
        (True, True, True, True, True, S.SYNC_AFTER_RENAME),  # syncs its folder itself
        (True, True, True, False, False, S.SYNC_BEFORE_RENAME),
        (True, True, False, True, False, S.SYNC_BEFORE_RENAME),  # a new file: no ordering
        (True, True, False, True, True, S.SYNC_BEFORE_RENAME_CALLER_SYNCS_FOLDER),
    ],
)
def test_plan_sync(fsync, durable, replacing, ordered, caller_folder, expected):
    asked: list[bool] = []

    def rename_ordered() -> bool:
        asked.append(ordered)
        return ordered

    plan = plan_sync(
        fsync=fsync,
        durable=durable,
        replacing=replacing,
        rename_ordered=rename_ordered,
        caller_syncs_folder=caller_folder,
    )
    assert plan is expected
    # The file system is asked only where its answer changes the plan.
    assert len(asked) == (1 if fsync and (not durable or replacing) else 0)


@pytest.fixture
def trace(monkeypatch) -> list[str]:
    """The fault points passed and the files fsynced, in order."""
    seen: list[str] = []

    class Tracer(dict):
        def __bool__(self) -> bool:
            return True

        def __contains__(self, name: object) -> bool:
            seen.append(str(name))
            return False

    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        seen.append("fsync " + os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(_faults, "_armed", Tracer())
    monkeypatch.setattr(_atomic_write.os, "fsync", fsync)
    return seen


W, F, B, R, RF, D = (
    "files.temp_written",
    "files.temp_fsynced",
    "files.backup_linked",
    "files.replaced",
    "files.replaced_fsynced",
    "files.dir_fsynced",
)
TMP = "fsync .f.json" + _atomic_write.TEMP_MARK


def _temps_named(trace: list[str]) -> list[str]:
    """The trace with each temp file's pid and counter cut off its name."""
    mark = _atomic_write.TEMP_MARK
    return [e.split(mark)[0] + mark if mark in e else e for e in trace]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names fds via /proc")
@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        (S.NONE, [W, F, B, R, D]),
        (S.DATA_BEFORE_RENAME, [W, TMP, F, B, R, D]),
        (S.SYNC_BEFORE_RENAME, [W, TMP, F, B, R, "fsync folder", D]),
        (S.SYNC_BEFORE_RENAME_CALLER_SYNCS_FOLDER, [W, TMP, F, B, R, D]),
        (S.SYNC_AFTER_RENAME, [W, B, R, "fsync f.json", RF, "fsync folder", D]),
    ],
)
def test_each_plan_passes_its_points_in_order(tmp_path, trace, plan, expected):
    folder = tmp_path / "folder"
    folder.mkdir()
    path = str(folder / "f.json")
    write_atomic(path, b"old", S.NONE)
    trace.clear()
    write_atomic(path, b"new", plan, backup=path + ".bak")
    assert _temps_named(trace) == expected
    order = [e for e in trace if not e.startswith("fsync")]
    assert order == sorted(order, key=_faults.POINTS.index)
    assert (folder / "f.json").read_bytes() == b"new"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names fds via /proc")
def test_deferred_syncs_run_later_and_once_per_folder(tmp_path, trace):
    paths = [str(tmp_path / f"f{i}.json") for i in range(3)]
    for path in paths:
        write_atomic(path, b"old", S.NONE)
    trace.clear()
    later: list = []
    for path in paths:
        write_atomic(path, b"new", S.SYNC_AFTER_RENAME, sync_later=later)
    assert RF not in trace and D not in trace  # nothing synced yet
    trace.clear()
    run_syncs(later)
    assert trace.count(RF) == 3
    assert trace.count(D) == 1  # the folder once, for all three renames


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names fds via /proc")
def test_a_prepared_save_never_synced_is_synced_before_its_rename(tmp_path, trace):
    # A prepared temp file no sync_prepared reached is not renamed unsynced by a plan that
    # syncs before the rename (it was trusted as synced before: data could be lost).
    path = str(tmp_path / "f.json")
    ready = prepare(path, b"new")
    trace.clear()
    write_atomic(path, b"new", S.SYNC_BEFORE_RENAME, prepared=ready)
    assert _temps_named(trace) == [TMP, F, R, "fsync " + tmp_path.name, D]
