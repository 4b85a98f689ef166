"""Worker: runs a queue's jobs with handlers, in threads, and stops gracefully.

SIGINT or SIGTERM: stop claiming, let running jobs finish within ``grace_period``, give the
rest back to the queue (served first next time, the interrupted attempt not counted), and
return, so the program exits 0. A second signal stops waiting at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import FrameType
from typing import Any

from ._durations import to_seconds
from ._errors import JobConflict, JobLedgerError
from ._jobs import Job
from ._log import log
from ._queue import JobQueue, json_ready

__all__ = ["Worker", "stop_signals_to"]

Handler = Callable[[Job], Any]


@contextlib.contextmanager
def stop_signals_to(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """Inside the block SIGINT and SIGTERM call ``handler``; the previous handlers come
    back after it. Main thread only (Python's rule for signal handlers)."""
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Worker:
    """Serve ``queue`` with ``handlers`` (job type -> ``handler(job)``).

    A handler's return value is stored as the job's result; an exception fails the job with
    its message (retried until the job's ``max_attempts``). ``concurrency`` threads run jobs
    side by side. ``poll_interval`` (a timedelta or seconds, as ``grace_period``) is how
    long an idle worker waits before looking again;
    it wakes at once when a job is enqueued (or retried, requeued, recovered) through the
    same queue object or, on PostgreSQL, by any process (``JobQueue.watch``).

    ``batch_size`` > 1 makes each thread claim up to that many jobs at once and record
    their completions together (one lock or one transaction, one durable write), for many
    short jobs. The jobs of a batch wait Running (under this live worker) until their turn,
    and a completion is recorded at the end of its batch: if the process dies before that,
    the job runs again, as any job whose completion was not recorded does.
    """

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        concurrency: int = 1,
        *,
        poll_interval: dt.timedelta | float = 0.2,
        grace_period: dt.timedelta | float = 30.0,
        handle_signals: bool = True,
        batch_size: int = 1,
    ) -> None:
        if concurrency < 1:
            raise JobLedgerError(f"concurrency must be at least 1, got {concurrency}")
        if batch_size < 1:
            raise JobLedgerError(f"batch_size must be at least 1, got {batch_size}")
        if not handlers:
            raise JobLedgerError("a Worker needs at least one handler (job type -> function)")
        self.queue = queue
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.poll_interval = to_seconds(poll_interval, "poll_interval")
        self.grace_period = to_seconds(grace_period, "grace_period")
        self.handle_signals = handle_signals
        self.batch_size = batch_size
        self._done: list[tuple[str, Any]] = []  # finished, completion not yet recorded
        self._claiming = 0  # threads between a claim and registering what it gave them
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._settled = threading.Event()  # wakes run()'s wait: a stop, or the queue drained
        self._running: dict[str, threading.Thread] = {}
        self._guard = threading.Lock()
        self._idle = 0
        self.processed = 0

    def stop(self) -> None:
        """Ask the worker to stop gracefully (thread-safe; what SIGINT/SIGTERM do)."""
        self._stopping.set()
        self._wake.set()
        self._settled.set()

    def wake(self) -> None:
        """Look for jobs now instead of after the poll interval."""
        self._wake.set()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return
        seen = {"count": 0}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            seen["count"] += 1
            log.info(
                "Received %s: stopping (running jobs get %.0fs to finish)",
                signal.Signals(signum).name,
                self.grace_period,
            )
            if seen["count"] > 1:
                self.grace_period = 0.0
            self.stop()

        with stop_signals_to(on_signal):
            yield

    def run(self, until_empty: bool = False) -> None:
        """Serve jobs until stopped (or, with ``until_empty``, until no job of a handled
        type is queued and none is running here)."""
        types = frozenset(self.handlers)
        log.info(
            "Worker %s serving %s with %d thread(s)",
            self.queue.worker_id,
            ", ".join(sorted(types)),
            self.concurrency,
        )
        done = threading.Event()
        unwatch = self.queue.watch(self.wake)
        try:
            self._serve(types, until_empty, done)
        finally:
            unwatch()
        log.info("Worker %s stopped after %d job(s)", self.queue.worker_id, self.processed)

    def _serve(self, types: frozenset[str], until_empty: bool, done: threading.Event) -> None:
        with self._signals():
            threads = [
                threading.Thread(
                    target=self._loop,
                    args=(types, until_empty, done),
                    name=f"jobledger-worker-{i}",
                    daemon=True,
                )
                for i in range(self.concurrency)
            ]
            for t in threads:
                t.start()
            while not self._stopping.is_set() and not done.is_set():
                self._settled.wait(0.5)
                self._settled.clear()
            self._stopping.set()
            self._wake.set()
            deadline = time.monotonic() + self.grace_period
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            self._give_back()

    def _give_back(self) -> None:
        self._record_done()
        with self._guard:
            leftover = list(self._running)
        for job_id in leftover:
            try:
                self.queue.requeue(job_id)
                log.warning("Job %s did not finish within the grace period; requeued", job_id)
            except JobConflict:
                pass  # it finished (or was taken over) meanwhile

    def _loop(self, types: frozenset[str], until_empty: bool, done: threading.Event) -> None:
        me = threading.current_thread()
        while not self._stopping.is_set():
            # Counted as busy from before the claim until its jobs are registered as
            # running: another thread finding the queue empty meanwhile must not call it
            # drained (and stop this worker) while this one holds jobs it has not started.
            with self._guard:
                self._claiming += 1
            jobs: list[Job] = []
            try:
                jobs = self.queue.claim_many(self.batch_size, types=types)
            finally:
                with self._guard:
                    for job in jobs:
                        self._running[job.job_id] = me
                    self._claiming -= 1
            if not jobs:
                self.queue.checkpoint()  # idle: leave queue.json exact for anyone looking
                if until_empty and self._drained(types):
                    done.set()
                    self._settled.set()
                    return
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                continue
            for i, job in enumerate(jobs):
                if self._stopping.is_set():
                    self._return_unstarted(jobs[i:])
                    break
                try:
                    self._execute(job)
                finally:
                    with self._guard:
                        self._running.pop(job.job_id, None)
                if self._stopping.is_set():
                    self._record_done()  # before the grace period can run out
            self._record_done()

    def _return_unstarted(self, jobs: list[Job]) -> None:
        """Give back claimed jobs this worker will not start (it is stopping)."""
        for job in jobs:
            with self._guard:
                if self._running.pop(job.job_id, None) is None:
                    continue  # already given back by run()'s grace period
            with contextlib.suppress(JobConflict):  # finished or taken over meanwhile
                self.queue.requeue(job.job_id)

    def _record_done(self) -> None:
        """Record the completions that finished jobs are waiting for, as one batch."""
        with self._guard:
            pending, self._done = self._done, []
        if not pending:
            return
        try:
            if len(pending) == 1:
                self.queue.complete(*pending[0])
                recorded = 1
            else:
                recorded = len(self.queue._complete_many(pending))
        except JobConflict as conflict:
            recorded = len(pending) - max(1, len(conflict.refused))
            log.warning("%s", conflict)
        with self._guard:
            self.processed += recorded

    def _drained(self, types: frozenset[str]) -> bool:
        with self._guard:
            busy = bool(self._running) or self._claiming > 0
        if busy or self.queue.pending_count(types):
            return False
        # Nothing queued, but a dead peer's job may still read Running, not yet recovered
        # (recovery while claiming waits for recover_every): recover before calling it empty.
        self.queue.recover()
        return self.queue.pending_count(types) == 0

    def _execute(self, job: Job) -> None:
        """Run the job's handler: a failure is recorded now, a success queued for
        :meth:`_record_done` (at once when batches are of one job)."""
        handler = self.handlers[job.type]
        log.info("Starting job %s (%s), attempt %d", job.job_id, job.type, job.attempts)
        try:
            result = handler(job)
        except Exception as exc:
            self._fail(job, exc)
            return
        try:
            json_ready(result, "the handler's result")
        except TypeError as exc:
            self._fail(job, str(exc))
            return
        with self._guard:
            self._done.append((job.job_id, result))
        if self.batch_size == 1:
            self._record_done()

    def _fail(self, job: Job, error: Exception | str) -> None:
        try:
            self.queue.fail(job.job_id, error)
        except JobConflict as conflict:
            log.warning("%s", conflict)
