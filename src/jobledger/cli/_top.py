"""``jobledger jobs top``: the queue, live in the terminal (the loop is ``_live.py``).

Each refresh reads, through the queue's bounded read-only reads (no lock, no recovery,
nothing created): the counts per status and the Running jobs that fit the screen
(``JobQueue.live_page``), the latest failures (``JobQueue.history``, which reads only the
jobs it returns), the live jobs per queue (:func:`live_by_queue`, from the page's counts
per queue) and the live workers.

- **Completion rate**: the change of the Completed count between refreshes, over a
  sliding window (:class:`RateWindow`): per second over the last 10 s, per minute over
  the last 60 s (less while the view has run for less; a prune that lowers the count
  starts the window again).
- **Recent failures**: the ``SHOWN_FAILURES`` latest Failed jobs, newest first. On a
  folder the first refresh builds the reader's summary of finished jobs (their files
  are read once); later refreshes follow the queue's journal.
"""

from __future__ import annotations

import collections
import datetime as dt

import click
from rich.console import Console, Group, RenderableType
from rich.text import Text

from .._clock import iso_utc
from .._job_fields import JobStatus
from .._job_view import Job
from .._queue import JobQueue
from .._words import plural
from ._app import App, pass_app
from ._jobs import open_queue, queue_dir_option
from ._live import run_live
from ._options import interval_option
from ._render import bar, human_count, human_seconds, short_time, table

__all__ = ["RateWindow", "TopView", "live_by_queue", "top"]

#: How many recent failures the view keeps and shows.
SHOWN_FAILURES = 8
#: How many live workers' ids the frame names.
SHOWN_WORKERS = 5
#: The fewest Running jobs a frame lists, however small the terminal.
MIN_RUNNING_ROWS = 3


class RateWindow:
    """Completions per second and per minute from samples of the Completed count.

    ``add(at, completed)`` takes a sample (``at`` in seconds, from a monotonic clock);
    :meth:`rate` is the count's change per second over the last ``seconds``, from the
    sample nearest to that far back (the oldest while the view is younger). Samples older
    than ``span`` are dropped, so memory stays bounded however long it runs.
    """

    def __init__(self, span: float = 60.0) -> None:
        self.span = span
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, at: float, completed: int) -> None:
        """One refresh's Completed count."""
        if self._samples and completed < self._samples[-1][1]:
            self._samples.clear()  # pruned: the count fell, earlier samples say nothing
        self._samples.append((at, completed))
        while len(self._samples) > 2 and self._samples[1][0] <= at - self.span:
            self._samples.popleft()

    def rate(self, seconds: float) -> tuple[float, float] | None:
        """(completions per second, the seconds it was measured over) across the last
        ``seconds`` at most; None before two samples."""
        if len(self._samples) < 2:
            return None
        samples = list(self._samples)
        now, last = samples[-1]
        # The oldest sample within the window; the one before the last at least, so that
        # an interval longer than the window still measures something.
        index = next(i for i, (at, _) in enumerate(samples) if at >= now - seconds)
        start, first = samples[min(index, len(samples) - 2)]
        if now <= start:
            return None
        return (last - first) / (now - start), now - start


def _rate_text(window: RateWindow) -> str:
    per_second = window.rate(10.0)
    per_minute = window.rate(60.0)
    if per_second is None or per_minute is None:
        return "Completed per second: - (measured from the next refresh on)"
    (s_rate, s_span), (m_rate, m_span) = per_second, per_minute
    return (
        f"Completed per second: {s_rate:.1f}/s over the last {_span(s_span)}; "
        f"per minute: {human_count(round(m_rate * 60))}/min over the last {_span(m_span)}"
    )


def _span(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def live_by_queue(by_queue: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Live jobs per queue and status (``{queue: {"Queued": n, "Running": n}}``) of the
    queues that have some, from the jobs per queue and status (``LivePage.by_queue``: the
    index, or one aggregate query; no job is read)."""
    out: dict[str, dict[str, int]] = {}
    live = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
    for name, counts in by_queue.items():
        if any(counts.get(status) for status in live):
            out[name] = {status: counts.get(status, 0) for status in live}
    return out


def _age(started: str | None, now: dt.datetime) -> str:
    if not started:
        return "-"
    try:
        since = dt.datetime.fromisoformat(started)
    except ValueError:
        return "-"
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.timezone.utc)
    return human_seconds(max(0.0, (now - since).total_seconds()))


def _progress(job: Job) -> tuple[str, RenderableType]:
    """The progress text (``3/10 30%``) and a bar when there is a total."""
    report = job.progress_info
    if report is None:
        return "-", ""
    fraction = report.fraction
    if fraction is None:
        return report.short(), ""
    return report.short(), bar(round(min(fraction, 1.0) * 1000), 1000, width=12)


class TopView:
    """The frames of ``jobs top`` on one queue, with what it remembers between them."""

    def __init__(self, queue: JobQueue, console: Console, interval: float) -> None:
        self.queue = queue
        self.console = console
        self.interval = interval
        self.rates = RateWindow()

    def frame(self, live: bool) -> RenderableType:
        """Read the queue once and draw it."""
        queue = self.queue
        # No more Running jobs than the screen has lines: the page reads only those.
        page = queue.live_page(JobStatus.RUNNING, limit=max(MIN_RUNNING_ROWS, self.console.height))
        counts, running = page.counts, page.jobs
        failures = queue.history(status=JobStatus.FAILED, limit=SHOWN_FAILURES)
        workers = set(queue.reader.live_workers())
        now = queue.clock.now()
        self.rates.add(queue.clock.monotonic(), counts.get(JobStatus.COMPLETED.value, 0))
        when = short_time(iso_utc(now))
        if live:
            every = f"{self.interval:g}s"
            head = f"Queue {queue.dir} at {when}, every {every}; q or Ctrl-C quits"
        else:
            head = f"Queue {queue.dir} at {when}"
        total = sum(counts.values())
        named = sorted(workers)[:SHOWN_WORKERS]
        more = f", and {len(workers) - len(named)} more" if len(workers) > len(named) else ""
        workers_line = f"Live workers: {len(workers)}"
        if named:
            workers_line += f" ({', '.join(named)}{more})"
        above: list[RenderableType] = [
            Text(head, style="bold"),
            Text(
                "Jobs: "
                + ", ".join(f"{status} {human_count(n)}" for status, n in counts.items())
                + f" (total {human_count(total)})"
            ),
            Text(_rate_text(self.rates) if live else "Completed per second: - (one frame)"),
            Text(workers_line),
            self._queues(page.by_queue),
        ]
        below = self._failed(failures, counts.get(JobStatus.FAILED.value, 0))
        # The Running jobs get the lines the rest leaves (the screen crops what is taller).
        options = self.console.options.update(height=None)
        used = len(self.console.render_lines(Group(*above, below), options, pad=False))
        return Group(*above, self._running(running, page.total, workers, now, used), below)

    def _queues(self, by_queue: dict[str, dict[str, int]]) -> RenderableType:
        per = live_by_queue(by_queue)
        t = table("Live jobs by queue", "Queue", "Queued", "Running")
        for name in sorted(per):
            counts = per[name]
            t.add_row(
                name,
                human_count(counts.get(JobStatus.QUEUED.value, 0)),
                human_count(counts.get(JobStatus.RUNNING.value, 0)),
            )
        return t

    def _running(
        self, running: list[Job], total: int, workers: set[str], now: dt.datetime, used: int
    ) -> RenderableType:
        if not running:
            return Text("No job is running.")
        # The table's title, rules and header take 5 lines, "... and N more" one.
        room = max(MIN_RUNNING_ROWS, self.console.height - used - 6)
        shown = running[:room]
        gauges = any(_progress(job)[1] for job in shown)
        t = table(
            f"Running jobs ({human_count(total)})",
            "Job id",
            "Type",
            "Worker",
            "Age",
            "Attempt",
            "Progress",
            *(("Bar",) if gauges else ()),
            optional=("Bar",),
        )
        for job in shown:
            worker = job.worker or "-"
            if job.worker and job.worker not in workers:
                worker += " (not alive)"
            text, gauge = _progress(job)
            t.add_row(
                job.job_id,
                job.type,
                worker,
                _age(job.started, now),
                f"{job.attempts}/{job.max_attempts}",
                text,
                *((gauge,) if gauges else ()),
            )
        if total == len(shown):
            return t
        more = total - len(shown)
        return Group(t, Text(f"... and {plural(more, 'more running job')}"))

    def _failed(self, failures: list[Job], failed: int) -> RenderableType:
        hint = f"'jobledger jobs list --status Failed' lists all {human_count(failed)}"
        if not failures:
            return Text("No job has failed.")
        t = table(
            f"Recent failures ({hint})",
            "Job id",
            "Type",
            "Attempts",
            "Finished",
            "Error",
            fold=("Error",),
        )
        for job in failures:
            t.add_row(
                job.job_id,
                job.type,
                f"{job.attempts}/{job.max_attempts}",
                short_time(job.finished),
                job.error_message or "-",
            )
        return t


@click.command("top")
@queue_dir_option(must_exist=True)
@interval_option("the view")
@pass_app
def top(app: App, queue_dir: str, interval: float) -> None:
    """The queue, live: counts by status and by queue, the running jobs (worker, age,
    progress), the latest failures, and completions per second and per minute.

    q or Ctrl-C quits (exit 0), as does SIGTERM; the terminal is put back as it was. It
    only reads: no lock, no recovery. When stdout is not a terminal, it prints one frame
    and exits 0.
    """
    with open_queue(queue_dir) as queue:
        run_live(app.out, TopView(queue, app.out, interval).frame, interval)
