"""The job fields' table and what is held to it by hand: ``JobRecord``'s own field list."""

from __future__ import annotations

import dataclasses
import json

import pytest

from jobledger._job_fields import DOC, EXTRA, FIELDS, META, PAYLOAD, REQUIRED
from jobledger._job_record import META_KEY, RESERVED_KEYS, JobRecord, JobStatus


def test_the_job_record_names_the_tables_fields_in_its_order_with_its_defaults():
    # JobRecord lists its fields again for the type checker: a field added to one and not
    # to the other, or with another default, is found here.
    def default(f: dataclasses.Field) -> object:
        return REQUIRED if f.default is dataclasses.MISSING else f.default

    def factory(f: dataclasses.Field) -> object:
        return None if f.default_factory is dataclasses.MISSING else f.default_factory

    ours = [(f.name, default(f), factory(f)) for f in dataclasses.fields(JobRecord)]
    assert ours == [(f.name, f.default, f.factory) for f in FIELDS]


def test_the_table_places_each_field_once_and_checks_each_it_reads():
    names = [f.name for f in FIELDS]
    assert len(set(names)) == len(names)
    assert [f.where for f in FIELDS].count(PAYLOAD) == 1
    assert [f.where for f in FIELDS].count(EXTRA) == 1
    for f in FIELDS:
        assert f.where in (DOC, META, PAYLOAD, EXTRA), f.name
        assert (f.read is None) == (f.where in (PAYLOAD, EXTRA)), f.name
        assert not (f.required and f.where == META), f"{f.name}: a META key may be missing"
        assert f.factory is None or f.default is REQUIRED, f.name


def test_a_job_file_holds_the_doc_fields_at_the_top_and_the_meta_fields_under_its_key():
    record = JobRecord.queued(
        "j", "TextJob", {"model": "m"}, priority=1, max_attempts=3, created="c", run_after=None
    ).evolve(extra_meta={"newer": 1})
    doc = json.loads(record.dumps())
    # The document's order: its own keys, the payload, then ours (the extra ones last).
    assert list(doc) == ["type", "job_id", "status", "error_message", "model", META_KEY]
    assert list(doc[META_KEY]) == [
        *("priority", "attempts", "max_attempts", "seq", "created", "started", "finished"),
        *("worker", "run_after", "result", "recovered", "traceback", "timeout"),
        *("cancel_requested_at", "progress_done", "progress_total", "progress_note"),
        *("progress_at", "checkpoint_json", "checkpoint_at", "unique_key", "queue"),
        *("rate_key", "newer"),
    ]
    assert {"type", "job_id", "status", "error_message", META_KEY} == RESERVED_KEYS
    assert doc["status"] == "Queued" and type(doc["status"]) is str


@pytest.mark.parametrize(
    ("where", "key", "value", "message"),
    [
        ("doc", "job_id", 5, "key 'job_id' is missing or not a string"),
        ("doc", "type", "", "key 'type' is empty"),
        ("doc", "status", "Done", "key 'status' is not a known status: 'Done'"),
        ("doc", "error_message", 5, "key 'error_message' is not a string or null"),
        ("meta", "priority", 2**63, "'priority' is out of range"),
        ("meta", "attempts", True, "'attempts' is not an integer"),
        ("meta", "max_attempts", 0, "'max_attempts' is out of range (1 to"),
        ("meta", "run_after", "soon", "'run_after' is not an ISO 8601 time"),
        ("meta", "recovered", 1, "'recovered' is not true or false"),
        ("meta", "traceback", [], "'traceback' is not a string or null"),
        ("meta", "timeout", "1h", "'timeout' is not a number of seconds or null"),
        ("meta", "timeout", True, "'timeout' is not a number of seconds or null"),
        ("meta", "timeout", 0, "'timeout' is not a positive, finite number of seconds"),
        ("meta", "timeout", 10**400, "'timeout' is not a positive, finite number"),
        ("meta", "cancel_requested_at", "now", "'cancel_requested_at' is not an ISO 8601"),
        ("meta", "progress_done", "3", "'progress_done' is not a number or null"),
        ("meta", "progress_total", True, "'progress_total' is not a number or null"),
        ("meta", "progress_done", 10**400, "'progress_done' is not a finite number"),
        ("meta", "progress_note", 3, "'progress_note' is not a string or null"),
        ("meta", "checkpoint_json", "{epoch: 3", "'checkpoint_json' is not JSON text"),
        ("meta", "checkpoint_json", {"epoch": 3}, "'checkpoint_json' is not a string"),
        ("meta", "unique_key", 7, "'unique_key' is not a string or null"),
        ("meta", "unique_key", "", "'unique_key' is empty"),
    ],
)
def test_a_bad_value_is_refused_by_name(where, key, value, message):
    doc = JobRecord(job_id="j", type="T", status=JobStatus.QUEUED, payload={}).to_json()
    (doc if where == "doc" else doc[META_KEY])[key] = value
    with pytest.raises(
        ValueError, match="^" + ("" if where == "doc" else "key '_jobledger' is malformed: ")
    ) as info:
        JobRecord.from_json(doc)
    assert message in str(info.value)


def test_progress_reads_as_floats_whatever_a_file_holds():
    # PostgreSQL's double precision column reads 3 back as 3.0: a job file does the same.
    doc = JobRecord(job_id="j", type="T", status=JobStatus.RUNNING, payload={}).to_json()
    doc[META_KEY].update(progress_done=3, progress_total=10, progress_at="2025-01-20T10:30:00Z")
    record = JobRecord.from_json(doc)
    assert (record.progress_done, record.progress_total) == (3.0, 10.0)
    assert type(record.progress_done) is float and type(record.progress_total) is float
