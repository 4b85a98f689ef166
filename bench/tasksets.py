"""Benchmark: ``TaskSet.mark_done`` against the machine's floor for a durable file save.

Run from the project root::

    python -m bench.tasksets                 # 30 tasks (a daily set), fsync, 5 rounds
    python -m bench.tasksets --dir /mnt/ssd/tmp --tasks 500 --rounds 3 --profile

In one process, alternating rounds of:

- the floor: a bare loop of temp-file write + fsync + ``os.replace`` + folder fsync, each
  writing a payload of exactly the size the task-set file has at that point (the same
  JSON, built beforehand, so the floor does no serialisation);
- the library: ``mark_done`` of every task of an N-task set, under its lease, in a folder
  on the same disk.

Prints rate (ops/s) and latency p50/p99 of both (median over rounds) and the ratio
library/floor, and writes them to ``bench/results/tasksets.json``. The folder defaults
to a temp folder under the current directory, not /tmp (often a tmpfs, where fsync is
free and the numbers say nothing about a disk).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import os
import pstats
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import jobledger
from bench._common import run_info, work_folder, write_results
from jobledger._taskset_record import TaskSetRecord

ACCOUNT = "bench@example.com"
TYPE = "daily-set"
RESULTS = Path(__file__).resolve().parent / "results" / "tasksets.json"


def task_names(n: int) -> list[str]:
    shapes = ["quiz-{}", "poll-{}", "search-desktop-{}", "daily-check-in-{}", "promo-{}"]
    return [shapes[i % len(shapes)].format(i) for i in range(n)]


def payloads(tasks: list[str], date: str) -> list[bytes]:
    """The bytes the library writes at each mark_done: completed grows, remaining shrinks."""
    stamp = "2025-01-20T10:30:00.000Z"
    out = []
    for i in range(1, len(tasks) + 1):
        record = TaskSetRecord(date, ACCOUNT, TYPE, tasks[:i], tasks[i:], stamp)
        out.append(record.dumps())
    return out


def fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_save(folder: str, name: str, data: bytes, fsync: bool = True) -> None:
    """The bare save: temp write (+ fsync) + ``os.replace`` (+ folder fsync)."""
    tmp = os.path.join(folder, ".floor.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(folder, name))
    if fsync:
        fsync_dir(folder)


def floor_round(folder: str, data: list[bytes], fsync: bool) -> list[float]:
    """Bare durable saves, one per payload; the latency of each, in seconds."""
    os.makedirs(folder, exist_ok=True)
    lat = []
    clock = time.perf_counter
    for payload in data:
        t0 = clock()
        durable_save(folder, "floor.json", payload, fsync)
        lat.append(clock() - t0)
    return lat


def library_round(root: str, tasks: list[str], date: str, durability: str) -> list[float]:
    """``mark_done`` of every task of a fresh set, under its lease; each latency."""
    state = jobledger.JobState(root, timezone="UTC", durability=durability)
    lat = []
    clock = time.perf_counter
    with state.taskset(ACCOUNT, TYPE, tasks, date=date) as ts:
        for task in tasks:
            t0 = clock()
            ts.mark_done(task)
            lat.append(clock() - t0)
        assert ts.is_complete
    return lat


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "rate": len(ordered) / sum(ordered),
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def profile_round(root: str, tasks: list[str], durability: str, top: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    library_round(root, tasks, "2024-12-31", durability)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tasksets", description=__doc__)
    parser.add_argument("--dir", help="folder on the disk to measure (default: under cwd)")
    parser.add_argument("--tasks", type=int, default=30, help="tasks in the set (30)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each (5)")
    parser.add_argument("--durability", choices=["fsync", "flush"], default="fsync")
    parser.add_argument("--profile", action="store_true", help="cProfile one library round")
    parser.add_argument("--output", default=str(RESULTS), help="JSON results file")
    args = parser.parse_args(argv)

    work, fstype = work_folder(args.dir, "jobledger-bench-")
    fsync = args.durability == "fsync"
    tasks = task_names(args.tasks)
    try:
        data = payloads(tasks, "2025-01-20")
        sizes = [len(d) for d in data]
        print(
            f"{args.tasks} tasks, durability={args.durability}, file size "
            f"{sizes[0]}..{max(sizes)} bytes, {args.rounds} rounds of each"
        )
        # Warm-up (page cache, allocator, imports), not counted.
        floor_round(os.path.join(work, "floor"), data[:50], fsync)
        library_round(os.path.join(work, "lib"), tasks[:50], "2024-12-30", args.durability)
        floors: list[dict[str, float]] = []
        libs: list[dict[str, float]] = []
        for r in range(args.rounds):
            f = summary(floor_round(os.path.join(work, "floor"), data, fsync))
            date = (dt.date(2025, 1, 1) + dt.timedelta(days=r)).isoformat()
            lib = summary(library_round(os.path.join(work, "lib"), tasks, date, args.durability))
            floors.append(f)
            libs.append(lib)
            print(
                f"round {r + 1}: floor {f['rate']:8.0f} ops/s   mark_done {lib['rate']:8.0f} "
                f"ops/s   ratio {lib['rate'] / f['rate']:.3f}"
            )
        floor, lib = median_of(floors), median_of(libs)
        ratio = statistics.median(b["rate"] / a["rate"] for a, b in zip(floors, libs, strict=True))
        print()
        print(f"{'':12}{'ops/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
        for name, s in (("floor", floor), ("mark_done", lib)):
            print(f"{name:12}{s['rate']:10.0f}{s['p50_ms']:10.3f}{s['p99_ms']:10.3f}")
        verdict = "OK" if ratio >= 0.85 else "BELOW TARGET"
        print(f"ratio mark_done/floor (median of rounds): {ratio:.3f}  (target >= 0.85: {verdict})")
        result: dict[str, Any] = {
            **run_info(work, fstype),
            "tasks": args.tasks,
            "rounds": args.rounds,
            "durability": args.durability,
            "file_bytes": {"first": sizes[0], "last": sizes[-1]},
            "floor": floor,
            "mark_done": lib,
            "ratio": ratio,
            "rounds_detail": {"floor": floors, "mark_done": libs},
        }
        if args.profile:
            text = profile_round(os.path.join(work, "prof"), tasks, args.durability, 25)
            print(text)
            result["profile_top"] = text
        write_results(args.output, result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
