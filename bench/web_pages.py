"""Benchmark: the dashboard's pages on a large queue, ``python -m bench.web_pages``.

Run from the project root, with the ``[web]`` extra (PostgreSQL part: a server at
``--pg``, default ``postgresql://postgres@127.0.0.1:5432/postgres``, where a database of
its own is created and dropped)::

    python -m bench.web_pages                 # 10,000 live + 100,000 finished jobs
    python -m bench.web_pages --quick         # 1,000 + 10,000, a smoke run
    python -m bench.web_pages --no-pg         # the folder only

On a folder and on PostgreSQL it stores ``--live`` jobs (a hundred of them Running, the
rest Queued) and ``--finished`` finished ones (Completed, 8% Failed, 2% Cancelled, over
the last two days, a tenth of them in the last hour) exactly as given
(``import_records``; on PostgreSQL then ``VACUUM ANALYZE``, as autovacuum would), then
requests every page of :data:`PAGES` through the ASGI app in
this process (Starlette's TestClient: no network), ``--rounds`` times each, and reports
each page's time p50 and max against the 300 ms target. The first request of all is
reported apart: on a folder it builds the dashboard's summary of the finished jobs
(once per process; later pages follow the queue's journal).

:data:`PAGES` is a plain list of (name, path): add a page there. ``{job_id}`` in a path
is a finished job's id; ``{cursor}`` the query of the history's second page.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import jobledger
from jobledger._clock import iso_utc
from jobledger._job_record import JobRecord, JobStatus, new_job_id

TARGET_MS = 300.0
RUNNING = 100
TYPES = ("Resize", "Email", "Train", "Report", "Sync")
QUEUES = ("default", "images", "mail")

#: The pages measured: (name, path). The task-set pages go here too.
PAGES: list[tuple[str, str]] = [
    ("overview", "/"),
    ("overview fragment", "/fragments/overview"),
    ("queue", "/queue"),
    ("queue, queued page 50", "/queue?qoffset=2450"),
    ("queue fragment", "/fragments/queue"),
    ("history", "/queue/history"),
    ("history, page 2", "/queue/history?{cursor}"),
    ("history, Failed", "/queue/history?status=Failed"),
    ("history, type+queue", "/queue/history?type=Train&queue=mail"),
    ("history, last hour", "/queue/history?since={hour_ago}"),
    ("job", "/jobs/{job_id}"),
    ("metrics", "/metrics"),
    ("healthz", "/healthz"),
    ("task sets", "/tasksets"),
]


def _records(live: int, finished: int, now: dt.datetime) -> list[JobRecord]:
    out: list[JobRecord] = []
    for i in range(live):
        running = i < RUNNING
        created = iso_utc(now - dt.timedelta(seconds=live - i))
        out.append(
            JobRecord(
                type=TYPES[i % len(TYPES)],
                job_id=new_job_id(),
                status=JobStatus.RUNNING if running else JobStatus.QUEUED,
                payload={"n": i, "queue": QUEUES[i % len(QUEUES)]},
                priority=i % 3,
                attempts=1 if running else 0,
                seq=i + 1,
                created=created,
                started=created if running else None,
                worker="bench-worker-gone" if running else None,
            )
        )
    span = dt.timedelta(days=2).total_seconds()
    for i in range(finished):
        # A tenth in the last hour (the overview's chart), the rest over two days.
        back = ((i % 10 == 0) and (i * 7 % 3600)) or (3600 + (i * 17) % int(span - 3600))
        end = now - dt.timedelta(seconds=back)
        status = (
            JobStatus.FAILED
            if i % 50 < 4
            else JobStatus.CANCELLED
            if i % 50 == 4
            else JobStatus.COMPLETED
        )
        out.append(
            JobRecord(
                type=TYPES[i % len(TYPES)],
                job_id=new_job_id(),
                status=status,
                payload={"n": i, "queue": QUEUES[i % len(QUEUES)], "blob": "x" * 200},
                attempts=1,
                seq=live + i + 1,
                created=iso_utc(end - dt.timedelta(seconds=5)),
                started=iso_utc(end - dt.timedelta(seconds=2)),
                finished=iso_utc(end),
                worker="bench-worker-gone",
                result={"ok": i} if status is JobStatus.COMPLETED else None,
                error_message="ValueError: bad input" if status is JobStatus.FAILED else None,
            )
        )
    return out


def _fill(location: str, records: list[JobRecord]) -> float:
    start = time.perf_counter()
    queue = jobledger.JobQueue(location, durability="flush")
    try:
        queue.backend.import_records(records)
    finally:
        queue.close()
    if "://" in location:
        # What autovacuum does to a table that grew: statistics and the visibility map
        # (without them the planner guesses a fresh table's sizes).
        from bench.pg import connect

        with connect(location) as conn:
            conn.execute("VACUUM ANALYZE jobledger_jobs")
    return time.perf_counter() - start


def _measure(location: str, rounds: int, now: dt.datetime) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from jobledger.web import create_app

    app = create_app(location, location if "://" in location else None, read_only=True, warm=False)
    out: dict[str, Any] = {"pages": {}}
    with TestClient(app) as client:
        t = time.perf_counter()
        assert client.get("/").status_code == 200
        out["first_request_ms"] = round((time.perf_counter() - t) * 1000, 1)
        reader = jobledger.JobQueue(location)
        first = reader.history(limit=50)
        last = first[-1]
        values = {
            "job_id": first[0].job_id,
            "cursor": urlencode({"bt": last.finished, "bid": last.job_id}),
            "hour_ago": (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        }
        reader.close()
        for name, path in PAGES:
            url = path.format(**values)
            times = []
            for _ in range(rounds):
                t = time.perf_counter()
                answer = client.get(url, headers={"accept": "text/html"})
                times.append((time.perf_counter() - t) * 1000)
                if answer.status_code != 200:
                    raise SystemExit(f"{name} ({url}): HTTP {answer.status_code}")
            out["pages"][name] = {
                "path": url,
                "p50_ms": round(statistics.median(times), 1),
                "max_ms": round(max(times), 1),
                "met": max(times) <= TARGET_MS,
            }
    return out


@contextlib.contextmanager
def _pg_database(admin: str) -> Iterator[str]:
    from bench.pg import connect, with_database

    name = f"jobledger_bench_web_{os.getpid()}"
    with connect(admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield with_database(admin, name)
    finally:
        with connect(admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _report(where: str, result: dict[str, Any]) -> None:
    print(
        f"\n== {where}: stored in {result['fill_s']:.1f} s; first request "
        f"{result['first_request_ms']:.0f} ms"
    )
    print(f"{'page':<24} {'p50 ms':>8} {'max ms':>8}  target {TARGET_MS:.0f} ms")
    for name, page in result["pages"].items():
        print(
            f"{name:<24} {page['p50_ms']:>8.1f} {page['max_ms']:>8.1f}  "
            f"{'met' if page['met'] else 'NOT MET'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.web_pages", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--live", type=int, default=10_000)
    parser.add_argument("--finished", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=10, help="requests per page")
    parser.add_argument(
        "--quick", action="store_true", help="1,000 live + 10,000 finished, 3 rounds"
    )
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-pg", action="store_true", help="measure the folder only")
    parser.add_argument("--output", default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.live, args.finished, args.rounds = 1000, 10_000, 3
    now = dt.datetime.now(dt.timezone.utc)
    records = _records(args.live, args.finished, now)
    print(f"{args.live:,} live + {args.finished:,} finished jobs, {args.rounds} requests a page")
    results: dict[str, Any] = {"live": args.live, "finished": args.finished, "target_ms": TARGET_MS}
    with tempfile.TemporaryDirectory(prefix="jobledger-bench-web-") as tmp:
        folder = os.path.join(tmp, "queue")
        fill = _fill(folder, records)
        results["files"] = {"fill_s": round(fill, 1), **_measure(folder, args.rounds, now)}
        _report("folder", results["files"])
    if not args.no_pg:
        with _pg_database(args.pg) as url:
            fill = _fill(url, records)
            results["postgres"] = {"fill_s": round(fill, 1), **_measure(url, args.rounds, now)}
            _report("PostgreSQL", results["postgres"])
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    met = all(
        p["met"]
        for r in ("files", "postgres")
        if r in results
        for p in results[r]["pages"].values()
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
