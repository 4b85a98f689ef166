"""Kills at every named fault point of every job-queue operation, on every backend.

For each backend, each scenario (enqueue, enqueue_many, claim, complete, fail with a retry
left, requeue, snooze, a Worker's completion recorded together with its next claim, cancel, prune,
and the recovery of a dead worker's job itself) and each pass of each
point (``jobledger._faults.POINTS``) that the scenario's own operation goes through, a
forked child sets the scene, arms that pass right before the operation and runs it, and
SIGKILLs itself there: the operation is never acknowledged. The parent then reopens the
queue (a new ``JobQueue``, as a restarted server would) and checks these invariants:

1. Every file parses, read directly, before anything could repair it (files backend: each
   ``jobs/*.json``, ``queue.json`` and every line of ``.queue.journal``); and opening the
   queue afterwards sets nothing aside as corrupt.
2. Nothing acknowledged is lost, and the interrupted operation is applied in full or not
   at all. The stored jobs (status, attempts, recovered) are exactly the state before the
   operation or the state after it, and WHICH one follows from where the kill landed:
   after the write that makes the change the truth (the job file's rename, the COMMIT),
   the change is there; before it, it is not (the ``COMMIT`` marks in ``TRACES``).
   Exception, by design: the files backend's batch enqueue writes one file per job, so
   each job is whole and the jobs stored are a prefix of the batch (PostgreSQL: one
   statement, all or nothing).
3. Nothing is recorded twice: no job id twice among the stored jobs, the live jobs or
   ``list()``; the live jobs (the index, reconciled on opening) are exactly the stored
   Queued and Running ones; ``counts()`` agrees with the stored jobs, and with ``list()``.
4. A job the dead child had Running (under its worker id) comes back Queued with that
   attempt counted, and is served first: the fresh worker's claims come in serving order,
   recovered jobs first, then priority (a higher-priority job of another type waits).
5. The queue drains: a fresh worker claims every live job exactly once and completes it,
   and then every job is Completed (or Cancelled, by the scenario) with one more attempt.

Which points each operation passes, in order, is written down in ``TRACES`` and checked by
``test_the_trace_of_each_operation`` (a child runs the operation unarmed, recording every
point it passes). The kill tests are generated from ``TRACES``, so every armed pass is one
the operation reaches; a write moved or a point added fails the trace test until the table
is revisited, and a kill test whose child was not killed fails ("never reached").
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobledger import JobQueue, JobStatus, _faults
from jobledger._job_record import JobRecord
from tests.backends.postgres._pg import require_psycopg

from .._child import Channel, Child

# -- what the operations pass -----------------------------------------------------------------

# Not a point: where, between two points, the operation's change becomes the truth (the
# job file's rename, the COMMIT). A kill at a point after it must find the change stored.
C = "COMMIT"

# A job file's write_atomic that syncs before it renames: a new file (enqueue), an
# unsynced write (claim), and any write where the file system does not order a rename
# after the data. ``files.replaced`` is passed just after the rename.
JOB_SYNC_FIRST = (
    "files.temp_written",
    "files.temp_fsynced",
    C,
    "files.replaced",
    "files.dir_fsynced",
)
# A durable replace that syncs first: its folder is synced once the queue lock is released
# (with the folders of the other replaces of a batch), after the index update.
JOB_SYNC_FIRST_REPLACE = JOB_SYNC_FIRST[:-1]
FOLDER_AFTER_UNLOCK = ("files.dir_fsynced",)
# A durable replace where the file system orders renames after data (ext4 with a journal):
# the syncs run once the queue lock is released (AFTER_UNLOCK), after the index update.
JOB_RENAME_FIRST = ("files.temp_written", C, "files.replaced")
AFTER_UNLOCK = ("files.replaced_fsynced", "files.dir_fsynced")
# The index: a journal line, then (under light use, always) the queue.json snapshot, whose
# own write_atomic (never fsynced, but the points are passed) precedes the journal rotation.
INDEX = (
    "queue.journal_appended",
    "files.temp_written",
    "files.temp_fsynced",
    "files.replaced",
    "files.dir_fsynced",
    "queue.snapshot_written",
    "queue.journal_rotated",
)
# Every PostgreSQL operation here commits once: a transaction, or one statement in autocommit
# (a claim; a worker's completion, failure or requeue of the job it claimed; and its
# completions recorded with its next claim), which passes the same points around itself.
PG = ("pg.before_commit", C, "pg.after_commit")


@dataclasses.dataclass(frozen=True)
class Mode:
    id: str
    backend: str  # "files" or "postgres"
    rename_first: bool = False  # files: force write_atomic's order for durable replaces


MODES = (
    Mode("files-sync-first", "files", rename_first=False),
    Mode("files-rename-first", "files", rename_first=True),
    Mode("postgres", "postgres"),
)
SCENARIOS = (
    "enqueue",
    "enqueue_many",
    "claim",
    "complete",
    "fail",
    "requeue",
    "record_and_claim",
    "snooze",
    "cancel",
    "prune",
    "recovery",
)


def trace(mode: Mode, scenario: str) -> tuple[str, ...]:
    """The points the scenario's operation passes, in order, with its COMMIT marks."""
    if mode.backend == "postgres":
        return PG
    replace_after = AFTER_UNLOCK if mode.rename_first else FOLDER_AFTER_UNLOCK
    replace = (JOB_RENAME_FIRST if mode.rename_first else JOB_SYNC_FIRST_REPLACE) + INDEX
    replace += replace_after
    return {
        # The index lists new ids before their files exist (a crash between the two leaves
        # a listed id without a file, which opening drops, never an unlisted live file).
        "enqueue": INDEX + JOB_SYNC_FIRST,
        # A batch writes every temp file first and syncs them all at once, then renames
        # each: a kill before the first rename stores none of it.
        "enqueue_many": INDEX
        + ("files.temp_written",) * 3
        + ("files.temp_fsynced", C, "files.replaced", "files.dir_fsynced") * 3,
        "claim": JOB_SYNC_FIRST + INDEX,  # not fsynced: the same in both orders
        "complete": replace,
        "fail": replace,
        "requeue": replace,
        # A Worker's group commit: the completion's durable replace, then the next
        # claim's unsynced write, under one hold of the lock; the completion's remaining
        # syncs once it is released.
        "record_and_claim": replace[: -len(replace_after)] + JOB_SYNC_FIRST + INDEX + replace_after,
        "snooze": replace,
        "cancel": replace,
        # A "pruning" mark in the journal, then each job file unlinked (in job id order),
        # then the line that lowers the finished counts: a kill in between leaves the mark
        # last in the journal, and the next reader recounts from the job files.
        "prune": ("queue.journal_appended", C, "queue.pruned_file", C, "queue.pruned_file", *INDEX),
        "recovery": replace,
    }[scenario]


TRACES = {(m.id, s): trace(m, s) for m in MODES for s in SCENARIOS}


def _kills() -> list[Any]:
    out = []
    for mode in MODES:
        for scenario in SCENARIOS:
            full = TRACES[mode.id, scenario]
            if mode.rename_first and "files.replaced_fsynced" not in full:
                continue  # no durable replace: the same trace as files-sync-first
            seen: Counter[str] = Counter()
            commits = 0
            for name in full:
                if name == C:
                    commits += 1
                    continue
                seen[name] += 1
                out.append(
                    pytest.param(
                        mode,
                        scenario,
                        name,
                        seen[name],
                        commits,
                        id=f"{mode.id}-{scenario}-{name}-{seen[name]}",
                    )
                )
    return out


# -- the scenarios ----------------------------------------------------------------------------

State = dict[str, tuple[str, int, bool]]  # job id -> (status, attempts, recovered)
Q, R, DONE, CANCELLED = "Queued", "Running", "Completed", "Cancelled"
# "a" (type T) is the job the child claims; "b" (type U, higher priority) is claimable only
# by a worker of any type, so that a recovered "a" being served before it shows that
# recovered jobs come first, not merely that "a" is older.
BASE: State = {"a": (Q, 0, False), "b": (Q, 0, False)}
CLAIMED: State = {"a": (R, 1, False), "b": (Q, 0, False)}
BATCH = ["n1", "n2", "n3"]
# The scenarios whose operation is the child's own change of "a", which it claims first
# (through the queue, which holds the claim: on PostgreSQL one statement each).
CLAIMED_FIRST = ("complete", "fail", "requeue", "record_and_claim", "snooze")


def states(mode: Mode, scenario: str) -> list[State]:
    """The stored jobs before the operation, then after each of its COMMIT marks."""
    if scenario == "enqueue":
        return [BASE, {**BASE, "n": (Q, 0, False)}]
    if scenario == "enqueue_many":
        steps = [{**BASE, **{n: (Q, 0, False) for n in BATCH[:k]}} for k in range(4)]
        return steps if mode.backend == "files" else [steps[0], steps[-1]]
    if scenario == "claim":
        return [BASE, CLAIMED]
    if scenario == "complete":
        return [CLAIMED, {**CLAIMED, "a": (DONE, 1, False)}]
    if scenario == "fail":
        return [CLAIMED, {**CLAIMED, "a": (Q, 1, False)}]
    if scenario == "requeue":
        return [CLAIMED, {**CLAIMED, "a": (Q, 0, True)}]
    if scenario == "record_and_claim":
        completed = {**CLAIMED, "a": (DONE, 1, False)}
        claimed = {**completed, "b": (R, 1, False)}
        # PostgreSQL: one statement. Files: the completion's write, then the claim's.
        return [CLAIMED, claimed] if mode.backend == "postgres" else [CLAIMED, completed, claimed]
    if scenario == "snooze":  # the attempt not counted
        return [CLAIMED, {**CLAIMED, "a": (Q, 0, False)}]
    if scenario == "cancel":
        return [BASE, {**BASE, "b": (CANCELLED, 0, False)}]
    if scenario == "prune":
        before = {"a": (DONE, 1, False), "b": (DONE, 1, False), "c": (Q, 0, False)}
        if mode.backend == "postgres":
            return [before, {"c": (Q, 0, False)}]
        return [before, {"b": (DONE, 1, False), "c": (Q, 0, False)}, {"c": (Q, 0, False)}]
    if scenario == "recovery":
        return [CLAIMED, {**CLAIMED, "a": (Q, 1, True)}]
    raise AssertionError(scenario)


def operation(scenario: str, q: JobQueue) -> object:
    """The operation under test (run in the child, armed)."""
    if scenario == "enqueue":
        return q.enqueue({"type": "T"}, job_id="n")
    if scenario == "enqueue_many":
        return q.enqueue_many([{"type": "T"}] * len(BATCH), job_ids=list(BATCH))
    if scenario == "claim":
        return q.claim(types=["T"])
    if scenario == "complete":
        return q.complete("a", "ok")
    if scenario == "fail":
        return q.fail("a", "boom")  # attempt 1 of 3: retried (retry_delay=0: due at once)
    if scenario == "requeue":
        return q.requeue("a")
    if scenario == "record_and_claim":  # a Worker's: a's completion with the next claim
        jobs, recorded, conflict = q._record_and_claim([("a", "ok")], 1, None)
        assert [j.job_id for j in jobs] == ["b"] and (recorded, conflict) == (1, None)
        return jobs
    if scenario == "snooze":
        return q.snooze("a", 0)  # due at once, as the drain afterwards needs
    if scenario == "cancel":
        return q.cancel("b")
    if scenario == "prune":
        return q.prune(60)
    if scenario == "recovery":
        return q.recover()
    raise AssertionError(scenario)


def open_queue(mode: Mode, where: str, clock: Any) -> JobQueue:
    """A queue on the test's storage, under the test's clock (inherited by the children)."""
    q = JobQueue(where, durability="fsync", clock=clock, retry_delay=0)
    if mode.backend == "files":
        q.backend._rename_ordered = mode.rename_first
    return q


def prepare(scenario: str, q: JobQueue, chan: Channel) -> None:
    """The child's part of the scene, before arming: what its operation needs."""
    if scenario == "recovery":
        return  # the recovery IS the first use: a warm-up read would do it unarmed
    q.recover()  # first use (it recovers and opens the index): not the operation's writes
    if scenario in ("claim", *CLAIMED_FIRST):
        chan.send(f"worker {q.worker_id}")
    if scenario in CLAIMED_FIRST:
        job = q.claim(types=["T"])
        assert job is not None and job.job_id == "a", job
        chan.send("acknowledged claim a")


def setup(mode: Mode, scenario: str, where: str, clock: Any) -> str | None:
    """The acknowledged state the scenario starts from (made in this process, then closed
    so that nothing of ours is open across the fork); the dead worker's id, if any."""
    with open_queue(mode, where, clock) as q:
        q.enqueue({"type": "T"}, job_id="a")
        q.enqueue({"type": "U"}, job_id="b", priority=9)
        if scenario == "prune":
            q.enqueue({"type": "T"}, job_id="c")
            for _ in range(2):
                job = q.claim(types=["U"]) or q.claim(types=["T"])
                assert job is not None
                q.complete(job.job_id, "ok")
            clock.advance(hours=1)  # so that prune(60) finds both
    if scenario != "recovery":
        return None
    # The recovery's scene: a worker that claimed "a" and died (unarmed, at rest).
    victim = Child(_victim(mode, where, clock))
    try:
        worker = victim.read_until("worker ")
    finally:
        victim.kill()
    bury(mode, where, victim.pid)
    return worker


def _victim(mode: Mode, where: str, clock: Any) -> Callable[[Channel], None]:
    def target(chan: Channel) -> None:
        q = open_queue(mode, where, clock)
        job = q.claim(types=["T"])
        assert job is not None and job.job_id == "a", job
        chan.send(f"worker {q.worker_id}")
        chan.recv()  # until killed

    return target


def bury(mode: Mode, where: str, pid: int) -> None:
    """After a child's death: on PostgreSQL, wait until the server has ended its sessions
    (so that a transaction it left open is rolled back and its row locks are gone), then let
    every worker lease run out (set in the database rather than waited for: no worker is
    alive now). A folder needs nothing: the kernel released the dead child's OS locks."""
    if mode.backend != "postgres":
        return
    psycopg = require_psycopg()
    with psycopg.connect(where, autocommit=True) as conn:
        deadline = time.monotonic() + 30
        while conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
            (f"jobledger % pid {pid} on%",),
        ).fetchone()[0]:
            assert time.monotonic() < deadline, f"the sessions of dead pid {pid} linger"
            time.sleep(0.01)
        conn.execute("UPDATE jobledger_workers SET lease_until = now() - interval '1 second'")


# -- the checks -------------------------------------------------------------------------------


def check_files_parse(qdir: Path) -> None:
    """Invariant 1, read straight from disk as another tool would."""
    for path in (qdir / "jobs").glob("*.json"):
        JobRecord.loads(path.read_bytes())  # ValueError if torn or not a job
    index = qdir / "queue.json"
    if index.exists():
        doc = json.loads(index.read_text("utf-8"))
        assert isinstance(doc["running"], list) and isinstance(doc["queued"], list), doc
    journal = qdir / ".queue.journal"
    if journal.exists():
        data = journal.read_bytes()
        assert not data or data.endswith(b"\n"), "the journal ends in a torn line"
        for line in data.splitlines():
            assert isinstance(json.loads(line), dict), line


def tally(statuses: list[JobStatus]) -> dict[str, int]:
    out = {s.value: 0 for s in JobStatus}
    for s in statuses:
        out[s.value] += 1
    return out


def check_reopened(
    mode: Mode, where: str, clock: Any, expected: State, dead_worker: str | None, what: str
) -> None:
    """Invariants 2 to 5, on a queue opened anew after the kill."""
    if mode.backend == "files":
        check_files_parse(Path(where))
    q = open_queue(mode, where, clock)
    try:
        # Through the backend first: JobQueue's first use would recover the dead worker's
        # jobs, and what the kill left must be seen as it is.
        stored = list(q.backend.all_records())
        ids = [r.job_id for r in stored]
        assert len(ids) == len(set(ids)), f"a job stored twice: {ids} ({what})"
        found = {r.job_id: (r.status.value, r.attempts, r.recovered) for r in stored}
        assert found == expected, f"after the kill at {what}"
        for r in stored:
            if r.status is JobStatus.RUNNING:
                assert r.worker == dead_worker, (r, what)
        live_ids = [r.job_id for r in q.backend.live()]
        assert len(live_ids) == len(set(live_ids)), f"listed twice: {live_ids} ({what})"
        assert sorted(live_ids) == sorted(r.job_id for r in stored if r.status.is_live), what
        assert q.backend.counts() == tally([r.status for r in stored]), what

        # Recovery: exactly the dead child's Running jobs, Queued again, attempt counted.
        running = {r.job_id: r for r in stored if r.status is JobStatus.RUNNING}
        recovered = q.recover()
        assert sorted(j.job_id for j in recovered) == sorted(running), what
        for job in recovered:
            assert job.status is JobStatus.QUEUED, (job, what)
            assert job.attempts == running[job.job_id].attempts, (job, what)
        listing = q.list()
        assert len({j.job_id for j in listing}) == len(listing), (listing, what)
        assert q.counts() == tally([j.status for j in listing]), what

        # Serving order: recovered (or left Running) first, then priority, then FIFO.
        live = [r for r in stored if r.status.is_live]
        first = {r.job_id for r in live if r.status is JobStatus.RUNNING or r.recovered}
        order = [
            r.job_id
            for r in sorted(live, key=lambda r: (r.job_id not in first, -r.priority, r.seq))
        ]
        claimed = []
        while (job := q.claim()) is not None:
            claimed.append(job.job_id)
            q.complete(job.job_id, "ok")
        assert claimed == order, f"claimed {claimed}, expected {order} ({what})"

        final = {j.job_id: j for j in q.list()}
        assert sorted(final) == sorted(found), what
        for job_id, (status, attempts, _) in found.items():
            job = final[job_id]
            if status in (Q, R):
                assert (job.status, job.attempts) == (JobStatus.COMPLETED, attempts + 1), job
            else:
                assert (job.status.value, job.attempts) == (status, attempts), job
        assert q.counts() == tally([j.status for j in final.values()]), what
    finally:
        q.close()
    if mode.backend == "files":
        qdir = Path(where)
        doc = json.loads((qdir / "queue.json").read_text("utf-8"))
        assert doc["running"] == [] and doc["queued"] == [], doc
        corrupt = [p.name for p in qdir.rglob("*") if ".corrupt-" in p.name]
        assert not corrupt, f"set aside as corrupt: {corrupt} ({what})"


# -- the tests --------------------------------------------------------------------------------


def storage(mode: Mode, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if mode.backend == "files":
        return str(tmp_path / "q")
    require_psycopg()
    return str(request.getfixturevalue("pg_url"))


class _Recorder(dict):
    """Stands in for ``_faults._armed`` in a child: ``point()`` asks ``_armed and name in
    _armed``, so a mapping that is truthy and contains nothing records every point passed
    and kills at none."""

    def __init__(self) -> None:
        super().__init__()
        self.passed: list[str] = []

    def __bool__(self) -> bool:
        return True

    def __contains__(self, name: object) -> bool:
        self.passed.append(str(name))
        return False


def _sweep_child(
    mode: Mode, scenario: str, where: str, clock: Any, fault: tuple[str, int] | None
) -> Callable[[Channel], None]:
    def target(chan: Channel) -> None:
        q = open_queue(mode, where, clock)
        prepare(scenario, q, chan)
        recorder = _Recorder()
        if fault is None:
            _faults._armed = recorder
        else:
            _faults.arm(*fault)  # counts the operation's passes only, not the scene's
        operation(scenario, q)
        chan.send("acknowledged")  # the operation returned: the armed pass never came
        chan.send("passed " + json.dumps(recorder.passed))

    return target


@pytest.fixture(autouse=True)
def _every_snapshot_rotates_the_journal(monkeypatch):
    # A snapshot empties the journal only once it is large (_ROTATE_AT); here every one
    # does, so that the rotation's points are swept too (the children inherit this).
    monkeypatch.setattr("jobledger.backends.files._queue_index._ROTATE_AT", 0)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("mode", MODES, ids=[m.id for m in MODES])
def test_the_trace_of_each_operation(tmp_path, request, clock, mode, scenario):
    where = storage(mode, tmp_path, request)
    setup(mode, scenario, where, clock)
    child = Child(_sweep_child(mode, scenario, where, clock, None))
    passed = json.loads(child.read_until("passed "))
    child.check()
    expected = [p for p in TRACES[mode.id, scenario] if p != C]
    assert passed == expected, "the operation's writes changed: revisit TRACES"
    assert set(passed) <= set(_faults.POINTS)


def test_every_point_is_swept():
    # A point no operation passes would be armed by no kill test: list it here or sweep it.
    swept = {name for full in TRACES.values() for name in full} - {C}
    assert swept == set(_faults.POINTS) - {"files.backup_linked"}  # task sets only


@pytest.mark.parametrize(("mode", "scenario", "name", "nth", "commits"), _kills())
def test_kill_at_each_point_of_each_operation(
    tmp_path, request, clock, mode, scenario, name, nth, commits
):
    what = f"{scenario}, {name} pass {nth}, {mode.id}"
    where = storage(mode, tmp_path, request)
    dead_worker = setup(mode, scenario, where, clock)
    child = Child(_sweep_child(mode, scenario, where, clock, (name, nth)))
    try:
        lines = []
        while (line := child.readline()) is not None:
            lines.append(line)
        code = child.exit_code()
    finally:
        if child.status is None:
            child.kill()
    assert not child.errors, "\n".join(child.errors)
    assert "acknowledged" not in lines, f"{what} was never reached"
    assert code == -signal.SIGKILL, f"{what}: the child exited with {code}"
    for line in lines:
        if line.startswith("worker "):
            dead_worker = line[len("worker ") :]
    if scenario in CLAIMED_FIRST:
        assert "acknowledged claim a" in lines
    bury(mode, where, child.pid)
    check_reopened(mode, where, clock, states(mode, scenario)[commits], dead_worker, what)


def test_the_states_follow_the_commits():
    # One state before the operation and one after each COMMIT mark of its trace.
    for mode in MODES:
        for scenario in SCENARIOS:
            assert len(states(mode, scenario)) == TRACES[mode.id, scenario].count(C) + 1
