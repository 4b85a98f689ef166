"""``/metrics`` (Prometheus text format, by prometheus-client) and ``/healthz``.

Every value is read from the store at the scrape, through the public API (nothing is
kept between scrapes, so several dashboards over one queue agree):

- ``jobledger_jobs{status, queue}``: jobs per status and queue (a gauge);
- ``jobledger_jobs_finished_total{status}``: finished jobs stored, per finished status
  (Completed: the completions, Failed: the failures). A counter that drops when
  finished jobs are pruned, which Prometheus takes for a counter reset;
- ``jobledger_job_duration_seconds``: a histogram of the run times (start to finish) of
  the latest jobs finished in the last ten minutes (at most 1,000, so a scrape stays
  bounded);
- ``jobledger_workers_alive``;
- ``jobledger_taskset_tasks{account, type, state}`` (``done``/``remaining``) and
  ``jobledger_taskset_completion_ratio{account, type}``, for today's task sets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ._context import Dashboard, dashboard_of
from ._format import parse_iso
from ._queues import counts_by_queue

__all__ = ["DURATION_BUCKETS", "routes"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)
_DURATION_WINDOW = dt.timedelta(minutes=10)
_DURATION_JOBS = 1000


class _Collector(Collector):
    def __init__(self, board: Dashboard) -> None:
        self.board = board

    def collect(self) -> Iterator[Metric]:
        board = self.board
        if board.queue is not None:
            yield from self._queue()
        if board.state is not None:
            yield from self._tasksets()

    def _queue(self) -> Iterator[Metric]:
        queue = self.board.queue
        assert queue is not None
        page = queue.live_page("Queued", limit=0)
        counts = page.counts
        jobs = GaugeMetricFamily(
            "jobledger_jobs", "Jobs per status and queue", labels=["status", "queue"]
        )
        for name, per in sorted(counts_by_queue(page).items()):
            for status, n in sorted(per.items()):
                jobs.add_metric([status, name], n)
        yield jobs
        finished = CounterMetricFamily(
            "jobledger_jobs_finished",
            "Finished jobs stored, per status (drops when jobs are pruned)",
            labels=["status"],
        )
        for status in ("Completed", "Failed", "Cancelled"):
            finished.add_metric([status], counts.get(status, 0))
        yield finished
        since = self.board.now() - _DURATION_WINDOW
        durations = []
        for job in queue.history(since=since, limit=_DURATION_JOBS):
            start, end = parse_iso(job.started), parse_iso(job.finished)
            if start is not None and end is not None:
                durations.append(max(0.0, (end - start).total_seconds()))
        buckets = [(str(b), float(sum(1 for d in durations if d <= b))) for b in DURATION_BUCKETS]
        buckets.append(("+Inf", float(len(durations))))
        yield HistogramMetricFamily(
            "jobledger_job_duration_seconds",
            "Run time of the latest jobs finished in the last 10 minutes (at most 1000)",
            buckets=buckets,
            sum_value=sum(durations),
        )
        workers = GaugeMetricFamily("jobledger_workers_alive", "Workers alive now")
        workers.add_metric([], len(queue.reader.live_workers()))
        yield workers

    def _tasksets(self) -> Iterator[Metric]:
        state = self.board.state
        assert state is not None
        today = state.today().isoformat()
        tasks = GaugeMetricFamily(
            "jobledger_taskset_tasks",
            "Tasks of today's task sets, done or remaining",
            labels=["account", "type", "state"],
        )
        ratio = GaugeMetricFamily(
            "jobledger_taskset_completion_ratio",
            "Share of today's task set done (0 to 1)",
            labels=["account", "type"],
        )
        for record in state.records(since=today):
            if record.date != today:
                continue
            done, left = len(record.completed), len(record.remaining)
            tasks.add_metric([record.account, record.type, "done"], done)
            tasks.add_metric([record.account, record.type, "remaining"], left)
            ratio.add_metric(
                [record.account, record.type], done / (done + left) if done + left else 1.0
            )
        yield tasks
        yield ratio


def metrics(request: Request) -> Response:
    """The Prometheus text exposition of the dashboard's queue and task sets."""
    board = dashboard_of(request)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(board))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE)


def healthz(request: Request) -> Response:
    """``ok`` while the application serves (reads nothing)."""
    return PlainTextResponse("ok\n")


def routes() -> list[BaseRoute]:
    """The machine-read endpoints."""
    return [
        Route("/metrics", metrics, name="metrics"),
        Route("/healthz", healthz, name="healthz"),
    ]
