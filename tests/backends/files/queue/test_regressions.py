"""One regression test per defect of the original job persistence program."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import jobledger
from jobledger import JobQueue, JobStatus, Worker
from jobledger._faults import arm
from tests._child import Channel, Child

from ._procs import job_files, log_run, queue_doc, runs


def _ids_in_index(qdir: Path) -> list[str]:
    doc = queue_doc(qdir)
    return doc["running"] + doc["queued"]


# (a) an enqueued id written into queue.json twice ------------------------------------------


def test_a_enqueueing_one_id_twice_lists_it_once_and_runs_it_once(tmp_path):
    qdir, log = tmp_path / "q", tmp_path / "exec.log"
    q = JobQueue(qdir, durability="flush")
    assert q.enqueue({"type": "T", "v": 1}, job_id="dup") == "dup"
    assert q.enqueue({"type": "T", "v": 2}, job_id="dup") == "dup"
    assert q.enqueue_many(
        [{"type": "T", "v": 3}, {"type": "T", "v": 4}], job_ids=["dup", "dup"]
    ) == ["dup", "dup"]
    assert _ids_in_index(qdir) == ["dup"]
    assert q.get("dup").raw == {"v": 1}  # the first enqueue wins; nothing overwritten
    Worker(q, {"T": lambda job: log_run(log, job.job_id)}, handle_signals=False).run(
        until_empty=True
    )
    assert runs(log) == {"dup": 1}
    assert q.counts()["Completed"] == 1
    q.close()


def _enqueuer(qdir: Path, ids: list[str], threads: int):
    def target(chan: Channel) -> None:
        queue = JobQueue(qdir, durability="flush")
        chan.send("ready")
        assert chan.recv() == "go"
        _enqueue_from_threads(queue, ids, threads, tag=f"pid{os.getpid()}")
        chan.send("enqueued")

    return target


def _enqueue_from_threads(queue: JobQueue, ids: list[str], threads: int, tag: str) -> None:
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(t: int) -> None:
        try:
            barrier.wait()
            for job_id in ids:
                got = queue.enqueue({"type": "T", "by": f"{tag}-{t}"}, job_id=job_id)
                assert got == job_id
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors


def test_a_same_ids_enqueued_concurrently_from_threads_and_processes_are_stored_once(tmp_path):
    qdir, log = tmp_path / "q", tmp_path / "exec.log"
    ids = [f"job-{i}" for i in range(40)]
    children = [Child(_enqueuer(qdir, ids, threads=3)) for _ in range(2)]
    for c in children:
        c.read_until("ready")
    for c in children:
        c.send("go")
    queue = JobQueue(qdir, durability="flush")
    _enqueue_from_threads(queue, ids, threads=3, tag="parent")
    for c in children:
        c.read_until("enqueued")
        c.check()
    queue.checkpoint()  # a burst of changes: queue.json may trail the journal until now
    listed = _ids_in_index(qdir)
    assert sorted(listed) == sorted(ids)
    assert len(listed) == len(set(listed))
    assert sorted(job_files(qdir)) == sorted(ids)
    Worker(queue, {"T": lambda job: log_run(log, job.job_id)}, handle_signals=False).run(
        until_empty=True
    )
    assert runs(log) == dict.fromkeys(ids, 1)
    assert queue.counts() == {
        "Queued": 0,
        "Running": 0,
        "Completed": 40,
        "Failed": 0,
        "Cancelled": 0,
    }
    queue.close()


# (b) queue.json truncated / rewritten in place by two threads at once ----------------------


def test_b_concurrent_threads_never_tear_or_lose_queue_json(tmp_path):
    qdir = tmp_path / "q"
    shared = JobQueue(qdir, durability="flush")
    shared.enqueue({"type": "T"}, job_id="seed")
    stop = threading.Event()
    reads = {"ok": 0, "torn": []}

    def reader() -> None:
        path = qdir / "queue.json"
        while not stop.is_set():
            data = path.read_bytes()
            try:
                doc = json.loads(data)
                assert isinstance(doc["running"], list) and isinstance(doc["queued"], list)
                reads["ok"] += 1
            except (ValueError, KeyError, AssertionError):
                reads["torn"].append(data)

    done: list[str] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def producer(t: int, queue: JobQueue) -> None:
        try:
            for i in range(25):
                queue.enqueue({"type": "T", "t": t, "i": i}, job_id=f"p{t}-{i}")
        except BaseException as exc:
            errors.append(exc)

    def consumer(queue: JobQueue) -> None:
        try:
            for _ in range(40):
                job = queue.claim()
                if job is not None:
                    queue.complete(job.job_id, job.raw)
                    with guard:
                        done.append(job.job_id)
        except BaseException as exc:
            errors.append(exc)

    # Half the threads share one JobQueue, the others each open their own on the folder.
    queues = [
        shared,
        shared,
        JobQueue(qdir, durability="flush"),
        JobQueue(qdir, durability="flush"),
    ]
    threads = [threading.Thread(target=reader)]
    threads += [threading.Thread(target=producer, args=(t, queues[t])) for t in range(4)]
    threads += [threading.Thread(target=consumer, args=(queues[t],)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    stop.set()
    threads[0].join()
    assert not errors, errors
    assert reads["torn"] == [], f"a reader saw a torn queue.json: {reads['torn'][:1]!r}"
    assert reads["ok"] > 0

    expected = {"seed"} | {f"p{t}-{i}" for t in range(4) for i in range(25)}
    assert len(done) == len(set(done)), "a job was claimed twice"
    files = job_files(qdir)
    assert set(files) == expected
    live = {i for i, d in files.items() if d["status"] in ("Queued", "Running")}
    queues[0].checkpoint()  # a burst: the last changes may be only in the journal so far
    assert sorted(_ids_in_index(qdir)) == sorted(live)  # none lost from the index
    assert {i for i, d in files.items() if d["status"] == "Completed"} == set(done)
    assert {d["status"] for d in files.values()} <= {"Queued", "Completed"}
    fresh = JobQueue(qdir, durability="flush")
    while (job := fresh.claim()) is not None:
        fresh.complete(job.job_id)
        done.append(job.job_id)
    assert sorted(done) == sorted(expected)
    for q in [*queues, fresh]:
        q.close()


# (c) one job file of an unknown type aborting the whole recovery ---------------------------


@jobledger.job_type("RegressionKnownJob")
@dataclass
class KnownJob:
    prompt: str
    steps: int = 1


def _write_job(qdir: Path, doc: dict) -> None:
    (qdir / "jobs").mkdir(parents=True, exist_ok=True)
    (qdir / "jobs" / f"{doc['job_id']}.json").write_text(json.dumps(doc, indent=2))


def _running_doc(job_id: str, type_: str, seq: int, **payload) -> dict:
    return {
        "type": type_,
        "job_id": job_id,
        "status": "Running",
        "error_message": None,
        **payload,
        "_jobledger": {
            "priority": 0,
            "attempts": 1,
            "max_attempts": 3,
            "seq": seq,
            "worker": "gone-host-1-deadbeef",
        },
    }


@pytest.mark.parametrize("with_index", [True, False])
def test_c_an_unknown_type_is_kept_listed_and_claimable_while_the_rest_recovers(
    tmp_path, with_index
):
    qdir, log = tmp_path / "q", tmp_path / "exec.log"
    _write_job(qdir, _running_doc("k1", "RegressionKnownJob", 1, prompt="a", steps=2))
    _write_job(qdir, _running_doc("odd", "MysteryJob", 2, blob={"x": [1, 2]}))
    _write_job(qdir, _running_doc("k2", "RegressionKnownJob", 3, prompt="b", steps=3))
    queued = _running_doc("k3", "RegressionKnownJob", 4, prompt="c")
    queued["status"] = "Queued"
    queued["_jobledger"].update(attempts=0, worker=None)
    _write_job(qdir, queued)
    if with_index:
        (qdir / "queue.json").write_text(
            json.dumps({"running": ["k1", "odd", "k2"], "queued": ["k3"]})
        )
    q = JobQueue(qdir, durability="flush")
    assert q.counts()["Running"] == 3  # reading recovers nothing
    q.recover()  # as a writer's first use does
    assert q.counts()["Queued"] == 4  # recovered all three Running jobs
    recovered = [j.job_id for j in q.list(JobStatus.QUEUED)]
    assert recovered == ["k1", "odd", "k2", "k3"]
    odd = q.get("odd")
    assert odd.known_type is False and odd.payload == {"blob": {"x": [1, 2]}}
    assert "gone-host-1-deadbeef" in odd.error_message

    seen = []
    Worker(
        q, {"RegressionKnownJob": lambda job: seen.append(job.payload)}, handle_signals=False
    ).run(until_empty=True)
    assert seen == [KnownJob("a", 2), KnownJob("b", 3), KnownJob("c", 1)]
    assert q.get("odd").status is JobStatus.QUEUED  # kept, not dropped, not failed
    assert (qdir / "jobs" / "odd.json").exists()
    job = q.claim()
    assert job.job_id == "odd" and job.known_type is False
    assert job.type == "MysteryJob" and job.payload == {"blob": {"x": [1, 2]}}
    assert job.attempts == 2
    q.complete("odd", "handled by hand")
    assert json.loads((qdir / "jobs" / "odd.json").read_text())["blob"] == {"x": [1, 2]}
    log_run(log, "x")
    q.close()


# (d) queue.json rebuilt from every job ever seen on every change ---------------------------


def test_d_queue_json_holds_only_live_ids_and_does_not_grow_with_history(tmp_path):
    qdir = tmp_path / "q"
    q = JobQueue(qdir, durability="flush")
    q.enqueue({"type": "T"}, job_id="live-0")
    size_before = (qdir / "queue.json").stat().st_size
    q.enqueue_many([{"type": "T"}] * 300, priority=1)
    while (job := q.claim()) is not None and job.job_id != "live-0":
        q.complete(job.job_id)
    q.enqueue({"type": "T"}, job_id="live-1")
    q.checkpoint()  # 600 changes in a burst: the journal holds the last ones until now
    doc = queue_doc(qdir)
    assert doc["running"] == ["live-0"]
    assert doc["queued"] == ["live-1"]
    assert doc["finished"]["Completed"] == 300
    # 300 finished jobs later the index is the same size but for one id and a count.
    size_after = (qdir / "queue.json").stat().st_size
    assert size_after - size_before < 40, (size_before, size_after)
    assert len(list((qdir / "jobs").glob("*.json"))) == 302  # history stays in job files
    q.close()


# (e) job files outside queue.json ignored --------------------------------------------------


def _queued_doc(job_id: str, seq: int, **payload) -> dict:
    doc = _running_doc(job_id, "T", seq, **payload)
    doc["status"] = "Queued"
    doc["_jobledger"].update(attempts=0, worker=None)
    return doc


def test_e_a_job_file_not_listed_in_queue_json_is_found_and_served(tmp_path):
    qdir = tmp_path / "q"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="listed")
    _write_job(qdir, _queued_doc("dropped", 1, note="put here by hand"))
    assert "dropped" not in _ids_in_index(qdir)
    with JobQueue(qdir, durability="flush") as q:
        assert [j.job_id for j in q.list(JobStatus.QUEUED)] == ["dropped", "listed"]
        assert q.claim().job_id == "dropped"
    assert "dropped" in _ids_in_index(qdir)


def test_e_a_job_file_with_an_old_mtime_is_found_too(tmp_path):
    """A job file restored with its times kept (cp -p, rsync -a, tar x) is still a job."""
    qdir = tmp_path / "q"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="listed")
    src = tmp_path / "backup.json"
    src.write_text(json.dumps(_queued_doc("restored", 1)))
    old = time.time() - 3600
    os.utime(src, (old, old))
    shutil.copy2(src, qdir / "jobs" / "restored.json")
    with JobQueue(qdir, durability="flush") as q:
        assert {j.job_id for j in q.list(JobStatus.QUEUED)} == {"restored", "listed"}


def test_e_deleting_queue_json_loses_nothing(tmp_path):
    qdir = tmp_path / "q"
    with JobQueue(qdir, durability="flush") as q:
        ids = q.enqueue_many([{"type": "T", "i": i} for i in range(5)])
        first = q.claim()
        q.complete(first.job_id)
    (qdir / "queue.json").unlink()
    with JobQueue(qdir, durability="flush") as q:
        assert [j.job_id for j in q.list(JobStatus.QUEUED)] == ids[1:]
        assert q.counts()["Completed"] == 1
        served = []
        while (job := q.claim()) is not None:
            served.append(job.job_id)
            q.complete(job.job_id)
        assert served == ids[1:]
    assert json.loads((qdir / "queue.json").read_text())["queued"] == []


def _enqueue_and_die_before_the_index(qdir: Path):
    def target(chan: Channel) -> None:
        queue = JobQueue(qdir, durability="fsync")
        queue.counts()  # opened
        # Writing the job file passes files.temp_written once; the index write is next.
        arm("files.temp_written", 2)
        queue.enqueue({"type": "T"}, job_id="orphan")
        chan.send("not killed")

    return target


def test_e_an_enqueue_killed_before_its_index_write_is_not_lost_later(tmp_path):
    """The enqueuer dies between the job file and queue.json. A process that was already
    running goes on writing queue.json (without the orphan) for a long time; a queue opened
    afterwards must still find the job (or the enqueue must not have stored it at all)."""
    qdir = tmp_path / "q"
    busy = JobQueue(qdir, durability="flush")
    busy.enqueue({"type": "T"}, job_id="before")
    child = Child(_enqueue_and_die_before_the_index(qdir))
    assert child.drain() == []
    assert os.WIFSIGNALED(child.wait())
    busy.enqueue({"type": "T"}, job_id="after")
    # ...much later: the index written by the busy process is well newer than the orphan.
    later = time.time() + 3600
    os.utime(qdir / "queue.json", (later, later))
    busy.close()
    stored = (qdir / "jobs" / "orphan.json").exists()
    with JobQueue(qdir, durability="flush") as q:
        queued = {j.job_id for j in q.list(JobStatus.QUEUED)}
    assert queued == ({"before", "after", "orphan"} if stored else {"before", "after"})


# (f) a job that crashed the host requeued forever ------------------------------------------


def _host_killer(qdir: Path, log: Path):
    def target(chan: Channel) -> None:
        queue = JobQueue(qdir, durability="flush")
        chan.send(f"worker {queue.worker_id}")

        def handler(job: jobledger.Job) -> None:
            log_run(log, job.job_id)
            os.kill(os.getpid(), 9)  # the job takes the whole host process down

        Worker(queue, {"T": handler}, handle_signals=False).run(until_empty=True)
        chan.send("returned")

    return target


def test_f_a_job_that_kills_its_worker_every_time_ends_failed_after_max_attempts(tmp_path):
    qdir, log = tmp_path / "q", tmp_path / "exec.log"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="bomb", max_attempts=3)
        q.enqueue({"type": "T"}, job_id="fine", priority=-1)
    workers = []
    for _ in range(3):
        child = Child(_host_killer(qdir, log))
        workers.append(child.read_until("worker "))
        assert child.drain() == []
        assert os.WIFSIGNALED(child.wait())
    assert runs(log) == {"bomb": 3}
    with JobQueue(qdir, durability="flush") as q:
        bomb = q.get("bomb")
        assert bomb.status is JobStatus.RUNNING  # nobody has looked yet
        q.recover()
        bomb = q.get("bomb")
        assert bomb.status is JobStatus.FAILED
        assert bomb.attempts == 3
        assert workers[-1] in bomb.error_message
        assert "died" in bomb.error_message
        # Not served again: the next worker gets the other job.
        ran = []
        Worker(q, {"T": lambda job: ran.append(job.job_id)}, handle_signals=False).run(
            until_empty=True
        )
        assert ran == ["fine"]
    assert runs(log) == {"bomb": 3}


def _retry_and_die_between_writes(qdir: Path):
    def target(chan: Channel) -> None:
        queue = JobQueue(qdir, durability="fsync")
        queue.counts()  # opened
        arm("files.temp_written", 2)  # the second of the retry's two writes
        queue.retry("failed")
        chan.send("not killed")

    return target


def test_e_a_retry_killed_between_its_writes_leaves_no_unlisted_live_job(tmp_path):
    qdir = tmp_path / "q"
    busy = JobQueue(qdir, durability="flush")
    busy.enqueue({"type": "T"}, job_id="failed", max_attempts=1)
    busy.fail(busy.claim().job_id, "boom")
    assert busy.get("failed").status is JobStatus.FAILED
    child = Child(_retry_and_die_between_writes(qdir))
    assert child.drain() == []
    assert os.WIFSIGNALED(child.wait())
    busy.enqueue({"type": "T"}, job_id="after")
    later = time.time() + 3600
    os.utime(qdir / "queue.json", (later, later))
    busy.close()
    on_disk = job_files(qdir)["failed"]["status"]
    with JobQueue(qdir, durability="flush") as q:
        queued = {j.job_id for j in q.list(JobStatus.QUEUED)}
        assert ("failed" in queued) == (on_disk == "Queued"), on_disk
        assert q.get("failed").status.value == on_disk
        counts = q.counts()
    assert counts["Queued"] == len(queued)
    assert counts["Failed"] == (on_disk == "Failed")


def test_a_generated_id_is_not_looked_up_but_a_given_one_still_is(tmp_path, monkeypatch):
    # A random UUID cannot name a stored job, so enqueue skips the read that makes a
    # given id idempotent; a given id that exists (here finished, so out of the index)
    # must still be found on disk.
    q = JobQueue(tmp_path / "q", durability="flush")
    q.enqueue({"type": "T"}, job_id="given")
    q.complete(q.claim().job_id)
    reads: list[str] = []
    real = q.backend._read
    monkeypatch.setattr(q.backend, "_read", lambda job_id: reads.append(job_id) or real(job_id))
    generated = q.enqueue({"type": "T"})
    assert reads == []
    assert q.enqueue({"type": "T"}, job_id="given") == "given"
    assert reads == ["given"]
    assert q.get("given").status is JobStatus.COMPLETED
    assert q.counts() == {**q.counts(), "Queued": 1, "Completed": 1}
    assert q.get(generated).status is JobStatus.QUEUED
    q.close()
