"""Benchmark: the PostgreSQL job queue with a large history, ``python -m bench.pg --scale``.

Run from the project root (PostgreSQL must answer; psycopg 3 installed)::

    python -m bench.pg --scale                    # 1,000,000 finished jobs, 3 rounds
    python -m bench.pg --scale --quick            # 100,000 finished jobs, 1 round: a smoke run
    python -m bench.pg --scale --rows 300000 --jobs 5000 --rounds 5 --window 5

In the database ``bench.pg`` creates (and drops at the end), two schemas: one whose job
table holds ``--rows`` finished jobs (COPY, then ANALYZE; autovacuum as the server has it)
and one whose table is empty. It measures:

1. The drain of ``--jobs`` (5,000) queued no-op jobs by the default Worker
   (``Worker(queue, handlers)``, nothing else given) in a child process, timed from a
   start barrier (connected and registered) to the last job's ``finished`` stamp, on the
   empty table and on the full one in alternating rounds (the order alternates too): the
   ratio of the full table's rate to the empty one's, round by round (target: 0.90 or
   more, that is within 10%).
2. Then, on the full table, a default Worker in a child process drains a steady stream (a
   producer process keeps 2,000 to 3,000 jobs queued, so the worker never waits for work)
   and records when each job starts. After ``--window`` seconds of that alone, this
   process prunes every history row (``JobQueue.prune``, jobs finished more than a day
   ago, in its batches of ``prune_batch`` or ``--prune-batch``, each followed by its
   pause, ``prune_pause`` or ``--prune-pause`` times as long as it took), then the stream
   stops.
   Reported: the prune's duration and batches, and the longest gap between two
   consecutive job starts of the worker while the prune ran against the one in the
   window before it (target: 100 ms at most while pruning), with the worker's rate in
   each.

The results go to ``bench/results/pg_scale.json`` (``--output``). Never collected by pytest.
"""

from __future__ import annotations

import array
import datetime as dt
import itertools
import multiprocessing
import os
import statistics
import threading
import time
from multiprocessing.context import BaseContext
from typing import Any

import jobledger
from bench import pg
from bench._common import filesystem_of, kill_all, run_info, write_results
from bench.queue import job as text_job
from jobledger._clock import iso_utc
from jobledger._job_record import JobRecord, JobStatus, new_job_id
from jobledger.backends.postgres import _queries as q
from jobledger.backends.postgres._rows import copy_row

RATIO_TARGET = 0.90
STALL_TARGET_MS = 100.0
HISTORY_DAYS = 30  # the history's jobs finished over this many days, ending 2 days ago
QUEUED_LOW = 2000  # the producer tops the queue up below this
TOP_UP = 1000
COPY_CHUNK = 20_000
_FINISHED = ", ".join(f"'{s.value}'" for s in sorted(JobStatus.FINISHED, key=lambda s: s.value))


# -- the history ---------------------------------------------------------------------------------


def _copy_text(value: Any) -> str:
    """A value of ``copy_row`` as a field of COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    text = str(value)
    if any(c in text for c in "\\\t\n\r"):
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
        text = text.replace("\r", "\\r")
    return text


def fill_history(url: str, rows: int) -> dict[str, float]:
    """``rows`` finished jobs (mostly Completed, some Failed and Cancelled), finished one
    after the other over HISTORY_DAYS days ending two days ago, COPYed in as COPY's text
    (built here, not through a record per row), then the sequence moved past them and the
    table ANALYZEd. Returns the seconds each took."""
    with jobledger.JobQueue(url) as queue:
        queue.recover()  # the schema
    newest = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    first_ms = int(newest.timestamp() * 1000) - HISTORY_DAYS * 86_400_000
    step_ms = HISTORY_DAYS * 86_400_000 / max(1, rows)
    payload = {k: v for k, v in text_job(0).items() if k != "type"}
    template = JobRecord(
        type="Old",
        job_id="",
        status=JobStatus.COMPLETED,
        payload=payload,
        attempts=1,
        worker="bench-history-worker",
        result="ok",
    )
    base = [_copy_text(v) for v in copy_row(template)]
    col = {name: q.COLUMNS.index(name) for name in q.COLUMNS}
    seconds: dict[int, str] = {}

    def stamp(ms: int) -> str:
        s = ms // 1000
        text = seconds.get(s)
        if text is None:
            seconds.clear()
            text = iso_utc(dt.datetime.fromtimestamp(s, dt.timezone.utc))[:-5]
            seconds[s] = text
        return f"{text}.{ms % 1000:03d}Z"

    t0 = time.perf_counter()
    with pg.connect(url, autocommit=False) as conn:
        with conn.cursor() as cur, cur.copy(q.COPY_JOBS) as copy:
            chunk: list[str] = []
            for i in range(rows):
                row = base[:]
                row[col["job_id"]] = new_job_id()
                row[col["seq"]] = str(i + 1)
                when = stamp(first_ms + int(i * step_ms))
                row[col["created"]] = row[col["started"]] = row[col["finished"]] = when
                if i % 50 == 7:
                    row[col["status"]] = "Failed"
                    row[col["error_message"]] = "RuntimeError: model download timed out"
                    row[col["result"]] = "\\N"
                elif i % 97 == 11:
                    row[col["status"]] = "Cancelled"
                    row[col["result"]] = "\\N"
                chunk.append("\t".join(row))
                if len(chunk) >= COPY_CHUNK:
                    copy.write("\n".join(chunk) + "\n")
                    chunk = []
            if chunk:
                copy.write("\n".join(chunk) + "\n")
        conn.execute("SELECT setval('jobledger_job_seq', %s)", (max(1, rows),))
        conn.commit()
    copied = time.perf_counter() - t0
    with pg.connect(url) as conn:
        conn.execute("ANALYZE jobledger_jobs")
    return {"copy_s": copied, "analyze_s": time.perf_counter() - t0 - copied}


# -- the drain -----------------------------------------------------------------------------------


def drain_round(ctx: BaseContext, url: str, n: int) -> dict[str, Any]:
    """n no-op jobs drained by one default Worker process, from the start barrier to the
    last completion (jobs/s)."""
    pg.prefill(url, [pg.noop_job(i) for i in range(n)])
    blocks0 = _blocks(url)
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    proc = ctx.Process(target=pg.drain_worker, args=(url, {}, barrier, results, False), daemon=True)
    try:
        proc.start()
        barrier.wait(timeout=300)
        t0 = time.time()
        report = results.get(timeout=600)
        proc.join(60)
    finally:
        kill_all([proc])
    if "error" in report:
        raise RuntimeError(f"drain worker failed: {report['error']}")
    # Every job of the round finishes after the barrier; the rounds before it, before.
    since = iso_utc(dt.datetime.fromtimestamp(t0, dt.timezone.utc))
    with pg.connect(url) as conn:
        # Through the finished index: the jobs that finished since the round began.
        done, last = conn.execute(
            f"SELECT count(*), max(finished) FROM jobledger_jobs"
            f" WHERE status IN ({_FINISHED}) AND finished >= %s",
            (since,),
        ).fetchone()
        queued = conn.execute(q.COUNT_QUEUED).fetchone()[0]
    if done != n or queued:
        raise RuntimeError(f"drain finished {done} of {n} jobs, {queued} still queued")
    end = dt.datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp()
    blocks1 = _blocks(url)
    return {
        "rate": n / (end - t0),
        "seconds": end - t0,
        "processed": report["processed"],
        # Shared buffer misses (pages read from the OS) and hits per job: what a larger
        # table costs the server, apart from the machine's noise (the worker's sessions
        # report theirs when they close, before this reads them).
        "reads_per_job": (blocks1[0] - blocks0[0]) / n,
        "hits_per_job": (blocks1[1] - blocks0[1]) / n,
    }


def _blocks(url: str) -> tuple[int, int]:
    """The database's shared buffer misses and hits so far (pg_stat_database)."""
    with pg.connect(url) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT blks_read, blks_hit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]), int(row[1])


# -- the prune beside a draining worker ----------------------------------------------------------


def stream_worker(url: str, started: Any, stop: Any, results: Any) -> None:
    """A default Worker that records when each job starts (time.monotonic, the same clock
    in every process), until ``stop``; sends the starts back."""
    starts = array.array("d")

    def handler(job: jobledger.Job) -> None:
        starts.append(time.monotonic())
        if len(starts) == 200:
            started.set()

    out: dict[str, Any] = {}
    try:
        with jobledger.JobQueue(url) as queue:
            queue.recover()
            queue.worker_id  # noqa: B018 - register before the first claim
            worker = jobledger.Worker(queue, {"Noop": handler})
            threading.Thread(target=lambda: (stop.wait(), worker.stop()), daemon=True).start()
            worker.run()
        out["starts"] = starts.tobytes()
    except BaseException as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        results.put(out)


def producer(url: str, stop: Any, results: Any) -> None:
    """Keeps QUEUED_LOW to QUEUED_LOW + TOP_UP no-op jobs queued until ``stop``."""
    made = 0
    try:
        with jobledger.JobQueue(url) as queue:
            while not stop.is_set():
                if queue.pending_count(["Noop"]) < QUEUED_LOW:
                    queue.enqueue_many([pg.noop_job(i) for i in range(made, made + TOP_UP)])
                    made += TOP_UP
                else:
                    stop.wait(0.005)
    finally:
        results.put(made)


def gaps(starts: list[float], a: float, b: float) -> dict[str, float]:
    """The gaps between consecutive job starts that overlap the window [a, b] (one that
    straddles its start or its end counts): the longest and the 99th percentile, in ms,
    how many lasted over 50 and over 100 ms, and the rate of job starts within it."""
    inside = [t1 - t0 for t0, t1 in itertools.pairwise(starts) if t1 >= a and t0 <= b]
    within = sum(1 for t in starts if a <= t <= b)
    if not inside:
        whole = (b - a) * 1000
        return {"max_ms": whole, "p99_ms": whole, "over_50ms": 1, "over_100ms": 1, "rate": 0.0}
    inside.sort()
    return {
        "max_ms": 1000 * inside[-1],
        "p99_ms": 1000 * inside[min(len(inside) - 1, int(0.99 * len(inside)))],
        "over_50ms": sum(1 for g in inside if g > 0.05),
        "over_100ms": sum(1 for g in inside if g > 0.1),
        "rate": within / (b - a),
        "jobs": within,
    }


def prune_beside_a_worker(
    ctx: BaseContext, url: str, window_s: float, batch: int | None, pause: float | None
) -> dict[str, Any]:
    """The stream, a window of it alone, then the prune of every history row during it."""
    stop = ctx.Event()
    started = ctx.Event()
    worker_out = ctx.Queue()
    producer_out = ctx.Queue()
    procs = [
        ctx.Process(target=producer, args=(url, stop, producer_out), daemon=True),
        ctx.Process(target=stream_worker, args=(url, started, stop, worker_out), daemon=True),
    ]
    batches: list[tuple[float, int]] = []
    try:
        for p in procs:
            p.start()
        if not started.wait(300):
            raise RuntimeError("the stream's worker did not start 200 jobs within 300 s")
        with jobledger.JobQueue(url) as queue:
            queue.recover()  # connected before the window: not in the prune's time
            if batch:
                queue.backend.prune_batch = batch
            if pause is not None:
                queue.backend.prune_pause = pause
            size, paused = queue.backend.prune_batch, queue.backend.prune_pause
            b0 = time.monotonic()
            time.sleep(window_s)
            p0 = time.monotonic()
            pruned = queue.prune(
                dt.timedelta(days=1), on_batch=lambda k: batches.append((time.monotonic(), k))
            )
            p1 = time.monotonic()
        time.sleep(0.5)  # the stream goes on a little after the prune
        stop.set()
        report = worker_out.get(timeout=120)
        made = producer_out.get(timeout=120)
        for p in procs:
            p.join(60)
    finally:
        stop.set()
        kill_all(procs)
    if "error" in report:
        raise RuntimeError(f"stream worker failed: {report['error']}")
    starts = array.array("d")
    starts.frombytes(report["starts"])
    ordered = sorted(starts)
    ends = [p0] + [t for t, _ in batches]
    took = sorted(1000 * (b - a) for a, b in itertools.pairwise(ends))
    return {
        "pruned": pruned,
        "prune_s": p1 - p0,
        "batches": len(batches),
        "batch_size": size,
        "pause": paused,
        "batch_median_ms": statistics.median(took) if took else 0.0,
        "batch_max_ms": took[-1] if took else 0.0,
        "window_s": window_s,
        "before": gaps(ordered, b0, p0),
        "during": gaps(ordered, p0, p1),
        "jobs_started": len(starts),
        "jobs_enqueued": made,
    }


def table_stats(url: str) -> dict[str, Any]:
    """The job table's row and autovacuum counters (pg_stat_user_tables)."""
    with pg.connect(url) as conn:
        row = conn.execute(
            "SELECT n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count,"
            " last_autovacuum::text, pg_total_relation_size(relid)"
            " FROM pg_stat_user_tables WHERE relid = 'jobledger_jobs'::regclass"
        ).fetchone()
    keys = ("live", "dead", "autovacuums", "autoanalyzes", "last_autovacuum", "bytes")
    return dict(zip(keys, row, strict=True)) if row else {}


# -- main ----------------------------------------------------------------------------------------


def main(args: Any, db_url: str, ctx: BaseContext | None = None) -> int:
    """The scale measure in the database ``db_url`` (bench.pg made it, and drops it)."""
    ctx = ctx or multiprocessing.get_context(args.start_method)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    n = args.jobs or (2_000 if args.quick else 5_000)
    rounds = args.rounds or (1 if args.quick else 3)
    window = args.window or (2.0 if args.quick else 5.0)
    info = pg.server_info(db_url)
    settings = info["settings"]
    with pg.connect(db_url) as conn:
        autovacuum = conn.execute("SELECT current_setting('autovacuum')").fetchone()[0]
    data_dir = info["data_dir"]
    fstype = filesystem_of(data_dir) if data_dir else "?"
    print(f"server: {info['version']}")
    print(
        f"autovacuum={autovacuum}, synchronous_commit={settings['synchronous_commit']}, "
        f"shared_buffers={settings['shared_buffers']}, max_wal_size={settings['max_wal_size']}"
    )
    if autovacuum != "on":
        print("NOTE: autovacuum is off on this server: dead rows stay until a VACUUM.")
    result: dict[str, Any] = {
        **run_info(pg.redact(db_url), fstype),
        "server": info,
        "autovacuum": autovacuum,
        "rows": rows,
        "jobs": n,
        "rounds": rounds,
        "worker": "Worker(queue, handlers): the defaults",
    }
    with pg.fresh_schema(db_url, "empty") as empty, pg.fresh_schema(db_url, "full") as full:
        with jobledger.JobQueue(empty) as queue:
            queue.recover()
        print(f"filling {rows:,} finished jobs ...", flush=True)
        fill = fill_history(full, rows)
        print(f"filled: COPY {fill['copy_s']:.1f} s, ANALYZE {fill['analyze_s']:.1f} s")
        result["fill"] = fill
        drain_round(ctx, empty, 500)  # warm-up: imports, caches, the first spawn
        detail: dict[str, list[dict[str, Any]]] = {"empty": [], "full": []}
        for r in range(rounds):
            order = ("empty", "full") if r % 2 == 0 else ("full", "empty")
            for which in order:
                detail[which].append(drain_round(ctx, empty if which == "empty" else full, n))
            e, f = detail["empty"][-1], detail["full"][-1]
            print(
                f"round {r + 1}: empty {e['rate']:,.0f} jobs/s, {rows:,} finished "
                f"{f['rate']:,.0f} jobs/s ({f['rate'] / e['rate']:.2f}); buffer reads + hits "
                f"per job {e['reads_per_job']:.2f} + {e['hits_per_job']:.0f} / "
                f"{f['reads_per_job']:.2f} + {f['hits_per_job']:.0f}",
                flush=True,
            )
        pairs = zip(detail["empty"], detail["full"], strict=True)
        ratios = [f["rate"] / e["rate"] for e, f in pairs]
        before = table_stats(full)
        print(f"pruning {rows:,} finished jobs beside a draining worker ...", flush=True)
        stall = prune_beside_a_worker(ctx, full, window, args.prune_batch, args.prune_pause)
        after = table_stats(full)
    if stall["pruned"] != rows:
        raise RuntimeError(f"the prune deleted {stall['pruned']:,} of {rows:,} history rows")

    empty_rate = statistics.median(d["rate"] for d in detail["empty"])
    full_rate = statistics.median(d["rate"] for d in detail["full"])
    ratio = statistics.median(ratios)
    during, calm = stall["during"], stall["before"]
    verdict_ratio = "OK" if ratio >= RATIO_TARGET else "BELOW"
    verdict_stall = "OK" if during["max_ms"] <= STALL_TARGET_MS else "ABOVE"
    table = [
        (
            f"drain of {n:,} no-op jobs, default Worker, empty table",
            f"{empty_rate:,.0f} jobs/s",
            "",
        ),
        (
            f"the same with {rows:,} finished jobs in the table",
            f"{full_rate:,.0f} jobs/s: {ratio:.2f} of the empty table's "
            f"({min(ratios):.2f}-{max(ratios):.2f} by round)",
            f">= {RATIO_TARGET:.2f}: {verdict_ratio}",
        ),
        (
            "the server's shared buffer misses + hits per job: empty / with the history",
            " / ".join(
                f"{statistics.median(d['reads_per_job'] for d in detail[k]):.2f} + "
                f"{statistics.median(d['hits_per_job'] for d in detail[k]):.0f}"
                for k in ("empty", "full")
            ),
            "",
        ),
        (
            f"fill: COPY of {rows:,} finished jobs, then ANALYZE",
            f"{fill['copy_s']:.1f} s + {fill['analyze_s']:.1f} s",
            "",
        ),
        (
            f"prune of {rows:,} finished jobs beside a draining worker",
            f"{stall['prune_s']:.2f} s, {stall['batches']:,} batches of up to "
            f"{stall['batch_size']:,}, one every {stall['batch_median_ms']:.1f} ms (median; "
            f"longest {stall['batch_max_ms']:.1f} ms), the pause before it included "
            f"({stall['pause']:g} x the batch's time)",
            "",
        ),
        (
            "longest gap between two job starts of the worker: while pruning / before",
            f"{during['max_ms']:.0f} ms / {calm['max_ms']:.0f} ms "
            f"(99th percentile {during['p99_ms']:.1f} / {calm['p99_ms']:.1f} ms; over 50 ms: "
            f"{during['over_50ms']} / {calm['over_50ms']}, over 100 ms: "
            f"{during['over_100ms']} / {calm['over_100ms']}; in {stall['prune_s']:.1f} s / "
            f"{stall['window_s']:.1f} s)",
            f"<= {STALL_TARGET_MS:.0f} ms: {verdict_stall}",
        ),
        (
            "the worker's rate: while pruning / before",
            f"{during['rate']:,.0f} / {calm['rate']:,.0f} jobs/s",
            "",
        ),
    ]
    print()
    print(
        f"PostgreSQL {info['server_version']}, autovacuum={autovacuum}, "
        f"synchronous_commit={settings['synchronous_commit']}; {os.cpu_count()} CPUs; "
        f"median of {rounds} alternating round(s); default Worker"
    )
    print()
    print("| measure | result | target |")
    print("|---|---|---|")
    for row in table:
        print("| " + " | ".join(row) + " |")
    print(
        f"\njob table before the prune: {before}\nafter it: {after}"
        "\n(n_dead_tup and the autovacuum counters: whether autovacuum ran meanwhile)"
    )
    result.update(
        {
            "drain": {
                "empty_rate": empty_rate,
                "full_rate": full_rate,
                "ratio": ratio,
                "ratios": ratios,
                "target": RATIO_TARGET,
                "target_met": ratio >= RATIO_TARGET,
            },
            "prune": stall,
            "stall_target_ms": STALL_TARGET_MS,
            "stall_target_met": during["max_ms"] <= STALL_TARGET_MS,
            "table_before_prune": before,
            "table_after_prune": after,
            "rounds_detail": detail,
            "table": [list(r) for r in table],
        }
    )
    write_results(args.output or str(pg.RESULTS.with_name("pg_scale.json")), result)
    return 0
