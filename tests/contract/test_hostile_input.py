"""Input no backend can store is refused before anything is written, the same way on
every backend: a jobledger error naming the field, never a RecursionError, a
UnicodeEncodeError or a database error.

Issue 12, point 4: payloads and results 10,000 deep, lone surrogates (``"\\ud800"``) in
payloads, results, job types, job ids, task, account and set type names, NUL characters
and non-finite floats.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading

import pytest

import jobledger
from jobledger import InvalidNameError, InvalidPayload, JobQueue, JobStatus, Worker

LONE = "\ud800"


def deep(levels: int) -> list[object]:
    """A list nested ``levels`` deep (built without recursion)."""
    value: list[object] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def _stored(q: JobQueue) -> list[tuple[str, str, object]]:
    return [(j.job_id, j.status.value, j.result) for j in q.list()]


UNSTORABLE = {
    "10000 deep": (deep(10_000), "nested deeper than 200 levels"),
    "201 deep": (deep(201), "nested deeper than 200 levels"),
    "lone surrogate": ({"x": ["ok", f"a{LONE}b"]}, "lone surrogate '\\ud800' at character 1"),
    "surrogate key": ({f"k{LONE}": 1}, "the key 'k\\ud800'"),
    "NUL": ({"x": "a\x00b"}, "NUL character"),
    "NaN": ({"x": math.nan}, "is nan"),
    "infinity": ([1.0, -math.inf], "is -inf"),
    "cycle": (None, "contains itself"),
}
WHERE = {
    "10000 deep": "[0][0][0][0][0][0][0]...",  # the first 8 steps of the path, then ...
    "201 deep": "[0][0][0][0][0][0][0]...",
    "lone surrogate": "['x'][1]",
    "surrogate key": "the key",
    "NUL": "['x']",
    "NaN": "['x']",
    "infinity": "[1]",
    "cycle": "['self']",
}


def _value(name: str) -> object:
    value, _ = UNSTORABLE[name]
    if name == "cycle":
        looped: dict[str, object] = {}
        looped["self"] = looped
        return looped
    return value


@pytest.mark.parametrize("name", list(UNSTORABLE))
def test_an_unstorable_payload_raises_invalid_payload_and_stores_nothing(make_queue, name):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="existing")
    before = _stored(q)
    with pytest.raises(InvalidPayload) as caught:
        q.enqueue({"type": "T", "data": _value(name)}, job_id="new")
    message = str(caught.value)
    assert message.startswith("the payload of the T job is not JSON-serialisable:")
    assert UNSTORABLE[name][1] in message
    where = WHERE[name]
    assert (where in message) if where == "the key" else (f"payload['data']{where}" in message)
    assert isinstance(caught.value, TypeError)  # the API's promise for a bad payload
    with pytest.raises(InvalidPayload):
        q.enqueue_many([{"type": "T"}, {"type": "T", "data": _value(name)}], job_ids=["a", "b"])
    assert _stored(q) == before
    assert q.get("new") is None and q.get("a") is None


@pytest.mark.parametrize("name", list(UNSTORABLE))
def test_a_generated_id_batch_with_an_unstorable_payload_stores_nothing(make_queue, name):
    # 100 jobs, ids generated: on PostgreSQL the batch goes in by COPY and each job is
    # checked as it is sent; the 70th refused ends it, and nothing of it is stored.
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="existing")
    before = _stored(q)
    jobs: list[dict[str, object]] = [{"type": "T", "n": i} for i in range(100)]
    jobs[70] = {"type": "T", "data": _value(name)}
    with pytest.raises(InvalidPayload, match=r"payload\['data'\]|the key"):
        q.enqueue_many(jobs)
    assert _stored(q) == before
    assert len(q.enqueue_many(jobs[:70])) == 70  # the queue works on, every seq fine
    assert q.counts()["Queued"] == 71


def test_a_payload_200_levels_deep_is_stored_and_read_back(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "T", "data": deep(jobledger.MAX_JSON_DEPTH - 1)})
    assert q.get(job_id).payload["data"] == deep(jobledger.MAX_JSON_DEPTH - 1)


@pytest.mark.parametrize("name", list(UNSTORABLE))
def test_an_unstorable_result_raises_invalid_payload_and_the_job_stays_running(make_queue, name):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 2, job_ids=["a", "b"])
    q.claim_many(2)
    with pytest.raises(InvalidPayload, match=re.escape(UNSTORABLE[name][1])) as caught:
        q.complete("a", _value(name))
    assert str(caught.value).startswith("the result of job a is not JSON-serialisable: ")
    assert "result" in str(caught.value).split(": ", 1)[1]  # where in the result
    with pytest.raises(InvalidPayload, match="the result of job b"):
        q.complete_many({"a": 1, "b": _value(name)})
    assert {j.job_id: j.status for j in q.list()} == {
        "a": JobStatus.RUNNING,
        "b": JobStatus.RUNNING,
    }


@pytest.mark.parametrize(
    "job, field",
    [
        ({"type": LONE}, "job type '\\ud800'"),
        ({"type": "T\x00"}, "job type must be a non-empty string without NUL"),
        ({"type": "T", "job_id": f"id{LONE}"}, "job id 'id\\ud800'"),
    ],
)
def test_an_unstorable_job_type_or_id_raises_invalid_name_error(make_queue, job, field):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="existing")  # a writer first: reads never make the schema
    with pytest.raises(InvalidNameError, match=re.escape(field)):
        q.enqueue(job)
    with pytest.raises(InvalidNameError, match="job id 'x\\\\ud800'"):
        q.enqueue({"type": "T"}, job_id=f"x{LONE}")
    assert [j.job_id for j in q.list()] == ["existing"]


def test_looking_up_an_unstorable_job_id_names_it_and_a_nul_id_is_not_found(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="a")
    for call in (q.get, q.cancel, q.retry):
        with pytest.raises(InvalidNameError, match=re.escape("job id '\\ud800' holds a lone")):
            call(LONE)
    assert q.get("a\x00") is None
    with pytest.raises(jobledger.JobNotFound):
        q.cancel("a\x00")


def test_an_error_text_that_cannot_be_stored_is_recorded_escaped(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="a", max_attempts=1)
    q.claim()
    try:
        raise OSError(2, "No such file", f"/data/caf{LONE}\x00.txt")
    except OSError as exc:
        failed = q.fail("a", exc)
    assert failed.status is JobStatus.FAILED
    assert "caf\\ud800\\x00.txt" in failed.error_message
    assert "caf\\ud800\\x00.txt" in failed.traceback
    again = q.get("a")
    assert again.error_message == failed.error_message and again.traceback == failed.traceback


@pytest.mark.parametrize("result", ["10000 deep", "lone surrogate", "cycle"])
def test_a_worker_fails_a_job_whose_result_cannot_be_stored(make_queue, result):
    q = make_queue()
    job_id = q.enqueue({"type": "T"}, max_attempts=1)
    seen = threading.Event()

    def handler(job):
        seen.set()
        return _value(result)

    Worker(q, {"T": handler}, handle_signals=False).run(until_empty=True)
    assert seen.is_set()
    job = q.get(job_id)
    assert job.status is JobStatus.FAILED and job.result is None
    assert "the handler's result is not JSON-serialisable: result" in job.error_message
    assert UNSTORABLE[result][1] in job.error_message


@jobledger.job_type("HostileDeep")
@dataclasses.dataclass
class HostileDeep:
    data: list[object]


def test_a_typed_job_too_deep_to_encode_raises_invalid_payload(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="existing")  # a writer first: reads never make the schema
    with pytest.raises(InvalidPayload, match="nested deeper than 200 levels"):
        q.enqueue(HostileDeep(deep(10_000)))
    with pytest.raises(InvalidPayload, match="nested deeper than 200 levels"):
        q.enqueue(HostileDeep(deep(300)))
    assert [j.job_id for j in q.list()] == ["existing"]


def test_a_pydantic_job_too_deep_to_encode_raises_invalid_payload(make_queue):
    pydantic = pytest.importorskip("pydantic")

    @jobledger.job_type("HostileDeepModel")
    class HostileDeepModel(pydantic.BaseModel):
        data: object

    q = make_queue()
    q.enqueue({"type": "T"}, job_id="existing")  # a writer first: reads never make the schema
    with pytest.raises(InvalidPayload, match="not JSON-serialisable"):
        q.enqueue(HostileDeepModel(data=deep(10_000)))
    with pytest.raises(InvalidPayload, match="nested deeper than 200 levels"):
        q.enqueue(HostileDeepModel(data=deep(200)))  # with the payload itself: 201 levels
    assert [j.job_id for j in q.list()] == ["existing"]


# -- task sets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "account, set_type, task, field",
    [
        (LONE, "daily", "t", "account '\\ud800'"),
        ("a", f"d{LONE}", "t", "type 'd\\ud800'"),
        ("a", "daily", f"quiz{LONE}", "task 'quiz\\ud800'"),
    ],
)
def test_an_unstorable_account_type_or_task_raises_invalid_name_error(
    make_state, account, set_type, task, field
):
    state = make_state()
    state.taskset("existing", "daily", tasks=["t"]).mark_done("t")  # reads never make the schema
    with (
        pytest.raises(InvalidNameError, match=re.escape(field)) as caught,
        state.taskset(account, set_type, tasks=[task]) as ts,
    ):
        ts.mark_done(task)
    assert "lone surrogate" in str(caught.value)
    assert [key.account for key in state.keys()] == ["existing"]


def test_marking_an_unstorable_task_names_it_and_changes_nothing(make_state):
    state = make_state()
    with state.taskset("a", "daily", tasks=["t"]) as ts:
        for call in (ts.mark_done, ts.plan, ts.progress):
            arg = [f"x{LONE}"] if call == ts.plan else f"x{LONE}"
            with pytest.raises(InvalidNameError, match="task"):
                call(arg)
    record = make_state().records()[0]
    assert (record.completed, record.remaining) == ([], ["t"])
    with pytest.raises(InvalidNameError, match="account"):
        state.keys(LONE)


def test_a_task_failure_text_that_cannot_be_stored_is_recorded_escaped(make_state):
    state = make_state()
    with state.taskset("a", "daily", tasks=["t"]) as ts:
        failure = ts.mark_failed("t", ValueError(f"bad {LONE} and \x00"))
    assert failure.error == "ValueError: bad \\ud800 and \\x00"
    assert make_state().records()[0].failures["t"].error == failure.error
