"""Worker: runs a queue's jobs with handlers, in threads, and stops gracefully.

SIGINT or SIGTERM: stop claiming, let running jobs finish within ``grace_period``, give the
rest back to the queue (served first next time, the interrupted attempt not counted), and
return, so the program exits 0. A second signal stops waiting at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import FrameType
from typing import Any

from ._errors import JobConflict, JobLedgerError
from ._jobs import Job
from ._log import log
from ._queue import JobQueue

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
    side by side. ``poll_interval`` is how long an idle worker waits before looking again
    (an enqueue in the same process wakes it at once).
    """

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        concurrency: int = 1,
        *,
        poll_interval: float = 0.2,
        grace_period: float = 30.0,
        handle_signals: bool = True,
    ) -> None:
        if concurrency < 1:
            raise JobLedgerError(f"concurrency must be at least 1, got {concurrency}")
        if not handlers:
            raise JobLedgerError("a Worker needs at least one handler (job type -> function)")
        self.queue = queue
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.grace_period = grace_period
        self.handle_signals = handle_signals
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
        log.info("Worker %s stopped after %d job(s)", self.queue.worker_id, self.processed)

    def _give_back(self) -> None:
        with self._guard:
            leftover = list(self._running)
        for job_id in leftover:
            try:
                self.queue.requeue(job_id)
                log.warning("Job %s did not finish within the grace period; requeued", job_id)
            except JobConflict:
                pass  # it finished (or was taken over) meanwhile

    def _loop(self, types: frozenset[str], until_empty: bool, done: threading.Event) -> None:
        while not self._stopping.is_set():
            job = self.queue.claim(types=types)
            if job is None:
                self.queue.checkpoint()  # idle: leave queue.json exact for anyone looking
                if until_empty and self._drained(types):
                    done.set()
                    self._settled.set()
                    return
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                continue
            with self._guard:
                self._running[job.job_id] = threading.current_thread()
            try:
                self._execute(job)
            finally:
                with self._guard:
                    self._running.pop(job.job_id, None)

    def _drained(self, types: frozenset[str]) -> bool:
        with self._guard:
            busy = bool(self._running)
        if busy or self.queue.pending_count(types):
            return False
        # Nothing queued, but a dead peer's job may still read Running, not yet recovered
        # (recovery while claiming waits for recover_every): recover before calling it empty.
        self.queue.recover()
        return self.queue.pending_count(types) == 0

    def _execute(self, job: Job) -> None:
        handler = self.handlers[job.type]
        log.info("Starting job %s (%s), attempt %d", job.job_id, job.type, job.attempts)
        try:
            result = handler(job)
        except Exception as exc:
            try:
                self.queue.fail(job.job_id, exc)
            except JobConflict as conflict:
                log.warning("%s", conflict)
            return
        try:
            self.queue.complete(job.job_id, result)
            self.processed += 1
        except JobConflict as conflict:
            log.warning("%s", conflict)
        except TypeError as exc:
            self.queue.fail(job.job_id, f"the handler's result is not JSON-serialisable: {exc}")
