"""Benchmark: the PostgreSQL job queue against the server's own limits, in one run.

Run from the project root (PostgreSQL must answer; psycopg 3 installed)::

    python -m bench.pg                         # 20,000 jobs, 3 rounds, 1, 2 and 4 processes
    python -m bench.pg --quick                 # small sizes, 1 round: a smoke run
    python bench/pg.py --jobs 50000 --processes 2,4 --concurrency 2 --batch-size 200
    python -m bench.pg --profile               # adds cProfile of drain worker processes,
                                               # server wait-event samples and enqueue_many
    python -m bench.pg --analyze               # ANALYZE the job table before each drain
    python -m bench.pg --scale                 # 1,000,000 finished jobs: the drain beside
                                               # them, their prune beside a worker
                                               # (bench/pg_scale.py)
    JOBLEDGER_BENCH_PG=postgresql://u@db/postgres python -m bench.pg

It creates its own database (``jobledger_bench_<pid>``, from template0, on the server of
``--admin-url``, default ``postgresql://postgres@127.0.0.1:5432/postgres`` or
``$JOBLEDGER_BENCH_PG``), drops it at the end (``WITH (FORCE)``), prints the server version
and the settings that decide commit costs, and measures, alternating in each round:

- the server's limits on one psycopg 3 connection, into a plain table shaped like a job
  row (the job table's columns and primary key, none of its secondary indexes), with
  rows built beforehand: one-row INSERT + COMMIT (transactions/s), a 100-row and a
  1,000-row INSERT + COMMIT (one statement, the rows one JSON parameter unpacked by
  jsonb_to_recordset, as the library's enqueue does) and a COPY of 1,000 rows + COMMIT
  (rows/s);
- ``JobQueue(url).enqueue_many([...])`` in batches of 1,000 (jobs/s; target >= 27,000),
  its ratio to the COPY limit;
- ``JobQueue(url).enqueue(job)`` one by one (jobs/s), its ratio to the one-row commit;
- the drain of ``--jobs`` no-op jobs by 1, 2 and 4 worker PROCESSES (``--processes``),
  each ``Worker(JobQueue(url), {"Noop": handler}, concurrency=C).run(until_empty=True)``
  (with ``batch_size=B`` when ``Worker`` accepts one), timed from a start barrier (every
  process connected and registered) to the last job's ``finished`` stamp (jobs/s; target
  >= 11,000 with 2 processes), with the machine's CPU use during it; its ratio is to the
  server's B-row INSERT + COMMIT for a batch size B (the one-row commit when B = 1), since
  each batch ends with one durable commit of B completions.

Then once, recovery: a worker process claims 50 jobs whose handler blocks forever, other
jobs wait Queued behind them, the process is killed with SIGKILL once all 50 are Running,
a fresh worker process starts, and the time from the kill until all 50 are Running under
it or Completed is reported (target: within 10 s) next to the worker lease in use, with
whether they were served ahead of the other jobs still Queued.

Every measure is timed on a fresh schema (jobs enqueued beforehand are not timed), so the
drains meet a job table that was just filled and never analyzed, as a burst into a new
queue does; ``--analyze`` runs ANALYZE on it first, to show what planner statistics
change. Options: ``--jobs``, ``--rounds``, ``--processes``, ``--concurrency`` and
``--batch-size`` (the Worker's), ``--start-method``, ``--quick``, ``--no-recovery``,
``--profile``, ``--output``. The median over rounds is printed as a Markdown table and
written, with every round, to ``bench/results/pg.json`` (run_info first, as every bench
result file). Never collected by pytest.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:
    # `python bench/pg.py`: bench/queue.py must not shadow the standard library's `queue`
    # (multiprocessing imports it), and `bench` must be importable.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))

import argparse
import collections
import contextlib
import cProfile
import datetime as dt
import inspect
import io
import itertools
import json
import logging
import multiprocessing
import pstats
import signal
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import jobledger
from bench._common import filesystem_of, kill_all, profile, run_info, write_results
from bench.queue import job as text_job

RESULTS = Path(__file__).resolve().parent / "results" / "pg.json"
ADMIN_URL = os.environ.get("JOBLEDGER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ENQUEUE_MANY_TARGET = 27_000.0
DRAIN_TARGET = 11_000.0
DRAIN_TARGET_PROCESSES = 2
RECOVERY_TARGET_S = 10.0
BATCH = 1000
RECOVERY_JOBS = 50
RECOVERY_OTHERS = 1500  # each takes OTHER_SLEEP_S in the fresh worker: outlasts the lease
OTHER_SLEEP_S = 0.01
SETTINGS = (
    "synchronous_commit",
    "fsync",
    "wal_sync_method",
    "shared_buffers",
    "full_page_writes",
    "commit_delay",
    "wal_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "max_connections",
)
# The job table's columns (backends/postgres/sql/0001_initial.sql), primary key only.
FLOOR_TABLE = """
CREATE TABLE floor_jobs (
    job_id text PRIMARY KEY, type text NOT NULL, status text NOT NULL, error_message text,
    payload jsonb NOT NULL, priority bigint NOT NULL, attempts integer NOT NULL,
    max_attempts integer NOT NULL, seq bigint NOT NULL, created text, started text,
    finished text, worker text, run_after text, result jsonb, recovered boolean NOT NULL,
    extra_meta jsonb NOT NULL
)"""
FLOOR_COLS = (
    "job_id, type, status, payload, priority, attempts, max_attempts, seq, created,"
    " recovered, extra_meta"
)
FLOOR_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
FLOOR_RECORDSET = (
    f"INSERT INTO floor_jobs ({FLOOR_COLS}) SELECT {FLOOR_COLS}"
    " FROM jsonb_to_recordset(%s::text::jsonb) AS x(job_id text, type text, status text,"
    " payload jsonb, priority bigint, attempts integer, max_attempts integer, seq bigint,"
    " created text, recovered boolean, extra_meta jsonb)"
)


# -- URLs and the database ----------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``."""
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(name)))


def with_schema(url: str, schema: str) -> str:
    """``url`` whose sessions use ``schema`` as their search_path."""
    parts = urlsplit(url)
    query = "&".join(
        q for q in (parts.query, urlencode({"options": f"-csearch_path={schema}"})) if q
    )
    return urlunsplit(parts._replace(query=query))


def redact(url: str) -> str:
    from jobledger.backends.postgres._db import redact as _redact

    return _redact(url)


def connect(url: str, autocommit: bool = True) -> Any:  # psycopg.Connection
    import psycopg

    return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)


_schemas = itertools.count(1)


@contextlib.contextmanager
def fresh_schema(db_url: str, prefix: str) -> Iterator[str]:
    """A new empty schema in the bench database: its URL; dropped afterwards."""
    name = f"{prefix}_{next(_schemas)}"
    with connect(db_url) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield with_schema(db_url, name)
    finally:
        with connect(db_url) as conn:
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def server_info(db_url: str) -> dict[str, Any]:
    with connect(db_url) as conn:
        row = conn.execute("SELECT version(), current_setting('server_version')").fetchone()
        settings = {
            name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]
            for name in SETTINGS
        }
        try:
            data_dir = conn.execute("SELECT current_setting('data_directory')").fetchone()[0]
        except Exception:  # not a superuser: unknown
            data_dir = None
    return {"version": row[0], "server_version": row[1], "settings": settings, "data_dir": data_dir}


# -- jobs and rows -------------------------------------------------------------------------------


def noop_job(i: int) -> dict[str, Any]:
    """A no-op job, its payload shaped like bench.queue's TextJob."""
    return {**text_job(i), "type": "Noop"}


def floor_rows(n: int, start: int) -> list[tuple[Any, ...]]:
    """n rows for the floor table, as a Queued job row, built before timing: the JSON
    columns are JSON text already (the floor does no serialisation; the server parses
    them into jsonb as it parses the library's)."""
    stamp = "2025-01-20T10:30:00.000Z"
    rows = []
    for i in range(start, start + n):
        payload = json.dumps({k: v for k, v in text_job(i).items() if k != "type"})
        job_id = str(uuid.uuid4())
        rows.append((job_id, "TextJob", "Queued", payload, 0, 0, 3, i, stamp, False, "{}"))
    return rows


def noop(job: jobledger.Job) -> None:
    """The drain's handler: nothing."""


def block_forever(job: jobledger.Job) -> None:
    """The recovery's first worker's handler: never returns (the process is killed)."""
    threading.Event().wait()


# -- server limits -------------------------------------------------------------------------------


def _floor_table(conn: Any) -> None:
    conn.execute("DROP TABLE IF EXISTS floor_jobs")
    conn.execute(FLOOR_TABLE)
    conn.commit()


def floor_single(url: str, n: int) -> dict[str, float]:
    """One-row INSERT + COMMIT, n times: transactions/s."""
    rows = floor_rows(n, 0)
    sql = f"INSERT INTO floor_jobs ({FLOOR_COLS}) VALUES {FLOOR_ROW}"
    with connect(url, autocommit=False) as conn:
        _floor_table(conn)
        clock = time.perf_counter
        t0 = clock()
        for row in rows:
            conn.execute(sql, row)
            conn.commit()
        elapsed = clock() - t0
    return {"rate": n / elapsed, "seconds": elapsed, "rows": n, "commits": n}


def floor_multirow(url: str, n: int, per: int) -> dict[str, float]:
    """``per``-row INSERT + COMMIT, for n rows: rows/s. One statement per commit, its rows
    one JSON text parameter (built before timing) that the server unpacks with
    jsonb_to_recordset, as the library's enqueue does. (A VALUES list of ``per`` rows, or
    one array per column, would measure psycopg's adaptation of each value in Python,
    about 3 us each, not the server.)"""
    commits = max(1, n // per)
    keys = [c.strip() for c in FLOOR_COLS.split(",")]
    batches = []
    for c in range(commits):
        docs = [dict(zip(keys, row, strict=True)) for row in floor_rows(per, c * per)]
        for d in docs:
            d["payload"], d["extra_meta"] = json.loads(d["payload"]), {}
        batches.append(json.dumps(docs))
    with connect(url, autocommit=False) as conn:
        _floor_table(conn)
        clock = time.perf_counter
        t0 = clock()
        for text in batches:
            conn.execute(FLOOR_RECORDSET, (text,))
            conn.commit()
        elapsed = clock() - t0
    return {"rate": commits * per / elapsed, "seconds": elapsed, "rows": commits * per}


def floor_copy(url: str, n: int, per: int) -> dict[str, float]:
    """COPY of ``per`` rows + COMMIT, for n rows: rows/s."""
    commits = max(1, n // per)
    batches = [floor_rows(per, c * per) for c in range(commits)]
    with connect(url, autocommit=False) as conn:
        _floor_table(conn)
        clock = time.perf_counter
        t0 = clock()
        for batch in batches:
            with conn.cursor().copy(f"COPY floor_jobs ({FLOOR_COLS}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
            conn.commit()
        elapsed = clock() - t0
    return {"rate": commits * per / elapsed, "seconds": elapsed, "rows": commits * per}


# -- the library: enqueue ------------------------------------------------------------------------


def enqueue_many_round(url: str, n: int) -> dict[str, float]:
    """``enqueue_many`` of n jobs in batches of 1,000 (durability fsync): jobs/s."""
    batches = [[text_job(i) for i in range(s, min(n, s + BATCH))] for s in range(0, n, BATCH)]
    lat = []
    clock = time.perf_counter
    with jobledger.JobQueue(url) as q:
        q.recover()  # connect, migrate and recover before timing
        for batch in batches:
            t0 = clock()
            q.enqueue_many(batch)
            lat.append(clock() - t0)
    total = sum(len(b) for b in batches)
    return {
        "rate": total / sum(lat),
        "seconds": sum(lat),
        "batch_p50_ms": 1000 * statistics.median(lat),
        "batch_max_ms": 1000 * max(lat),
    }


def enqueue_one_round(url: str, n: int) -> dict[str, float]:
    """``enqueue`` of n jobs one by one (durability fsync): jobs/s."""
    jobs = [text_job(i) for i in range(n)]
    lat = []
    clock = time.perf_counter
    with jobledger.JobQueue(url) as q:
        q.recover()
        for j in jobs:
            t0 = clock()
            q.enqueue(j)
            lat.append(clock() - t0)
    ordered = sorted(lat)
    return {
        "rate": n / sum(lat),
        "seconds": sum(lat),
        "p50_ms": 1000 * ordered[n // 2],
        "p99_ms": 1000 * ordered[min(n - 1, int(n * 0.99))],
    }


def prefill(url: str, jobs: list[dict[str, Any]]) -> None:
    """Enqueue jobs (not timed), in batches of 1,000."""
    with jobledger.JobQueue(url, durability="flush") as q:
        for s in range(0, len(jobs), BATCH):
            q.enqueue_many(jobs[s : s + BATCH])


# -- the library: the drain, in worker processes -------------------------------------------------


def worker_kwargs(concurrency: int, batch_size: int) -> tuple[dict[str, Any], bool]:
    """Worker's keyword arguments, with batch_size only if this Worker accepts it."""
    accepted = "batch_size" in inspect.signature(jobledger.Worker).parameters
    kwargs: dict[str, Any] = {"concurrency": concurrency}
    if accepted:
        kwargs["batch_size"] = batch_size
    return kwargs, accepted


class ThreadProfiles:
    """cProfile every thread started while active (Worker's threads) and this one."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._guard = threading.Lock()

    def _hook(self, frame: Any, event: str, arg: Any) -> None:
        prof = cProfile.Profile()
        with self._guard:
            self.profiles.append(prof)
        prof.enable()  # replaces this hook in the new thread

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._hook)
        main = cProfile.Profile()
        self.profiles.append(main)
        main.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        self.profiles[0].disable()
        threading.setprofile(None)

    def text(self, top: int = 30) -> str:
        """tottime and cumulative tables of all threads merged (once they have ended)."""
        out = io.StringIO()
        stats = pstats.Stats(self.profiles[0], stream=out)
        for prof in self.profiles[1:]:
            stats.add(prof)
        stats.strip_dirs()
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
        return out.getvalue()


def drain_worker(
    url: str,
    kwargs: dict[str, Any],
    barrier: Any,
    results: Any,
    profile: bool,
) -> None:
    """One worker process: connect and register, wait at the barrier, drain, report."""
    out: dict[str, Any] = {"pid": os.getpid()}
    try:
        with jobledger.JobQueue(url) as q:
            q.recover()  # connect, migrate, recover: before the barrier
            q.worker_id  # noqa: B018 - register (and start the heartbeat) before the barrier
            worker = jobledger.Worker(q, {"Noop": noop}, **kwargs)
            barrier.wait(timeout=300)
            c0 = time.process_time()
            if profile:
                with ThreadProfiles() as profs:
                    worker.run(until_empty=True)
                out["profile"] = profs.text()
            else:
                worker.run(until_empty=True)
            out.update(processed=worker.processed, cpu_s=time.process_time() - c0)
    except BaseException as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        results.put(out)


def cpu_times() -> tuple[float, float, float] | None:
    """Machine-wide (busy, iowait, total) jiffies from /proc/stat (None elsewhere)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [float(x) for x in fh.readline().split()[1:]]
    except OSError:
        return None
    idle, iowait = fields[3], fields[4]
    total = sum(fields[:8])
    return total - idle - iowait, iowait, total


class WaitSampler:
    """Samples what the jobledger sessions are doing (pg_stat_activity), every 5 ms."""

    def __init__(self, db_url: str) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._url = db_url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with connect(self._url) as conn:
            while not self._stop.wait(0.005):
                for (label,) in conn.execute(
                    "SELECT state || ' / ' || coalesce(wait_event_type || ':' || wait_event,"
                    " 'on CPU') FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND application_name LIKE 'jobledger backend%'"
                ):
                    self.counts[label] += 1

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def table(self) -> dict[str, float]:
        total = sum(self.counts.values()) or 1
        return {k: v / total for k, v in self.counts.most_common()}


def _last_finished(url: str) -> tuple[int, float]:
    """(Completed jobs, epoch of the last ``finished`` stamp)."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), max(finished) FROM jobledger_jobs WHERE status = 'Completed'"
        ).fetchone()
    done, last = int(row[0]), row[1]
    end = dt.datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp() if last else 0.0
    return done, end


def drain_round(
    ctx: BaseContext,
    url: str,
    n: int,
    processes: int,
    kwargs: dict[str, Any],
    profile: bool = False,
    sampler_url: str | None = None,
    analyze: bool = False,
) -> dict[str, Any]:
    """n no-op jobs drained by ``processes`` worker processes, from the start barrier to
    the last completion. ``analyze``: ANALYZE the job table after filling it."""
    prefill(url, [noop_job(i) for i in range(n)])
    if analyze:
        with connect(url) as conn:
            conn.execute("ANALYZE jobledger_jobs")
    barrier = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=drain_worker, args=(url, kwargs, barrier, results, profile), daemon=True)
        for _ in range(processes)
    ]
    sampler = WaitSampler(sampler_url) if sampler_url else None
    try:
        for p in procs:
            p.start()
        barrier.wait(timeout=300)
        t0 = time.time()
        m0 = time.monotonic()
        cpu0 = cpu_times()
        with sampler or contextlib.nullcontext():
            reports = [results.get(timeout=600) for _ in procs]
            exited = time.monotonic() - m0
            cpu1 = cpu_times()
        for p in procs:
            p.join(60)
    finally:
        kill_all(procs)
    errors = [r["error"] for r in reports if "error" in r]
    if errors:
        raise RuntimeError(f"drain worker failed: {errors}")
    done, end = _last_finished(url)
    if done != n:
        raise RuntimeError(f"drain left {n - done} of {n} jobs not Completed")
    elapsed = end - t0
    out: dict[str, Any] = {
        "rate": n / elapsed,
        "seconds": elapsed,
        "until_exit_s": exited,
        "per_process": [r["processed"] for r in reports],
        "worker_cpu_s": [round(r["cpu_s"], 3) for r in reports],
    }
    if cpu0 and cpu1:
        span = (cpu1[2] - cpu0[2]) or 1.0
        out["machine_cpu_busy"] = (cpu1[0] - cpu0[0]) / span
        out["machine_iowait"] = (cpu1[1] - cpu0[1]) / span
    if profile:
        out["profiles"] = [r.get("profile", "") for r in reports]
    if sampler:
        out["server_wait_samples"] = sampler.table()
    return out


# -- recovery ------------------------------------------------------------------------------------


def blocking_worker(url: str, kwargs: dict[str, Any]) -> None:
    """The worker that is killed: 50 threads, each blocked in a job forever."""
    with jobledger.JobQueue(url) as q:
        jobledger.Worker(q, {"Block": block_forever}, **kwargs).run()


def fresh_worker(url: str, kwargs: dict[str, Any], ready: Any) -> None:
    """The worker started after the kill: records the order it runs jobs in (as each
    job's result); "Other" jobs take OTHER_SLEEP_S each. Stopped with SIGTERM."""
    # Not 50 "Recovered job ..." warnings on the benchmark's output.
    logging.getLogger("jobledger").setLevel(logging.ERROR)
    order = itertools.count()

    def recovered(job: jobledger.Job) -> dict[str, int]:
        return {"order": next(order)}

    def other(job: jobledger.Job) -> dict[str, int]:
        n = next(order)
        time.sleep(OTHER_SLEEP_S)
        return {"order": n}

    with jobledger.JobQueue(url) as q:
        q.recover()
        q.worker_id  # noqa: B018
        ready.set()
        jobledger.Worker(q, {"Block": recovered, "Other": other}, **kwargs).run()


def recovery_round(
    ctx: BaseContext, url: str, kwargs: dict[str, Any], timeout: float = 120.0
) -> dict[str, Any]:
    """SIGKILL a worker holding 50 Running jobs; how long until a fresh one has them."""
    with jobledger.JobQueue(url, durability="flush") as q:
        backend = q.backend
        lease = {
            "worker_lease_s": getattr(backend, "worker_lease", None),
            "heartbeat_s": getattr(backend, "heartbeat", None),
            "recover_every_s": q.recover_every,
        }
        q.enqueue_many([{**text_job(i), "type": "Other"} for i in range(RECOVERY_OTHERS)])
        q.enqueue_many([{**text_job(i), "type": "Block"} for i in range(RECOVERY_JOBS)])
    blocker_kwargs = {**kwargs, "concurrency": RECOVERY_JOBS}
    blocker = ctx.Process(target=blocking_worker, args=(url, blocker_kwargs), daemon=True)
    ready = ctx.Event()
    fresh = ctx.Process(target=fresh_worker, args=(url, kwargs, ready), daemon=True)
    conn = connect(url)
    try:
        blocker.start()
        deadline = time.monotonic() + timeout
        while True:
            running, workers = conn.execute(
                "SELECT count(*), array_agg(DISTINCT worker) FROM jobledger_jobs"
                " WHERE type = 'Block' AND status = 'Running'"
            ).fetchone()
            if running == RECOVERY_JOBS:
                break
            if time.monotonic() > deadline or not blocker.is_alive():
                raise RuntimeError(f"the first worker holds {running} of {RECOVERY_JOBS} jobs")
            time.sleep(0.02)
        (dead,) = workers
        os.kill(blocker.pid, signal.SIGKILL)
        killed = time.monotonic()
        blocker.join()
        row = conn.execute(
            "SELECT extract(epoch FROM lease_until - clock_timestamp()) FROM jobledger_workers"
            " WHERE worker = %s",
            (dead,),
        ).fetchone()
        lease_left = float(row[0]) if row else None
        fresh.start()
        marks: dict[str, float] = {}
        queued_others_at_recovery = None
        while True:
            now = time.monotonic() - killed
            if "fresh_registered_s" not in marks and ready.is_set():
                marks["fresh_registered_s"] = now
            back, requeued, others_queued = conn.execute(
                "SELECT count(*) FILTER (WHERE type = 'Block' AND (status = 'Completed'"
                "  OR (status = 'Running' AND worker <> %s))),"
                " count(*) FILTER (WHERE type = 'Block' AND recovered),"
                " count(*) FILTER (WHERE type = 'Other' AND status = 'Queued')"
                " FROM jobledger_jobs",
                (dead,),
            ).fetchone()
            if requeued and "first_recovered_s" not in marks:
                marks["first_recovered_s"] = now
                queued_others_at_recovery = others_queued
            if back == RECOVERY_JOBS:
                marks["all_back_s"] = now
                break
            if now > timeout or not fresh.is_alive():
                raise RuntimeError(f"after {now:.1f}s only {back} of {RECOVERY_JOBS} are back")
            time.sleep(0.01)
        # Let the fresh worker finish the recovered jobs, then stop it (SIGTERM: graceful).
        while conn.execute(
            "SELECT count(*) FROM jobledger_jobs WHERE type = 'Block' AND status <> 'Completed'"
        ).fetchone()[0]:
            if time.monotonic() - killed > timeout:
                raise RuntimeError("the recovered jobs did not complete")
            time.sleep(0.01)
        marks["all_completed_s"] = time.monotonic() - killed
        os.kill(fresh.pid, signal.SIGTERM)
        fresh.join(60)
        rows = conn.execute(
            "SELECT type, (result->>'order')::int FROM jobledger_jobs WHERE status = 'Completed'"
        ).fetchall()
    finally:
        conn.close()
        kill_all((blocker, fresh))
    rec = sorted(o for t, o in rows if t == "Block")
    others = [o for t, o in rows if t == "Other"]
    before = sum(1 for o in others if o < rec[0])
    between = sum(1 for o in others if rec[0] < o < rec[-1])
    return {
        **lease,
        **marks,
        "lease_left_at_kill_s": lease_left,
        "others_queued_at_recovery": queued_others_at_recovery,
        "others_served_before_recovered": before,
        "others_served_among_recovered": between,
        "served_first": bool(queued_others_at_recovery) and between == 0,
    }


# -- profile of the parent's calls ---------------------------------------------------------------


# -- main ----------------------------------------------------------------------------------------


def _verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    if ok:
        return "OK"
    off = (target - value) / target if higher_is_better else (value - target) / target
    return f"BELOW ({'-' if higher_is_better else '+'}{100 * off:.0f}%)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pg",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--admin-url", default=ADMIN_URL, help="server to use (an admin URL)")
    parser.add_argument("--jobs", type=int, help="jobs per drain / enqueue_many (20000)")
    parser.add_argument("--single", type=int, help="one-by-one commits and enqueues (2000)")
    parser.add_argument("--rounds", type=int, help="rounds of each (3)")
    parser.add_argument("--processes", default="1,2,4", help="worker processes (1,2,4)")
    parser.add_argument("--concurrency", type=int, default=1, help="threads per worker (1)")
    parser.add_argument(
        "--batch-size", type=int, default=100, help="Worker batch_size, if it has one (100)"
    )
    parser.add_argument("--start-method", choices=["spawn", "fork", "forkserver"], default="spawn")
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="ANALYZE the job table after filling it, before each drain (a diagnostic: "
        "the default measures a freshly filled table, as a burst into a new queue meets it)",
    )
    parser.add_argument("--no-recovery", action="store_true", help="skip the recovery run")
    parser.add_argument("--profile", action="store_true", help="cProfile a drain and enqueue")
    parser.add_argument("--output", help=f"JSON results file ({RESULTS}; --scale: pg_scale.json)")
    parser.add_argument(
        "--scale",
        action="store_true",
        help="instead: the drain with a large history, and its prune beside a worker "
        "(bench/pg_scale.py; uses --jobs, --rounds, --quick, --start-method)",
    )
    parser.add_argument("--rows", type=int, help="--scale: finished jobs in the table (1000000)")
    parser.add_argument(
        "--window", type=float, help="--scale: seconds of the stream before the prune (5)"
    )
    parser.add_argument("--prune-batch", type=int, help="--scale: prune's batch size")
    parser.add_argument(
        "--prune-pause", type=float, help="--scale: prune's pause, a multiple of a batch's time"
    )
    args = parser.parse_args(argv)

    n = args.jobs or (2000 if args.quick else 20_000)
    single = args.single or (200 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 3)
    procs_list = [int(p) for p in args.processes.split(",") if p.strip()]
    kwargs, has_batch = worker_kwargs(args.concurrency, args.batch_size)
    ctx = multiprocessing.get_context(args.start_method)

    import psycopg

    name = f"jobledger_bench_{os.getpid()}"
    try:
        with connect(args.admin_url) as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    except psycopg.Error as exc:
        print(f"cannot create a database on {redact(args.admin_url)}: {exc}", file=sys.stderr)
        return 2
    db_url = with_database(args.admin_url, name)
    try:
        if args.scale:
            from bench import pg_scale

            return pg_scale.main(args, db_url, ctx)
        info = server_info(db_url)
        data_dir = info["data_dir"]
        fstype = filesystem_of(data_dir) if data_dir and os.path.isdir(data_dir) else "?"
        print(f"database: {redact(db_url)} (created from template0; dropped at the end)")
        print(f"server: {info['version']}")
        print(f"data directory: {data_dir or '?'} ({fstype})")
        print("settings: " + ", ".join(f"{k}={v}" for k, v in info["settings"].items()))
        print(
            f"Worker options: {kwargs}"
            + ("" if has_batch else " (Worker has no batch_size: --batch-size not passed)")
            + f", processes started with {args.start_method!r}; {os.cpu_count()} CPUs"
        )
        result: dict[str, Any] = {
            **run_info(redact(db_url), fstype),
            "server": info,
            "cpus": os.cpu_count(),
            "jobs": n,
            "single": single,
            "rounds": rounds,
            "processes": procs_list,
            "worker_kwargs": kwargs,
            "worker_has_batch_size": has_batch,
            "start_method": args.start_method,
            "analyze_before_drain": args.analyze,
        }

        # Warm-up (server caches, imports, process start), not counted.
        with fresh_schema(db_url, "warm") as url:
            floor_single(url, 50)
            floor_copy(url, 1000, BATCH)
            enqueue_many_round(url, 1000)
        with fresh_schema(db_url, "warm") as url:
            drain_round(ctx, url, 500, 1, kwargs)

        # The drain's matching limit: each batch of B jobs ends with one durable commit of
        # B rows (its completions), so the server's B-row INSERT + COMMIT (rows/s).
        batch = int(kwargs.get("batch_size", 1))
        drain_floor = "floor_1row" if batch == 1 else f"floor_{batch}row"
        drain_floor_name = "1-row commit" if batch == 1 else f"{batch:,}-row commit"
        detail: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for r in range(rounds):
            with fresh_schema(db_url, "floor") as url:
                detail["floor_1row"].append(floor_single(url, single))
                detail["floor_100row"].append(floor_multirow(url, n, 100))
                detail["floor_1000row"].append(floor_multirow(url, n, BATCH))
                detail["floor_copy1000"].append(floor_copy(url, n, BATCH))
                if drain_floor not in detail or len(detail[drain_floor]) <= r:
                    detail[drain_floor].append(floor_multirow(url, n, batch))
            with fresh_schema(db_url, "many") as url:
                detail["enqueue_many"].append(enqueue_many_round(url, n))
            with fresh_schema(db_url, "one") as url:
                detail["enqueue_one"].append(enqueue_one_round(url, single))
            for p in procs_list:
                with fresh_schema(db_url, f"drain{p}") as url:
                    detail[f"drain_{p}"].append(
                        drain_round(ctx, url, n, p, kwargs, analyze=args.analyze)
                    )
            line = (
                f"round {r + 1}: 1-row commit {detail['floor_1row'][-1]['rate']:,.0f}/s, "
                f"COPY 1000 {detail['floor_copy1000'][-1]['rate']:,.0f} rows/s, "
                f"enqueue_many {detail['enqueue_many'][-1]['rate']:,.0f}/s, "
                f"enqueue {detail['enqueue_one'][-1]['rate']:,.0f}/s, drain "
            )
            line += ", ".join(f"{p}p {detail[f'drain_{p}'][-1]['rate']:,.0f}/s" for p in procs_list)
            print(line, flush=True)

        def med(key: str, field: str = "rate") -> float:
            return statistics.median(d[field] for d in detail[key])

        def ratio(key: str, limit: str) -> float:
            return statistics.median(
                a["rate"] / b["rate"] for a, b in zip(detail[key], detail[limit], strict=True)
            )

        recovery = None
        if not args.no_recovery:
            print("\nrecovery: SIGKILL of a worker holding 50 Running jobs ...", flush=True)
            with fresh_schema(db_url, "recovery") as url:
                recovery = recovery_round(ctx, url, kwargs)
            print(
                "recovery: "
                + ", ".join(
                    f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in recovery.items()
                )
            )

        rows: list[tuple[str, str, str, str]] = [
            ("server: 1-row INSERT + COMMIT", f"{med('floor_1row'):,.0f} tx/s", "-", "-"),
            (
                "server: 100-row INSERT (jsonb_to_recordset) + COMMIT",
                f"{med('floor_100row'):,.0f} rows/s",
                "-",
                "-",
            ),
            (
                "server: 1,000-row INSERT (jsonb_to_recordset) + COMMIT",
                f"{med('floor_1000row'):,.0f} rows/s",
                "-",
                "-",
            ),
            ("server: COPY 1,000 rows + COMMIT", f"{med('floor_copy1000'):,.0f} rows/s", "-", "-"),
        ]
        if batch not in (1, 100, BATCH):
            rows.append(
                (
                    f"server: {batch:,}-row INSERT (jsonb_to_recordset) + COMMIT",
                    f"{med(drain_floor):,.0f} rows/s",
                    "-",
                    "-",
                )
            )
        em = med("enqueue_many")
        rows.append(
            (
                "enqueue_many, batches of 1,000",
                f"{em:,.0f} jobs/s",
                f"{ratio('enqueue_many', 'floor_copy1000'):.2f} of COPY 1,000 "
                f"({ratio('enqueue_many', 'floor_1000row'):.2f} of 1,000-row INSERT)",
                f">= 27,000: {_verdict(em, ENQUEUE_MANY_TARGET)}",
            )
        )
        rows.append(
            (
                "enqueue, one by one",
                f"{med('enqueue_one'):,.0f} jobs/s",
                f"{ratio('enqueue_one', 'floor_1row'):.2f} of 1-row commit",
                "-",
            )
        )
        drains: dict[str, Any] = {}
        for p in procs_list:
            key = f"drain_{p}"
            rate = med(key)
            target = "-"
            if p == DRAIN_TARGET_PROCESSES:
                target = f">= 11,000: {_verdict(rate, DRAIN_TARGET)}"
            busy = [d.get("machine_cpu_busy") for d in detail[key]]
            cpu = (
                f", CPU {100 * statistics.median(b for b in busy if b is not None):.0f}% busy"
                if all(b is not None for b in busy)
                else ""
            )
            rows.append(
                (
                    f"drain of {n:,} no-op jobs, {p} process{'es' if p > 1 else ''}",
                    f"{rate:,.0f} jobs/s{cpu}",
                    f"{ratio(key, drain_floor):.2f} of {drain_floor_name}",
                    target,
                )
            )
            drains[key] = {
                "rate": rate,
                "seconds": med(key, "seconds"),
                "ratio_to_server_limit": ratio(key, drain_floor),
                "server_limit": drain_floor,
            }
        if recovery is not None:
            back = recovery["all_back_s"]
            served = (
                "served first"
                if recovery["served_first"]
                else ("NOT served first" if recovery["others_queued_at_recovery"] else "n/a")
            )
            rows.append(
                (
                    f"recovery of {RECOVERY_JOBS} jobs after SIGKILL ({served})",
                    f"{back:.2f} s (worker lease {recovery['worker_lease_s']:g} s, "
                    f"heartbeat {recovery['heartbeat_s']:g} s, "
                    f"recover_every {recovery['recover_every_s']:g} s)",
                    "-",
                    f"<= 10 s: {_verdict(back, RECOVERY_TARGET_S, higher_is_better=False)}",
                )
            )

        print()
        print(
            f"PostgreSQL {info['server_version']}, synchronous_commit="
            f"{info['settings']['synchronous_commit']}, fsync={info['settings']['fsync']}; "
            f"{n:,} jobs, {single:,} one-by-one, median of {rounds} round(s); "
            f"Worker {kwargs}" + (", job table ANALYZEd before each drain" if args.analyze else "")
        )
        print()
        print("| measure | rate | ratio to the matching server limit | target |")
        print("|---|---:|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")

        result.update(
            {
                "server_limits": {k: med(k) for k in sorted(detail) if k.startswith("floor_")},
                "enqueue_many": {
                    "rate": em,
                    "ratio_to_copy1000": ratio("enqueue_many", "floor_copy1000"),
                    "ratio_to_insert1000": ratio("enqueue_many", "floor_1000row"),
                    "target": ENQUEUE_MANY_TARGET,
                    "target_met": em >= ENQUEUE_MANY_TARGET,
                },
                "enqueue_one": {
                    "rate": med("enqueue_one"),
                    "ratio_to_1row_commit": ratio("enqueue_one", "floor_1row"),
                },
                "drain": drains,
                "drain_target": DRAIN_TARGET,
                "drain_target_met": (
                    drains[f"drain_{DRAIN_TARGET_PROCESSES}"]["rate"] >= DRAIN_TARGET
                    if f"drain_{DRAIN_TARGET_PROCESSES}" in drains
                    else None
                ),
                "recovery": recovery,
                "recovery_target_s": RECOVERY_TARGET_S,
                "table": [list(r) for r in rows],
                "rounds_detail": dict(detail),
            }
        )

        if args.profile:
            p = DRAIN_TARGET_PROCESSES
            print(f"\nprofiling a drain of {n:,} jobs by {p} processes ...", flush=True)
            with fresh_schema(db_url, "prof") as url:
                prof = drain_round(
                    ctx, url, n, p, kwargs, profile=True, sampler_url=db_url, analyze=args.analyze
                )
            print(f"(profiled drain: {prof['rate']:,.0f} jobs/s, slowed by the profiler)")
            print("\n== pg_stat_activity of the workers' sessions (share of samples) ==")
            for label, share in prof["server_wait_samples"].items():
                print(f"{100 * share:5.1f}%  {label}")
            print(f"\n== cProfile: drain worker process 1 of {p} (all its threads) ==")
            print(prof["profiles"][0])
            with fresh_schema(db_url, "profmany") as url:
                many = profile(lambda: enqueue_many_round(url, n))
            print(f"\n== cProfile: enqueue_many of {n:,} jobs ==\n{many}")
            result["profile"] = {
                "drain": {k: v for k, v in prof.items() if k != "profiles"},
                "drain_worker_profiles": prof["profiles"],
                "enqueue_many": many,
            }
        write_results(args.output or str(RESULTS), result)
    finally:
        with connect(args.admin_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"dropped database {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
