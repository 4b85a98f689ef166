"""Hand-edited or damaged queue files: every field read is checked, and anything wrong is
corrupt. A corrupt queue.json is rebuilt from the job files (a reader counts them in
memory and writes nothing); a corrupt job file is set aside and the rest of the queue goes
on; a Running job whose worker field is unusable is recovered as a dead worker's job.
Opening, claiming, counting and closing never raise anything but a JobLedgerError, and
``counts()`` is never silently wrong."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from jobledger import JobQueue, JobStatus
from tests.backends.files._snapshot import snapshot

COMPLETED = 7
QUEUED = ["q0", "q1", "q2"]


def history_queue(qdir: Path) -> None:
    """7 Completed jobs and 3 Queued ones; the journal holds every change since the start,
    so a snapshot whose revision is wrong replays (double counts) the finished deltas."""
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue_many([{"type": "T"}] * COMPLETED, job_ids=[f"c{i}" for i in range(COMPLETED)])
        for _ in range(COMPLETED):
            q.complete(q.claim().job_id, "ok")
        q.enqueue_many([{"type": "T"}] * len(QUEUED), job_ids=QUEUED)


def drain(q: JobQueue) -> list[str]:
    served = []
    while (job := q.claim()) is not None:
        served.append(job.job_id)
        q.complete(job.job_id)
    return served


def expected_counts(queued: int = len(QUEUED)) -> dict[str, int]:
    return {"Queued": queued, "Running": 0, "Completed": COMPLETED, "Failed": 0, "Cancelled": 0}


# -- queue.json -------------------------------------------------------------------------

INDEX_DAMAGE: dict[str, tuple[str, str]] = {
    # name: (key path, the JSON text put there)
    "revision-text": ("revision", '"seven"'),
    "revision-list": ("revision", "[7]"),
    "revision-1e400": ("revision", "1e400"),
    "revision-negative": ("revision", "-1"),
    "revision-bool": ("revision", "true"),
    "revision-float": ("revision", "3.0"),
    "revision-missing": ("revision", ""),
    "finished-text": ("finished", '"seven"'),
    "finished-count-text": ("finished.Completed", '"seven"'),
    "finished-count-null": ("finished.Completed", "null"),
    "finished-list": ("finished", '["Completed", 7]'),
    "finished-count-negative": ("finished.Completed", "-1"),
    "finished-count-bool": ("finished.Failed", "true"),
    "finished-unknown-status": ("finished.Sleeping", "2"),
    "finished-missing": ("finished", ""),
    "running-not-a-list": ("running", '"q0"'),
    "queued-holds-a-number": ("queued", '["q0", 5]'),
    "queued-holds-an-empty-id": ("queued", '["q0", ""]'),
    "queued-holds-a-long-id": ("queued", json.dumps(["x" * 300])),
}


def damage_index(qdir: Path, where: str, text: str) -> bytes:
    """Put the JSON ``text`` at ``where`` ("key" or "key.subkey") of queue.json ("" text:
    delete the key); returns the bytes written."""
    doc = json.loads((qdir / "queue.json").read_text())
    *parents, last = where.split(".")
    holder = doc
    for key in parents:
        holder = holder[key]
    holder.pop(last, None)
    if text:
        holder[last] = "@@HERE@@"
    data = json.dumps(doc).replace('"@@HERE@@"', text).encode()
    (qdir / "queue.json").write_bytes(data)
    return data


@pytest.mark.parametrize("damage", sorted(INDEX_DAMAGE))
def test_a_damaged_queue_json_field_is_rebuilt_by_a_writer(tmp_path, caplog, damage):
    qdir = tmp_path / "q"
    history_queue(qdir)
    damage_index(qdir, *INDEX_DAMAGE[damage])
    caplog.set_level(logging.WARNING, logger="jobledger")
    q = JobQueue(qdir, durability="flush")
    try:
        q.recover()  # the writer's first use: opens the index
        assert q.counts() == expected_counts()
        assert sorted(drain(q)) == QUEUED
        assert q.counts() == expected_counts(queued=0) | {"Completed": COMPLETED + 3}
    finally:
        q.close()
    assert "queue.json" in caplog.text and "corrupt" in caplog.text
    assert list(qdir.glob("queue.json.corrupt-*")), "the damaged index was not kept"
    doc = json.loads((qdir / "queue.json").read_text())
    assert doc["finished"] == {"Completed": COMPLETED + 3, "Failed": 0, "Cancelled": 0}
    assert type(doc["revision"]) is int and doc["revision"] >= 0


@pytest.mark.parametrize("damage", sorted(INDEX_DAMAGE))
def test_a_damaged_queue_json_field_is_recounted_by_a_reader(tmp_path, caplog, damage):
    qdir = tmp_path / "q"
    history_queue(qdir)
    damage_index(qdir, *INDEX_DAMAGE[damage])
    before = snapshot(qdir)
    caplog.set_level(logging.WARNING, logger="jobledger")
    q = JobQueue(qdir, durability="flush")
    try:
        assert q.counts() == expected_counts()  # read-only: recounted in memory
        assert [j.job_id for j in q.list(JobStatus.QUEUED)] == QUEUED
    finally:
        q.close()
    assert "corrupt" in caplog.text
    assert snapshot(qdir) == before, "a reader changed the folder"


def test_after_a_failed_open_close_does_not_raise_either(tmp_path):
    # It used to: the bare ValueError of the opening came again from close's checkpoint.
    qdir = tmp_path / "q"
    history_queue(qdir)
    damage_index(qdir, "revision", '"seven"')
    q = JobQueue(qdir, durability="flush")
    q.pending_count()
    q.close()
    q.close()


@pytest.mark.parametrize(
    "line",
    [
        b'{"n": "x", "f": {"Completed": 1}}',
        b'{"n": 999999, "f": {"Sleeping": 3}}',
        b'{"n": 999999, "f": {"Completed": "3"}}',
        b'{"n": 999999, "id": 5, "s": null}',
        b'{"n": 999999, "id": "q9", "s": "Queued", "k": "oops"}',
        b'{"n": 999999, "id": "q9", "s": "Running", "k": [1, 0, 1], "t": 5}',
        b"[" * 100_000,
        b'{"n": 1e400}',
    ],
)
def test_a_damaged_journal_line_makes_the_index_count_from_the_job_files(tmp_path, line):
    qdir = tmp_path / "q"
    history_queue(qdir)
    with open(qdir / ".queue.journal", "ab") as fh:
        fh.write(line + b"\n")
    with JobQueue(qdir, durability="flush") as q:
        assert q.counts() == expected_counts()  # a reader
        q.recover()
        assert q.counts() == expected_counts()  # a writer, which rebuilt the index
        assert sorted(drain(q)) == QUEUED
    with JobQueue(qdir, durability="flush") as q:
        assert q.counts() == expected_counts(queued=0) | {"Completed": COMPLETED + 3}


# -- job files --------------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000

JOB_DAMAGE: dict[str, tuple[str, str]] = {
    # name: (key, or "_jobledger.key"; the JSON text put there)
    "seq-1e400": ("_jobledger.seq", "1e400"),
    "seq-beyond-64-bits": ("_jobledger.seq", str(1 << 64)),
    "seq-negative": ("_jobledger.seq", "-5"),
    "seq-text": ("_jobledger.seq", '"17"'),
    "payload-nested-100000-deep": ("deep", DEEP),
    "meta-nested-100000-deep": ("_jobledger.result", DEEP),
    "priority-float": ("_jobledger.priority", "1.5"),
    "priority-text": ("_jobledger.priority", '"high"'),
    "attempts-bool": ("_jobledger.attempts", "true"),
    "attempts-negative": ("_jobledger.attempts", "-1"),
    "max-attempts-zero": ("_jobledger.max_attempts", "0"),
    "created-not-a-time": ("_jobledger.created", '"yesterday"'),
    "run-after-number": ("_jobledger.run_after", "5"),
    "recovered-text": ("_jobledger.recovered", '"yes"'),
    "traceback-list": ("_jobledger.traceback", "[]"),
    "meta-list": ("_jobledger", "[]"),
    "type-empty": ("type", '""'),
    "type-number": ("type", "5"),
    "status-unknown": ("status", '"Sleeping"'),
    "job-id-of-another": ("job_id", '"q0"'),
    "error-message-number": ("error_message", "5"),
    "lone-surrogate": ("note", '"\\ud800"'),
}


def damage_job(qdir: Path, job_id: str, where: str, text: str) -> Path:
    path = qdir / "jobs" / f"{job_id}.json"
    doc = json.loads(path.read_text())
    holder = doc
    if where.startswith("_jobledger."):
        holder, where = doc["_jobledger"], where.split(".", 1)[1]
    holder[where] = "@@HERE@@"
    path.write_text(json.dumps(doc).replace('"@@HERE@@"', text))
    return path


def queue_with(qdir: Path, listed: bool) -> None:
    history_queue(qdir)
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="bad")
    if not listed:  # only the job files: the index is rebuilt, reading every one
        (qdir / "queue.json").unlink()


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "rebuilt"])
@pytest.mark.parametrize("damage", sorted(JOB_DAMAGE))
def test_a_damaged_job_file_field_sets_the_job_aside_and_the_queue_goes_on(
    tmp_path, caplog, damage, listed
):
    qdir = tmp_path / "q"
    queue_with(qdir, listed)
    path = damage_job(qdir, "bad", *JOB_DAMAGE[damage])
    bad = path.read_bytes()
    caplog.set_level(logging.WARNING, logger="jobledger")
    q = JobQueue(qdir, durability="flush")
    try:
        served = drain(q)
        assert sorted(served) == QUEUED
        assert q.counts() == expected_counts(queued=0) | {"Completed": COMPLETED + 3}
    finally:
        q.close()
    (aside,) = (qdir / "jobs").glob("bad.json.corrupt-*")
    assert aside.read_bytes() == bad, "the damaged bytes are kept, set aside"
    assert not path.exists()
    assert str(path) in caplog.text and "corrupt" in caplog.text


@pytest.mark.parametrize("damage", ["seq-1e400", "payload-nested-100000-deep", "attempts-bool"])
def test_a_reader_leaves_a_damaged_job_file_out_and_in_place(tmp_path, caplog, damage):
    qdir = tmp_path / "q"
    queue_with(qdir, listed=True)
    path = damage_job(qdir, "bad", *JOB_DAMAGE[damage])
    before = snapshot(qdir)
    caplog.set_level(logging.WARNING, logger="jobledger")
    with JobQueue(qdir, durability="flush") as q:
        assert q.counts() == expected_counts()
        assert [j.job_id for j in q.list(JobStatus.QUEUED)] == QUEUED
        assert q.get("bad") is None
    assert snapshot(qdir) == before, "a reader changed the folder"
    assert str(path) in caplog.text and "corrupt" in caplog.text


def test_a_job_file_name_no_job_id_has_is_left_alone(tmp_path):
    # A name too long for any job id (hand-made) named a path that raised InvalidNameError
    # while rebuilding the index: the whole queue stopped.
    qdir = tmp_path / "q"
    history_queue(qdir)
    stray = qdir / "jobs" / ("x" * 200 + ".json")
    stray.write_text("{}")
    (qdir / "queue.json").unlink()
    with JobQueue(qdir, durability="flush") as q:
        assert q.counts() == expected_counts()
        assert sorted(drain(q)) == QUEUED
    assert stray.read_text() == "{}"


# -- the worker field of a Running job --------------------------------------------------


def running_job(qdir: Path, worker: Any, max_attempts: int = 3) -> None:
    """q0 Running under a worker whose field is ``worker`` (the queue then closed)."""
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="r", max_attempts=max_attempts)
        assert q.claim().job_id == "r"
        q.enqueue({"type": "T"}, job_id="other")
    path = qdir / "jobs" / "r.json"
    doc = json.loads(path.read_text())
    doc["_jobledger"]["worker"] = worker
    path.write_text(json.dumps(doc))


WORKERS = {
    "empty": "",
    "300-chars": "w" * 300,
    "int": 5,
    "object": {"host": "x"},
    "dots": "..",
}


@pytest.mark.parametrize("worker", sorted(WORKERS))
def test_a_running_job_with_an_unusable_worker_is_recovered_as_a_dead_workers(
    tmp_path, caplog, worker
):
    qdir = tmp_path / "q"
    running_job(qdir, WORKERS[worker])
    caplog.set_level(logging.WARNING, logger="jobledger")
    with JobQueue(qdir, durability="flush") as q:
        job = q.claim()
        assert job.job_id == "r", "recovered jobs are served first"
        assert job.attempts == 2, "the dead worker's attempt counts"
        assert "died" in job.error_message
        q.complete("r")
        assert q.claim().job_id == "other"
        assert q.claim() is None
    assert "Recovered job r" in caplog.text
    assert not list((qdir / "jobs").glob("*.corrupt-*"))


def test_an_unusable_worker_on_the_last_attempt_fails_the_job(tmp_path):
    qdir = tmp_path / "q"
    running_job(qdir, "", max_attempts=1)
    with JobQueue(qdir, durability="flush") as q:
        assert q.claim().job_id == "other"
        failed = q.get("r")
        assert failed.status is JobStatus.FAILED
        assert "not retried" in failed.error_message
        assert q.counts()["Failed"] == 1
