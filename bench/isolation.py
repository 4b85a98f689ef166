"""Benchmark: what running each job in a process of its own costs (``Worker(isolation=...)``).

Run from the project root::

    python -m bench.isolation                  # 300 no-op jobs per drain, 3 rounds
    python -m bench.isolation --jobs 100 --rounds 5 --concurrency 2 --dir /mnt/ssd/tmp

In alternating rounds, a ``Worker`` drains ``--jobs`` prefilled no-op jobs from a queue
folder (``durability="flush"``: the per-job storage cost stays small, so that the cost of
the process shows) three ways: ``isolation="thread"`` as by default (short jobs are
claimed and recorded in batches); ``isolation="thread"`` with ``batch_size=1`` (one claim
and one completion per job, as a process-isolated Worker's jobs, long by the adaptive
sizing's measure, get); and ``isolation="process"`` (one child process per job, forked
by multiprocessing's fork server, started and warm before the first timed drain).
Reported: jobs/s of each (median of the rounds), each round's ratio to threads, and the
process's own cost per job in ms (``1/process - 1/thread one at a time``). Results go to
``bench/results/isolation.json``. Never collected by pytest.

Each job's process runs this module again as its main module (as multiprocessing's fork
server and spawn do for ``python -m``): its imports are kept to what the handler needs,
so that what is measured is the library's cost, not this file's.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import jobledger

RESULTS = "bench/results/isolation.json"


def noop(job: jobledger.Job) -> None:
    """The handler: nothing (imported by name in each job's process)."""


#: The Workers measured: (name, isolation, batch_size).
WAYS = [
    ("thread", "thread", None),
    ("thread, one at a time", "thread", 1),
    ("process", "process", None),
]


def drain(root: str, n: int, isolation: str, concurrency: int, batch_size: int | None) -> float:
    """jobs/s of a Worker draining ``n`` prefilled no-op jobs from a new queue folder."""
    shutil.rmtree(root, ignore_errors=True)
    with jobledger.JobQueue(root, durability="flush") as q:
        q.enqueue_many([{"type": "Noop", "i": i} for i in range(n)])
        q.worker_id  # noqa: B018 - register the worker before timing
        worker = jobledger.Worker(
            q,
            {"Noop": "bench.isolation:noop"},
            concurrency=concurrency,
            isolation=isolation,
            batch_size=batch_size,
            handle_signals=False,
        )
        t0 = time.perf_counter()
        worker.run(until_empty=True)
        elapsed = time.perf_counter() - t0
        assert q.counts()["Completed"] == n
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    import argparse
    import statistics

    from bench._common import run_info, work_folder, write_results

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs per drain (300)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument("--concurrency", type=int, default=1, help="Worker threads (1)")
    parser.add_argument("--dir", default=None, help="where the queue folder goes")
    args = parser.parse_args(argv)
    work, fstype = work_folder(args.dir, "bench-isolation-")
    try:
        root = f"{work}/queue"
        drain(root, 10, "process", args.concurrency, None)  # start and warm the fork server
        rates: dict[str, list[float]] = {name: [] for name, _, _ in WAYS}
        for r in range(args.rounds):
            for name, isolation, batch_size in WAYS:
                rate = drain(root, args.jobs, isolation, args.concurrency, batch_size)
                rates[name].append(rate)
                print(f"round {r + 1}: {name:22} {rate:9.1f} jobs/s", flush=True)
        median = {name: statistics.median(rates[name]) for name in rates}
        ratio = {
            name: statistics.median(
                [x / t for x, t in zip(rates[name], rates["thread"], strict=True)]
            )
            for name in rates
        }
        cost_ms = (1 / median["process"] - 1 / median["thread, one at a time"]) * 1000
        print(f"\n| Worker | no-op jobs/s (concurrency {args.concurrency}) | vs threads |")
        print("| --- | ---: | ---: |")
        for name in rates:
            print(f"| {name} | {median[name]:,.0f} | {ratio[name]:.3f} |")
        print(f"\na process per job costs {cost_ms:.1f} ms of the worker's time per job")
        result: dict[str, Any] = {
            "run_info": run_info(work, fstype),
            "jobs": args.jobs,
            "concurrency": args.concurrency,
            "rounds": rates,
            "median": median,
            "ratio_to_threads": ratio,
            "process_cost_ms": cost_ms,
        }
        write_results(RESULTS, result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
