"""Model-based test of the job queue (hypothesis ``RuleBasedStateMachine``), on every backend.

Two workers share one queue, as two processes would: ``main`` and ``peer``, each its own
``JobQueue`` on the same folder or database. Random sequences of queue operations by
either (enqueue with given, embedded or generated ids, enqueue_many, claim and claim_many
with type filters, complete and complete_many, a Worker's completions recorded with its
next claim, fail with backoff on an injected FakeClock, requeue, snooze, cancel, retry, prune,
get, recover, checkpoint) and of crashes are
run against the real queue and against a small in-memory model of what it must hold.
The crash rule abandons one worker's ``JobQueue`` without ``close()``, the way a killed
process leaves it (see ``_crash``), or closes it gracefully, and opens a new one in its
place; the other worker lives on. A later rule tries a late result from the dead worker.

What this proves, after every step, for any sequence the search finds:

- ``counts()`` and ``list(Queued)`` (as both workers see them), ``pending_count`` and
  ``list(status)`` for every status match the model, and ``list()`` holds every job once,
  with its status, attempts, priority, payload, result, error, run_after, finished time
  and (while Running) worker as the model says: nothing acknowledged (an enqueue, a
  completion, a failure, a cancel) is lost, by a crash or otherwise;
- serving order is recovered jobs first, then higher priority, then FIFO (a failed job
  waiting for its retry keeps its place; a retried job goes to the back), and a claim by
  either worker takes the due jobs in that order, each job once;
- reopening after a crash returns the dead worker's Running jobs to the front of the
  queue, the attempt counted, and fails those past ``max_attempts``; the live worker's
  Running jobs are never taken;
- a cancel of a Running job only asks (it stays Running under its worker); such a job is
  never run again: a failure, a requeue or its worker's death ends it Cancelled, while a
  completion completes it; a retry clears the request;
- ``JobConflict`` (or ``JobNotFound``) is raised exactly when the model says the transition
  is not allowed (completing, failing or requeueing a job that is not Running under this
  worker, cancelling a finished job, retrying a live one, any late result of a dead
  worker), and then nothing changes; ``complete_many`` records every allowed completion
  and reports exactly the refused ones, and so does a Worker's group commit, whose claim
  takes the due jobs as ``claim_many`` would. A worker's completion, failure or requeue of
  a job it claimed is written by the backend's swap, fenced by the stored claim; any other
  (another worker's job, the dead worker's late result) takes the locking path.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from jobledger import Job, JobConflict, JobNotFound, JobQueue, JobStatus
from jobledger._clock import iso_utc
from tests.conftest import FakeClock
from tests.model._storage import Storage, StorageFactory, model_settings

Q, R, C, F, X = (
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)
FINISHED = (C, F, X)
WORKERS = ["main", "peer"]
POOL = ["j0", "j1", "j2", "j3", "j4", "j5"]  # explicit ids; generated ones are added
TYPES = ["A", "B"]
RETRY_DELAY, MAX_RETRY_DELAY = 1.0, 1.5  # backoff: 1 s, then capped at 1.5 s
DIED = "<died>"  # the model's error for a job recovered from a dead worker
CANCELLED = "<cancelled>"  # the model's error for a job its cancel request ended

workers = st.sampled_from(WORKERS)
type_filters = st.sampled_from([None, ["A"], ["B"], ["A", "B"]])
priorities = st.sampled_from([0, 0, 1, 5, -1])
max_attempts = st.sampled_from([1, 2, 3, 5])
delays = st.sampled_from([None, None, 0, 2])
results = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["ok", [1, {"x": None}]]))
errors = st.sampled_from(["boom", "timeout", ValueError("bad input")])


@dataclass
class MJob:
    """What the model knows of one job."""

    job_id: str
    type: str
    payload: dict[str, Any]
    priority: int
    max_attempts: int
    seq: int
    run_after: dt.datetime | None
    status: JobStatus = Q
    attempts: int = 0
    recovered: bool = False
    finished: dt.datetime | None = None
    result: Any = None
    error: str | None = None
    owner: str | None = None  # the worker ("main" or "peer") running it
    cancel_asked: dt.datetime | None = None  # when a cancel was asked of its worker

    def key(self) -> tuple[int, int, int]:
        return (0 if self.recovered else 1, -self.priority, self.seq)


@dataclass
class QueueModel:
    jobs: dict[str, MJob] = field(default_factory=dict)
    seq: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def queued(self) -> list[MJob]:
        return sorted((j for j in self.jobs.values() if j.status is Q), key=MJob.key)

    def running(self) -> set[str]:
        return {j.job_id for j in self.jobs.values() if j.status is R}

    def finished(self, status: JobStatus | None = None) -> list[MJob]:
        done = [
            j
            for j in self.jobs.values()
            if j.status in FINISHED and (status is None or j.status is status)
        ]
        return sorted(done, key=lambda j: (_iso(j.finished) or "", j.job_id))

    def due(self, now: dt.datetime, types: list[str] | None) -> list[MJob]:
        return [
            j
            for j in self.queued()
            if (j.run_after is None or j.run_after <= now) and (types is None or j.type in types)
        ]

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in JobStatus}
        for j in self.jobs.values():
            out[j.status.value] += 1
        return out

    def refusal(
        self, job_id: str, allowed: tuple[JobStatus, ...], by: str | None = None
    ) -> type[Exception] | None:
        """The error a transition from ``allowed`` statuses must raise, or None. With
        ``by``, the transition is fenced: allowed only to the worker running the job."""
        job = self.jobs.get(job_id)
        if job is None:
            return JobNotFound
        if job.status not in allowed or (by is not None and job.owner != by):
            return JobConflict
        return None

    # -- transitions, applied once the real queue accepted them -----------------------------

    def claim(self, job: MJob, by: str) -> None:
        job.status, job.attempts, job.run_after, job.owner = R, job.attempts + 1, None, by

    def complete(self, job: MJob, result: Any, now: dt.datetime) -> None:
        job.status, job.result, job.finished, job.error, job.owner = C, result, now, None, None

    def ended_cancelled(self, job: MJob, now: dt.datetime) -> None:
        """A cancel-requested job whose attempt ended without a result."""
        job.status, job.finished, job.error, job.owner, job.run_after = (
            X,
            now,
            CANCELLED,
            None,
            None,
        )

    def fail(self, job: MJob, text: str, now: dt.datetime) -> None:
        if job.cancel_asked is not None:
            self.ended_cancelled(job, now)
            return
        job.error, job.owner = text, None
        if job.attempts >= job.max_attempts:
            job.status, job.finished = F, now
            return
        delay = min(MAX_RETRY_DELAY, RETRY_DELAY * 2 ** max(0, job.attempts - 1))
        job.status, job.recovered = Q, False
        job.run_after = now + dt.timedelta(seconds=delay)

    def recover(self, dead: str, now: dt.datetime) -> list[tuple[str, JobStatus]]:
        """The dead worker's Running jobs: back to the front, or Failed past max_attempts."""
        out = []
        for job in self.jobs.values():
            if job.status is R and job.owner == dead:
                job.error, job.owner = DIED, None
                if job.cancel_asked is not None:
                    self.ended_cancelled(job, now)
                elif job.attempts >= job.max_attempts:
                    job.status, job.finished = F, now
                else:
                    job.status, job.recovered = Q, True
                out.append((job.job_id, job.status))
        return sorted(out)


def _iso(moment: dt.datetime | None) -> str | None:
    return iso_utc(moment) if moment is not None else None


def _error_text(error: BaseException | str) -> str:
    return f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error


def _attempt(call: Any) -> tuple[Any, Exception | None]:
    try:
        return call(), None
    except (JobConflict, JobNotFound) as exc:
        return None, exc


def _crash(queue: JobQueue, storage: Storage) -> None:
    """Leave ``queue`` as a killed process leaves it: nothing flushed, nothing closed
    politely; only what the OS (files) or the lease's expiry (PostgreSQL) does on death.

    Files: the worker's liveness lock is an flock, which the OS drops when the process
    dies, leaving the lock file behind: ``release(unlink=False)``. The process's open
    descriptors (the queue lock, the journal) are closed, without the checkpoint that
    ``close()`` would write. PostgreSQL: the heartbeat stops without deleting the worker's
    row, and the row's lease is made to have run out (what a dead worker's row is after
    ``worker_lease`` seconds of silence); the process's connections are closed."""
    if storage.kind == "files":
        lock: Any = queue._worker_lock
        if lock is not None:
            lock.release(unlink=False)
        backend: Any = queue.backend
        with backend._thread_lock:
            for fd in (backend._lock.fd, backend._index.journal.fd):
                if fd is not None:
                    os.close(fd)
            backend._lock.fd = backend._index.journal.fd = None
            backend._index.opened = False
        return
    lease: Any = queue._worker_lock
    if lease is not None and not lease._stop.is_set():
        lease._stop.set()
        lease._thread.join()
        with lease._guard:
            conn, lease._conn = lease._conn, None
        if conn is not None:
            conn.close()
        storage.execute(
            "UPDATE jobledger_workers SET lease_until = clock_timestamp() - interval '1 second'"
            " WHERE worker = %s",
            (queue._worker_id,),
        )
    queue.backend.close()


class QueueMachine(RuleBasedStateMachine):
    def __init__(self, factory: StorageFactory) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.storage = factory.new()
        self.model = QueueModel()
        self.known: list[str] = [*POOL, "missing"]  # ids to pick from, in a stable order
        self.zombie: JobQueue | None = None  # the last crashed (or closed) worker's queue
        self.payloads = 0
        self.queues = {who: self._open() for who in WORKERS}
        # A new database has no tables, and reads never create them: a first write does.
        self.queues[WORKERS[0]].pending_count()

    def _open(self) -> JobQueue:
        return JobQueue(
            self.storage.location,
            durability="flush",
            clock=self.clock,
            retry_delay=RETRY_DELAY,
            max_retry_delay=MAX_RETRY_DELAY,
        )

    def teardown(self) -> None:
        try:
            for queue in self.queues.values():
                queue.close()
            if self.zombie is not None:
                _crash(self.zombie, self.storage)
        finally:
            self.storage.remove()

    @property
    def now(self) -> dt.datetime:
        return self.clock.now()

    def _pick(self, data: st.DataObject, *statuses: JobStatus) -> str:
        """An id: mostly one of a job in ``statuses`` (where the transition may be
        allowed), else any id ever seen, or never stored, or pruned (where it is refused)."""
        jobs = self.model.jobs
        fitting = [i for i in self.known if i in jobs and jobs[i].status in statuses]
        if fitting and data.draw(st.integers(0, 3), label="fitting") > 0:
            return data.draw(st.sampled_from(fitting), label="job id")
        return data.draw(st.sampled_from(self.known), label="job id")

    def _who(self, data: st.DataObject, job_id: str) -> str:
        """The worker to act on ``job_id``: mostly the one running it, if any."""
        job = self.model.jobs.get(job_id)
        if job is not None and job.owner and data.draw(st.integers(0, 3), label="owner") > 0:
            return job.owner
        return data.draw(workers, label="worker")

    def _payload(self, job_type: str) -> dict[str, Any]:
        self.payloads += 1
        return {"type": job_type, "n": self.payloads}

    def _new(self, job_id: str, payload: dict[str, Any], priority: int, ma: int, delay) -> None:
        if job_id not in self.known:
            self.known.append(job_id)
        after = None if delay is None else self.now + dt.timedelta(seconds=delay)
        body = {k: v for k, v in payload.items() if k not in ("type", "job_id")}
        self.model.jobs[job_id] = MJob(
            job_id, payload["type"], body, priority, ma, self.model.next_seq(), after
        )

    def _check_job(self, job: Job, m: MJob) -> None:
        assert (job.job_id, job.status, job.type) == (m.job_id, m.status, m.type)
        assert (job.attempts, job.max_attempts, job.priority) == (
            m.attempts,
            m.max_attempts,
            m.priority,
        ), job.job_id
        assert job.raw == m.payload, job.job_id
        assert job.result == m.result, job.job_id
        assert job.run_after == _iso(m.run_after), job.job_id
        assert job.finished == _iso(m.finished), job.job_id
        assert job.cancel_requested_at == _iso(m.cancel_asked), job.job_id
        if m.error == DIED:
            assert job.error_message is not None and "died" in job.error_message, job
        elif m.error == CANCELLED:
            assert job.error_message is not None, job
            assert "cancelled while running" in job.error_message, job
        else:
            assert job.error_message == m.error, job.job_id
        if m.status is R:
            assert m.owner is not None
            assert job.worker == self.queues[m.owner].worker_id, job.job_id

    def _check_refusal(self, exc: Exception | None, expected: type[Exception] | None) -> None:
        if expected is None:
            assert exc is None, f"refused, but the model allows it: {exc!r}"
        else:
            assert exc is not None, f"allowed, but the model expects {expected.__name__}"
            assert isinstance(exc, expected), repr(exc)
            if expected is JobConflict:
                assert not isinstance(exc, JobNotFound), repr(exc)

    # -- enqueue --------------------------------------------------------------------------

    @rule(
        data=st.data(),
        who=workers,
        how=st.sampled_from(["explicit", "embedded", "generated"]),
        job_type=st.sampled_from(TYPES),
        priority=priorities,
        ma=max_attempts,
        delay=delays,
    )
    def enqueue(self, data, who, how, job_type, priority, ma, delay) -> None:
        payload = self._payload(job_type)
        job_id = None
        if how != "generated":
            job_id = data.draw(st.sampled_from(POOL), label="id")
            if how == "embedded":
                payload["job_id"] = job_id
        got = self.queues[who].enqueue(
            payload,
            job_id=job_id if how == "explicit" else None,
            priority=priority,
            run_after=delay,
            max_attempts=ma,
        )
        if job_id is not None:
            assert got == job_id
        else:
            assert isinstance(got, str) and got and got not in self.model.jobs
        if got not in self.model.jobs:  # an existing id stores nothing
            self._new(got, payload, priority, ma, delay)

    @rule(
        who=workers,
        items=st.lists(
            st.tuples(st.one_of(st.none(), st.sampled_from(POOL)), st.sampled_from(TYPES)),
            min_size=1,
            max_size=4,
        ),
        priority=priorities,
        ma=max_attempts,
        delay=delays,
    )
    def enqueue_many(self, who, items, priority, ma, delay) -> None:
        payloads = [self._payload(t) for _, t in items]
        got = self.queues[who].enqueue_many(
            payloads,
            job_ids=[i for i, _ in items],
            priority=priority,
            run_after=delay,
            max_attempts=ma,
        )
        assert len(got) == len(items)
        for (job_id, _), payload, returned in zip(items, payloads, got, strict=True):
            if job_id is not None:
                assert returned == job_id
            else:
                assert returned not in self.model.jobs
            if returned not in self.model.jobs:  # of an id given twice, the first is stored
                self._new(returned, payload, priority, ma, delay)

    # -- claim ----------------------------------------------------------------------------

    @rule(who=workers, types=type_filters)
    def claim(self, who, types) -> None:
        due = self.model.due(self.now, types)
        job = self.queues[who].claim(types=types)
        if not due:
            assert job is None, f"claimed {job.job_id}, but the model has nothing due"
            return
        assert job is not None, f"nothing claimed, the model expects {due[0].job_id}"
        assert job.job_id == due[0].job_id, (job.job_id, [j.job_id for j in due])
        self.model.claim(due[0], who)
        self._check_job(job, due[0])

    @rule(who=workers, limit=st.integers(1, 4), types=type_filters)
    def claim_many(self, who, limit, types) -> None:
        due = self.model.due(self.now, types)[:limit]
        jobs = self.queues[who].claim_many(limit, types=types)
        assert [j.job_id for j in jobs] == [m.job_id for m in due]
        for job, m in zip(jobs, due, strict=True):
            self.model.claim(m, who)
            self._check_job(job, m)

    # -- finishing ------------------------------------------------------------------------

    @precondition(lambda self: self.model.running())  # a Running job to pick, mostly
    @rule(data=st.data(), result=results)
    def complete(self, data, result) -> None:
        job_id = self._pick(data, R)
        who = self._who(data, job_id)
        expected = self.model.refusal(job_id, (R,), by=who)
        job, exc = _attempt(lambda: self.queues[who].complete(job_id, result))
        self._check_refusal(exc, expected)
        if expected is None:
            self.model.complete(self.model.jobs[job_id], result, self.now)
            self._check_job(job, self.model.jobs[job_id])

    @rule(data=st.data())
    def complete_many(self, data) -> None:
        n = data.draw(st.integers(0, 4), label="batch size")
        pairs = [(self._pick(data, R), data.draw(results, label="result")) for _ in range(n)]
        who = self._who(data, pairs[0][0]) if pairs else data.draw(workers, label="worker")
        refused: dict[str, type[Exception]] = {}
        done = []
        for job_id, result in pairs:  # in order: an id given twice completes once
            expected = self.model.refusal(job_id, (R,), by=who)
            if expected is None:
                self.model.complete(self.model.jobs[job_id], result, self.now)
                done.append(job_id)
            else:
                refused.setdefault(job_id, expected)
        try:
            jobs = self.queues[who].complete_many(pairs)
        except JobConflict as exc:
            assert refused, f"refused, but the model allows the whole batch: {exc}"
            assert set(exc.refused) == set(refused), (exc.refused, refused)
            for job_id, kind in refused.items():
                self._check_refusal(exc.refused[job_id], kind)
        else:
            assert not refused, f"accepted, but the model refuses {sorted(refused)}"
            assert [j.job_id for j in jobs] == done
            for job in jobs:
                self._check_job(job, self.model.jobs[job.job_id])

    @rule(data=st.data(), limit=st.integers(1, 3), types=type_filters)
    def record_and_claim(self, data, limit, types) -> None:
        """A Worker's group commit: completions recorded with the next claim, in one
        statement (PostgreSQL) or one lock hold (files)."""
        n = data.draw(st.integers(0, 3), label="batch size")
        pairs = [(self._pick(data, R), data.draw(results, label="result")) for _ in range(n)]
        who = self._who(data, pairs[0][0]) if pairs else data.draw(workers, label="worker")
        refused: dict[str, type[Exception]] = {}
        done = 0
        for job_id, result in pairs:
            expected = self.model.refusal(job_id, (R,), by=who)
            if expected is None:
                self.model.complete(self.model.jobs[job_id], result, self.now)
                done += 1
            else:
                refused.setdefault(job_id, expected)
        due = self.model.due(self.now, types)[:limit]
        wanted = frozenset(types) if types is not None else None
        jobs, recorded, conflict = self.queues[who]._record_and_claim(pairs, limit, wanted)
        assert recorded == done
        if refused:
            assert conflict is not None and set(conflict.refused) == set(refused)
            for job_id, kind in refused.items():
                self._check_refusal(conflict.refused[job_id], kind)
        else:
            assert conflict is None, conflict
        assert [j.job_id for j in jobs] == [m.job_id for m in due]
        for job, m in zip(jobs, due, strict=True):
            self.model.claim(m, who)
            self._check_job(job, m)

    @precondition(lambda self: self.model.running())  # a Running job to pick, mostly
    @rule(data=st.data(), error=errors)
    def fail(self, data, error) -> None:
        job_id = self._pick(data, R)
        who = self._who(data, job_id)
        expected = self.model.refusal(job_id, (R,), by=who)
        job, exc = _attempt(lambda: self.queues[who].fail(job_id, error))
        self._check_refusal(exc, expected)
        if expected is None:
            self.model.fail(self.model.jobs[job_id], _error_text(error), self.now)
            self._check_job(job, self.model.jobs[job_id])

    @precondition(lambda self: self.model.running())  # a Running job to pick, mostly
    @rule(data=st.data())
    def requeue(self, data) -> None:
        job_id = self._pick(data, R)
        who = self._who(data, job_id)
        expected = self.model.refusal(job_id, (R,), by=who)
        job, exc = _attempt(lambda: self.queues[who].requeue(job_id))
        self._check_refusal(exc, expected)
        if expected is None:
            m = self.model.jobs[job_id]
            if m.cancel_asked is not None:
                self.model.ended_cancelled(m, self.now)
            else:
                m.status, m.attempts, m.recovered, m.owner = Q, max(0, m.attempts - 1), True, None
            self._check_job(job, m)

    @precondition(lambda self: self.model.running())  # a Running job to pick, mostly
    @rule(data=st.data(), seconds=st.sampled_from([0, 1, 3]))
    def snooze(self, data, seconds) -> None:
        job_id = self._pick(data, R)
        who = self._who(data, job_id)
        expected = self.model.refusal(job_id, (R,), by=who)
        job, exc = _attempt(lambda: self.queues[who].snooze(job_id, seconds))
        self._check_refusal(exc, expected)
        if expected is None:
            m = self.model.jobs[job_id]
            if m.cancel_asked is not None:
                self.model.ended_cancelled(m, self.now)
            else:  # later, uncounted, no error of its own: the last one's stays
                m.status, m.attempts, m.recovered, m.owner = Q, max(0, m.attempts - 1), False, None
                m.run_after = self.now + dt.timedelta(seconds=seconds)
            self._check_job(job, m)

    @precondition(lambda self: self.model.jobs)
    @rule(data=st.data(), who=workers)
    def cancel(self, data, who) -> None:
        job_id = self._pick(data, Q, R)
        expected = self.model.refusal(job_id, (Q, R))  # not fenced: any worker may cancel
        job, exc = _attempt(lambda: self.queues[who].cancel(job_id))
        self._check_refusal(exc, expected)
        if expected is None:
            m = self.model.jobs[job_id]
            if m.status is Q:
                m.status, m.finished, m.owner = X, self.now, None
            elif m.cancel_asked is None:  # Running: its worker is asked to stop it
                m.cancel_asked = self.now
            self._check_job(job, m)

    @precondition(lambda self: self.model.jobs)
    @rule(data=st.data(), who=workers)
    def retry(self, data, who) -> None:
        job_id = self._pick(data, F, X)
        expected = self.model.refusal(job_id, (F, X))
        job, exc = _attempt(lambda: self.queues[who].retry(job_id))
        self._check_refusal(exc, expected)
        if expected is None:
            m = self.model.jobs[job_id]
            m.status, m.attempts, m.finished, m.run_after = Q, 0, None, None
            m.error, m.recovered, m.seq = None, False, self.model.next_seq()
            m.cancel_asked = None
            self._check_job(job, m)

    # -- time, maintenance, reading -------------------------------------------------------

    @rule(seconds=st.sampled_from([1, 2, 4]))
    def advance_clock(self, seconds) -> None:
        self.clock.advance(seconds=seconds)

    @rule(who=workers, older_than=st.sampled_from([0, 1, 3, 60]))
    def prune(self, who, older_than) -> None:
        cutoff = _iso(self.now - dt.timedelta(seconds=older_than))
        doomed = [j.job_id for j in self.model.finished() if _iso(j.finished) < cutoff]
        assert self.queues[who].prune(older_than) == len(doomed)
        for job_id in doomed:
            del self.model.jobs[job_id]

    @rule(data=st.data(), who=workers)
    def get(self, data, who) -> None:
        job_id = self._pick(data, *JobStatus)
        job = self.queues[who].get(job_id)
        if job_id not in self.model.jobs:
            assert job is None
        else:
            assert job is not None
            self._check_job(job, self.model.jobs[job_id])

    @rule(who=workers)
    def checkpoint(self, who) -> None:
        """queue.json brought up to date (files): a later crash finds it, not a journal."""
        self.queues[who].checkpoint()

    @rule(who=workers)
    def recover_while_both_live(self, who) -> None:
        """Both workers are alive: a recovery takes nothing from either."""
        assert self.queues[who].recover() == []

    # -- crashes --------------------------------------------------------------------------

    @rule(
        who=workers,
        graceful=st.booleans(),
        first_use=st.sampled_from(["recover", "counts", "claim"]),
    )
    def crash_and_reopen(self, who, graceful, first_use) -> None:
        """Abandon a worker's queue (a killed process) or close it, and open it anew: the
        first use of the new one returns the old worker's Running jobs to the queue; the
        other worker's are left alone."""
        if self.zombie is not None:
            _crash(self.zombie, self.storage)
        old = self.queues[who]
        if graceful:
            old.close()
        else:
            _crash(old, self.storage)
        self.zombie, self.queues[who] = old, self._open()
        expected = self.model.recover(who, self.now)
        if first_use == "recover":
            got = self.queues[who].recover()
            assert sorted((j.job_id, j.status) for j in got) == expected
        elif first_use == "counts":
            # counts() only reads (it recovers nothing); pending_count() is a first use.
            self.queues[who].pending_count()
            assert self.queues[who].counts() == self.model.counts()
        else:
            self.claim(who, None)

    @rule(data=st.data(), result=results)
    def late_result_of_the_dead_worker(self, data, result) -> None:
        """The worker that crashed (presumed dead) completes a job late: always refused,
        and nothing changes (its jobs were recovered when it was replaced)."""
        if self.zombie is None:
            return
        job_id = self._pick(data, R)
        expected = JobNotFound if job_id not in self.model.jobs else JobConflict
        _, exc = _attempt(lambda: self.zombie.complete(job_id, result))
        self._check_refusal(exc, expected)

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def matches_the_model(self) -> None:
        model = self.model
        queued = [j.job_id for j in model.queued()]
        for q in self.queues.values():  # both workers see the same queue
            assert q.counts() == model.counts()
            assert [j.job_id for j in q.list(Q)] == queued
        for types in (None, ["A"], ["B"]):
            assert self.queues["peer"].pending_count(types) == len(
                [j for j in model.queued() if types is None or j.type in types]
            )
        q = self.queues["main"]
        running = q.list(R)
        assert sorted(j.job_id for j in running) == sorted(model.running())
        for status in FINISHED:
            assert [j.job_id for j in q.list(status)] == [
                j.job_id for j in model.finished(status)
            ], status
        everything = q.list()
        ids = [j.job_id for j in everything]
        assert len(ids) == len(set(ids)), f"a job listed twice: {ids}"
        assert set(ids) == set(model.jobs), "a job lost, or one the model does not know"
        n = len(running)
        assert set(ids[:n]) == model.running()
        assert ids[n:] == queued + [j.job_id for j in model.finished()]
        for job in everything:
            self._check_job(job, model.jobs[job.job_id])


SETTINGS = {"files": model_settings(100), "postgres": model_settings(20)}


def test_queue_matches_its_model(model_storage: StorageFactory) -> None:
    run_state_machine_as_test(
        lambda: QueueMachine(model_storage), settings=SETTINGS[model_storage.kind]
    )
