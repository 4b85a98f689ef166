"""Worker: runs a queue's jobs with handlers, in threads, and stops gracefully.

SIGINT or SIGTERM: say so at once on stderr (a WARNING of the ``jobledger.worker`` logger,
which Python shows even with no logging set up), stop claiming, let running jobs finish
within ``grace_period``, give the rest back to the queue (served first next time, the
interrupted attempt not counted), and return, so the program exits 0. A second signal
stops waiting at once: the running jobs are given back the same way, ``run()`` returns
and ``Worker.forced_by`` names the signal (``jobledger worker`` then exits 128 + its
number: 130 after SIGINT, 143 after SIGTERM). The handler threads are daemon threads;
a handler that returns after its job was given back has its result refused (fenced).

Where a job runs (``isolation``): in the worker's threads (the default), or each attempt in
a child process of its own (``"process"``, ``_isolation.py``). Timeouts: see ``Worker``.

The worker talks through ``jobledger.worker`` (see ``_worker_report.py``): a start line,
a line per finished job (or summaries under load), a warning once per queued job type
that no handler here serves, and, with ``run(until_empty=True)``, which delayed jobs it
does not wait for.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._async_handlers import HandlerLoop
from ._attempt_services import CANCEL_POLL, AttemptServices
from ._durations import Duration, to_seconds, to_timeout
from ._errors import JobConflict, JobLedgerError, JobTimeout
from ._isolation import Abandoned, ProcessRunner, handler_name, resolve_handler
from ._job_attempt import Attempt
from ._job_fields import JobStatus
from ._job_transitions import json_ready
from ._job_view import Job
from ._log import log
from ._prefetch import Prefetch
from ._queue import JobQueue
from ._queue_limits import declare_rate_limits
from ._schedule_runner import ScheduleRunner
from ._schedules import Schedule
from ._snooze import Snooze, report_snooze
from ._timeouts import timed_out_text, timeout_of
from ._words import plural
from ._worker_completions import CompletionRecords
from ._worker_queued import QueuedLooks
from ._worker_report import JobReporter, worker_log
from ._worker_signals import WorkerSignals, stop_signals_to
from ._worker_slots import serving_slots

__all__ = ["ISOLATIONS", "Worker", "stop_signals_to"]  # stop_signals_to: _worker_signals.py

Handler = Callable[[Job], Any]
#: Where a Worker runs its jobs: in its threads, or each attempt in a process of its own.
ISOLATIONS = ("thread", "process")


class Worker(WorkerSignals, CompletionRecords, QueuedLooks):
    """Serve ``queue`` with ``handlers`` (job type -> ``handler(job)``).

    A handler's return value is stored as the job's result; an exception fails the job with
    its message (retried until the job's ``max_attempts``); one that raises or returns
    :class:`jobledger.Snooze` puts its job back for later, the attempt not counted (its line
    says "snoozed for N s"). ``concurrency`` threads run jobs side by side.

    Named queues: ``queues`` (None: every queue) is a list of queue names, which each
    thread serves, or a dict of queue name -> slots: that many threads for each queue,
    each serving its own (the slots are then the concurrency). A queue's limit
    (``JobQueue.set_limit``) bounds its Running jobs across every worker, and a type's
    rate limit (``JobQueue.set_rate_limit``) its starts: a job over either waits, its
    attempt not counted, while the worker serves what it may.
    ``poll_interval`` (a timedelta or seconds, as ``grace_period``) is how long an idle
    worker waits before looking again; it wakes at once when a job is enqueued (or
    retried, requeued, recovered) through the same queue object or, on PostgreSQL, by any
    process (``JobQueue.watch``).

    An ``async def`` handler runs on one event loop, in a thread the Worker starts for it
    and stops when :meth:`run` returns; ``concurrency`` then counts its coroutines in
    flight (``_async_handlers.py``).

    Batches: by default (``batch_size=None``) each thread sizes its claims from how long
    recent jobs took (``_prefetch.py``): long jobs (a recent mean over 5 ms) are claimed
    one at a time, so none waits Running behind a long one while a peer is idle; short
    ones in batches that double per claim up to 50 jobs, and up to what the recent mean
    says runs in 50 ms in all. ``batch_size=N`` fixes every claim at N jobs
    (``batch_size=1``: one at a time).

    Successes are recorded together (one durable write): at the end of a batch, with
    the thread's next claim, which follows at once (group commit: one statement on
    PostgreSQL, one lock hold on files); and sooner, on their own, once the oldest
    unrecorded one is 50 ms old (checked as each job ends, and every 25 ms while a job has
    run 50 ms or more) or the worker stops. Failures are recorded at once. The jobs of a
    batch wait Running (under this live worker) until their turn; when adaptive and the
    jobs turn long mid-batch, the batch's unstarted jobs are given back to the queue
    (first in line, the attempt not counted) instead.

    The window this opens: a job that finished but whose completion is not yet recorded
    runs again if the process dies (at least once, as any job whose completion was not
    recorded). That window holds at most one batch's jobs per thread (50 by default, N
    with ``batch_size=N``) and lasts at most about 125 ms after the oldest of them
    finished (50 ms; up to 100 ms when the job running then started less than 50 ms
    before; plus the 25 ms between checks), plus the commit (with the next claim's, at the
    end of a batch). A graceful stop records every finished job first.

    ``monotonic`` is the clock that times jobs (for the adaptation, the 50 ms bound and
    the per-job lines); a test injects one it moves.

    Where jobs run, ``isolation``: ``"thread"`` (the default) runs handlers in the worker's
    threads. ``"process"`` runs each attempt in a new child process (``_isolation.py``): a
    job that crashes or exhausts memory kills only its process; its attempt fails naming
    the signal or exit code and is retried per ``max_attempts`` while the worker serves
    on. Handlers are imported by name there: give each as ``"module:function"`` or as a
    top-level function of a module (a lambda or nested function is refused here). The
    job goes to the child and its result comes back as JSON; ``job.progress`` and
    ``job.checkpoint`` reach this worker's attempt over a pipe. A stop behaves as above:
    past the grace period, or at a second signal, the jobs' processes (and those they
    started) are killed before their jobs are given back. A handler may be
    ``"module:function"`` under thread isolation too.

    Timeouts: an attempt's deadline is its start plus the job's own ``timeout``
    (``enqueue(..., timeout=)``), else its type's (``@job_type(..., timeout=)``), else this
    Worker's ``timeout`` (None: no deadline). A thread handler is told, never stopped:
    ``job.deadline`` says when, and ``job.check()`` raises :class:`JobTimeout` past it; the
    attempt fails as timed out only if the handler raises JobTimeout (one that returns
    after its deadline without checking has its result stored; one that never returns
    holds its thread: use process isolation for a hard bound). A process handler is
    stopped: SIGTERM at the deadline (raised in its main thread so that ``finally`` blocks
    run), SIGKILL ``kill_grace`` seconds later (10 s by default). Either way the attempt
    fails with "timed out after N s (...)", without a traceback, and is retried per
    ``max_attempts``. A cancel asked of a process attempt (its ``Attempt.cancel``) stops
    its process the same way. The deadline is read from the queue's clock.
    Each handler gets its job with the running attempt attached (``_attempt_services.py``):
    ``job.progress()`` (written at most once a second per job, and as the attempt ends),
    ``job.checkpoint()`` (durable before it returns) and ``job.cancel_requested`` /
    ``job.check()``. A ``JobQueue.cancel`` of a running job reaches its handler at once
    on PostgreSQL (NOTIFY) and within ``cancel_poll`` seconds (1 s by default: a stat of
    each running job's file) on a folder; a handler that raises JobCancelled (what
    ``job.check()`` does) ends its job Cancelled.

    Periodic jobs: ``schedules`` (:class:`Schedule` objects, declared next to the
    handlers) are stored in the queue when ``run()`` starts (a changed one replaced, an
    unchanged one left as it is). While it runs, the worker enqueues the due occurrences
    of every schedule stored in its queue, declared here or not, looking at most once a
    second and waking for the next occurrence (``_schedule_runner.py``); each occurrence
    is enqueued once, however many workers run. Removing a schedule from ``schedules``
    does not delete it: ``JobQueue.unschedule`` (or ``jobledger schedules remove``) does.
    """

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler | str],
        concurrency: int = 1,
        *,
        poll_interval: dt.timedelta | float = 0.2,
        grace_period: dt.timedelta | float = 30.0,
        handle_signals: bool = True,
        batch_size: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        isolation: str = "thread",
        timeout: Duration | None = None,
        kill_grace: Duration = 10.0,
        cancel_poll: dt.timedelta | float = CANCEL_POLL,
        schedules: Iterable[Schedule] = (),
        queues: Iterable[str] | Mapping[str, int] | None = None,
    ) -> None:
        if isolation not in ISOLATIONS:
            raise JobLedgerError(
                f"isolation must be 'thread' or 'process', got {isolation!r}: 'thread' runs "
                "handlers in the worker's threads, 'process' each attempt in a process of "
                "its own"
            )
        if concurrency < 1:
            raise JobLedgerError(f"concurrency must be at least 1, got {concurrency}")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise JobLedgerError(f"batch_size must be at least 1, got {batch_size}")
        if not handlers:
            raise JobLedgerError("a Worker needs at least one handler (job type -> function)")
        self.queue = queue
        #: Where jobs run: "thread" or "process".
        self.isolation = isolation
        #: The attempts' timeout (seconds) when neither the job nor its type gives one.
        self.timeout = to_timeout(timeout, "the Worker's timeout")
        #: Seconds between a stopped process's SIGTERM and its SIGKILL.
        self.kill_grace = to_seconds(kill_grace, "kill_grace")
        # Process isolation: the name each child imports its handler by (checked now).
        self._handler_names: dict[str, str] = {}
        self._runner: ProcessRunner | None = None
        if isolation == "process":
            self._handler_names = {t: handler_name(t, h) for t, h in handlers.items()}
            self._runner = ProcessRunner(self.kill_grace)
        self.handlers: dict[str, Handler] = {
            t: resolve_handler(h) if isinstance(h, str) else h for t, h in handlers.items()
        }
        #: The queues served (None: every queue), and those each thread claims from.
        self.queues, self._slots = serving_slots(queues, concurrency)
        self.concurrency = len(self._slots)
        self.poll_interval = to_seconds(poll_interval, "poll_interval")
        self.grace_period = to_seconds(grace_period, "grace_period")
        self.handle_signals = handle_signals
        #: The fixed claim size, or None: adaptive (see the class docstring).
        self.batch_size = batch_size
        self.monotonic = monotonic
        self._prefetch = Prefetch(batch_size)
        self._done: list[tuple[str, Any]] = []  # finished, completion not yet recorded
        self._oldest_done: float | None = None  # when the first of _done finished
        self._job_started: dict[int, float] = {}  # thread -> when its current job started
        self._claiming = 0  # threads between a claim and registering what it gave them
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._settled = threading.Event()  # wakes run()'s wait: a stop, or the queue drained
        self._running: dict[str, threading.Thread] = {}
        self._guard = threading.Lock()
        self._idle = 0
        self.processed = 0
        #: The signal that forced the stop (a second SIGINT/SIGTERM), or None.
        self.forced_by: signal.Signals | None = None
        #: Per-job lines and summaries; replace it to change the pace (tests inject a clock).
        self.reporter = JobReporter()
        #: After ``run(until_empty=True)``: the delayed jobs left behind (how many, the
        #: earliest ``run_after``), or None when none was.
        self.delayed_left: tuple[int, str | None] | None = None
        # How the delayed-jobs line tells to wait for them (the CLI names its option).
        self._wait_hint = "run(until_empty=True, wait_delayed=True) waits for them"
        self._wait_delayed = False
        self._halt = threading.Event()  # every thread has left, or the stop is forced
        self._live_threads = 0
        self._took: dict[str, tuple[str, float]] = {}  # finished job -> (type, seconds)
        self._idle_noted = False  # went idle and looked at the queue since the last claim
        self._warned_types: set[str] = set()
        # Each handler's Attempt: progress, checkpoints, cancel requests.
        self._attempts = AttemptServices(queue, cancel_poll=to_seconds(cancel_poll, "cancel_poll"))
        self._handler_loop = HandlerLoop()  # where async handlers run
        #: The schedules this worker declares (stored when it starts) and fires.
        self._schedules = ScheduleRunner(queue, schedules)

    @property
    def forced(self) -> bool:
        """Whether a second signal forced the stop (running jobs were given back)."""
        return self.forced_by is not None

    def stop(self) -> None:
        """Ask the worker to stop gracefully (thread-safe; what SIGINT/SIGTERM do)."""
        # A signal handler calls this in the main thread, which may be inside one of these
        # events' set() (holding its lock, which is not reentrant) when the signal comes:
        # an event already set is not set again. A handler interrupting another leaves
        # the stop to it altogether (see _signals).
        for event in (self._stopping, self._wake, self._settled):
            if not event.is_set():
                event.set()

    def wake(self) -> None:
        """Look for jobs now instead of after the poll interval."""
        self._wake.set()

    def run(self, until_empty: bool = False, wait_delayed: bool = False) -> None:
        """Serve jobs until stopped, or, with ``until_empty``, until no job of a handled
        type is due and none is running here: delayed jobs (a later ``run_after``, such as
        a retry's backoff) are then named in a log line and left for later, unless
        ``wait_delayed`` waits for them too. After a second signal ``forced_by`` is set."""
        types = frozenset(self.handlers)
        self._wait_delayed = wait_delayed
        signals = self.handle_signals and threading.current_thread() is threading.main_thread()
        if until_empty:
            ends = "exits when the queue is empty" + ("" if wait_delayed else " of due jobs")
        else:
            ends = "Ctrl-C or SIGTERM stops it" if signals else "stop() stops it"
        worker_log.info(
            "worker %s serving %s from %s%s; concurrency %d; %s",
            self.queue.worker_id,
            ", ".join(sorted(types)),
            self.queue.dir,
            "" if self.queues is None else f" (queues {', '.join(sorted(self.queues))})",
            self.concurrency,
            ends,
        )
        self._schedules.start()  # the declared ones stored, what is due enqueued
        declare_rate_limits(self.queue, types)  # those of @job_type(rate_limit=)
        self._warn_unserved()
        done = threading.Event()
        unwatch = self.queue.watch(self.wake, on_cancel=self._attempts.poke)
        self._attempts.start(self._claimed)
        try:
            self._serve(types, until_empty, done)
        finally:
            self._schedules.stop()
            unwatch()
            self._attempts.stop()
            self._handler_loop.stop()
            self.reporter.flush()
        if self.delayed_left is not None:
            count, first = self.delayed_left
            worker_log.info(
                "%s delayed, the next due at %s; not waiting (%s)",
                plural(count, "job is", "jobs are"),
                first,
                self._wait_hint,
            )
        log.info("Worker %s stopped after %s", self.queue.worker_id, plural(self.processed, "job"))

    def _serve(self, types: frozenset[str], until_empty: bool, done: threading.Event) -> None:
        self._halt.clear()
        if self._runner is not None:
            self._runner.open()
        self.delayed_left = None
        with self._signals():
            threads = [
                threading.Thread(
                    target=self._loop,
                    args=(types, queues, until_empty, done),
                    name=f"jobledger-worker-{i}",
                    daemon=True,
                )
                for i, queues in enumerate(self._slots)
            ]
            self._live_threads = len(threads)
            for t in threads:
                t.start()
            recorder_stop = threading.Event()
            threading.Thread(
                target=self._recorder, args=(recorder_stop,), name="jobledger-recorder", daemon=True
            ).start()
            try:
                while not self._stopping.is_set() and not done.is_set():
                    self._settled.wait(0.5)
                    self._settled.clear()
                self._stopping.set()
                self._wake.set()
                # One wait that a second signal ends (it sets _halt), not a join per
                # thread whose deadline was fixed before it.
                self._halt.wait(self.grace_period)
            finally:
                recorder_stop.set()
            self._give_back()

    def _give_back(self) -> None:
        self._record_done()
        with self._guard:
            leftover = list(self._running)
        if self._runner is not None:
            # Before any requeue: a job given back must not run on here while another
            # worker starts it. Their runs then record nothing (``Abandoned``).
            self._runner.abandon_all()
        for job_id in leftover:
            try:
                self.queue.requeue(job_id)
            except JobConflict:
                continue  # it finished (or was taken over) meanwhile
            if self.forced_by is not None:
                worker_log.warning("Job %s requeued: the stop was forced", job_id)
            else:
                log.warning("Job %s did not finish within the grace period; requeued", job_id)

    def _loop(
        self,
        types: frozenset[str],
        queues: frozenset[str] | None,
        until_empty: bool,
        done: threading.Event,
    ) -> None:
        try:
            self._claim_and_run(types, queues, until_empty, done)
        finally:
            with self._guard:
                self._live_threads -= 1
                if self._live_threads <= 0:
                    self._halt.set()

    def _claim_and_run(
        self,
        types: frozenset[str],
        queues: frozenset[str] | None,
        until_empty: bool,
        done: threading.Event,
    ) -> None:
        me = threading.current_thread()
        while not self._stopping.is_set():
            # Counted as busy from before the claim until its jobs are registered as
            # running: another thread finding the queue empty meanwhile must not call it
            # drained (and stop this worker) while this one holds jobs it has not started.
            with self._guard:
                self._claiming += 1
            jobs: list[Job] = []
            try:
                jobs = self._claim(types, queues)
            finally:
                with self._guard:
                    for job in jobs:
                        self._running[job.job_id] = me
                    self._claiming -= 1
                    went_idle = not jobs and not self._idle_noted
                    self._idle_noted = not jobs
            if not jobs:
                self.queue.checkpoint()  # idle: leave queue.json exact for anyone looking
                if went_idle:
                    self.reporter.flush()
                    self._warn_unserved()
                if until_empty and self._drained(types):
                    done.set()
                    self._settled.set()
                    return
                self._recover_while_idle()
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                continue
            for i, job in enumerate(jobs):
                if self._stopping.is_set():
                    self._return_unstarted(jobs[i:])
                    break
                try:
                    self._execute(job)
                    # A stop (before the grace period can run out), or the time bound on
                    # a finished job's unrecorded window. The batch's last job is
                    # recorded with the next claim, at once (group commit).
                    if self._stopping.is_set() or self._overdue():
                        self._record_done()
                finally:
                    with self._guard:
                        self._running.pop(job.job_id, None)
                if i < len(jobs) - 1 and self._prefetch.long_jobs():
                    # Jobs turned long mid-batch: the rest would wait Running behind
                    # them; give them back (first in line, uncounted) for any idle peer.
                    self._return_unstarted(jobs[i + 1 :])
                    break
        self._record_done()  # stopping: what the last batch finished, without a claim

    def _claim(self, types: frozenset[str], queues: frozenset[str] | None) -> list[Job]:
        """The next claim, with the completions waiting to be recorded: both in one
        statement (PostgreSQL) or one lock hold (files). Completions it could not record
        (an error) wait for the next record, as if it had not been tried."""
        size = self._prefetch.size()
        pending, took, oldest = self._take_done()
        if not pending:
            if queues is None:  # every queue: as a caller of claim_many without queues
                return self.queue.claim_many(size, types=types)
            return self.queue.claim_many(size, types=types, queues=queues)
        try:
            if queues is None:
                jobs, recorded, conflict = self.queue._record_and_claim(pending, size, types)
            else:
                jobs, recorded, conflict = self.queue._record_and_claim(
                    pending, size, types, queues
                )
        except BaseException:
            with self._guard:
                self._done[:0] = pending
                self._took.update(took)
                if self._oldest_done is None or oldest < self._oldest_done:
                    self._oldest_done = oldest
            raise
        self._recorded(pending, took, recorded, conflict)
        return jobs

    def _recover_while_idle(self) -> None:
        """Recover dead workers' jobs now if that falls due within the coming wait, so
        that the claim a wake-up brings starts its job without it (see
        ``JobQueue._recover_before_due``). Only a head start: a failure is left to the
        claim, which recovers when due anyway."""
        try:
            self.queue._recover_before_due(self.poll_interval)
        except JobLedgerError as exc:
            log.debug("could not recover dead workers' jobs while idle: %s", exc)

    def _claimed(self) -> list[str]:
        """The jobs this worker holds (running, or claimed and waiting their turn)."""
        with self._guard:
            return list(self._running)

    def _return_unstarted(self, jobs: list[Job]) -> None:
        """Give back claimed jobs this worker will not start (it is stopping)."""
        for job in jobs:
            with self._guard:
                if self._running.pop(job.job_id, None) is None:
                    continue  # already given back by run()'s grace period
            with contextlib.suppress(JobConflict):  # finished or taken over meanwhile
                self.queue.requeue(job.job_id)

    def _execute(self, job: Job) -> None:
        """Run the job's handler: a failure or a snooze (``_snooze.py``) is recorded
        now, a success queued for :meth:`_record_done`."""
        log.info("Starting job %s (%s), attempt %d", job.job_id, job.type, job.attempts)
        started = self.monotonic()
        me = threading.get_ident()
        with self._guard:
            self._job_started[me] = started
        timeout, deadline = self._deadline(job)
        try:
            with self._attempts.running(
                job, timeout=timeout, deadline=deadline, clock=self._wall
            ) as attempt:
                self._prepare_attempt(job, attempt)
                result = self._run(job.with_attempt(attempt), attempt)
        except Snooze as snooze:
            result = snooze  # raised or returned: the same request
        except Abandoned:
            return  # its process was killed by the stop, which gives the job back
        except JobTimeout as exc:
            took = self.monotonic() - started
            self._prefetch.observe(took)
            self._fail(job, timed_out_text(job, exc, self.timeout), took)
            return
        except Exception as exc:
            took = self.monotonic() - started
            self._prefetch.observe(took)
            self._fail(job, exc, took)
            return
        finally:
            with self._guard:
                self._job_started.pop(me, None)
        ended = self.monotonic()
        took = ended - started
        self._prefetch.observe(took)
        if isinstance(result, Snooze):
            report_snooze(self.queue, self.reporter, job, result, took)
            return
        try:
            json_ready(result, "the handler's result", job.job_id)
        except TypeError as exc:
            self._fail(job, str(exc), took)
            return
        with self._guard:
            if not self._done:
                self._oldest_done = ended
            self._done.append((job.job_id, result))
            self._took[job.job_id] = (job.type, took)

    def _run(self, job: Job, attempt: Attempt) -> Any:
        """The handler's run of ``job``: in this thread, or in a child process."""
        if self._runner is None:
            # An async handler's coroutine runs on the Worker's one event loop.
            return self._handler_loop.call(self.handlers[job.type], job)
        return self._runner.run(job, self._handler_names[job.type], attempt)

    def _prepare_attempt(self, job: Job, attempt: Attempt) -> None:
        """A hook run on each attempt before its handler starts (tests replace its sinks)."""

    def _deadline(self, job: Job) -> tuple[float | None, float | None]:
        """``job``'s timeout in seconds (its own, its type's, else this Worker's) and the
        deadline of an attempt starting now (by the queue's clock), or (None, None)."""
        seconds, _ = timeout_of(job, self.timeout)
        return seconds, None if seconds is None else self._wall() + seconds

    def _wall(self) -> float:
        """Now, in seconds since the epoch, by the queue's clock (deadlines)."""
        return self.queue.clock.now().timestamp()

    def _fail(self, job: Job, error: Exception | str, took: float) -> None:
        try:
            failed = self.queue.fail(job.job_id, error)
        except JobConflict as conflict:
            log.warning("%s", conflict)
            self.reporter.finished(
                job.job_id, job.type, "refused", took, "(its failure was refused)"
            )
            return
        if failed.status is JobStatus.CANCELLED:
            self.reporter.finished(job.job_id, job.type, "cancelled", took)
            return
        if failed.status is JobStatus.QUEUED:
            where = f"attempt {failed.attempts} of {failed.max_attempts}, retry at "
            where += failed.run_after or "once"
        else:
            where = f"for good after {plural(failed.attempts, 'attempt')}"
        self.reporter.finished(
            job.job_id, job.type, "failed", took, f"({where}): {failed.error_message}"
        )
