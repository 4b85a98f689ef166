"""The Worker's side of a running attempt: the :class:`Attempt` each handler gets, with
its sinks bound to the queue, and the watch for cancel requests.

- ``job.progress(...)`` holds the report in memory (``_job_progress.ProgressBuffer``); a
  thread of the Worker's writes each job's held report at most once per
  ``PROGRESS_EVERY`` seconds, all the due ones in one batch, not durably (no fsync, no
  wait for the WAL flush), and the last one when the attempt ends, before its result is
  recorded. Fenced by the attempt: a worker that lost the job never writes its progress.
- ``job.checkpoint(data)`` writes durably (as a completion is, under the queue's
  durability) before it returns, fenced by the attempt (JobConflict for a worker that
  lost its claim), taking along the progress report held then.
- Cancel requests: the same thread asks the backend, every ``cancel_poll`` seconds while
  this worker holds jobs, which of them were asked to stop (``cancel_requests``: a stat
  per job file, or one query), and at once when told of a request (``poke``: PostgreSQL's
  NOTIFY, or a cancel made through the same queue object). It sets the running attempt's
  ``cancel`` event; a job claimed but not started yet gets its event set as it starts.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._attempt_changes import AttemptId, checkpoint_text, checkpointing, reporting
from ._clock import iso_utc
from ._errors import ConfigError, JobConflict, JobLedgerError
from ._job_attempt import Attempt
from ._job_progress import PROGRESS_EVERY, ProgressBuffer, checked_report
from ._job_record import JobRecord
from ._job_view import Job
from ._log import log
from ._queue import JobQueue

__all__ = ["CANCEL_POLL", "AttemptServices"]

#: Seconds between two looks for cancel requests to a worker's running jobs (the bound on
#: how late a folder's worker learns of one; PostgreSQL's learn at once by NOTIFY).
CANCEL_POLL = 1.0


@dataclass
class _Running:
    """One running attempt: what its handler sees, who it is, what it has not written."""

    attempt: Attempt
    id: AttemptId
    progress: ProgressBuffer


class AttemptServices:
    """A Worker's running attempts on ``queue``: :meth:`running` makes each one's
    Attempt; :meth:`start` runs the thread that writes progress and looks for cancels.

    ``monotonic`` times the progress writes (a test injects one it moves and calls
    :meth:`flush_progress` and :meth:`look_for_cancels` itself, without the thread)."""

    def __init__(
        self,
        queue: JobQueue,
        *,
        cancel_poll: float = CANCEL_POLL,
        progress_every: float = PROGRESS_EVERY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not cancel_poll > 0:
            raise ConfigError(
                f"cancel_poll must be more than 0 seconds, got {cancel_poll!r} (it is how "
                "often a worker looks for cancel requests to its running jobs)"
            )
        self.queue = queue
        self.cancel_poll = cancel_poll
        self.progress_every = progress_every
        self.monotonic = monotonic
        self._running: dict[str, _Running] = {}
        self._asked: set[str] = set()  # claimed jobs seen with a cancel request
        self._claimed: Callable[[], list[str]] = list
        self._guard = threading.Lock()
        # One writer of progress and checkpoints at a time: a report taken for a write
        # never lands after a newer one taken by another.
        self._writing = threading.Lock()
        self._wake = threading.Event()
        self._look_now = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread -----------------------------------------------------------------------

    def start(self, claimed: Callable[[], list[str]]) -> None:
        """Start the thread; ``claimed()`` names the jobs this worker holds (started or
        not), which it looks at for cancel requests."""
        self._claimed = claimed
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="jobledger-attempts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (the running attempts' last reports are written as each ends)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None

    def poke(self) -> None:
        """A cancel may have been asked: look now (from any thread)."""
        self._look_now = True
        self._wake.set()

    def _serve(self) -> None:
        next_look = self.monotonic()  # a first look at once: requests made before start
        while not self._stop.is_set():
            if self._look_now or self.monotonic() >= next_look:
                self._look_now = False
                with _logged("look for cancel requests"):
                    self.look_for_cancels()
                next_look = self.monotonic() + self.cancel_poll
            with _logged("record progress"):
                self.flush_progress()
            wait = next_look - self.monotonic()
            due = self._next_progress_due()
            if due is not None:
                wait = min(wait, due - self.monotonic())
            self._wake.wait(max(0.0, wait))
            self._wake.clear()

    def _next_progress_due(self) -> float | None:
        with self._guard:
            dues = [r.progress.due_at() for r in self._running.values()]
        return min((d for d in dues if d is not None), default=None)

    # -- attempts -------------------------------------------------------------------------

    @contextlib.contextmanager
    def running(
        self,
        job: Job,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> Iterator[Attempt]:
        """The Attempt of ``job`` for its handler, while the block runs; its last
        progress report is written as the block ends, before the result is recorded.
        ``timeout``, ``deadline`` and ``clock`` go to the Attempt as they are."""
        attempt = self.begin(job, timeout=timeout, deadline=deadline, clock=clock)
        try:
            yield attempt
        finally:
            self.end(job.job_id)

    def begin(
        self,
        job: Job,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> Attempt:
        """Make ``job``'s Attempt, its sinks bound to the queue; its ``cancel`` event set
        already if a cancel was seen while the job waited its turn."""
        ident = AttemptId(job.job_id, job.worker, job.attempts, job.started)
        buffer = ProgressBuffer(self.progress_every)
        running: _Running | None = None

        def on_progress(done: float, total: float | None, note: str | None) -> None:
            report = checked_report(job.job_id, done, total, note, iso_utc(self.queue.clock.now()))
            buffer.hold(report)
            due = buffer.due_at()
            if due is not None and due <= self.monotonic():
                self._wake.set()  # the thread writes it now

        def on_checkpoint(data: Any) -> None:
            assert running is not None
            self._store_checkpoint(running, data)

        attempt = Attempt(
            job.job_id,
            timeout=timeout,
            deadline=deadline,
            on_progress=on_progress,
            on_checkpoint=on_checkpoint,
            **({"clock": clock} if clock is not None else {}),
        )
        running = _Running(attempt, ident, buffer)
        with self._guard:
            self._running[job.job_id] = running
            if job.job_id in self._asked:
                attempt.cancel.set()
        return attempt

    def end(self, job_id: str) -> None:
        """The attempt of ``job_id`` ended: write its held progress report (fenced)."""
        with self._guard:
            running = self._running.pop(job_id, None)
            self._asked.discard(job_id)
        if running is None or not running.progress.holding:
            return  # the usual end of a short job: nothing reported, nothing to write
        with self._writing:
            report = running.progress.take(self.monotonic(), force=True)
            if report is None:
                return
            try:
                new = self.queue.backend.transition(
                    job_id, reporting(running.id, report), fsync=False
                )
                self.queue._attempt_wrote([new])
            except JobConflict as exc:
                log.debug("progress of job %s not recorded: %s", job_id, exc)
            except JobLedgerError as exc:  # progress is a hint: never fail a job for it
                log.warning("could not record the progress of job %s: %s", job_id, exc)

    def _store_checkpoint(self, running: _Running, data: Any) -> None:
        job_id = running.id.job_id
        text = checkpoint_text(data, job_id)  # refused before anything is written
        at = iso_utc(self.queue.clock.now())
        with self._writing:
            report = running.progress.take(self.monotonic(), force=True)
            new = self.queue.backend.transition(job_id, checkpointing(running.id, text, at, report))
            self.queue._attempt_wrote([new])
        log.debug("Checkpoint of job %s stored (%d characters of JSON)", job_id, len(text))

    # -- what the thread does -------------------------------------------------------------

    def flush_progress(self) -> int:
        """Write every held report that is due, as one batch (not durably); how many."""
        now = self.monotonic()
        with self._guard:
            running = list(self._running.values())
        with self._writing:
            changes = []
            for one in running:
                report = one.progress.take(now)
                if report is not None:
                    changes.append((one.id.job_id, reporting(one.id, report)))
            if not changes:
                return 0
            outcomes = self.queue.backend.transition_many(changes, fsync=False)
            self.queue._attempt_wrote([o for o in outcomes if isinstance(o, JobRecord)])
        for (job_id, _), outcome in zip(changes, outcomes, strict=True):
            if isinstance(outcome, JobLedgerError):
                log.debug("progress of job %s not recorded: %s", job_id, outcome)
        return len(changes)

    def look_for_cancels(self) -> set[str]:
        """Ask which of this worker's jobs were asked to stop, and tell the running ones'
        handlers (their Attempt's ``cancel``); the ids asked to stop."""
        with self._guard:
            started = set(self._running)
        ids = sorted(set(self._claimed()) | started)
        if not ids:
            return set()
        asked = self.queue.backend.cancel_requests(ids)
        told = []
        with self._guard:
            self._asked = asked
            for job_id in asked:
                one = self._running.get(job_id)
                if one is not None and not one.attempt.cancel.is_set():
                    one.attempt.cancel.set()
                    told.append(job_id)
        for job_id in told:
            log.info("Job %s was asked to stop (cancel): its handler is told", job_id)
        return asked


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    """Log, never raise, what the thread could not do: it tries again next time."""
    try:
        yield
    except Exception as exc:  # the thread must live on: a database or disk hiccup passes
        log.warning("could not %s: %s", what, exc)
