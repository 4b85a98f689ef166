"""SIGKILL of worker processes at random moments, hundreds of times.

Each scenario enqueues jobs, then again and again forks a worker process and SIGKILLs it
after a random number of "started" lines (plus a random spin, so the kill lands anywhere
in the claim/complete write sequence). After every kill it checks, from the job files,
which jobs the next worker must serve first (those left Running, then the recovered ones)
and that the next worker's claims come exactly in that order. At the end every job is
Completed with its result, none lost, and a job was started more than once only if a
worker died while running it.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import pytest

import jobledger
from jobledger import JobQueue, Worker
from tests._child import Channel, Child

from ._procs import job_files, log_run, queue_doc, runs

SCENARIOS = 12
KILLS_PER_SCENARIO = 20  # 240 SIGKILLs in the default run
BATCH = 6


def _child(qdir: Path, log: Path, mode: str):
    def target(chan: Channel) -> None:
        queue = JobQueue(qdir, durability="flush", recover_every=0)

        def handler(job: jobledger.Job) -> dict[str, str]:
            log_run(log, job.job_id)  # at handler start: one line per run
            chan.send(f"run {job.job_id}")
            return {"ok": job.job_id, "n": job.payload["n"]}

        if mode == "worker":
            Worker(queue, {"T": handler}, handle_signals=False, poll_interval=0.01).run(
                until_empty=True
            )
        else:
            while (job := queue.claim()) is not None:
                queue.complete(job.job_id, handler(job))
        chan.send("done")

    return target


def _expected_order(qdir: Path) -> tuple[list[str], set[str]]:
    """Live jobs in the order a fresh worker must claim them, and the ones served first."""
    live = {i: d for i, d in job_files(qdir).items() if d["status"] in ("Queued", "Running")}
    front = {i for i, d in live.items() if d["status"] == "Running" or d["_jobledger"]["recovered"]}
    order = sorted(live, key=lambda i: (i not in front, live[i]["_jobledger"]["seq"]))
    return order, front


@pytest.mark.parametrize("seed", range(SCENARIOS))
def test_random_sigkills_lose_nothing_and_serve_the_interrupted_first(tmp_path, seed):
    rng = random.Random(seed)
    qdir = tmp_path / "q"
    log = tmp_path / "exec.log"
    mode = "worker" if seed % 2 else "loop"
    enqueued: list[str] = []
    died: Counter[str] = Counter()
    kills = 0

    def add_batch() -> None:
        with JobQueue(qdir, durability="flush") as q:
            base = len(enqueued)
            ids = [f"job-{base + i:03d}" for i in range(BATCH)]
            q.enqueue_many(
                [{"type": "T", "n": base + i} for i in range(BATCH)], job_ids=ids, max_attempts=1000
            )
            enqueued.extend(ids)

    add_batch()
    while kills < KILLS_PER_SCENARIO:
        order, front = _expected_order(qdir)
        if not order:
            add_batch()
            continue
        child = Child(_child(qdir, log, mode))
        want = rng.randint(0, len(order))
        claimed = []
        while len(claimed) < want:
            text = child.readline()
            if text is None:
                break
            assert text.startswith("run "), text
            claimed.append(text[4:])
        for _ in range(rng.randrange(3000)):  # randomise where in the writes it dies
            pass
        os.kill(child.pid, 9)
        status = child.wait()
        assert not child.errors, "\n".join(child.errors)
        # The claims came exactly in serving order: interrupted jobs first.
        assert claimed == order[: len(claimed)], (claimed, order, front)
        if os.WIFSIGNALED(status):
            kills += 1
            for job_id, doc in job_files(qdir).items():
                if doc["status"] == "Running":
                    died[job_id] += 1
        else:
            assert os.waitstatus_to_exitcode(status) == 0

    # A new worker finishes everything, interrupted jobs first.
    order, front = _expected_order(qdir)
    final = Child(_child(qdir, log, mode))
    claimed = [t[4:] for t in final.drain() if t.startswith("run ")]
    final.check()
    assert claimed == order

    docs = job_files(qdir)
    assert sorted(docs) == sorted(enqueued), "a job file was lost"
    for job_id, doc in docs.items():
        assert doc["status"] == "Completed", (job_id, doc)
        assert doc["_jobledger"]["result"] == {"ok": job_id, "n": doc["n"]}
    counts = runs(log)
    for job_id in enqueued:
        assert counts[job_id] >= 1, f"{job_id} completed without its handler running"
        assert counts[job_id] <= 1 + died[job_id], (
            f"{job_id} ran {counts[job_id]} times but its worker died while running it "
            f"only {died[job_id]} times"
        )
    assert queue_doc(qdir)["running"] == [] and queue_doc(qdir)["queued"] == []
    with JobQueue(qdir, durability="flush") as q:
        assert q.counts()["Completed"] == len(enqueued)
        assert q.counts()["Running"] == q.counts()["Queued"] == 0
