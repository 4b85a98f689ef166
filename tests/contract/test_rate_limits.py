"""Rate limits through the public API, on every backend: no more than ``n`` starts of a
type's jobs per rate key within ``per`` seconds, across queue objects (processes); a job
over the limit waits, its attempt not counted, while other keys' jobs are served."""

from __future__ import annotations

import pytest

from jobledger import ConfigError, JobStatus, RateLimit


def _ids(jobs):
    return [j.job_id for j in jobs]


def test_a_rate_limit_counts_starts_per_key_of_a_payload_field(make_queue, clock):
    q = make_queue()
    q.set_rate_limit("Call", 2, 60, key_field="account")
    assert q.limits().rates == {"Call": RateLimit(2, 60.0, "account")}
    for i, account in enumerate(["a", "a", "a", "b", "b", "b"]):
        q.enqueue({"type": "Call", "account": account}, job_id=f"{account}{i}")
    # Two of each account start; the third of each waits, its attempt not counted.
    assert _ids(q.claim_many(10)) == ["a0", "a1", "b3", "b4"]
    for job_id in ("a2", "b5"):
        waiting = q.get(job_id)
        assert waiting.status is JobStatus.QUEUED and waiting.attempts == 0
    # Finishing does not give a start back: the window does.
    q.complete("a0")
    other = make_queue()  # another process counts the same starts
    assert other.claim_many(10) == []
    clock.advance(seconds=59)
    assert other.claim_many(10) == []
    clock.advance(seconds=2)
    assert _ids(other.claim_many(10)) == ["a2", "b5"]


def test_other_types_and_other_keys_are_served_meanwhile(make_queue):
    q = make_queue()
    q.set_rate_limit("Call", 1, 3600, key_field="account")
    q.enqueue_many([{"type": "Call", "account": "a"}] * 5, priority=5, job_ids=list("ABCDE"))
    q.enqueue({"type": "Call", "account": "b"}, job_id="b")
    q.enqueue({"type": "Other"}, job_id="other")
    assert _ids(q.claim_many(10)) == ["A", "b", "other"]
    assert q.claim_many(10) == []


def test_an_explicit_rate_key_wins_and_jobs_without_a_key_share_one(make_queue):
    q = make_queue()
    q.set_rate_limit("Send", 1, 60, key_field="to")
    q.enqueue({"type": "Send", "to": "x"}, job_id="keyed", rate_key="acct-1")
    q.enqueue({"type": "Send", "to": "y"}, job_id="same-key", rate_key="acct-1")
    q.enqueue({"type": "Send"}, job_id="none-1")
    q.enqueue({"type": "Send"}, job_id="none-2")
    q.enqueue({"type": "Send", "to": "x"}, job_id="field-x")
    assert q.get("keyed").rate_key == "acct-1"
    assert _ids(q.claim_many(10)) == ["keyed", "none-1", "field-x"]


def test_a_rate_limit_without_a_key_field_limits_the_type_as_one_key(make_queue, clock):
    q = make_queue()
    q.set_rate_limit("Ping", 2, 10)
    q.enqueue_many([{"type": "Ping", "account": i} for i in range(4)], job_ids=list("abcd"))
    assert _ids(q.claim_many(10)) == ["a", "b"]
    clock.advance(seconds=11)
    assert _ids(q.claim_many(10)) == ["c", "d"]


def test_a_retried_attempt_is_a_start_too_and_a_removed_limit_frees_them(make_queue):
    q = make_queue(retry_delay=0)
    q.set_rate_limit("Call", 1, 3600)
    q.enqueue_many([{"type": "Call"}] * 2, job_ids=["one", "two"])
    [job] = q.claim_many(5)
    q.fail(job.job_id, "boom")  # retried at once: but the window holds a start
    assert q.claim_many(5) == []
    q.set_rate_limit("Call", None, 3600)
    assert q.limits().rates == {}
    assert sorted(_ids(q.claim_many(5))) == ["one", "two"]


def test_queue_limits_and_rate_limits_together(make_queue):
    q = make_queue()
    q.set_limit("api", 2)
    q.set_rate_limit("Call", 1, 3600, key_field="account")
    for i, account in enumerate("aabc"):
        q.enqueue({"type": "Call", "account": account}, job_id=f"j{i}", queue="api")
    assert _ids(q.claim_many(10)) == ["j0", "j2"]  # a's second waits; then the queue is full
    q.complete("j0")
    assert _ids(q.claim_many(10)) == ["j3"]


@pytest.mark.parametrize(
    ("n", "per", "field"),
    [(-1, 60, None), (1.5, 60, None), (1, 0, None), (1, float("inf"), None), (1, 60, "")],
)
def test_a_rate_limit_that_cannot_be_one_is_refused(make_queue, n, per, field):
    q = make_queue()
    q.enqueue({"type": "T"})
    with pytest.raises((ConfigError, ValueError)):
        q.set_rate_limit("Call", n, per, key_field=field)
    assert q.limits().rates == {}


def test_a_rate_limit_declared_by_a_job_type_is_stored_when_a_worker_starts(make_queue):
    import dataclasses

    from jobledger import Worker, job_type

    @job_type("Declared", rate_limit=(1, 3600), rate_key="account")
    @dataclasses.dataclass
    class Declared:
        account: str

    q = make_queue()
    q.enqueue(Declared("a"), job_id="a1")
    q.enqueue(Declared("a"), job_id="a2")
    q.enqueue(Declared("b"), job_id="b1")
    ran: list[str] = []
    worker = Worker(q, {"Declared": lambda job: ran.append(job.job_id)}, handle_signals=False)
    worker.run(until_empty=True)
    assert make_queue().limits().rates == {"Declared": RateLimit(1, 3600.0, "account")}
    assert sorted(ran) == ["a1", "b1"]  # a2 waits for the window
    assert q.get("a2").status is JobStatus.QUEUED and q.get("a2").attempts == 0
