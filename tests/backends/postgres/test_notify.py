"""LISTEN/NOTIFY: an idle worker in another process wakes for a new job at once, and a
listener that loses its session reconnects (meanwhile workers only poll).

Workers here poll once an hour, so only a wake-up can bring them a job within the test's
bounds. The parent waits on pipes, or polls pg_stat_activity (server state) in a bounded
loop; it never sleeps to synchronise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tests.backends.postgres._pg import require_psycopg, until

require_psycopg()

import psycopg  # noqa: E402

from jobledger import JobQueue, JobStatus, Worker  # noqa: E402
from tests._child import Channel, Child  # noqa: E402

LISTENER = "jobledger listen for new jobs%"


def _listener_pids(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s"
            " AND datname = current_database() AND query ILIKE 'LISTEN%%'",
            (LISTENER,),
        ).fetchall()
    return [r[0] for r in rows]


def _idle_worker(url: str) -> Callable[[Channel], None]:
    def target(chan: Channel) -> None:
        queue = JobQueue(url, durability="flush")
        worker: Worker

        def handler(job) -> str:
            chan.send(f"ran {job.job_id}")
            return "ok"

        worker = Worker(queue, {"T": handler}, poll_interval=3600, handle_signals=False)
        threading.Thread(target=lambda: (chan.recv(), worker.stop()), daemon=True).start()
        chan.send("ready")
        worker.run()
        queue.close()

    return target


def test_a_worker_in_another_process_wakes_at_once_for_a_new_job(pg_url):
    url = pg_url
    child = Child(_idle_worker(url))
    try:
        child.read_until("ready")
        until(lambda: len(_listener_pids(url)) == 1, 30, "listening")
        with JobQueue(url, durability="flush") as q:
            q.enqueue({"type": "T"}, job_id="first")
            assert child.read_until("ran ") == "first"
            q.enqueue_many([{"type": "T"}, {"type": "T"}], job_ids=["second", "third"])
            assert {child.read_until("ran "), child.read_until("ran ")} == {"second", "third"}
            child.send("stop")
            child.check()
            assert q.counts()["Completed"] == 3
    finally:
        if child.status is None:
            child.kill()


def test_a_batch_that_goes_in_by_copy_wakes_a_worker_in_another_process(pg_url):
    # 40 generated ids: COPY, its wake-up sent by the statement that takes the seqs.
    url = pg_url
    child = Child(_idle_worker(url))
    try:
        child.read_until("ready")
        until(lambda: len(_listener_pids(url)) == 1, 30, "listening")
        with JobQueue(url, durability="flush") as q:
            ids = q.enqueue_many([{"type": "T"}] * 40)
            assert {child.read_until("ran ") for _ in ids} == set(ids)
            child.send("stop")
            child.check()
            assert q.counts()["Completed"] == 40
    finally:
        if child.status is None:
            child.kill()


def test_a_listener_that_loses_its_session_reconnects(pg_url):
    url = pg_url
    queue = JobQueue(url, durability="flush")
    ran: list[str] = []
    woke = threading.Event()

    def handler(job) -> None:
        ran.append(job.job_id)
        woke.set()

    worker = Worker(queue, {"T": handler}, poll_interval=3600, handle_signals=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        until(lambda: len(_listener_pids(url)) == 1, 30, "listening")
        [old] = _listener_pids(url)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (old,))
        until(lambda: _listener_pids(url) not in ([], [old]), 30, "listening again")
        with JobQueue(url, durability="flush") as other:  # another process, as far as we know
            other.enqueue({"type": "T"}, job_id="after-reconnect")
            assert woke.wait(30), "the worker was not woken after its listener reconnected"
            assert other.get("after-reconnect").status in (JobStatus.RUNNING, JobStatus.COMPLETED)
    finally:
        worker.stop()
        thread.join(30)
        queue.close()
    assert ran == ["after-reconnect"]


def test_stopping_a_listener_ends_its_wait_at_once(pg_url, monkeypatch):
    # With an hour between its looks at the stop flag, only the wake-up stop() sends can
    # end the listener's wait: stop() returning at all shows it was sent and acted on.
    from jobledger.backends.postgres import _listen

    monkeypatch.setattr(_listen, "_POLL", 3600)
    with JobQueue(pg_url, durability="flush") as q:
        stop = q.watch(lambda: None)
        until(lambda: len(_listener_pids(pg_url)) == 1, 30, "listening")
        stopped = threading.Event()
        threading.Thread(target=lambda: (stop(), stopped.set()), daemon=True).start()
        assert stopped.wait(60), "stop() still waits for the listener's hour-long wait"
        assert _listener_pids(pg_url) == []
