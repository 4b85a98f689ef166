"""Torn, garbage or deleted queue.json, corrupt job files, payloads JSON cannot hold."""

from __future__ import annotations

import json
import logging
import math
import re

import pytest

from jobledger import JobQueue, JobStatus

from ._procs import queue_doc


def _setup(qdir):
    q = JobQueue(qdir, durability="flush")
    ids = q.enqueue_many([{"type": "T", "i": i} for i in range(4)])
    running = q.claim()
    assert running.job_id == ids[0]
    q.enqueue({"type": "T"}, job_id="urgent", priority=9)
    done = q.claim()
    assert done.job_id == "urgent"
    q.complete(done.job_id, "ok")
    q.close()  # the claimed job's worker is gone now
    return ids, running.job_id


@pytest.mark.parametrize(
    "damage",
    ["torn", "garbage", "binary", "wrong-shape", "empty", "deleted"],
)
def test_a_damaged_queue_json_is_rebuilt_from_the_job_files(tmp_path, caplog, damage):
    qdir = tmp_path / "q"
    ids, was_running = _setup(qdir)
    index = qdir / "queue.json"
    data = index.read_bytes()
    if damage == "torn":
        index.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        index.write_text("{ this is not json")
    elif damage == "binary":
        index.write_bytes(b"\xff\xfe\x00garbage")
    elif damage == "wrong-shape":
        index.write_text('{"running": "all of them"}')
    elif damage == "empty":
        index.write_bytes(b"")
    else:
        index.unlink()
    caplog.set_level(logging.WARNING, logger="jobledger")
    with JobQueue(qdir, durability="flush") as q:
        q.recover()  # a writer's first use repairs (a read would leave the folder as it is)
        queued = [j.job_id for j in q.list(JobStatus.QUEUED)]
        # The dead worker's job first, then by priority, then FIFO: nothing lost.
        assert queued == [was_running, ids[1], ids[2], ids[3]]
        assert q.counts()["Completed"] == 1
    assert "Rebuilt queue.json" in caplog.text
    if damage != "deleted":
        assert "queue.json" in caplog.text and "corrupt" in caplog.text
        assert list(qdir.glob("queue.json.corrupt-*")), "the damaged index was not kept"
    assert queue_doc(qdir)["queued"] == queued


@pytest.mark.parametrize("listed", [True, False])
@pytest.mark.parametrize(
    "content",
    [
        b'{"type": "T", "job_id": ',
        b"\x00\x01",
        b"[1, 2]",
        b'{"type": "T", "job_id": "other", "status": "Queued"}',
        b'{"type": "T", "job_id": "bad", "status": "Sleeping"}',
    ],
)
def test_a_corrupt_job_file_is_moved_aside_and_reported(tmp_path, caplog, listed, content):
    qdir = tmp_path / "q"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="good-1")
        q.enqueue({"type": "T"}, job_id="bad")
        q.enqueue({"type": "T"}, job_id="good-2")
    if not listed:
        (qdir / "queue.json").unlink()
    (qdir / "jobs" / "bad.json").write_bytes(content)
    caplog.set_level(logging.WARNING, logger="jobledger")
    with JobQueue(qdir, durability="flush") as q:
        served = []
        while (job := q.claim()) is not None:
            served.append(job.job_id)
            q.complete(job.job_id)
        assert served == ["good-1", "good-2"]
        assert q.get("bad") is None
    aside = list((qdir / "jobs").glob("bad.json.corrupt-*"))
    assert len(aside) == 1
    assert re.fullmatch(r"bad\.json\.corrupt-\d{8}T\d{9}Z(-\d+)?", aside[0].name)
    assert aside[0].read_bytes() == content  # kept as it was, for a person to look at
    assert not (qdir / "jobs" / "bad.json").exists()
    assert "bad.json" in caplog.text and "corrupt" in caplog.text


def _snapshot(qdir):
    return {
        p.relative_to(qdir).as_posix(): p.read_bytes()
        for p in qdir.rglob("*")
        if p.is_file() and p.name != ".queue.lock"
    }


@pytest.mark.parametrize("bad", [object(), {1, 2}, math.nan, b"bytes", {"k": [object()]}])
def test_a_payload_json_cannot_hold_raises_typeerror_and_writes_nothing(tmp_path, bad):
    qdir = tmp_path / "q"
    q = JobQueue(qdir, durability="flush")
    q.enqueue({"type": "T"}, job_id="existing")
    before = _snapshot(qdir)
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        q.enqueue({"type": "T", "data": bad}, job_id="new")
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        q.enqueue_many([{"type": "T"}, {"type": "T", "data": bad}], job_ids=["a", "b"])
    assert _snapshot(qdir) == before  # no job file, queue.json unchanged
    assert q.get("new") is None and q.get("a") is None
    assert q.counts()["Queued"] == 1
    q.close()


def test_a_result_json_cannot_hold_raises_typeerror_and_records_nothing(tmp_path):
    qdir = tmp_path / "q"
    q = JobQueue(qdir, durability="flush")
    job_id = q.enqueue({"type": "T"})
    q.claim()
    before = _snapshot(qdir)
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        q.complete(job_id, {"when": object()})
    assert _snapshot(qdir) == before
    job = q.get(job_id)
    assert job.status is JobStatus.RUNNING and job.attempts == 1
    q.complete(job_id, {"when": "now"})
    assert q.get(job_id).result == {"when": "now"}
    q.close()


def test_enqueue_of_an_existing_id_returns_it_and_changes_nothing(tmp_path):
    qdir = tmp_path / "q"
    q = JobQueue(qdir, durability="flush")
    q.enqueue({"type": "T", "v": 1}, job_id="x", priority=1, max_attempts=5)
    before = _snapshot(qdir)
    assert q.enqueue({"type": "U", "v": 2}, job_id="x", priority=7, max_attempts=1) == "x"
    assert _snapshot(qdir) == before
    job = q.claim()
    assert q.enqueue({"type": "T", "v": 3}, job_id="x") == "x"  # Running: still one entry
    q.complete(job.job_id)
    assert q.enqueue({"type": "T", "v": 4}, job_id="x") == "x"  # finished: not re-run
    assert q.claim() is None
    got = q.get("x")
    assert (got.type, got.raw, got.priority, got.max_attempts) == ("T", {"v": 1}, 1, 5)
    assert got.status is JobStatus.COMPLETED
    assert json.loads((qdir / "queue.json").read_text())["queued"] == []
    q.close()
