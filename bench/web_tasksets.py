"""Benchmark: the dashboard's task-set pages with 100 accounts x 30 days of task sets.

Run from the project root (``pip install -e '.[web,test]'``; PostgreSQL for its half)::

    python -m bench.web_tasksets                  # a folder and PostgreSQL, 20 requests a page
    python -m bench.web_tasksets --no-pg --requests 5
    python -m bench.web_tasksets --accounts 300 --days 30 --profile /tasksets

Fills a state folder (under the current directory, not /tmp) and a fresh schema of the
``test`` database (``$JOBLEDGER_BENCH_PG`` names the server) with ``accounts x days``
task sets of 12 tasks each (some failed, every completed one timed) and holds 5 run
leases, as live runs would. Then asks each page through the ASGI application in this
process (Starlette's TestClient: no network, no browser), once to warm up and then
``--requests`` times, and prints each page's time p50 and max against the 300 ms
target, and the first request's (a window read for the first time is parsed whole;
asked again, only the sets that changed are). Results go to ``bench/results/web_tasksets.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import jobledger
from bench._common import profile, run_info, work_folder, write_results
from jobledger._taskset_record import Failure, TaskSetRecord

TARGET_MS = 300.0
TASKS = [f"task-{i:02d}" for i in range(12)]
RESULTS = Path(__file__).resolve().parent / "results" / "web_tasksets.json"
ADMIN_URL = os.environ.get("JOBLEDGER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def record(account: str, date: str, a: int, d: int) -> TaskSetRecord:
    """A day's set: most done with durations, a few failed, the rest remaining."""
    done = 12 - (a + d) % 4
    completed = TASKS[:done]
    remaining = TASKS[done:]
    failures = {
        t: Failure(1 + (a % 3), f"TimeoutError: {t} timed out", f"{date}T08:00:00.000Z")
        for t in remaining[:1]
    }
    durations = {t: 0.5 + ((a * 7 + d * 3 + i) % 20) / 4 for i, t in enumerate(completed)}
    return TaskSetRecord(
        date,
        account,
        "daily-set",
        completed,
        remaining,
        f"{date}T09:00:00.000Z",
        failures=failures,
        durations=durations,
    )


def fill(state: jobledger.JobState, accounts: int, days: int) -> float:
    """Store the sets, one write each; the seconds it took."""
    start = time.perf_counter()
    today = state.today()
    for a in range(accounts):
        account = f"user-{a:03d}@example.com"
        for d in range(days):
            date = (today - dt.timedelta(days=d)).isoformat()
            rec = record(account, date, a, d)
            state.backend.update(rec.key, lambda _old, rec=rec: rec)
    return time.perf_counter() - start


PAGES = [
    "/tasksets",
    "/tasksets?days=30",
    "/tasksets/rates?days=30",
    "/tasksets/failing?days=30",
    "/tasksets/durations?days=30",
    "/tasksets/runs",
    "/tasksets/set?account=user-007@example.com&type=daily-set&date={today}",
    "/tasksets/day?account=user-007@example.com&date={today}",
]


def measure(
    location: str, requests: int, which: str, accounts: int, days: int, profile_page: str | None
) -> dict[str, Any]:
    """Fill ``location``, hold 5 leases, and time every page."""
    from starlette.testclient import TestClient

    from jobledger.web import create_app

    state = jobledger.JobState(location, durability="flush")
    filled = fill(state, accounts, days)
    print(f"{which}: {accounts * days} sets stored in {filled:.1f}s")
    today = state.today().isoformat()
    with ExitStack() as leases:
        for a in range(5):
            leases.enter_context(
                state.taskset(f"user-{a:03d}@example.com", "daily-set", date=today)
            )
        app = create_app(state=jobledger.JobState(location))
        out: dict[str, Any] = {}
        with TestClient(app) as client:
            for raw in PAGES:
                path = raw.format(today=today)
                t0 = time.perf_counter()
                answer = client.get(path)
                first = (time.perf_counter() - t0) * 1000  # what it parses for the first time
                assert answer.status_code == 200, (path, answer.status_code, answer.text[:500])
                times = []
                for _ in range(requests):
                    t0 = time.perf_counter()
                    answer = client.get(path)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert answer.status_code == 200
                p50, worst = statistics.median(times), max(times)
                ok = "ok  " if worst < TARGET_MS else "SLOW"
                shown = raw.split("&")[0][:34]
                print(
                    f"  {ok} {shown:<34} p50 {p50:7.1f} ms  max {worst:7.1f} ms"
                    f"  first {first:7.1f} ms  ({len(answer.content) // 1024} KB)"
                )
                out[raw] = {
                    "first_ms": round(first, 2),
                    "p50_ms": round(p50, 2),
                    "max_ms": round(worst, 2),
                    "bytes": len(answer.content),
                    "under_target": worst < TARGET_MS,
                }
                if profile_page and raw.startswith(profile_page):
                    print(profile(lambda path=path: client.get(path)))
        state.close()
    return {"fill_s": round(filled, 2), "pages": out}


@contextmanager
def pg_location(admin_url: str) -> Iterator[str]:
    from bench.pg import fresh_schema, with_database

    with fresh_schema(with_database(admin_url, "test"), f"bench_web_{os.getpid()}") as url:
        yield url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.web_tasksets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dir", help="where the state folder goes (default: under cwd)")
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=20, help="timed requests a page (20)")
    parser.add_argument("--no-pg", action="store_true", help="the folder only")
    parser.add_argument("--admin-url", default=ADMIN_URL, help="the PostgreSQL server")
    parser.add_argument("--profile", metavar="PAGE", help="cProfile one request of PAGE")
    parser.add_argument("--output", default=str(RESULTS), help="JSON results file")
    args = parser.parse_args(argv)
    work, fstype = work_folder(args.dir, "bench-web-")
    result: dict[str, Any] = {
        **run_info(work, fstype),
        "target_ms": TARGET_MS,
        "accounts": args.accounts,
        "days": args.days,
    }
    try:
        result["folder"] = measure(
            os.path.join(work, "state"),
            args.requests,
            "folder",
            args.accounts,
            args.days,
            args.profile,
        )
        if not args.no_pg:
            with pg_location(args.admin_url) as url:
                result["postgres"] = measure(
                    url, args.requests, "postgres", args.accounts, args.days, args.profile
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results(args.output, result)
    slow = [
        (w, p)
        for w in ("folder", "postgres")
        if w in result
        for p, r in result[w]["pages"].items()
        if not r["under_target"]
    ]
    if slow:
        print(f"{len(slow)} page(s) over {TARGET_MS:.0f} ms: {slow}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
