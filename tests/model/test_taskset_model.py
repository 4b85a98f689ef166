"""Model-based test of task sets (hypothesis ``RuleBasedStateMachine``), on every backend.

Random sequences of task-set operations on three sets (two accounts, one of them with two
days, one account name that must be encoded on disk): planning, ``mark_done``,
``mark_failed``, ``progress``, ``with ts.task(...)`` blocks that succeed or raise, taking
and releasing the run lease, another process trying the lease, ``reset`` of an account or
of everything, and crashes, are run against real ``JobState``/``TaskSet`` objects and
against a small in-memory model of what each set must hold. The crash rule abandons the
JobState and its task sets the way a killed process leaves them (its leases dropped as
the OS or the server drops them, nothing else done), opens a new JobState on the same
folder or database and the same account, type and date, plans again as a rerun of the
script would, and may take the lease again.

What this proves, after every step, for any sequence the search finds:

- each open set's ``completed`` (in completion order), ``remaining`` (in planned order),
  ``failed``, ``durations``, ``progress``, ``is_complete`` and ``last_update`` match the
  model, and so does the stored record a separate reader sees (failure history included):
  nothing acknowledged is lost, by a crash or otherwise, and a save happens exactly when
  something changed (planning known tasks or marking a done task again writes nothing);
- ``keys()`` lists exactly the sets that were saved and not reset;
- the run lease is exclusive while held (another process gets ``AlreadyRunning``), free
  once released or once its holder died (taken at once after the crash), and ``reset``
  refuses (``AlreadyRunning``) a set whose lease is held, keeping it whole.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import jobledger
from jobledger import AlreadyRunning, Failure, JobState, TaskSet, TaskSetKey
from jobledger._clock import iso_utc
from tests.conftest import FakeClock
from tests.model._storage import Storage, StorageFactory, model_settings

KEYS = [
    TaskSetKey("a@x.com", "daily-set", "2025-01-20"),
    TaskSetKey("a@x.com", "daily-set", "2025-01-21"),
    TaskSetKey("b/c", "daily-set", "2025-01-20"),  # percent-encoded as a folder name
]
ACCOUNTS = sorted({k.account for k in KEYS})
TASKS = ["t0", "t1", "t2", "t3", "t4"]

keys = st.sampled_from(KEYS)
tasks = st.sampled_from(TASKS)
plans = st.lists(tasks, max_size=4)
errors = st.sampled_from(["timeout", ValueError("bad input"), RuntimeError()])


@dataclass
class MSet:
    """What the model knows of one task set."""

    completed: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)
    failures: dict[str, Failure] = field(default_factory=dict)
    progress: dict[str, tuple[int, int]] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    last_update: str | None = None  # None: never saved (or reset): not stored

    def plan(self, planned: list[str]) -> bool:
        """Append the unknown tasks; whether anything was added (and so saved)."""
        known = set(self.completed) | set(self.remaining)
        added = False
        for task in planned:
            if task not in known:
                self.remaining.append(task)
                known.add(task)
                added = True
        return added

    def done(self, task: str) -> None:
        if task not in self.completed:
            self.completed.append(task)
        if task in self.remaining:
            self.remaining.remove(task)

    def track(self, task: str) -> None:
        """A failed or progressing task that is not known yet becomes remaining."""
        if task not in self.remaining and task not in self.completed:
            self.remaining.append(task)

    @property
    def failed(self) -> dict[str, Failure]:
        return {t: f for t, f in self.failures.items() if t not in self.completed}


def _error_text(error: BaseException | str) -> str:
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return error


def _kill_lease(ts: TaskSet, storage: Storage) -> None:
    """Drop a held run lease as the death of its process does: files, the OS releases the
    flock and leaves the lock file; PostgreSQL, the session ends (and its advisory lock)."""
    lease: Any = ts._lease
    if lease is None:
        return
    if storage.kind == "files":
        lease.release(unlink=False)
    elif lease._conn is not None:
        lease._conn.close()


class TaskSetMachine(RuleBasedStateMachine):
    def __init__(self, factory: StorageFactory) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.storage = factory.new()
        self.model = {key: MSet() for key in KEYS}
        self.leased: set[TaskSetKey] = set()
        self.state = self._state()
        self.reader = self._state()  # another process: reads, and tries the lease
        self.sets = {key: self._open(key) for key in KEYS}

    def _state(self) -> JobState:
        if self.storage.kind == "files":
            return JobState(self.storage.location, durability="flush", clock=self.clock)
        return JobState(url=self.storage.location, durability="flush", clock=self.clock)

    def _open(self, key: TaskSetKey, planned: list[str] | None = None) -> TaskSet:
        ts = self.state.taskset(key.account, key.type, planned, date=key.date)
        if planned and self.model[key].plan(planned):
            self._saved(key)
        return ts

    def teardown(self) -> None:
        try:
            for ts in self.sets.values():
                ts.release()
            if self.storage.kind == "postgres":
                self.state.backend.close()
                self.reader.backend.close()
        finally:
            self.storage.remove()

    @property
    def now(self) -> str:
        return iso_utc(self.clock.now())

    def _saved(self, key: TaskSetKey) -> None:
        self.model[key].last_update = self.now

    # -- writing --------------------------------------------------------------------------

    @rule(key=keys, planned=plans)
    def plan(self, key, planned) -> None:
        self.sets[key].plan(planned)
        if self.model[key].plan(planned):
            self._saved(key)

    @rule(key=keys, task=tasks)
    def mark_done(self, key, task) -> None:
        self.sets[key].mark_done(task)
        if task not in self.model[key].completed:  # idempotent: a done task writes nothing
            self.model[key].done(task)
            self._saved(key)

    @rule(key=keys, task=tasks, error=errors)
    def mark_failed(self, key, task, error) -> None:
        failure = self.sets[key].mark_failed(task, error)
        m = self.model[key]
        previous = m.failures.get(task)
        attempts = (previous.attempts if previous else 0) + 1
        m.failures[task] = Failure(attempts, _error_text(error), self.now)
        m.track(task)
        self._saved(key)
        assert failure == m.failures[task]

    @rule(key=keys, task=tasks, done=st.integers(0, 3), total=st.integers(0, 3))
    def progress(self, key, task, done, total) -> None:
        got = self.sets[key].progress(task, done, total)
        assert got == (done, total)
        m = self.model[key]
        m.progress[task] = (done, total)
        if done >= total:  # reaching the total marks the task done
            m.done(task)
        else:
            m.track(task)
        self._saved(key)

    @rule(key=keys, task=tasks, fails=st.booleans(), seconds=st.sampled_from([0, 1, 2.5]))
    def run_task(self, key, task, fails, seconds) -> None:
        ts, m = self.sets[key], self.model[key]
        previous = m.failures.get(task)
        attempts = (previous.attempts if previous else 0) + 1
        with ts.task(task, reraise=False) as run:  # swallows the block's exceptions
            started = run
            self.clock.advance(seconds=seconds)
            if fails:
                raise RuntimeError("boom")
        assert started == jobledger.TaskRun(task, attempts)
        if fails:
            m.failures[task] = Failure(attempts, "RuntimeError: boom", self.now)
            m.track(task)
            self._saved(key)
        elif task not in m.completed:  # a task run again once done records nothing
            m.done(task)
            m.durations[task] = float(seconds)
            self._saved(key)

    @rule(seconds=st.sampled_from([1, 60, 3600]))
    def advance_clock(self, seconds) -> None:
        self.clock.advance(seconds=seconds)

    # -- the run lease --------------------------------------------------------------------

    @rule(key=keys)
    def acquire(self, key) -> None:
        # Waits a little only for a dead PostgreSQL session to be gone; never needed for a
        # lease the model says is free otherwise.
        self.sets[key].acquire(wait=10)
        self.leased.add(key)

    @rule(key=keys)
    def release(self, key) -> None:
        self.sets[key].release()
        self.leased.discard(key)

    @rule(key=keys)
    def another_process_tries_the_lease(self, key) -> None:
        other = self.reader.taskset(key.account, key.type, date=key.date)
        try:
            with other:
                pass
        except AlreadyRunning:
            assert key in self.leased, "AlreadyRunning, but the model says the lease is free"
        else:
            assert key not in self.leased, "taken, but the model says the lease is held"

    # -- maintenance ----------------------------------------------------------------------

    @rule(account=st.sampled_from([None, *ACCOUNTS]))
    def reset(self, account) -> None:
        mine = [k for k in KEYS if account in (None, k.account)]
        stored = sorted(k for k in mine if self.model[k].last_update is not None)
        try:
            deleted = self.state.reset(account)
        except AlreadyRunning:
            held = [k for k in stored if k in self.leased]
            assert held, "AlreadyRunning, but the model holds no lease on these sets"
            # Sets other than the held ones may be deleted or kept: see what is stored.
            present = set(self.reader.keys())
            assert set(held) <= present, "a set whose lease is held was deleted"
            deleted = [k for k in stored if k not in present]
        else:
            assert not [k for k in stored if k in self.leased], "reset a set whose lease is held"
            assert deleted == stored
        for key in deleted:
            self.model[key] = MSet()
            self.sets[key] = self._open(key)  # the script runs again: a fresh, empty set

    @rule(
        replans=st.lists(st.one_of(st.none(), plans), min_size=len(KEYS), max_size=len(KEYS)),
        relock=st.booleans(),
    )
    def crash_and_reopen(self, replans, relock) -> None:
        """The process dies: its objects are abandoned, its leases die with it. A new
        process opens the same sets (planning again, as the script would) and may take
        their leases again."""
        held = set(self.leased)
        for ts in self.sets.values():
            _kill_lease(ts, self.storage)
        if self.storage.kind == "postgres":
            self.state.backend.close()  # the dead process's connections end with it
            self._await_sessions_gone(held)
        self.leased.clear()
        self.state = self._state()
        self.sets = {
            key: self._open(key, planned) for key, planned in zip(KEYS, replans, strict=True)
        }
        if relock:
            for key in sorted(held):
                self.acquire(key)

    def _await_sessions_gone(self, held: set[TaskSetKey]) -> None:
        """The server ends a closed session a moment later (as it does a dead process's):
        wait until it no longer holds the advisory locks."""
        deadline = time.monotonic() + 10
        for key in held:
            while self.reader.holder(key) is not None:
                assert time.monotonic() < deadline, f"the dead session still holds {key}"
                time.sleep(0.01)

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def matches_the_model(self) -> None:
        stored = {r.key: r for r in self.reader.records()}
        assert sorted(stored) == sorted(k for k in KEYS if self.model[k].last_update)
        assert self.reader.keys() == sorted(stored)
        for key in KEYS:
            ts, m = self.sets[key], self.model[key]
            assert ts.completed == m.completed, key
            assert ts.remaining == m.remaining, key
            assert ts.failed == m.failed, key
            assert ts.durations == m.durations, key
            assert ts.is_complete == (not m.remaining and bool(m.completed)), key
            assert ts.last_update == m.last_update, key
            for task in TASKS:
                assert ts.progress(task) == m.progress.get(task), (key, task)
            record = stored.get(key)
            if record is not None:  # what another process reads from storage
                assert record.completed == m.completed, key
                assert record.remaining == m.remaining, key
                assert record.failures == m.failures, key
                assert record.progress == m.progress, key
                assert record.durations == m.durations, key
                assert record.last_update == m.last_update, key
            if key in self.leased:
                assert self.reader.holder(key) is not None, key


SETTINGS = {"files": model_settings(120), "postgres": model_settings(25)}


def test_task_sets_match_their_model(model_storage: StorageFactory) -> None:
    run_state_machine_as_test(
        lambda: TaskSetMachine(model_storage), settings=SETTINGS[model_storage.kind]
    )
