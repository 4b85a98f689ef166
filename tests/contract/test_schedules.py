"""Periodic jobs through the public API, on every backend, with the queue's injected clock:
which occurrences are enqueued (daylight saving changes included), once each, by whom."""

from __future__ import annotations

import datetime as dt
import sys

import pytest

import jobledger
from jobledger import ConfigError, JobStatus, Schedule, Worker
from jobledger._schedules import MAX_CATCH_UP

UTC = dt.timezone.utc


def _at(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso).replace(tzinfo=UTC)


def _walk(q, clock, start: str, end: str, step: dt.timedelta) -> list[str]:
    """Move the clock from ``start`` to ``end`` by ``step``, asking for due jobs at each
    step (as a running worker does); the ids enqueued, in order."""
    clock.set(start + "+00:00")
    out = q.enqueue_due()
    while clock.now() < _at(end):
        clock.advance(seconds=step.total_seconds())
        out += q.enqueue_due()
    return out


def test_a_schedule_enqueues_each_occurrence_once(make_queue, clock):
    clock.set("2025-01-20T05:00:00+00:00")
    q = make_queue()
    stored = q.schedule(
        "daily-report",
        "0 7 * * *",
        timezone="Europe/Paris",
        job={"type": "Report", "account": "acct-1"},
        priority=5,
        max_attempts=2,
        timeout=60,
    )
    assert stored.since == "2025-01-20T05:00:00.000Z" and stored.last is None
    assert stored.next_run(clock.now()) == _at("2025-01-20T06:00:00")
    assert q.enqueue_due() == []
    clock.set("2025-01-20T06:00:00+00:00")  # 07:00 in Paris (winter, UTC+1)
    [job_id] = q.enqueue_due()
    assert job_id == "daily-report@2025-01-20T06:00:00.000Z"
    assert q.enqueue_due() == []  # asked again: nothing new
    job = q.get(job_id)
    assert job.type == "Report" and job.raw == {"account": "acct-1"}
    assert job.unique_key == job_id
    assert (job.priority, job.max_attempts, job.timeout) == (5, 2, 60.0)
    assert q.schedules()[0].last == "2025-01-20T06:00:00.000Z"
    assert q.schedules()[0].next_run(clock.now()) == _at("2025-01-21T06:00:00")
    ids = _walk(q, clock, "2025-01-20T06:00:00", "2025-01-23T12:00:00", dt.timedelta(hours=1))
    assert ids == [f"daily-report@2025-01-{d}T06:00:00.000Z" for d in (21, 22, 23)]


def test_spring_forward_a_time_that_does_not_exist_runs_once_at_the_end_of_the_gap(
    make_queue, clock
):
    # Europe/Paris, 2025-03-30: 02:00 -> 03:00. 02:30 does not exist that night; the job
    # runs once, at 03:00 local (01:00 UTC), and at 02:30 local again from the next day.
    clock.set("2025-03-29T12:00:00+00:00")
    q = make_queue()
    q.schedule("night", "30 2 * * *", timezone="Europe/Paris", job={"type": "T"})
    ids = _walk(q, clock, "2025-03-29T12:00:00", "2025-03-31T12:00:00", dt.timedelta(minutes=10))
    assert ids == ["night@2025-03-30T01:00:00.000Z", "night@2025-03-31T00:30:00.000Z"]


def test_fall_back_a_time_that_happens_twice_runs_once(make_queue, clock):
    # Europe/Paris, 2025-10-26: 03:00 -> 02:00, so 02:00-02:59 happens twice; 01:30 once.
    clock.set("2025-10-25T12:00:00+00:00")
    q = make_queue()
    q.schedule("twice", "30 2 * * *", timezone="Europe/Paris", job={"type": "T"})
    q.schedule("once", "30 1 * * *", timezone="Europe/Paris", job={"type": "T"})
    ids = _walk(q, clock, "2025-10-25T12:00:00", "2025-10-27T12:00:00", dt.timedelta(minutes=10))
    assert sorted(ids) == [
        "once@2025-10-25T23:30:00.000Z",  # 01:30 CEST
        "once@2025-10-27T00:30:00.000Z",  # 01:30 CET
        "twice@2025-10-26T00:30:00.000Z",  # the first 02:30 (CEST), not the second
        "twice@2025-10-27T01:30:00.000Z",
    ]


def test_fall_back_where_the_repeated_hour_holds_01_30(make_queue, clock):
    # America/New_York, 2025-11-02: 02:00 -> 01:00, so 01:30 happens twice: once here.
    clock.set("2025-11-01T12:00:00+00:00")
    q = make_queue()
    q.schedule("ny", "30 1 * * *", timezone="America/New_York", job={"type": "T"})
    ids = _walk(q, clock, "2025-11-01T12:00:00", "2025-11-03T12:00:00", dt.timedelta(minutes=10))
    assert ids == ["ny@2025-11-02T05:30:00.000Z", "ny@2025-11-03T06:30:00.000Z"]


def test_an_hourly_schedule_across_both_changes(make_queue, clock):
    clock.set("2025-03-29T23:30:00+00:00")
    q = make_queue()
    q.schedule("hourly", "0 * * * *", timezone="Europe/Paris", job={"type": "T"})
    spring = _walk(q, clock, "2025-03-29T23:30:00", "2025-03-30T02:30:00", dt.timedelta(minutes=5))
    # 01:00 CET, then 03:00 CEST (02:00 does not exist), then 04:00 CEST: each hour once.
    assert spring == [f"hourly@2025-03-30T0{h}:00:00.000Z" for h in (0, 1, 2)]
    q.unschedule("hourly")
    clock.set("2025-10-25T22:30:00+00:00")
    q.schedule("hourly", "0 * * * *", timezone="Europe/Paris", job={"type": "T"})
    autumn = _walk(q, clock, "2025-10-25T22:30:00", "2025-10-26T03:30:00", dt.timedelta(minutes=5))
    # 01:00 and 02:00 CEST, then 03:00 CET: the repeated 02:00 (CET, 01:00 UTC) is skipped.
    assert autumn == [
        "hourly@2025-10-25T23:00:00.000Z",
        "hourly@2025-10-26T00:00:00.000Z",
        "hourly@2025-10-26T02:00:00.000Z",
        "hourly@2025-10-26T03:00:00.000Z",
    ]


@pytest.mark.parametrize(
    ("catch_up", "hours"),
    [("latest", [4]), ("all", [0, 1, 2, 3, 4]), ("none", [])],
)
def test_missed_occurrences_follow_catch_up(make_queue, clock, catch_up, hours):
    clock.set("2025-01-20T09:30:00+00:00")
    q = make_queue()
    q.schedule("hourly", "0 * * * *", job={"type": "T"}, catch_up=catch_up)
    clock.set("2025-01-20T14:30:00+00:00")  # nothing ran for five hours: 10:00..14:00 missed
    ids = q.enqueue_due()
    assert ids == [f"hourly@2025-01-20T{10 + h}:00:00.000Z" for h in hours]
    assert q.schedules()[0].last == "2025-01-20T14:00:00.000Z"  # the missed ones are past
    clock.set("2025-01-20T15:00:20+00:00")  # on time again: every mode enqueues it
    assert q.enqueue_due() == ["hourly@2025-01-20T15:00:00.000Z"]


def test_catch_up_all_enqueues_the_most_recent_hundred_at_most(make_queue, clock):
    clock.set("2025-01-20T09:00:30+00:00")
    q = make_queue()
    q.schedule("minutely", "* * * * *", job={"type": "T"}, catch_up="all")
    clock.set("2025-01-20T12:00:30+00:00")  # 180 occurrences missed
    ids = q.enqueue_due()
    assert len(ids) == MAX_CATCH_UP == 100
    assert ids[0] == "minutely@2025-01-20T10:21:00.000Z"
    assert ids[-1] == "minutely@2025-01-20T12:00:00.000Z"
    assert q.counts()["Queued"] == 100


def test_two_queues_checking_the_same_occurrence_enqueue_it_once(make_queue, clock):
    clock.set("2025-01-20T06:59:00+00:00")
    a, b = make_queue(), make_queue()
    a.schedule("s", "0 7 * * *", job={"type": "T"})
    clock.set("2025-01-20T07:00:00+00:00")
    got = a.enqueue_due() + b.enqueue_due() + a.enqueue_due()
    assert got == ["s@2025-01-20T07:00:00.000Z"]
    assert a.counts()["Queued"] == 1


def test_an_occurrence_whose_job_is_stored_but_not_last_is_not_enqueued_again(make_queue, clock):
    # A crash between the two writes of a firing (the job stored, the schedule not):
    # the next firing finds the occurrence's id stored, even once that job finished.
    clock.set("2025-01-20T06:59:00+00:00")
    q = make_queue()
    stored = q.schedule("s", "0 7 * * *", job={"type": "T"})
    clock.set("2025-01-20T07:00:00+00:00")
    job_id = q.enqueue(
        {"type": "T"}, job_id="s@2025-01-20T07:00:00.000Z", unique_key="s@2025-01-20T07:00:00.000Z"
    )
    q.complete(q.claim().job_id)
    assert q.schedules()[0].last is None  # as the crash left it
    assert stored.last is None
    assert q.enqueue_due() == []
    assert q.get(job_id).status is JobStatus.COMPLETED
    assert q.schedules()[0].last == "2025-01-20T07:00:00.000Z"


def test_unschedule_stops_it_and_its_jobs_stay(make_queue, clock):
    clock.set("2025-01-20T06:59:00+00:00")
    q = make_queue()
    q.schedule("s", "0 7 * * *", job={"type": "T"})
    clock.set("2025-01-20T07:00:00+00:00")
    [first] = q.enqueue_due()
    assert q.unschedule("s") is True
    assert q.unschedule("s") is False
    assert q.schedules() == []
    clock.set("2025-01-21T07:00:00+00:00")
    assert q.enqueue_due() == []
    assert q.get(first).status is JobStatus.QUEUED


def test_a_schedule_survives_reopening(make_queue, clock):
    clock.set("2025-01-20T05:59:00+00:00")
    q = make_queue()
    q.schedule("s", "0 7 * * *", timezone="Europe/Paris", job={"type": "T", "n": 1})
    clock.set("2025-01-20T06:00:00+00:00")
    q.enqueue_due()
    q.close()
    again = make_queue()
    [stored] = again.schedules()
    assert (stored.name, stored.cron, stored.timezone, stored.payload) == (
        "s",
        "0 7 * * *",
        "Europe/Paris",
        {"n": 1},
    )
    assert stored.last == "2025-01-20T06:00:00.000Z"
    clock.set("2025-01-21T06:00:00+00:00")
    assert again.enqueue_due() == ["s@2025-01-21T06:00:00.000Z"]


def test_storing_a_schedule_again_keeps_last_and_counts_a_new_definition_from_now(
    make_queue, clock
):
    clock.set("2025-01-20T06:30:00+00:00")
    q = make_queue()
    first = q.schedule("s", "0 7 * * *", job={"type": "T"})
    clock.set("2025-01-20T07:00:00+00:00")
    q.enqueue_due()
    clock.set("2025-01-20T09:30:00+00:00")
    same = q.schedule("s", "0 7 * * *", job={"type": "T"})
    assert same.since == first.since and same.last == "2025-01-20T07:00:00.000Z"
    changed = q.schedule("s", "0 8 * * *", job={"type": "T"})
    assert changed.since == "2025-01-20T09:30:00.000Z"
    assert changed.last == "2025-01-20T07:00:00.000Z"
    assert q.enqueue_due() == []  # 08:00 came before the change: not a missed run
    clock.set("2025-01-21T08:00:00+00:00")
    assert q.enqueue_due() == ["s@2025-01-21T08:00:00.000Z"]


def test_a_worker_stores_its_declared_schedules_and_runs_what_is_due(make_queue, clock):
    clock.set("2025-01-20T07:00:00+00:00")
    q = make_queue()
    ran = []
    schedule = Schedule("report", "0 7 * * *", job={"type": "Report", "n": 1})
    worker = Worker(
        q, {"Report": lambda job: ran.append(job.raw)}, schedules=[schedule], handle_signals=False
    )
    # Stored now: since is 07:00, so the 07:00 occurrence counts (due at once).
    worker.run(until_empty=True)
    assert ran == [{"n": 1}]
    assert [s.name for s in q.schedules()] == ["report"]
    assert q.get("report@2025-01-20T07:00:00.000Z").status is JobStatus.COMPLETED
    # A second worker declaring the same schedule changes nothing and enqueues nothing.
    again = Worker(
        make_queue(),
        {"Report": lambda job: ran.append(job.raw)},
        schedules=[schedule],
        handle_signals=False,
    )
    again.run(until_empty=True)
    assert ran == [{"n": 1}]


def test_a_worker_refuses_two_schedules_of_one_name(make_queue):
    s = Schedule("x", "0 7 * * *", job={"type": "T"})
    with pytest.raises(jobledger.JobLedgerError, match="name x more than once"):
        Worker(make_queue(), {"T": print}, schedules=[s, s])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "0 25 * * *"}, "not a cron expression"),
        ({"cron": "every day"}, "not a cron expression"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"catch_up": "some"}, "catch_up must be 'latest', 'all' or 'none'"),
        ({"name": "a@b"}, "holds '@'"),
        ({"job": {"type": "T", "job_id": "fixed"}}, "gives a job_id"),
        ({"job": {"no": "type"}}, "'type' key"),
        ({"timeout": 0}, "more than 0 seconds"),
    ],
)
def test_a_bad_schedule_is_refused_before_anything_is_stored(make_queue, kwargs, message):
    q = make_queue()
    args = {"name": "s", "cron": "0 7 * * *", "job": {"type": "T"}, **kwargs}
    with pytest.raises((ConfigError, TypeError), match=message):
        q.schedule(args.pop("name"), args.pop("cron"), **args)
    q.schedule("good", "0 7 * * *", job={"type": "T"})
    assert [s.name for s in q.schedules()] == ["good"]


def test_a_typed_job_can_be_scheduled(make_queue, clock):
    from dataclasses import dataclass

    @jobledger.job_type("TypedReport")
    @dataclass
    class TypedReport:
        account: str

    clock.set("2025-01-20T06:59:00+00:00")
    q = make_queue()
    q.schedule("typed", "0 7 * * *", job=TypedReport("acct-1"))
    clock.set("2025-01-20T07:00:00+00:00")
    [job_id] = q.enqueue_due()
    assert q.get(job_id).payload == TypedReport("acct-1")


def test_without_croniter_the_queue_works_and_a_schedule_names_the_extra(make_queue, monkeypatch):
    monkeypatch.setitem(sys.modules, "croniter", None)  # import croniter -> ImportError
    q = make_queue()
    job_id = q.enqueue({"type": "T"})
    assert q.enqueue_due() == []  # no schedule stored: croniter is never needed
    assert q.claim().job_id == job_id
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[cron\]'"):
        q.schedule("s", "0 7 * * *", job={"type": "T"})
    with pytest.raises(ConfigError, match="croniter"):
        Schedule("s", "0 7 * * *", job={"type": "T"})


def test_a_running_worker_enqueues_an_occurrence_when_it_comes_due(make_queue, clock):
    import threading

    clock.set("2025-01-20T06:59:00+00:00")
    q = make_queue()
    ran = threading.Event()
    schedule = Schedule("report", "0 7 * * *", job={"type": "Report"})
    worker = Worker(
        q, {"Report": lambda job: ran.set()}, schedules=[schedule], handle_signals=False
    )
    q.schedule(schedule)  # stored at 06:59 (the worker finds it so, and keeps it)
    serving = threading.Thread(target=worker.run)
    serving.start()
    try:
        # Nothing due yet. The worker's thread looks again within a second of (real)
        # time and finds 07:00 due once the queue's clock says so.
        clock.set("2025-01-20T07:00:05+00:00")
        assert ran.wait(60), "the running worker never enqueued the due occurrence"
    finally:
        worker.stop()
        serving.join(60)
    assert not serving.is_alive()
    assert q.get("report@2025-01-20T07:00:00.000Z").status is JobStatus.COMPLETED
