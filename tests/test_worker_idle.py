"""What an idle Worker does before it waits: the periodic recovery of dead workers' jobs
runs then if it falls due within the wait, so that the claim a wake-up brings (a new job)
never pays for it. The clock is the fake one: "due" is decided by moving it."""

from __future__ import annotations

import threading

import pytest

from jobledger import Worker


@pytest.fixture
def recoveries(make_queue, monkeypatch):
    """A queue recovering every 10 s, its first recovery done, and the fake-clock times
    of the recoveries its backend runs from then on."""
    queue = make_queue(recover_every=10)
    queue.recover()
    seen: list[float] = []
    ran = threading.Event()
    real = queue.backend.recover

    def spy(*args):
        seen.append(queue.clock.monotonic())
        ran.set()
        return real(*args)

    monkeypatch.setattr(queue.backend, "recover", spy)
    return queue, seen, ran


def test_a_recovery_due_within_the_wait_runs_before_it_not_in_the_next_claim(recoveries, clock):
    queue, seen, _ = recoveries
    clock.advance(seconds=7)
    queue._recover_before_due(2)
    assert seen == []  # due at 10 s: not within 2 s of 7 s
    clock.advance(seconds=1.5)
    queue._recover_before_due(2)
    assert len(seen) == 1  # due within 2 s of 8.5 s: now
    clock.advance(seconds=1.5)
    queue.enqueue({"type": "T"})
    assert queue.claim() is not None  # at 10 s: the claim does not recover again
    assert len(seen) == 1
    clock.advance(seconds=9)
    assert queue.claim() is None  # 10 s after the last one: claims still recover
    assert len(seen) == 2


def test_where_every_claim_recovers_nothing_is_run_ahead(make_queue, monkeypatch):
    queue = make_queue(recover_every=0)
    queue.recover()
    seen: list[object] = []
    monkeypatch.setattr(queue.backend, "recover", lambda *args: seen.append(args))
    queue._recover_before_due(0.2)
    assert seen == []


def test_an_idle_worker_recovers_before_its_wait_when_due_within_it(recoveries, clock):
    queue, seen, ran = recoveries
    clock.advance(seconds=9)  # due in 1 s, within the worker's 30 s wait; not at its claim
    worker = Worker(queue, {"T": lambda job: None}, poll_interval=30, handle_signals=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert ran.wait(60), "the idle worker did not recover before its wait"
        assert seen == [clock.monotonic()]
    finally:
        worker.stop()
        thread.join(60)
    assert not thread.is_alive()
