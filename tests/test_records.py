"""The task-set record's reader and writer."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobledger._json import dumps_indented, dumps_lines
from jobledger._taskset_record import ShapeError, TaskSetRecord

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(), _json | st.lists(st.text(), max_size=5), max_size=8))
def test_fast_writer_is_byte_identical_to_json_indent_2(doc):
    assert dumps_indented(doc) == (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


@given(st.dictionaries(st.text(), _json | st.floats(allow_nan=False), max_size=8))
def test_job_file_writer_puts_one_key_a_line_each_value_compact(doc):
    # The job files' layout, byte for byte, whatever the values (strings and null take a
    # short cut past the encoder: it must not change a byte).
    body = ",\n".join(
        f"  {json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}"
        for k, v in doc.items()
    )
    assert dumps_lines(doc) == (f"{{\n{body}\n}}\n" if doc else "{}\n").encode()
    assert json.loads(dumps_lines(doc)) == doc


def test_round_trip_keeps_every_field():
    doc = {
        "date": "2025-01-20",
        "account": "user@email.com",
        "type": "daily-set",
        "completed": ["a"],
        "remaining": ["b"],
        "lastUpdate": "2025-01-20T10:30:00.000Z",
        "failures": {"b": {"attempts": 2, "lastError": "x", "lastFailure": "t"}},
        "progress": {"b": {"done": 1, "total": 3}},
        "durations": {"a": 1.5},
        "future": [1, 2],
    }
    record = TaskSetRecord.loads(json.dumps(doc).encode())
    assert json.loads(record.dumps()) == doc


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"date": "2025-01-20", "account": "a"},
        {"date": "yesterday", "account": "a", "type": "t"},
        {"date": "2025-01-20", "account": "a", "type": "t", "completed": "a,b"},
        {"date": "2025-01-20", "account": "a", "type": "t", "completed": [1]},
        {"date": "2025-01-20", "account": "a", "type": "t", "failures": {"x": {}}},
        {"date": "2025-01-20", "account": "a", "type": "t", "lastUpdate": 5},
    ],
)
def test_wrong_shapes_are_refused(doc):
    with pytest.raises(ShapeError):
        TaskSetRecord.from_json(doc)


def test_a_job_record_evolves_exactly_as_dataclasses_replace():
    # evolve copies fields itself (every claim and completion makes one): it must agree
    # with dataclasses.replace, stay frozen, and refuse a name that is not a field.
    import dataclasses

    from jobledger._job_record import JobRecord, JobStatus

    record = JobRecord(
        job_id="j", type="T", status=JobStatus.QUEUED, payload={"a": [1]}, extra_meta={"x": 1}
    )
    changes = {"status": JobStatus.RUNNING, "attempts": 1, "worker": "w", "started": "s"}
    evolved = record.evolve(**changes)
    assert evolved == dataclasses.replace(record, **changes) and type(evolved) is JobRecord
    assert record.status is JobStatus.QUEUED  # the original is untouched
    assert record.with_seq(9) == dataclasses.replace(record, seq=9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        evolved.attempts = 2  # type: ignore[misc]
    with pytest.raises(TypeError, match="nope"):
        record.evolve(nope=1)


def test_a_new_job_record_is_the_constructor_s_own():
    # JobRecord.queued fills the fields itself: a field added to JobRecord must be added
    # there too, which this test notices (every field compared, by name).
    import dataclasses

    from jobledger._job_record import JobRecord, JobStatus

    fast = JobRecord.queued(
        "j", "T", {"a": 1}, priority=2, max_attempts=4, created="c", run_after="r"
    )
    slow = JobRecord(
        job_id="j",
        type="T",
        status=JobStatus.QUEUED,
        payload={"a": 1},
        priority=2,
        max_attempts=4,
        created="c",
        run_after="r",
    )
    assert vars(fast) == vars(slow) == dataclasses.asdict(slow)
    assert (
        fast.extra_meta
        is not JobRecord.queued(
            "k", "T", {}, priority=0, max_attempts=3, created="c", run_after=None
        ).extra_meta
    )


def test_new_job_ids_are_random_version_4_uuids_as_uuid_writes_them():
    import uuid

    from jobledger._job_record import new_job_id

    ids = [new_job_id() for _ in range(2000)]
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text
    assert len(set(ids)) == len(ids)
    assert {text[19] for text in ids} == set("89ab")  # every variant digit comes up
