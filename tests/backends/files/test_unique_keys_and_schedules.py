"""A queue folder's unique keys and schedules.json, looked at on disk: what the journal and
queue.json hold, when job files are read for a key, and a damaged schedules.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobledger import JobQueue
from jobledger.backends.files import _queue_index
from tests.backends.files._snapshot import snapshot


def _queue(path: Path, clock) -> JobQueue:
    return JobQueue(path, clock=clock, durability="flush")


def _journal(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / ".queue.journal").read_text().splitlines()]


def test_the_journal_carries_a_live_jobs_key_and_queue_json_none(tmp_path, clock):
    q = _queue(tmp_path / "q", clock)
    job_id = q.enqueue({"type": "T"}, unique_key="k-1")
    q.enqueue({"type": "T"})
    lines = [line for line in _journal(tmp_path / "q") if line.get("id") == job_id]
    assert lines[-1]["u"] == "k-1"
    plain = [line for line in _journal(tmp_path / "q") if line.get("id") not in (None, job_id)]
    assert "u" not in plain[-1]  # a job without a key writes no "u"
    q.checkpoint()
    assert set(json.loads((tmp_path / "q" / "queue.json").read_text())) == {
        "running",
        "queued",
        "finished",
        "revision",
    }
    doc = json.loads((tmp_path / "q" / "jobs" / f"{job_id}.json").read_text())
    assert doc["_jobledger"]["unique_key"] == "k-1"


def test_job_files_are_read_for_keys_once_and_only_for_unique_for(tmp_path, clock, monkeypatch):
    first = _queue(tmp_path / "q", clock)
    done = first.enqueue({"type": "T"}, unique_key="old")
    first.complete(first.claim().job_id)
    for i in range(5):
        first.enqueue({"type": "T", "i": i})
    first.close()
    scans = []
    real = _queue_index.QueueIndex.complete_keys
    monkeypatch.setattr(
        _queue_index.QueueIndex,
        "complete_keys",
        lambda self, read: scans.append(1) or real(self, read),
    )
    q = _queue(tmp_path / "q", clock)  # another process: it never saw "old" taken
    q.enqueue({"type": "T"}, unique_key="live-only")  # no unique_for: no scan
    assert scans == []
    assert q.enqueue({"type": "T"}, unique_key="old", unique_for=60) == done
    assert q.enqueue({"type": "T"}, unique_key="other", unique_for=60) != done
    assert scans == [1]  # once for this opening, however many enqueues


def test_a_pruned_jobs_key_is_forgotten_by_every_process(tmp_path, clock):
    a = _queue(tmp_path / "q", clock)
    b = _queue(tmp_path / "q", clock)
    job_id = a.enqueue({"type": "T"}, unique_key="k")
    a.complete(a.claim().job_id)
    assert b.enqueue({"type": "T"}, unique_key="k", unique_for=3600) == job_id  # b knows it
    clock.advance(days=2)
    assert a.prune(86400) == 1
    line = _journal(tmp_path / "q")[-1]
    assert (line["id"], line["s"], line["u"]) == (job_id, None, "k")
    later = b.enqueue({"type": "T"}, unique_key="k", unique_for=30 * 86400)
    assert later != job_id
    assert b.backend._index.keys["k"][1] == later


def test_two_live_files_with_one_key_by_hand_do_not_break_the_queue(tmp_path, clock):
    q = _queue(tmp_path / "q", clock)
    a = q.enqueue({"type": "T"}, job_id="a", unique_key="k")
    b = q.enqueue({"type": "T"}, job_id="b")
    q.close()
    path = tmp_path / "q" / "jobs" / "b.json"
    doc = json.loads(path.read_text())
    doc["_jobledger"]["unique_key"] = "k"
    path.write_text(json.dumps(doc))
    (tmp_path / "q" / "queue.json").unlink()  # rebuilt from the files
    again = _queue(tmp_path / "q", clock)
    assert again.enqueue({"type": "T"}, unique_key="k") in (a, b)
    assert again.counts()["Queued"] == 2


def test_a_damaged_schedules_json_is_set_aside_by_a_writer(tmp_path, clock, caplog):
    q = _queue(tmp_path / "q", clock)
    q.schedule("s", "0 7 * * *", job={"type": "T"})
    q.close()
    path = tmp_path / "q" / "schedules.json"
    doc = json.loads(path.read_text())
    doc["schedules"]["s"]["cron"] = 7
    path.write_text(json.dumps(doc))
    reader = _queue(tmp_path / "q", clock)
    before = snapshot(tmp_path / "q")
    assert reader.schedules() == []  # a read reports it and moves nothing
    assert "'cron' is missing or not a string" in caplog.text
    assert snapshot(tmp_path / "q") == before
    writer = _queue(tmp_path / "q", clock)
    assert writer.enqueue_due() == []
    aside = sorted((tmp_path / "q").glob("schedules.json.corrupt-*"))
    assert len(aside) == 1 and json.loads(aside[0].read_text()) == doc
    assert not path.exists()
    writer.schedule("s", "0 7 * * *", job={"type": "T"})  # stored again
    assert [s.name for s in writer.schedules()] == ["s"]


@pytest.mark.parametrize("text", ["", "[]", '{"schedules": []}', '{"schedules": {"s": 1}}'])
def test_schedules_json_that_is_not_ours_reads_as_no_schedules(tmp_path, clock, text):
    q = _queue(tmp_path / "q", clock)
    q.enqueue({"type": "T"})
    (tmp_path / "q" / "schedules.json").write_text(text)
    assert _queue(tmp_path / "q", clock).schedules() == []
