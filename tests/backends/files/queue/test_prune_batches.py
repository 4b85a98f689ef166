"""A files queue's prune in batches: history is read without the queue lock, each batch
holds the lock on its own, and however a batch ends its deletes are counted out in the
journal (the other processes' finished counts stay right without a recount)."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from jobledger import JobQueue
from jobledger.backends.files import _queue_history


def _history(root: Path, clock, n: int) -> JobQueue:
    """A queue with ``n`` jobs Completed two days ago, ``j0``... in id order."""
    q = JobQueue(root, durability="flush", clock=clock)
    ids = [f"j{i}" for i in range(n)]
    q.enqueue_many([{"type": "T"}] * n, job_ids=ids)
    for _ in ids:
        q.complete(q.claim().job_id)
    clock.advance(days=2)
    return q


def test_a_keyboard_interrupt_between_two_deletes_still_counts_out_what_went(
    tmp_path, clock, monkeypatch, caplog
):
    q = _history(tmp_path, clock, 4)
    real_unlink = os.unlink
    deletes = []

    def unlink(path, *args, **kwargs):
        if str(path).endswith(".json") and "jobs" in str(path):
            deletes.append(path)
            if len(deletes) == 3:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the batch
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    with pytest.raises(KeyboardInterrupt):
        q.prune(86_400)
    monkeypatch.undo()
    assert sorted(p.stem for p in (tmp_path / "jobs").glob("*.json")) == ["j2", "j3"]
    assert q.counts()["Completed"] == 2
    caplog.set_level(logging.WARNING, logger="jobledger")
    other = JobQueue(tmp_path, durability="flush", clock=clock)
    other.recover()  # a writer: it reads the journal this one wrote
    assert other.counts()["Completed"] == 2
    assert "interrupted" not in caplog.text  # the journal said it: no recount needed
    assert other.prune(86_400) == 2
    assert q.counts()["Completed"] == 0
    q.close()
    other.close()


def test_the_queue_lock_is_free_between_two_batches(tmp_path, clock):
    q = _history(tmp_path, clock, 6)
    q.backend.prune_batch = 2
    other = JobQueue(tmp_path, durability="flush", clock=clock)
    other.recover()
    enqueued: list[str] = []

    def enqueue_from_another_queue(n: int) -> None:
        # Another queue object takes the lock on a file description of its own (as another
        # process would): it would wait forever if this prune still held it.
        done = threading.Event()

        def run() -> None:
            enqueued.append(other.enqueue({"type": "T"}))
            done.set()

        threading.Thread(target=run, daemon=True).start()
        assert done.wait(60), "the queue lock is still held between two batches"

    assert q.prune(86_400, on_batch=enqueue_from_another_queue) == 6
    assert len(enqueued) == 3
    assert {j.job_id for j in q.list()} == set(enqueued)
    assert q.counts()["Queued"] == 3
    q.close()
    other.close()


def test_history_is_read_before_the_queue_lock_is_taken(tmp_path, clock, monkeypatch):
    q = _history(tmp_path, clock, 3)
    q.recover()
    held_while_reading: list[bool] = []
    real = _queue_history.prunable_ids

    def reading(*args):
        held_while_reading.append(q.backend._lock.mine() and q.backend._lock._depth > 0)
        return real(*args)

    monkeypatch.setattr(_queue_history, "prunable_ids", reading)
    assert q.prune(86_400) == 3
    assert held_while_reading == [False]
    q.close()


def test_a_damaged_job_file_in_history_is_set_aside_and_the_rest_pruned(tmp_path, clock):
    q = _history(tmp_path, clock, 3)
    (tmp_path / "jobs" / "j1.json").write_text("{ not json")
    assert q.prune(86_400) == 2
    left = sorted(p.name for p in (tmp_path / "jobs").iterdir())
    assert len(left) == 1 and left[0].startswith("j1.json.corrupt-")
    q.close()
