"""Every field of the job fields' table, set away from its default, is stored and read back
unchanged: in a job file's JSON, and through every backend (its insert, its COPY where it
has one, its update, its row reading, read again from a new queue)."""

from __future__ import annotations

from typing import Any

from jobledger import JobStatus
from jobledger._job_fields import FIELDS
from jobledger._job_record import JobRecord

#: A value of each field that is not its default. A field added to the table fails these
#: tests until it has one here.
NOT_DEFAULT: dict[str, Any] = {
    "type": "EveryFieldJob",
    "job_id": "every-field-ü",
    "status": JobStatus.COMPLETED,
    "payload": {"model": "m", "nested": {"a": [1, 2.5, None, True]}, "text": "é"},
    "error_message": "earlier: boom",
    "priority": -(2**40),
    "attempts": 2,
    "max_attempts": 5,
    "seq": 2**40,
    "created": "2025-01-20T10:30:00.000Z",
    "started": "2025-01-20T10:31:00.000Z",
    "finished": "2025-01-20T10:32:00.000Z",
    "worker": "host-4242-1a2b3c4d",
    "run_after": "2025-01-20T10:33:00.000Z",
    "result": {"out": [1, "two", None], "ok": False},
    "recovered": True,
    "extra_meta": {"addedByNewerVersion": {"k": [1]}},
    "traceback": 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: ü\n',
    "timeout": 5400.5,
    "cancel_requested_at": "2025-01-20T10:31:30.000Z",
    "progress_done": 3.5,
    "progress_total": 10.0,
    "progress_note": "epoch 3 of 10 — ü",
    "progress_at": "2025-01-20T10:31:40.000Z",
    "checkpoint_json": '{"epoch":3,"lr":1e+16,"z":-0.0,"big":123456789012345678901234567890}',
    "checkpoint_at": "2025-01-20T10:31:45.000Z",
    "unique_key": "acct-1:2025-01-20 — ü",
    "queue": "gpu — ü",
    "rate_key": "acct-1 — ü",
}


def _every_field_set() -> JobRecord:
    assert list(NOT_DEFAULT) == [f.name for f in FIELDS], "NOT_DEFAULT: one per field"
    record = JobRecord(**NOT_DEFAULT)
    for f in FIELDS:
        if not f.required:
            default = f.factory() if f.factory is not None else f.default
            assert getattr(record, f.name) != default, f"{f.name} is at its default"
    return record


def _differences(got: JobRecord | None, want: JobRecord) -> dict[str, tuple[Any, Any]]:
    assert got is not None
    return {
        f.name: (getattr(got, f.name), getattr(want, f.name))
        for f in FIELDS
        if getattr(got, f.name) != getattr(want, f.name)
        or type(getattr(got, f.name)) is not type(getattr(want, f.name))
    }


def test_every_field_round_trips_through_a_job_file_s_json():
    record = _every_field_set()
    assert _differences(JobRecord.loads(record.dumps()), record) == {}


def test_every_field_round_trips_through_the_backend(make_queue):
    record = _every_field_set()
    q = make_queue()
    backend = q.backend
    # Stored by a change (an update of every column), not by an insert.
    first = JobRecord.queued(
        record.job_id, "T", {}, priority=0, max_attempts=3, created="2025-01-01", run_after=None
    )
    backend.put([first])
    assert _differences(backend.transition(record.job_id, lambda r: record), record) == {}
    assert _differences(backend.get(record.job_id), record) == {}
    # Stored by an insert: one job, then a batch of generated ids (PostgreSQL's COPY).
    one = record.evolve(job_id="every-field-one")
    batch = [record.evolve(job_id=f"every-field-{i:02}") for i in range(40)]
    stored = backend.put([one]) + backend.put(batch, frozenset(r.job_id for r in batch))
    assert [new for _, new in stored] == [True] * 41
    for (got, _), want in zip(stored, [one, *batch], strict=True):
        assert _differences(got, want.evolve(seq=got.seq)) == {}
    q.close()
    # Read anew from the storage, by another queue.
    again = make_queue().reader
    for want in [record, *(got for got, _ in stored)]:
        assert _differences(again.get(want.job_id), want) == {}
    listed = {r.job_id: r for r in again.all_records()}
    assert _differences(listed[record.job_id], record) == {}
    assert _differences(listed["every-field-07"], stored[8][0]) == {}
