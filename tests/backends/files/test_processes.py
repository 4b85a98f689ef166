"""Several processes on the files backend: run leases, waiting, isolation, no-lease writers.

Children are forked and driven over pipes; nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from pathlib import Path

import pytest

import jobledger
from jobledger.backends.files import _locks
from tests._child import Channel, Child
from tests.conftest import FakeClock

ACCOUNT = "user@email.com"
TYPE = "daily-set"
DATE = "2025-01-20"
PLAN = [f"task-{i}" for i in range(12)]


def make(root: Path, **kw) -> jobledger.JobState:
    kw.setdefault("durability", "flush")
    return jobledger.JobState(root, timezone="UTC", **kw)


def holder_child(root: Path, account: str = ACCOUNT):
    """Takes the lease, says "held", waits for "release", releases, says "released"."""

    def run(ch: Channel) -> None:
        with make(root).taskset(account, TYPE, PLAN, date=DATE) as ts:
            ts.mark_done(PLAN[0])
            ch.send("held")
            assert ch.recv() == "release"
        ch.send("released")
        ch.recv()  # stay alive until the parent is done

    return run


def test_a_live_holder_is_named_and_a_killed_one_frees_the_lease_at_once(tmp_path):
    root = tmp_path / "state"
    with Child(holder_child(root)) as a:
        a.expect("held")
        state = make(root)
        ts = state.taskset(ACCOUNT, TYPE, PLAN, date=DATE)
        with pytest.raises(jobledger.AlreadyRunning) as info, ts:
            pytest.fail("the lease of a live holder was taken")
        assert info.value.holder.pid == a.pid
        assert info.value.holder.host == socket.gethostname()
        message = str(info.value)
        assert f"pid {a.pid}" in message
        assert socket.gethostname() in message
        assert state.holder(ts.key) == info.value.holder
        a.kill()
    # The OS dropped the dead holder's lock: taken at once, without waiting.
    assert state.holder(ts.key) is None
    with ts:
        assert ts.completed == [PLAN[0]]  # what the holder saved is seen
        ts.mark_done(PLAN[1])
        assert state.holder(ts.key).pid == os.getpid()
    assert json.loads((root / ACCOUNT / f"{TYPE}-{DATE}.json").read_text())["completed"] == PLAN[:2]


def test_wait_gets_the_lease_when_the_holder_releases(tmp_path, monkeypatch):
    root = tmp_path / "state"
    polling = threading.Event()
    real_sleep = _locks.time.sleep

    def sleep(seconds: float) -> None:
        polling.set()  # the waiter found the lease taken and is polling for it
        real_sleep(seconds)

    with Child(holder_child(root)) as a:
        a.expect("held")
        monkeypatch.setattr(_locks.time, "sleep", sleep)
        got: list[object] = []

        def waiter() -> None:
            try:
                with make(root).taskset(ACCOUNT, TYPE, date=DATE, wait=60.0) as ts:
                    got.append(list(ts.completed))
                    ts.mark_done(PLAN[1])
            except BaseException as exc:  # reported to the main thread
                got.append(exc)

        thread = threading.Thread(target=waiter)
        thread.start()
        assert polling.wait(60), "the waiter never polled"
        assert got == []  # still waiting: A holds the lease
        a.send("release")
        a.expect("released")
        thread.join(60)
        assert not thread.is_alive()
        assert got == [[PLAN[0]]], got
        a.send("bye")


def test_wait_true_blocks_until_the_holder_is_killed(tmp_path):
    root = tmp_path / "state"
    with Child(holder_child(root)) as a:
        a.expect("held")
        got: list[object] = []

        def waiter() -> None:
            with make(root).taskset(ACCOUNT, TYPE, date=DATE, wait=True) as ts:
                got.append(list(ts.completed))

        thread = threading.Thread(target=waiter)
        thread.start()
        a.kill()
        thread.join(60)
        assert got == [[PLAN[0]]]


def test_a_wait_that_runs_out_raises_already_running(tmp_path):
    root = tmp_path / "state"
    with Child(holder_child(root)) as a:
        a.expect("held")
        ts = make(root).taskset(ACCOUNT, TYPE, date=DATE, wait=0.01)
        with pytest.raises(jobledger.AlreadyRunning) as info, ts:
            pytest.fail("the lease of a live holder was taken")
        assert info.value.holder.pid == a.pid


def worker(root: Path, account: str, durability: str):
    """Holds its account's lease and completes its tasks once told to go."""

    def run(ch: Channel) -> None:
        state = make(root, durability=durability)
        with state.taskset(account, TYPE, PLAN, date=DATE) as ts:
            ch.send("ready")
            assert ch.recv() == "go"
            for task in ts.pending():
                with ts.task(task):
                    pass
            ch.send(f"done {len(ts.completed)}")

    return run


@pytest.mark.parametrize("durability", ["fsync", "flush"])
def test_two_accounts_in_two_processes_do_not_interfere(tmp_path, durability):
    root = tmp_path / "state"
    accounts = ["account1@email.com", "account2@email.com"]
    with (
        Child(worker(root, accounts[0], durability)) as a,
        Child(worker(root, accounts[1], durability)) as b,
    ):
        a.expect("ready")
        b.expect("ready")  # both hold their lease at the same time
        a.send("go")
        b.send("go")
        a.expect(f"done {len(PLAN)}")
        b.expect(f"done {len(PLAN)}")
        assert os.WIFEXITED(a.wait()) and os.WIFEXITED(b.wait())
    state = make(root)
    for account in accounts:
        doc = json.loads((root / account / f"{TYPE}-{DATE}.json").read_text())
        assert doc["account"] == account
        assert doc["completed"] == PLAN
        assert doc["remaining"] == []
        assert sorted(doc["durations"]) == sorted(PLAN)
    assert [k.account for k in state.keys()] == accounts


def alternate_writer(root: Path, offset: int, rounds: int, burst: int, tasks: list[str]):
    """Opens the set WITHOUT ``with``; on each "go" marks ``burst`` of its tasks, says "ok".

    The clock moves one minute per save, interleaved with the parent's, so that every
    save has its own lastUpdate.
    """

    def run(ch: Channel) -> None:
        clock = FakeClock()
        ts = make(root, clock=clock).taskset(ACCOUNT, TYPE, date=DATE)
        todo = iter(tasks)
        for r in range(rounds):
            assert ch.recv() == "go"
            for _ in range(burst):
                clock.set(f"2025-01-20T{1 + r:02d}:{offset:02d}:00+00:00")
                clock.advance(seconds=len(ts.completed))
                ts.mark_done(next(todo))
            ch.send("ok")

    return run


@pytest.mark.parametrize("burst", [1, 2, 3, 5])
def test_two_processes_without_a_lease_lose_nothing_and_are_warned(tmp_path, caplog, burst):
    # Strictly alternating writers on one set, neither holding the lease. Each save
    # re-reads the file when another process changed it, so no completion is lost, and
    # the change is reported. Bursts of several saves make the other process's file
    # generations (and their inode numbers) come and go between our saves.
    caplog.set_level(logging.WARNING, logger="jobledger")
    root = tmp_path / "state"
    rounds = 6
    theirs = [f"child-{i}" for i in range(rounds * burst)]
    ours = [f"parent-{i}" for i in range(rounds)]
    clock = FakeClock()
    ts = make(root, clock=clock).taskset(ACCOUNT, TYPE, [*ours, *theirs], date=DATE)
    with Child(alternate_writer(root, 30, rounds, burst, theirs)) as child:
        for r, task in enumerate(ours):
            child.send("go")
            child.expect("ok")
            clock.set(f"2025-01-20T{1 + r:02d}:45:00+00:00")
            ts.mark_done(task)
    doc = json.loads((root / ACCOUNT / f"{TYPE}-{DATE}.json").read_text())
    expected = []
    for r in range(rounds):
        expected += [*theirs[r * burst : (r + 1) * burst], ours[r]]
    assert doc["completed"] == expected
    assert doc["remaining"] == []
    assert ts.completed == expected
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "appears to be running twice" in text
    assert sum("appears to be running twice" in r.getMessage() for r in caplog.records) == rounds


def test_a_lease_held_in_another_process_blocks_reset_and_cleanup(tmp_path):
    root = tmp_path / "state"
    with Child(holder_child(root)) as a:
        a.expect("held")
        state = make(root)
        with pytest.raises(jobledger.AlreadyRunning):
            state.reset(ACCOUNT)
        path = root / ACCOUNT / f"{TYPE}-{DATE}.json"
        assert json.loads(path.read_text())["completed"] == [PLAN[0]]
        a.kill()
    assert state.reset(ACCOUNT) == [jobledger.TaskSetKey(ACCOUNT, TYPE, DATE)]
    assert not path.exists()
