"""Kills at every named write boundary of a save (the ``files.*`` of ``_faults.POINTS``), exactly.

A child arms one point and completes tasks; it SIGKILLs itself at that point of the n-th
save. The task being saved is then either fully recorded (the kill came after the
``os.replace``) or not at all (before it), the state file parses, and the next child
resumes and completes the set. Durable saves run in both orders ``write_atomic`` knows:
sync then rename, and rename then sync (where the file system orders renames after data).

And a Worker child killed exactly before, or exactly after, the write that records a job's
completion (with its next claim), on both backends: the job runs again, or never.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import jobledger
from jobledger import JobStatus, _faults

from .._child import Channel, Child
from ._harness import check_state, read_state, temp_files

ACCOUNT = "user@email.com"
TYPE = "daily-set"
DATE = "2025-01-20"
PLAN = ["daily-check-in", "quiz-1", "poll-1", "quiz-2", "search-desktop", "évènement"]
AFTER_REPLACE = {"files.replaced", "files.replaced_fsynced", "files.dir_fsynced"}
BEFORE_REPLACE = {"files.temp_written", "files.temp_fsynced"}


# The points of write_atomic, which every task-set save passes; the queue's (queue.*) and
# PostgreSQL's (pg.*) are swept by test_queue_fault_sweep.py.
SAVE_POINTS = tuple(p for p in _faults.POINTS if p.startswith("files."))


def test_the_points_are_the_ones_a_save_passes():
    # If a point is added, renamed or reordered, the expectations below must be revisited.
    assert SAVE_POINTS == (
        "files.temp_written",
        "files.temp_fsynced",
        "files.backup_linked",
        "files.replaced",
        "files.replaced_fsynced",
        "files.dir_fsynced",
    )


# (durability, whether the file system orders renames after data): the three ways a save
# can go. Under flush nothing is synced, so the order does not matter.
MODES = [("fsync", False), ("fsync", True), ("flush", False)]
MODE_IDS = ["fsync-sync-first", "fsync-rename-first", "flush"]


def passes(name: str, durability: str, ordered: bool) -> bool:
    """Whether a save that replaces a file passes point ``name`` in this mode."""
    if name == "files.temp_fsynced":
        return not (durability == "fsync" and ordered)
    if name == "files.replaced_fsynced":
        return durability == "fsync" and ordered
    return True


@pytest.fixture
def rename_order(monkeypatch):
    """Make the task-set backend believe the file system does (or does not) order renames
    after data; forked children inherit it."""

    def set_order(ordered: bool) -> None:
        monkeypatch.setattr(
            "jobledger.backends.files.tasksets.orders_rename_over", lambda path: ordered
        )

    return set_order


def state_path(root: Path) -> Path:
    return root / ACCOUNT / f"{TYPE}-{DATE}.json"


def completer(root: Path, durability: str, fault: tuple[str, int] | None, *, before_open=False):
    def run(ch: Channel) -> None:
        if fault and before_open:
            _faults.arm(*fault)
        state = jobledger.JobState(root, timezone="UTC", durability=durability)
        with state.taskset(ACCOUNT, TYPE, tasks=PLAN, date=DATE) as ts:
            if fault and not before_open:
                _faults.arm(*fault)  # counts the saves of mark_done only, not the plan's
            for task in ts.pending():
                ts.mark_done(task)
                ch.send(task)
        ch.send("END")

    return run


def run_to_death(root: Path, durability: str, fault: tuple[str, int], **kw) -> list[str]:
    """Run an armed child until its point kills it; the tasks it reported."""
    with Child(completer(root, durability, fault, **kw)) as child:
        got = child.drain()
        status = child.wait()
    assert "END" not in got, f"the point {fault} was never reached"
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    return got


def finish(root: Path, durability: str) -> None:
    with Child(completer(root, durability, None)) as child:
        child.drain()
        assert os.WIFEXITED(child.wait())
    doc = read_state(state_path(root))
    assert doc["completed"] == PLAN
    assert doc["remaining"] == []


@pytest.mark.parametrize("countdown", [1, 2, len(PLAN)])
@pytest.mark.parametrize(
    ("name", "durability", "ordered"),
    [
        pytest.param(name, durability, ordered, id=f"{name}-{mode_id}")
        for name in SAVE_POINTS
        for (durability, ordered), mode_id in zip(MODES, MODE_IDS, strict=True)
        if passes(name, durability, ordered)
    ],
)
def test_kill_at_each_point_of_a_mark_done(
    tmp_path, rename_order, name, countdown, durability, ordered
):
    rename_order(ordered)
    root = tmp_path / "state"
    path = state_path(root)
    got = run_to_death(root, durability, (name, countdown))
    assert got == PLAN[: countdown - 1]  # every save before the armed one went through
    saving = PLAN[countdown - 1]  # the task whose save was cut
    doc = check_state(path, PLAN, [], got, context=f"{name}:{countdown}")
    if name in AFTER_REPLACE:
        assert doc["completed"] == [*got, saving], "replaced, so recorded in full"
        assert saving not in doc["remaining"]
    else:
        assert doc["completed"] == got, "not replaced yet, so not recorded at all"
        assert saving in doc["remaining"]
    bak_path = path.with_name(path.name + ".bak")
    bak = read_state(bak_path) if bak_path.exists() else None
    if name in BEFORE_REPLACE:
        if countdown == 1:
            assert bak is None  # the plan's save was the first: nothing before it
        else:
            assert bak is not None
            assert bak["completed"] == got[:-1]  # the generation before the current one
        # The temp file holds the complete new document: the kill came after its write.
        (temp,) = temp_files(root)
        assert json.loads(temp.read_text("utf-8"))["completed"] == [*got, saving]
    elif name == "files.backup_linked":
        assert bak == doc  # the current generation was kept just before the replace
        assert len(temp_files(root)) == 1
    else:
        assert bak is not None
        assert bak["completed"] == got
        assert temp_files(root) == []
    # Nothing but the temp file and the dead child's lease are found; the next run resumes
    # (taking that lease at once) and completes.
    kinds = {f.kind for f in jobledger.JobState(root).doctor(repair=False)}
    assert kinds <= {"temp", "stale-lease"}
    finish(root, durability)


@pytest.mark.parametrize("durability", ["fsync", "flush"])
@pytest.mark.parametrize(
    "name",
    [p for p in SAVE_POINTS if p not in ("files.backup_linked", "files.replaced_fsynced")],
)
def test_kill_during_the_first_save_of_a_new_set(tmp_path, name, durability):
    # The very first save (the plan) has no previous generation to keep, and creates the
    # file: it always syncs before the rename (a new name has no ordering to rely on).
    root = tmp_path / "state"
    path = state_path(root)
    assert run_to_death(root, durability, (name, 1), before_open=True) == []
    if name in AFTER_REPLACE:
        doc = check_state(path, PLAN, [], [])
        assert doc["completed"] == []
        assert doc["remaining"] == PLAN
    else:
        assert not path.exists()
    assert not path.with_name(path.name + ".bak").exists()
    finish(root, durability)


def test_the_first_save_never_passes_the_backup_point(tmp_path):
    root = tmp_path / "state"
    with Child(completer(root, "flush", ("files.backup_linked", 1), before_open=True)) as child:
        # One pass is the mark_done of the first task: the plan's save did not count.
        assert child.drain() == []
        assert os.WIFSIGNALED(child.wait())
    assert read_state(state_path(root))["completed"] == []


CHILD_SCRIPT = textwrap.dedent(
    """
    import sys
    import jobledger

    state = jobledger.JobState(sys.argv[1], timezone="UTC", durability=sys.argv[2])
    with state.taskset("user@email.com", "daily-set", tasks=sys.argv[3:], date="2025-01-20") as ts:
        for task in ts.pending():
            ts.mark_done(task)
            print(task, flush=True)
    print("END", flush=True)
    """
)


@pytest.mark.parametrize(
    ("spec", "reported", "recorded"),
    [
        # Pass 1 is the plan's save, so ":3" is the save of the second task.
        ("files.temp_written:3", 1, 1),
        ("files.replaced:3", 1, 2),
        ("files.dir_fsynced", 0, 0),
    ],
)
def test_fault_armed_through_the_environment(tmp_path, spec, reported, recorded):
    root = tmp_path / "state"
    env = {**os.environ, "JOBLEDGER_FAULT": spec}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD_SCRIPT, str(root), "fsync", *PLAN],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.split() == PLAN[:reported]
    doc = check_state(state_path(root), PLAN, [], PLAN[:reported], context=spec)
    assert doc["completed"] == PLAN[:recorded]
    finish(root, "fsync")


# -- a Worker killed around the record of a job's completion -----------------------------
#
# A Worker records a finished job's completion with its next claim (one statement on
# PostgreSQL, one lock hold on files). A child Worker's handler arms the next pass of a
# commit point as it returns, so that the kill lands exactly on that record: before the
# write that makes it the truth (the statement's COMMIT, the job file's rename), the job
# must run again; after it, never.

# (backend, when) -> the point whose first pass, after the handler, is that record.
RECORD_POINTS = {
    ("files", "before"): "files.temp_written",
    ("files", "after"): "files.replaced",
    ("postgres", "before"): "pg.before_commit",
    ("postgres", "after"): "pg.after_commit",
}


def _killed_worker(where: str, point: str):
    def run(ch: Channel) -> None:
        queue = jobledger.JobQueue(where, recover_every=3600)

        def handler(job: jobledger.Job) -> str:
            ch.send(f"ran {job.job_id} {job.attempts}")
            # The next commit point this thread passes is this job's record (the
            # heartbeat's thread commits too).
            _faults.arm(point, this_thread=True)
            return "ok"

        worker = jobledger.Worker(queue, {"T": handler}, handle_signals=False)
        worker.run(until_empty=True)
        ch.send("END")

    return run


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("backend", ["files", "postgres"])
def test_a_worker_killed_around_a_completions_record(tmp_path, request, backend, when):
    from .test_queue_fault_sweep import MODES, bury, storage

    mode = next(m for m in MODES if m.backend == backend)
    where = storage(mode, tmp_path, request)
    with jobledger.JobQueue(where) as queue:
        queue.enqueue_many([{"type": "T"}] * 2, job_ids=["a", "b"])
    child = Child(_killed_worker(where, RECORD_POINTS[backend, when]))
    try:
        said = child.drain()
        code = child.exit_code()
    finally:
        child.kill()
    assert not child.errors, "\n".join(child.errors)
    assert said == ["ran a 1"], said  # killed on a's record, before b ran
    assert code == -signal.SIGKILL, code
    bury(mode, where, child.pid)

    queue = jobledger.JobQueue(where)
    try:
        stored = queue.backend.get("a")  # as the kill left it: nothing recovered yet
        assert stored is not None
        if when == "before":
            assert (stored.status, stored.result) == (JobStatus.RUNNING, None)
        else:
            assert (stored.status, stored.result) == (JobStatus.COMPLETED, "ok")
        ran: list[str] = []

        def handler(job: jobledger.Job) -> str:
            ran.append(f"{job.job_id} {job.attempts}")
            return "again"

        jobledger.Worker(queue, {"T": handler}, handle_signals=False).run(until_empty=True)
        # Before its record, the job runs again (its attempt counted); after, never. On
        # PostgreSQL the record landed with the next claim, of b: b ran in no process,
        # and runs now, its claim counted.
        b_attempt = 2 if (backend, when) == ("postgres", "after") else 1
        assert ran == (["a 2", f"b {b_attempt}"] if when == "before" else [f"b {b_attempt}"])
        assert [queue.get(i).status for i in "ab"] == [JobStatus.COMPLETED] * 2
        assert queue.get("a").result == ("again" if when == "before" else "ok")
    finally:
        queue.close()
