"""Benchmark: JobQueue ``enqueue``, ``claim`` + ``complete`` and opening a big queue.

Run from the project root::

    python -m bench.queue                    # 1000 jobs per round, 3 rounds, 100k history
    python bench/queue.py --dir /mnt/ssd/tmp --jobs 500 --history 20000 --live 2000
    python -m bench.queue --profile          # adds cProfile tables of the library rounds

In one process it measures:

- the floor: a bare loop of temp-file write + fsync + ``os.replace`` + folder fsync of a
  payload the size of a job file (the bytes of a real job file, built beforehand);
- ``enqueue`` one by one (``durability="fsync"``) into an empty queue, and its ratio to
  the floor (target >= 0.85): in rounds, and interleaved with the floor and with a bare
  loop that creates a new file each time (enqueue's own I/O) in chunks of 50, so that all
  three meet the disk at the same moments (the verdict uses this one);
- ``claim`` + ``complete`` by one process (fsync; the claim synced only where it must),
  target >= 1,300 jobs/s (set where the floor was 1,900/s: also judged as >= 0.68 of the
  floor measured in the run): a loop of ``claim()`` + ``complete()``, and a ``Worker`` with
  no-op handlers (one thread; then ``batch_size=50``: claims and completions in batches,
  their folder synced once per batch), next to the bare cost of the same two writes per
  job with no library at all (a replace, then a durable one, in the order the file
  system allows, the first synced only where the rename is not ordered after the data:
  see ``write_atomic``), the machine's own limit for one job at a time;
- a big queue, ``--history`` finished jobs (default 100,000) and ``--live`` queued ones
  (default 10,000): the time of ``JobQueue(dir).counts()`` from a new object (the first
  use opens and reconciles), and the enqueue and claim + complete rates there, next to a
  queue with the same live jobs and no history (so that the cost of history and the cost
  of live jobs can be told apart);
- how fast the file system creates empty files, before and after the rounds: every durable
  replace creates a temp file, and on some file systems (ext4 without a journal) creation
  slows down after many deletes nearby, which moves every other figure.

Rounds alternate floor and library (median over rounds). Results go to
``bench/results/queue.json``. The folder defaults to a temp folder under the current
directory, not /tmp (often a tmpfs, where fsync is free). Never collected by pytest.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:
    # `python bench/queue.py`: this file must not shadow the standard library's `queue`,
    # and `bench` must be importable (for the helpers shared with bench.tasksets).
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))

import argparse
import datetime as dt
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import jobledger
from bench._common import profile, run_info, work_folder, write_results
from bench.tasksets import durable_save, floor_round, median_of, summary
from jobledger._clock import iso_utc
from jobledger._job_record import JobRecord, JobStatus
from jobledger.backends.files._fs_probe import orders_rename_over
from jobledger.backends.files._names import encode
from jobledger.backends.files._syncs import fsync_dir

RESULTS = Path(__file__).resolve().parent / "results" / "queue.json"
ENQUEUE_TARGET = 0.85
CLAIM_TARGET = 1300.0
# The issue set CLAIM_TARGET on a machine whose floor was about 1,900 a second; on a faster
# or slower disk the same claim is this share of the floor measured in the run.
CLAIM_TARGET_FLOOR = 1900.0
BATCH = 50  # the Worker's batch_size in the batched rounds


def job(i: int) -> dict[str, Any]:
    """A job shaped like the document's TextJob (its file is about 550 bytes)."""
    return {
        "type": "TextJob",
        "model": "mistralai/Mistral-7B-v0.1",
        "expected_repo_name": f"my-fine-tuned-model-{i}",
        "dataset": f"my-dataset-{i}.json",
        "file_format": "json",
    }


def sample_file(i: int = 0) -> bytes:
    """The bytes of a Queued job file as enqueue writes it (the floor's payload)."""
    stamp = "2025-01-20T10:30:00.000Z"
    payload = {k: v for k, v in job(i).items() if k != "type"}
    record = JobRecord(
        job_id="123e4567-e89b-12d3-a456-426614174000",
        type="TextJob",
        status=JobStatus.QUEUED,
        payload=payload,
        seq=1737369000000000 + i,
        created=stamp,
    )
    return record.dumps()


# -- rounds -----------------------------------------------------------------------------------


def floor_new_files_round(folder: str, data: bytes, n: int) -> list[float]:
    """Like the floor, but each save creates a new file name (as enqueue must: one file
    per job) instead of replacing the same one; each latency, in seconds."""
    os.makedirs(folder, exist_ok=True)
    lat = []
    clock = time.perf_counter
    for i in range(n):
        t0 = clock()
        durable_save(folder, f"new-{i}.json", data)
        lat.append(clock() - t0)
    # Left in place (the work folder goes at the end): deleting 1,000 files here would
    # free their blocks, and on a disk mounted with `discard` the next measure's commits
    # would carry the TRIMs.
    return lat


def interleaved_enqueue(work: str, data: bytes, n: int, chunk: int) -> dict[str, float]:
    """Enqueue against both floors at the same moments of the disk: chunks of ``chunk``
    operations of each (a durable replace of one file; a durable new file; ``enqueue``),
    in turn, until each has done n. Rates over the whole run, jobs/s.

    Rounds of 1,000 one after the other meet a disk whose speed swings 2x within a minute
    on this machine; chunks of 50 in turn see the same swings."""
    replace_dir = os.path.join(work, "il-replace")
    new_dir = os.path.join(work, "il-new")
    os.makedirs(replace_dir)
    os.makedirs(new_dir)

    spent = {"replace": 0.0, "new": 0.0, "enqueue": 0.0}
    clock = time.perf_counter
    with jobledger.JobQueue(os.path.join(work, "il-queue"), durability="fsync") as q:
        q.recover()
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            t0 = clock()
            for _ in range(start, stop):
                durable_save(replace_dir, "state.json", data)
            t1 = clock()
            for i in range(start, stop):
                durable_save(new_dir, f"new-{i}.json", data)
            t2 = clock()
            for i in range(start, stop):
                q.enqueue(job(i))
            t3 = clock()
            spent["replace"] += t1 - t0
            spent["new"] += t2 - t1
            spent["enqueue"] += t3 - t2
    return {name: n / seconds for name, seconds in spent.items()}


def create_rate(folder: str, n: int = 500) -> float:
    """Empty files created per second, nothing else: where this is slow, every measure
    here is (each durable replace creates a temp file). On an ext4 without a journal it
    falls with the files deleted nearby in the minutes before (see the README)."""
    os.makedirs(folder, exist_ok=True)
    t0 = time.perf_counter()
    for i in range(n):
        os.close(os.open(os.path.join(folder, f"c{i}"), os.O_WRONLY | os.O_CREAT, 0o644))
    return n / (time.perf_counter() - t0)


def enqueue_round(root: str, n: int, start: int = 0) -> list[float]:
    """``enqueue`` of n jobs, one by one, durability fsync; each latency."""
    lat = []
    clock = time.perf_counter
    with jobledger.JobQueue(root, durability="fsync") as q:
        q.recover()  # open (and reconcile) before timing
        for i in range(start, start + n):
            payload = job(i)
            t0 = clock()
            q.enqueue(payload)
            lat.append(clock() - t0)
    return lat


def claim_complete_round(root: str, n: int, prefill: bool = True) -> list[float]:
    """``claim`` + ``complete`` of n jobs by one process, durability fsync; each latency.

    With ``prefill``, n jobs are enqueued first (one batch, not timed)."""
    if prefill:
        with jobledger.JobQueue(root, durability="flush") as q:
            q.enqueue_many([job(i) for i in range(n)])
    lat = []
    clock = time.perf_counter
    with jobledger.JobQueue(root, durability="fsync") as q:
        q.recover()
        q.worker_id  # noqa: B018 - register the worker before timing
        for _ in range(n):
            t0 = clock()
            claimed = q.claim()
            assert claimed is not None, "the queue ran dry"
            q.complete(claimed.job_id, {"ok": True})
            lat.append(clock() - t0)
    return lat


def bare_claim_complete_round(folder: str, data: bytes, n: int, ordered: bool) -> list[float]:
    """The two writes of a claim + complete with no library, as the library makes them:
    where ``ordered``, an unsynced replace of a job file, then a durable one renamed first
    and synced after; elsewhere the claim's data synced before its rename (nothing else
    keeps a power cut from leaving the file empty), then a durable replace synced first.
    Each latency, in seconds."""
    os.makedirs(folder, exist_ok=True)
    names = [os.path.join(folder, f"job-{i}.json") for i in range(n)]
    for name in names:
        with open(name, "wb") as fh:
            fh.write(data)
    os.sync()
    lat = []
    clock = time.perf_counter
    for i, name in enumerate(names):
        t0 = clock()
        for step, durable in ((0, False), (1, True)):
            tmp = f"{name}.{step}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
                if not ordered:
                    os.fsync(fd)
                os.replace(tmp, name)
                if durable and ordered:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if durable:
                fsync_dir(folder)
        lat.append(clock() - t0)
        del i
    shutil.rmtree(folder, ignore_errors=True)
    return lat


def worker_round(root: str, n: int, batch_size: int, concurrency: int = 1) -> dict[str, float]:
    """A ``Worker`` with a no-op handler drains n prefilled jobs (durability fsync);
    ``{"rate": jobs/s}``."""
    with jobledger.JobQueue(root, durability="flush") as q:
        q.enqueue_many([job(i) for i in range(n)])
    with jobledger.JobQueue(root, durability="fsync") as q:
        q.recover()
        q.worker_id  # noqa: B018 - register the worker before timing
        worker = jobledger.Worker(
            q,
            {"TextJob": lambda j: None},
            concurrency=concurrency,
            batch_size=batch_size,
            handle_signals=False,
        )
        t0 = time.perf_counter()
        worker.run(until_empty=True)
        elapsed = time.perf_counter() - t0
        assert q.counts()["Completed"] == n
    return {"rate": n / elapsed}


def cold_open(root: str) -> float:
    """Seconds of ``JobQueue(root).counts()`` from a new object."""
    t0 = time.perf_counter()
    with jobledger.JobQueue(root, durability="fsync") as q:
        counts = q.counts()
    elapsed = time.perf_counter() - t0
    assert counts["Queued"] > 0
    return elapsed


# -- building the big queue -------------------------------------------------------------------


def build_history(root: str, history: int) -> float:
    """Write ``history`` Completed job files directly, in the documented format, dated
    30 days ago (file mtime too: a finished job's file is not written again), and a
    queue.json whose ``finished`` counts them. Returns seconds taken."""
    t0 = time.perf_counter()
    jobs_dir = os.path.join(root, "jobs")
    os.makedirs(jobs_dir, exist_ok=True)
    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    stamp = iso_utc(when)
    mtime = when.timestamp()
    for i in range(history):
        job_id = f"hist-{i:07d}"
        payload = {k: v for k, v in job(i).items() if k != "type"}
        record = JobRecord(
            job_id=job_id,
            type="TextJob",
            status=JobStatus.COMPLETED,
            payload=payload,
            attempts=1,
            seq=i + 1,
            created=stamp,
            started=stamp,
            finished=stamp,
            result={"ok": True},
        )
        path = os.path.join(jobs_dir, encode(job_id, "job id") + ".json")
        with open(path, "wb") as fh:
            fh.write(record.dumps())
        os.utime(path, (mtime, mtime))
    index = {
        "running": [],
        "queued": [],
        "finished": {"Completed": history, "Failed": 0, "Cancelled": 0},
    }
    with open(os.path.join(root, "queue.json"), "w", encoding="utf-8") as fh:
        json.dump(index, fh, indent=1)
    return time.perf_counter() - t0


def add_live(root: str, live: int) -> float:
    """Enqueue ``live`` jobs in one batch (durability flush). Returns seconds taken."""
    t0 = time.perf_counter()
    with jobledger.JobQueue(root, durability="flush") as q:
        q.enqueue_many([job(i) for i in range(live)])
    return time.perf_counter() - t0


# -- profile ----------------------------------------------------------------------------------


# -- main -------------------------------------------------------------------------------------


def _row(name: str, s: dict[str, float], ratio: str = "") -> str:
    return f"| {name} | {s['rate']:,.0f} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} | {ratio} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queue", description=__doc__)
    parser.add_argument("--dir", help="folder on the disk to measure (default: under cwd)")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per round (1000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each (3)")
    parser.add_argument("--history", type=int, default=100_000, help="finished jobs (100000)")
    parser.add_argument("--live", type=int, default=10_000, help="live jobs (10000)")
    parser.add_argument("--profile", action="store_true", help="cProfile the library rounds")
    parser.add_argument("--keep", action="store_true", help="keep the folders afterwards")
    parser.add_argument("--output", default=str(RESULTS), help="JSON results file")
    args = parser.parse_args(argv)

    work, fstype = work_folder(args.dir, "jobledger-bench-queue-")
    n = args.jobs
    data = sample_file()
    result: dict[str, Any] = {
        **run_info(work, fstype),
        "jobs_per_round": n,
        "rounds": args.rounds,
        "job_file_bytes": len(data),
        "history": args.history,
        "live": args.live,
    }
    try:
        # Warm-up (page cache, allocator, imports), not counted.
        floor_round(os.path.join(work, "floor"), [data] * 50, True)
        enqueue_round(os.path.join(work, "warm"), 50)
        claim_complete_round(os.path.join(work, "warm"), 50)

        creates_before = create_rate(os.path.join(work, "create-before"))
        print(f"\n1. empty queue: {args.rounds} rounds of {n} jobs, job file {len(data)} B")
        ordered = orders_rename_over(work)
        floors, new_floors, enqs, ccs, bares, w1s, wbs = [], [], [], [], [], [], []
        for r in range(args.rounds):
            f = summary(floor_round(os.path.join(work, "floor"), [data] * n, True))
            fresh_folder = os.path.join(work, f"fn-{r}")  # new names in every round
            new_floors.append(summary(floor_new_files_round(fresh_folder, data, n)))
            e = summary(enqueue_round(os.path.join(work, f"enq-{r}"), n))
            b = summary(bare_claim_complete_round(os.path.join(work, "bare"), data, n, ordered))
            c = summary(claim_complete_round(os.path.join(work, f"cc-{r}"), n))
            w1 = worker_round(os.path.join(work, f"w1-{r}"), n, batch_size=1)
            wb = worker_round(os.path.join(work, f"wb-{r}"), n, batch_size=BATCH)
            floors.append(f)
            enqs.append(e)
            bares.append(b)
            ccs.append(c)
            w1s.append(w1)
            wbs.append(wb)
            print(
                f"round {r + 1}: floor {f['rate']:6.0f}/s  enqueue {e['rate']:6.0f}/s "
                f"(ratio {e['rate'] / f['rate']:.3f})  bare claim+complete {b['rate']:6.0f}/s  "
                f"claim+complete {c['rate']:6.0f}/s  Worker {w1['rate']:6.0f}/s  "
                f"Worker batch {BATCH} {wb['rate']:6.0f}/s"
            )
        floor, enq, cc = median_of(floors), median_of(enqs), median_of(ccs)
        new_floor = median_of(new_floors)
        enq_new_ratio = statistics.median(
            e["rate"] / f["rate"] for f, e in zip(new_floors, enqs, strict=True)
        )
        enq_ratio = statistics.median(
            e["rate"] / f["rate"] for f, e in zip(floors, enqs, strict=True)
        )
        cc_ratio = statistics.median(
            c["rate"] / f["rate"] for f, c in zip(floors, ccs, strict=True)
        )
        bare = median_of(bares)

        creates_after = create_rate(os.path.join(work, "create-after"))
        result["empty_file_creates_per_s"] = [creates_before, creates_after]
        print(
            f"file creation alone: {creates_before:,.0f} empty files/s before the rounds, "
            f"{creates_after:,.0f}/s after (a slow or falling rate moves every measure here)"
        )

        print(f"\n1b. enqueue interleaved with both floors, chunks of 50, {n * args.rounds} each")
        il = interleaved_enqueue(work, data, n * args.rounds, 50)
        il_ratio, il_new_ratio = il["enqueue"] / il["replace"], il["enqueue"] / il["new"]
        print(
            f"replace {il['replace']:.0f}/s  new file {il['new']:.0f}/s  enqueue "
            f"{il['enqueue']:.0f}/s: {il_ratio:.3f} of the floor, {il_new_ratio:.3f} of the "
            "new-file floor"
        )

        def vs_bare(rounds: list[dict[str, float]]) -> float:
            return statistics.median(
                x["rate"] / b["rate"] for b, x in zip(bares, rounds, strict=True)
            )

        cc_bare, w1_bare, wb_bare = vs_bare(ccs), vs_bare(w1s), vs_bare(wbs)
        w1_rate = statistics.median(x["rate"] for x in w1s)
        wb_rate = statistics.median(x["rate"] for x in wbs)

        print(f"\n2. building: {args.live:,} live jobs alone, and with {args.history:,} finished")
        live_only = os.path.join(work, "live-only")
        t_live = add_live(live_only, args.live)
        big = os.path.join(work, "big")
        t_hist = build_history(big, args.history)
        # In real life history files are old: keep them (their ctime too, which utime
        # cannot set back) out of the open's "changed since queue.json" window (2 s).
        time.sleep(2.5)
        t_big_live = add_live(big, args.live)
        print(f"built in {t_live:.1f}s (live only) and {t_hist:.1f}s + {t_big_live:.1f}s (big)")
        opens = {
            name: [cold_open(root) for _ in range(3)]
            for name, root in (("live-only", live_only), ("big", big))
        }
        open_s = {name: statistics.median(v) for name, v in opens.items()}
        print(
            f"cold JobQueue(dir).counts(): {open_s['live-only'] * 1000:.0f} ms (live only), "
            f"{open_s['big'] * 1000:.0f} ms (with history)"
        )
        per: dict[str, dict[str, dict[str, float]]] = {}
        for name, root in (("live-only", live_only), ("big", big)):
            e_rounds, c_rounds = [], []
            for r in range(args.rounds):
                e_rounds.append(summary(enqueue_round(root, n, start=1_000_000 * (r + 1))))
                c_rounds.append(summary(claim_complete_round(root, n, prefill=False)))
            per[name] = {"enqueue": median_of(e_rounds), "claim_complete": median_of(c_rounds)}
            print(
                f"{name}: enqueue {per[name]['enqueue']['rate']:7.0f}/s  "
                f"claim+complete {per[name]['claim_complete']['rate']:7.0f}/s"
            )

        enq_ok = il_ratio >= ENQUEUE_TARGET
        cc_ok = max(cc["rate"], w1_rate, wb_rate) >= CLAIM_TARGET
        wb_floor = statistics.median(
            x["rate"] / f["rate"] for f, x in zip(floors, wbs, strict=True)
        )
        share = CLAIM_TARGET / CLAIM_TARGET_FLOOR
        cc_floor_ok = wb_floor >= share
        big_e = per["big"]["enqueue"]["rate"]
        big_c = per["big"]["claim_complete"]["rate"]
        lo_e = per["live-only"]["enqueue"]["rate"]
        lo_c = per["live-only"]["claim_complete"]["rate"]
        print()
        print(f"Floor payload {len(data)} B, {n} jobs per round, median of {args.rounds} rounds,")
        print(f"folder on {fstype}; big queue = {args.live:,} live + {args.history:,} finished.")
        print()
        print("| measure | ops/s | p50 ms | p99 ms | vs floor / target |")
        print("|---|---:|---:|---:|---|")
        print(_row("floor (write+fsync+replace+dir fsync)", floor))
        print(_row("floor, a new file each time", new_floor))
        print(
            _row(
                "enqueue, empty queue",
                enq,
                f"{enq_ratio:.3f}; {enq_new_ratio:.3f} of new-file floor (rounds)",
            )
        )
        verdict = "OK" if enq_ok else "BELOW"
        print(
            f"| enqueue, interleaved with the floors | {il['enqueue']:,.0f} | | | "
            f"{il_ratio:.3f} (>= 0.85: {verdict}); {il_new_ratio:.3f} of new-file floor "
            f"({il['replace']:,.0f} and {il['new']:,.0f}/s) |"
        )
        order = "renamed, then synced" if ordered else "synced, then renamed"
        print(_row(f"bare claim+complete (2 writes, {order})", bare, "machine limit, 1 at a time"))
        print(_row("claim+complete, empty queue", cc, f"{cc_ratio:.3f}; {cc_bare:.3f} of bare"))
        print(f"| Worker, no-op handler, 1 thread | {w1_rate:,.0f} | | | {w1_bare:.3f} of bare |")
        verdict = "OK" if cc_ok else "BELOW"
        scaled = "OK" if cc_floor_ok else "BELOW"
        print(
            f"| Worker, batch_size={BATCH}, 1 thread | {wb_rate:,.0f} | | | {wb_bare:.3f} of "
            f"bare, {wb_floor:.3f} of the floor; best one-process rate >= 1,300/s: {verdict}; "
            f"scaled to this floor (1,300 at 1,900 = {share:.2f} of it): {scaled} |"
        )
        for name, label in (("live-only", "live only"), ("big", "live + history")):
            e, c = per[name]["enqueue"], per[name]["claim_complete"]
            print(_row(f"enqueue, {label}", e, f"{e['rate'] / enq['rate']:.2f} x empty"))
            print(_row(f"claim+complete, {label}", c, f"{c['rate'] / cc['rate']:.2f} x empty"))
        print()
        print("| cold open: JobQueue(dir).counts() | ms |")
        print("|---|---:|")
        print(f"| {args.live:,} live | {open_s['live-only'] * 1000:.0f} |")
        print(f"| {args.live:,} live + {args.history:,} finished | {open_s['big'] * 1000:.0f} |")
        print()
        print(
            f"history effect (big vs live only): enqueue {big_e / lo_e:.2f}x, "
            f"claim+complete {big_c / lo_c:.2f}x (1.00 = history costs nothing)"
        )
        result.update(
            {
                "floor": floor,
                "floor_new_files": new_floor,
                "enqueue_ratio_to_new_file_floor": enq_new_ratio,
                "enqueue_empty": enq,
                "enqueue_ratio": enq_ratio,
                "enqueue_interleaved": il,
                "enqueue_interleaved_ratio": il_ratio,
                "enqueue_interleaved_ratio_to_new_file_floor": il_new_ratio,
                "enqueue_target_met": enq_ok,
                "claim_complete_empty": cc,
                "claim_complete_ratio_to_floor": cc_ratio,
                "bare_claim_complete": bare,
                "rename_ordered": ordered,
                "claim_complete_ratio_to_bare": cc_bare,
                "worker_rate": w1_rate,
                "worker_ratio_to_bare": w1_bare,
                "worker_batch_size": BATCH,
                "worker_batch_rate": wb_rate,
                "worker_batch_ratio_to_bare": wb_bare,
                "claim_complete_target_met": cc_ok,
                "worker_batch_ratio_to_floor": wb_floor,
                "claim_complete_target_met_scaled_to_floor": cc_floor_ok,
                "live_only": per["live-only"],
                "big": per["big"],
                "cold_open_s": open_s,
                "cold_open_all_s": opens,
                "build_s": {"live_only": t_live, "history": t_hist, "big_live": t_big_live},
                "rounds_detail": {
                    "floor": floors,
                    "floor_new_files": new_floors,
                    "enqueue": enqs,
                    "claim_complete": ccs,
                    "bare_claim_complete": bares,
                    "worker": w1s,
                    "worker_batch": wbs,
                },
            }
        )
        if args.profile:
            profiles = {
                "enqueue_empty": profile(lambda: enqueue_round(os.path.join(work, "p-e"), n)),
                "claim_complete_empty": profile(
                    lambda: claim_complete_round(os.path.join(work, "p-c"), n)
                ),
                "enqueue_big": profile(lambda: enqueue_round(big, n, start=9_000_000)),
                "claim_complete_big": profile(lambda: claim_complete_round(big, n, prefill=False)),
                "cold_open_big": profile(lambda: cold_open(big)),
            }
            for name, text in profiles.items():
                print(f"\n== cProfile: {name} ==\n{text}")
            result["profiles"] = profiles
        write_results(args.output, result)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
