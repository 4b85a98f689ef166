"""The queue's bounded reads (JobQueue.live_page, history, finished_per_minute) on every
backend: what a page shows, in order, filtered, paged without overlap, and current with
what other queue objects (other processes) did."""

from __future__ import annotations

import pytest

from jobledger import ConfigError, JobStatus


def _finish(queue, clock, n: int, *, fail_every: int = 0, kind: str = "T") -> list[str]:
    """Enqueue and finish ``n`` jobs one second apart; every ``fail_every``-th fails."""
    ids = []
    for i in range(n):
        job_id = queue.enqueue(
            {"type": kind, "i": i}, max_attempts=1, queue="fast" if i % 2 else "slow"
        )
        job = queue.claim()
        assert job is not None and job.job_id == job_id
        clock.advance(seconds=1)
        if fail_every and i % fail_every == 0:
            queue.fail(job_id, f"boom {i}")
        else:
            queue.complete(job_id, i)
        ids.append(job_id)
    return ids


def test_history_is_latest_first_and_pages_without_overlap(make_queue, clock) -> None:
    writer = make_queue()
    ids = _finish(writer, clock, 7)
    reader = make_queue()
    first = reader.history(limit=3)
    assert [j.job_id for j in first] == ids[::-1][:3]
    second = reader.history(limit=3, before=(first[-1].finished, first[-1].job_id))
    third = reader.history(limit=3, before=(second[-1].finished, second[-1].job_id))
    assert [j.job_id for j in first + second + third] == ids[::-1]


def test_history_filters(make_queue, clock) -> None:
    writer = make_queue()
    ids = _finish(writer, clock, 6, fail_every=3)
    _finish(writer, clock, 2, kind="Other")
    reader = make_queue()
    failed = reader.history(status="Failed")
    assert {j.job_id for j in failed} == {ids[0], ids[3]}
    assert all(j.status is JobStatus.FAILED for j in failed)
    assert {j.type for j in reader.history(type="Other")} == {"Other"}
    assert len(reader.history(type="Other")) == 2
    fast = reader.history(queue="fast", type="T")
    assert {j.job_id for j in fast} == {ids[1], ids[3], ids[5]}
    middle = reader.history(since=writer.get(ids[2]).finished, until=writer.get(ids[4]).finished)
    assert [j.job_id for j in middle] == [ids[3], ids[2]]
    both = reader.history(status=["Failed", "Completed"], type="T")
    assert len(both) == 6
    with pytest.raises(ConfigError):
        reader.history(status="Queued")


def test_history_follows_other_queues_changes(make_queue, clock) -> None:
    writer = make_queue()
    writer.recover()  # the first write: a database gets its tables
    reader = make_queue()
    assert reader.history() == []
    ids = _finish(writer, clock, 3, fail_every=2)
    assert {j.job_id for j in reader.history()} == set(ids)
    writer.retry(ids[0])  # Failed -> Queued: out of history
    assert ids[0] not in {j.job_id for j in reader.history()}
    page = reader.live_page("Queued")
    assert [j.job_id for j in page.jobs] == [ids[0]]
    clock.advance(days=2)
    writer.prune(older_than=3600)
    assert reader.history() == []
    assert reader.live_page("Queued").counts["Completed"] == 0


def test_live_page_is_serving_order_with_counts(make_queue, clock) -> None:
    writer = make_queue()
    ids = [writer.enqueue({"type": "T", "i": i}, priority=i % 3) for i in range(8)]
    running = writer.claim()
    assert running is not None
    reader = make_queue()
    queued = [j.job_id for j in reader.list("Queued")]
    page = reader.live_page("Queued", limit=3, offset=2)
    assert [j.job_id for j in page.jobs] == queued[2:5]
    assert page.total == 7
    assert page.counts["Running"] == 1 and page.counts["Queued"] == 7
    run = reader.live_page(JobStatus.RUNNING)
    assert [j.job_id for j in run.jobs] == [running.job_id]
    assert set(ids) == set(queued) | {running.job_id}
    with pytest.raises(ConfigError):
        reader.live_page("Completed")


def test_finished_per_minute(make_queue, clock) -> None:
    writer = make_queue()
    _finish(writer, clock, 3, fail_every=3)  # 10:30:01 Failed, :02 and :03 Completed
    clock.advance(minutes=5)
    _finish(writer, clock, 1)
    reader = make_queue()
    per_minute = reader.finished_per_minute(last=3600)
    assert per_minute == {
        "2025-01-20T10:30": {"Failed": 1, "Completed": 2},
        "2025-01-20T10:35": {"Completed": 1},
    }
    assert reader.finished_per_minute(last=60) == {"2025-01-20T10:35": {"Completed": 1}}


def test_live_page_counts_per_queue_follow_other_queues_changes(
    make_queue, clock, monkeypatch
) -> None:
    writer = make_queue()
    writer.recover()  # the first write: a database gets its tables
    reader = make_queue()
    _finish(writer, clock, 4)  # "fast" and "slow", 2 Completed each
    writer.enqueue({"type": "T"}, queue="gpu")
    page = reader.live_page("Queued")
    assert {q: {s: n for s, n in per.items() if n} for q, per in page.by_queue.items()} == {
        "fast": {"Completed": 2},
        "slow": {"Completed": 2},
        "gpu": {"Queued": 1},
    }
    assert page.counts == writer.counts() and page.by_queue == writer.counts_by_queue()
    if make_queue.backend == "files":
        # The summary of finished jobs agrees with the index's counts kept per queue: a
        # later read follows the journal, without listing the folder again.
        history = reader._bounded()
        monkeypatch.setattr(
            history, "_reconcile", lambda: pytest.fail("the folder was listed again")
        )
    job = writer.claim(queues=["gpu"])
    writer.complete(job.job_id)
    again = reader.live_page("Queued")
    assert again.by_queue["gpu"]["Completed"] == 1 and again.counts["Completed"] == 5
    assert reader.history(queue="gpu")[0].job_id == job.job_id
