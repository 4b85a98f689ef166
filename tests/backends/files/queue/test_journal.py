"""The queue journal: how processes sharing a queue stay in step between snapshots."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from jobledger import JobConflict, JobQueue, JobStatus
from jobledger._job_record import JobRecord, new_job_id
from jobledger.backends.files._serving import Entry as _Entry


def _burst(q: JobQueue, n: int, prefix: str) -> list[str]:
    # More than 32 changes in a second: queue.json is no longer rewritten on each one.
    return q.enqueue_many(
        [{"type": "T", "i": i} for i in range(n)], job_ids=[f"{prefix}{i}" for i in range(n)]
    ) + [q.enqueue({"type": "T"}, job_id=f"{prefix}x{i}") for i in range(40)]


def test_a_second_queue_object_sees_a_burst_through_the_journal(tmp_path):
    a = JobQueue(tmp_path, durability="flush")
    b = JobQueue(tmp_path, durability="flush")
    ids = _burst(a, 50, "j")
    assert (tmp_path / ".queue.journal").stat().st_size > 0  # not all in queue.json yet
    claimed = []
    while (job := b.claim()) is not None:
        claimed.append(job.job_id)
        b.complete(job.job_id)
    assert sorted(claimed) == sorted(ids)
    assert a.counts()["Completed"] == len(ids)
    a.checkpoint()
    doc = json.loads((tmp_path / "queue.json").read_text())
    assert doc["queued"] == doc["running"] == []
    assert doc["finished"]["Completed"] == len(ids)
    a.close()
    b.close()


def test_light_use_keeps_queue_json_exact_after_every_change(tmp_path):
    q = JobQueue(tmp_path, durability="flush")
    for i in range(3):
        q.enqueue({"type": "T"}, job_id=f"j{i}", priority=i)
        doc = json.loads((tmp_path / "queue.json").read_text())
        assert doc["queued"] == [f"j{k}" for k in range(i, -1, -1)]
    q.claim()
    doc = json.loads((tmp_path / "queue.json").read_text())
    assert doc["running"] == ["j2"] and doc["queued"] == ["j1", "j0"]


def test_a_damaged_journal_line_reloads_from_the_job_files(tmp_path, caplog):
    a = JobQueue(tmp_path, durability="flush")
    b = JobQueue(tmp_path, durability="flush")
    ids = _burst(a, 10, "j")
    b.counts()  # b is open and has read the journal so far
    a.enqueue({"type": "T"}, job_id="late")
    with open(tmp_path / ".queue.journal", "ab") as fh:
        fh.write(b'{"n": oops}\n')
    caplog.set_level(logging.WARNING, logger="jobledger")
    assert b.counts()["Queued"] == len(ids) + 1
    assert {j.job_id for j in b.list(JobStatus.QUEUED)} == set(ids) | {"late"}


def test_a_torn_last_journal_line_is_ignored_and_cut(tmp_path):
    a = JobQueue(tmp_path, durability="flush")
    ids = _burst(a, 10, "j")
    with open(tmp_path / ".queue.journal", "ab") as fh:
        fh.write(b'{"n": 99999, "id": "gho')  # a writer killed mid-append
    a.enqueue({"type": "T"}, job_id="after")
    fresh = JobQueue(tmp_path, durability="flush")
    assert {j.job_id for j in fresh.list(JobStatus.QUEUED)} == set(ids) | {"after"}
    lines = (tmp_path / ".queue.journal").read_bytes().splitlines()
    assert all(json.loads(line) for line in lines)  # the fragment did not glue to a line


def test_a_change_by_another_queue_object_is_never_hidden_by_what_this_one_wrote(tmp_path):
    a = JobQueue(tmp_path, durability="flush")
    b = JobQueue(tmp_path, durability="flush")
    a.enqueue({"type": "T"}, job_id="x")
    assert a.claim().job_id == "x"  # a wrote x as Running, and remembers it
    b.cancel("x")  # asks x's worker to stop it: a change of x that a did not make
    # Given back, x ends Cancelled: the change sees b's request, not a's memory of its
    # own write (which would requeue it).
    assert a.requeue("x").status is JobStatus.CANCELLED
    with pytest.raises(JobConflict, match="Cancelled"):
        a.complete("x")
    assert a.get("x").status is JobStatus.CANCELLED


def test_another_process_snapshot_does_not_make_this_one_reread_every_job(tmp_path, monkeypatch):
    # Two processes sharing a queue: each change of one rewrites queue.json (light use).
    # The other must catch up from the journal's new lines, reading only what changed;
    # it used to find a new journal after each snapshot and reload, reading every live
    # job's file, so two workers slowed each other down to a crawl.
    a = JobQueue(tmp_path, durability="flush")
    b = JobQueue(tmp_path, durability="flush")
    a.enqueue_many([{"type": "T"}] * 60, job_ids=[f"j{i:02d}" for i in range(60)])
    assert b.pending_count() == 60  # b is open and in step
    reads: list[str] = []
    real = b.backend._read
    monkeypatch.setattr(b.backend, "_read", lambda job_id: reads.append(job_id) or real(job_id))
    for _ in range(3):
        job = a.claim()
        a.complete(job.job_id)
        got = b.claim()
        b.complete(got.job_id)
    assert sorted(reads) == ["j01", "j03", "j05"]  # only the jobs b itself claimed
    assert b.counts() == a.counts() == {**a.counts(), "Queued": 54, "Completed": 6}
    a.close()
    b.close()


def test_a_large_journal_is_emptied_and_other_processes_reload(tmp_path, monkeypatch):
    monkeypatch.setattr("jobledger.backends.files._queue_index._ROTATE_AT", 2_000)
    a = JobQueue(tmp_path, durability="flush")
    b = JobQueue(tmp_path, durability="flush")
    journal = tmp_path / ".queue.journal"
    for i in range(40):
        a.enqueue({"type": "T"}, job_id=f"j{i:02d}")
        assert journal.stat().st_size < 2_000 + 200  # emptied once past the threshold
    assert b.counts()["Queued"] == 40  # b reloaded from queue.json and is in step
    assert [j.job_id for j in b.claim_many(40)] == [f"j{i:02d}" for i in range(40)]
    assert a.counts()["Running"] == 40
    a.close()
    b.close()


@pytest.mark.parametrize(
    ("job_id", "type_", "worker", "run_after"),
    [
        ("plain", "T", None, None),
        ('q"uo\\te\n', "Typ\u00e9 \u2603", 'host-1-"w"', "2025-01-20T10:30:00.000Z"),
    ],
)
@pytest.mark.parametrize("deltas", [{}, {"Completed": 1, "Failed": -2}])
def test_a_journal_line_reads_back_as_the_entry_it_was_written_from(
    job_id, type_, worker, run_after, deltas
):
    # Lines are formatted by hand (no encoder): any id, type or worker must still give one
    # line of JSON that reads back exactly.
    record = JobRecord(
        job_id=job_id,
        type=type_,
        status=JobStatus.RUNNING if worker else JobStatus.QUEUED,
        payload={},
        priority=-3,
        seq=17,
        worker=worker,
        run_after=run_after,
        recovered=True,
    )
    text = _Entry.of(record).line(42, deltas)
    assert "\n" not in text
    expected = {
        "n": 42,
        "id": job_id,
        "s": record.status.value,
        "k": [0, 3, 17],
        "a": run_after,
        "t": type_,
        "w": worker,
    }
    assert json.loads(text) == ({**expected, "f": deltas} if deltas else expected)


def test_new_job_ids_are_version_4_uuids_and_distinct():
    ids = [new_job_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:200]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
