"""Benchmark: what one refresh of ``jobledger jobs top`` reads, and how long it takes.

Run from the project root::

    python -m bench.top                                   # 20,000 finished, 1,000 live
    python -m bench.top --finished 100000 --live 100 --dir /mnt/ssd/tmp
    python -m bench.top --url postgresql://user@host:5432/benchdb   # a database of yours

A queue is filled with ``--finished`` Completed jobs and ``--live`` live ones (10 of them
Running), then closed, as a run leaves it. A second queue object, used only for reading
as ``jobs top`` uses its own, then draws frames (``TopView.frame``, rendered to memory);
reported: the time of the first refresh (on a folder it builds the reader's summary of
finished jobs), the median time of a later refresh over ``--refreshes``, and the median
time of each of its reads: the counts with the Running jobs, the latest failures, the live
jobs per queue and the live workers. With ``--url`` the jobs go into that database's
jobledger tables (created if missing): give a database made for it. Results go to
``bench/results/top.json``. Never collected by pytest.
"""

from __future__ import annotations

import io
import shutil
import statistics
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console

import jobledger
from jobledger.cli._top import TopView, live_by_queue

RESULTS = "bench/results/top.json"
BATCH = 5000


def fill(location: str, finished: int, live: int) -> None:
    """``finished`` Completed jobs and ``live`` live ones, 10 of them Running."""
    with jobledger.JobQueue(location, durability="flush") as q:
        left = finished
        while left > 0:
            n = min(BATCH, left)
            q.enqueue_many([{"type": "T"} for _ in range(n)])
            q.complete_many({job.job_id: None for job in q.claim_many(n)})
            left -= n
        q.enqueue_many([{"type": "T", "queue": "gpu" if i % 2 else "default"} for i in range(live)])
        q.claim_many(min(10, live))
        q.checkpoint()


def timed(read: Callable[[], object], times: int) -> float:
    """The median seconds of ``read()`` over ``times`` calls."""
    took = []
    for _ in range(times):
        began = time.perf_counter()
        read()
        took.append(time.perf_counter() - began)
    return statistics.median(took)


def measure(location: str, refreshes: int) -> dict[str, float]:
    """Seconds of the first refresh, and median seconds of a later one and of each of its
    reads."""
    with jobledger.JobQueue(location) as reader:
        view = TopView(reader, Console(file=io.StringIO(), width=200, height=50), 1.0)
        began = time.perf_counter()
        view.frame(True)  # a folder's summary of finished jobs is built here
        first = time.perf_counter() - began
        return {
            "first refresh": first,
            "refresh": timed(lambda: view.frame(True), refreshes),
            "counts and running jobs": timed(
                lambda: reader.live_page(jobledger.JobStatus.RUNNING, limit=50), refreshes
            ),
            "latest failures": timed(
                lambda: reader.history(status=jobledger.JobStatus.FAILED, limit=8), refreshes
            ),
            "live jobs per queue": timed(
                lambda: live_by_queue(reader.live_page("Queued", limit=0).by_queue), refreshes
            ),
            "live workers": timed(reader.reader.live_workers, refreshes),
        }


def main(argv: list[str] | None = None) -> int:
    import argparse

    from bench._common import run_info, work_folder, write_results

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--finished", type=int, default=20_000, help="finished jobs (20000)")
    parser.add_argument("--live", type=int, default=1_000, help="live jobs (1000)")
    parser.add_argument("--refreshes", type=int, default=5, help="refreshes timed (5)")
    parser.add_argument("--dir", default=None, help="where the queue folder goes")
    parser.add_argument("--url", default=None, help="a PostgreSQL database instead")
    args = parser.parse_args(argv)
    work = None
    if args.url:
        location, fstype = args.url, "postgresql"
    else:
        work, fstype = work_folder(args.dir, "bench-top-")
        location = f"{work}/queue"
    try:
        began = time.perf_counter()
        fill(location, args.finished, args.live)
        print(f"filled in {time.perf_counter() - began:.1f} s", flush=True)
        seconds = measure(location, args.refreshes)
        print(f"\n| jobs top, {args.finished:,} finished, {args.live:,} live | ms |")
        print("| --- | ---: |")
        for name, s in seconds.items():
            print(f"| {name} | {s * 1000:,.0f} |")
        result: dict[str, Any] = {
            "run_info": run_info(work or ".", fstype),
            "finished": args.finished,
            "live": args.live,
            "median_seconds": seconds,
        }
        write_results(RESULTS, result)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
