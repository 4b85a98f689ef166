"""All the benchmarks in one run: the machine's limits, jobledger on files and on
PostgreSQL, and the peers a user would pick instead, each figure next to its limit.

Run from the project root (after ``pip install -e '.[bench]'``; PostgreSQL optional)::

    python -m bench                  # full run, 3 alternating rounds (about 7 minutes)
    python -m bench --quick          # smoke run: small sizes, 1 round (about 2.5 minutes
                                     # with every peer installed; under a minute without
                                     # them, as CI runs it)
    python -m bench --dir /mnt/ssd/tmp --admin-url postgresql://u@db/postgres
    python -m bench --no-peers --no-recovery --rounds 5
    python -m bench --peers huey,pgqueuer --no-open
    python -m bench --rounds 0       # only the once-only parts (opening, recovery)
    python -m bench --quick --check  # CI: exit 1 if a jobledger or machine measure failed

(``python -m bench.all`` is the same; ``bench/__main__.py`` only calls ``main``.)

In one process (worker processes are started with "spawn"), in alternating rounds: every
round measures every limit and every library operation once; figures are the median of
the rounds, ratios the median of each round's figure over the limit of the same round.

1. The machine's own limits, on the disk of ``--dir`` (default: a temp folder under the
   current directory, not /tmp, often a tmpfs) and on the PostgreSQL server:
   append + fsync of one job line (~510 B); append of 100 job lines + fsync (rows/s);
   temp-file write + fsync + ``os.replace`` + folder fsync of a job file; the same without
   the two fsyncs; the bare claim + complete of ``bench.queue`` (a replace, then a durable
   one, no library, synced as the library must on that file system); on PostgreSQL (one
   psycopg connection, ``bench.pg``'s job-shaped table) a one-row INSERT + COMMIT, a
   100-row INSERT + COMMIT and a COPY of 1,000 job rows + COMMIT (rows/s; the rows built
   before timing, ``bench.pg.floor_copy``).
2. jobledger on files (``durability="fsync"``) and on PostgreSQL (a fresh schema for each
   measure): ``mark_done`` of 30-task sets (latency and rate); ``enqueue`` one by one;
   ``enqueue_many`` in batches of 100 (on PostgreSQL also in batches of 1,000, against the
   COPY); a ``claim()`` + ``complete()`` loop (latency); the drain of no-op jobs by
   ``Worker`` processes (1 and 2) at the Worker's defaults (``Worker(queue, handlers)``:
   ``concurrency=1``, adaptive batches), timed from a start barrier (every process open
   and registered) until the last one has reported, after ``run(until_empty=True)``
   returned; on PostgreSQL, the wake-up latency of an idle worker: a default ``Worker`` in
   a child process, idle and listening (LISTEN/NOTIFY); 200 times (quick: 50) the parent
   lets it idle 10-40 ms, enqueues one job and waits for its handler to start, each
   sample the handler's start (``time.time()``, sent back through a queue) minus the
   moment ``enqueue`` was called (p50 and p99 per round).
3. The peers (``bench/peers.py``): persist-queue (SQLiteAckQueue), litequeue and huey
   (SqliteHuey) in a fresh folder on the same disk; procrastinate and pgqueuer in a fresh
   schema of the bench database: enqueue one by one, in batches of 100 (or what the peer
   has instead), and the drain (get + ack until empty, as each peer's worker does it) by
   1 and 2 processes, counting the jobs handed out twice and never. Each peer's durability
   setting is read back from its store and printed next to its figures.

The limit each figure is divided by: files jobledger's writes (``mark_done``, enqueue, a
batch: one durable file per job) by the temp + fsync + replace + folder fsync; its claim +
complete by the bare claim + complete; everything on PostgreSQL by the 1-row commit (a
batch of 100 by the 100-row commit); SQLite peers (a commit appends to the WAL and, with
synchronous=FULL, fsyncs it) by append + fsync (a batch of 100 by append 100 + fsync);
PostgreSQL's ``enqueue_many`` in batches of 1,000 by the COPY of 1,000 rows. A job
claimed and completed with two durable commits tops out at 0.5 of the one-commit limits.

Last, the Targets table (``bench/_targets.py``): each target a ratio within the run (or
a latency) next to what it needs and "met" / "not met"; against a peer that is not
installed it says "peer not installed". Targets never change the exit status.

Then once each: opening a queue of 100,000 finished and 10,000 queued jobs (quick: 10,000
and 1,000) from a new object, median of 3: files (``JobQueue(dir).counts()``), PostgreSQL
(the table VACUUM ANALYZEd), persist-queue and litequeue (their constructor and counts);
the memory of a files queue opened with 10,000 and 100,000 finished jobs (quick: 1,000
and 10,000): the peak RSS during the open over the RSS before it (VmHWM), the RSS kept,
and tracemalloc's peak, each in a fresh process; and recovery: jobs 0-49 are taken by a
worker process (without finishing them) that is then SIGKILLed, 4,000 more (quick: 1,000)
queued behind them; a fresh worker (one at a time, 10 ms per other job) starts at once;
the time from the kill until it has served all 50 again, and whether, once back, they were
served ahead of the jobs still queued ("first"). A peer that does not recover by design
is watched for 15 s.

Peers that are not installed or fail are reported as "skipped: <reason>" (a failed measure
as "failed: <reason>"; ``BENCH_TRACEBACK=1`` prints the traceback); the run goes on.
PostgreSQL: a database ``jobledger_bench_all_<pid>`` is created from template0 on the
server of ``--admin-url`` (default ``$JOBLEDGER_BENCH_PG`` or
``postgresql://postgres@127.0.0.1:5432/postgres``) and dropped at the end (``--no-pg``:
none of it).

Output: one Markdown table per section, the Targets last, and everything (run_info
first, every round too, the targets as ``"targets"``) as JSON in
``bench/results/all.json`` (``--output``). Never collected by pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import multiprocessing
import os
import shutil
import statistics
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import jobledger
from bench import _targets, pg
from bench import peers as peer_mod
from bench._common import run_info, work_folder, write_results
from bench._procs import (
    RECOVERY_JOBS,
    WORKER_KWARGS,
    jl_fresh,
    jl_holder,
    measure_memory,
    pg_build_big,
    pg_cold_open,
    recovery_text,
    run_drain,
    run_recovery,
    run_wake_latency,
)
from bench.queue import (
    add_live,
    bare_claim_complete_round,
    build_history,
    claim_complete_round,
    cold_open,
    enqueue_round,
    sample_file,
)
from bench.tasksets import floor_round, library_round, summary, task_names
from jobledger.backends.files._fs_probe import orders_rename_over

RESULTS = Path(__file__).resolve().parent / "results" / "all.json"
BATCH = 100  # jobs per batch, everywhere (the server limit: a 100-row commit)
COPY_BATCH = 1000  # PostgreSQL's enqueue_many against the COPY of as many rows

SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "rounds": 3,
        "ops": 1000,  # file limits: operations per round
        "sets": 10,  # mark_done: 30-task sets per round
        "enqueue": 1000,
        "batch_jobs": 2000,
        "loop": 1000,  # claim + complete loop
        "drain": 1000,  # files drains, and SQLite peers'
        "pg_single": 1000,
        "pg_rows": 20_000,
        "pg_batch_jobs": 10_000,
        "pg_copy_jobs": 20_000,  # COPY and enqueue_many in batches of 1,000, in turn
        "pg_drain": 5000,  # jobledger's PostgreSQL drains, and the PostgreSQL peers'
        "wake": 200,  # wake-up latency samples
        "history": 100_000,
        "live": 10_000,
        "memory": (10_000, 100_000),
        "others": 4000,  # queued behind the 50 in recovery (10 ms each in the new worker)
        "recovery_timeout": 75.0,
    },
    "quick": {
        "rounds": 1,
        "ops": 300,
        "sets": 3,
        "enqueue": 200,
        "batch_jobs": 500,
        "loop": 300,
        "drain": 300,
        "pg_single": 300,
        "pg_rows": 3000,
        "pg_batch_jobs": 2000,
        "pg_copy_jobs": 5000,
        "pg_drain": 500,
        "wake": 50,
        "history": 10_000,
        "live": 1000,
        "memory": (1000, 10_000),
        "others": 1000,
        "recovery_timeout": 45.0,
    },
}


# -- machine limits (files) ---------------------------------------------------------------------


def append_round(folder: str, chunk: bytes, n: int) -> list[float]:
    """n appends of ``chunk`` to one file, each followed by fsync; each latency."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "append.log")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    lat = []
    clock = time.perf_counter
    try:
        for _ in range(n):
            t0 = clock()
            os.write(fd, chunk)
            os.fsync(fd)
            lat.append(clock() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    return lat


def batch_summary(latencies: list[float], per: int) -> dict[str, float]:
    """Jobs/s of batches of ``per`` jobs, and the p50/p99 of a batch (ms)."""
    ordered = sorted(latencies)
    return {
        "rate": per * len(ordered) / sum(ordered),
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


# -- jobledger rounds shared by both backends --------------------------------------------------


def noop_job(i: int) -> dict[str, Any]:
    """bench.pg's no-op job, with its number."""
    return {**pg.noop_job(i), "i": i}


def jl_batch_round(where: str, n: int, batch: int) -> list[float]:
    """``enqueue_many`` of n jobs in batches (durability fsync); each batch's latency."""
    jobs = [pg.text_job(i) for i in range(n)]
    lat = []
    with jobledger.JobQueue(where, durability="fsync") as q:
        q.recover()
        for s in range(0, n, batch):
            t0 = time.perf_counter()
            q.enqueue_many(jobs[s : s + batch])
            lat.append(time.perf_counter() - t0)
    return lat


def copy_and_enqueue_many(url: str, n: int) -> tuple[dict[str, float], dict[str, float]]:
    """The COPY of 1,000 job rows + COMMIT (``bench.pg``'s job-shaped table, the rows built
    before timing; psycopg's ``write_row``) and ``enqueue_many`` of 1,000 jobs (durability
    fsync), n rows each, batch by batch in turn (the same moments of the server; which one
    goes first alternates): each one's ``batch_summary``."""
    per = COPY_BATCH
    batches = max(1, n // per)
    rows = pg.floor_rows(batches * per, 0)
    jobs = [pg.text_job(i) for i in range(batches * per)]
    copy_lat: list[float] = []
    many_lat: list[float] = []
    clock = time.perf_counter
    with pg.connect(url, autocommit=False) as conn, jobledger.JobQueue(url) as q:
        conn.execute("DROP TABLE IF EXISTS floor_jobs")
        conn.execute(pg.FLOOR_TABLE)
        conn.commit()
        q.recover()  # connect, migrate and recover before timing

        def copy(b: int) -> None:
            t0 = clock()
            with conn.cursor().copy(f"COPY floor_jobs ({pg.FLOOR_COLS}) FROM STDIN") as cp:
                for row in rows[b * per : (b + 1) * per]:
                    cp.write_row(row)
            conn.commit()
            copy_lat.append(clock() - t0)

        def many(b: int) -> None:
            t0 = clock()
            q.enqueue_many(jobs[b * per : (b + 1) * per])
            many_lat.append(clock() - t0)

        for b in range(batches):
            for step in (copy, many) if b % 2 == 0 else (many, copy):
                step(b)
    return batch_summary(copy_lat, per), batch_summary(many_lat, per)


def pg_mark_done_round(url: str, tasks: list[str], date: str) -> list[float]:
    """bench.tasksets.library_round on PostgreSQL: ``JobState(url=...)``."""
    state = jobledger.JobState(url=url, timezone="UTC", durability="fsync")
    lat = []
    with state.taskset("bench@example.com", "daily-set", tasks, date=date) as ts:
        for task in tasks:
            t0 = time.perf_counter()
            ts.mark_done(task)
            lat.append(time.perf_counter() - t0)
        assert ts.is_complete
    return lat


def mark_done_sets(where: str, tasks: list[str], sets: int, on_pg: bool) -> list[float]:
    lat: list[float] = []
    for k in range(sets):
        date = (dt.date(2025, 1, 1) + dt.timedelta(days=k)).isoformat()
        if on_pg:
            lat += pg_mark_done_round(where, tasks, date)
        else:
            lat += library_round(where, tasks, date, "fsync")
    return lat


# -- bookkeeping --------------------------------------------------------------------------------


class Book:
    """Per-round figures by key, and why a key has none."""

    def __init__(self) -> None:
        self.rounds: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.skipped: dict[str, str] = {}
        self.once: dict[str, Any] = {}

    def run(self, key: str, fn: Callable[[], Any], once: bool = False) -> Any:
        if key in self.skipped:
            return None
        t0 = time.monotonic()
        try:
            value = fn()
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            self.skipped[key] = f"failed: {reason}"
            print(f"  {key}: FAILED {reason}", flush=True)
            if os.environ.get("BENCH_TRACEBACK"):
                traceback.print_exc()
            return None
        if once:
            self.once[key] = value
        else:
            self.rounds[key].append(value)
        if os.environ.get("BENCH_VERBOSE"):
            print(f"  {key}: {time.monotonic() - t0:.1f}s", flush=True)
        return value

    def run_together(self, keys: tuple[str, ...], fn: Callable[[], tuple[Any, ...]]) -> None:
        """``fn()`` measures several keys at once (interleaved): one value per key, in
        order; if it fails, every key is skipped with the reason."""
        values = self.run(keys[0], fn)
        if values is None:
            for key in keys[1:]:
                self.skip(key, self.skipped.get(keys[0], "skipped"))
            return
        self.rounds[keys[0]][-1] = values[0]
        for key, value in zip(keys[1:], values[1:], strict=True):
            self.rounds[key].append(value)

    def skip(self, key: str, reason: str) -> None:
        self.skipped.setdefault(key, reason)

    def median(self, key: str, field: str = "rate") -> float | None:
        values = [r[field] for r in self.rounds.get(key, []) if r.get(field) is not None]
        return statistics.median(values) if values else None

    def ratio(self, key: str, limit: str) -> float | None:
        pairs = zip(self.rounds.get(key, []), self.rounds.get(limit, []), strict=False)
        values = [a["rate"] / b["rate"] for a, b in pairs]
        return statistics.median(values) if values else None

    def total(self, key: str, field: str) -> int | None:
        values = [r.get(field) for r in self.rounds.get(key, [])]
        values = [v for v in values if v is not None]
        return sum(values) if values else None


LIMITS = {
    "append_fsync": ("append + fsync (one ~510 B job line)", "ops/s"),
    "append100_fsync": ("append 100 job lines + fsync", "rows/s"),
    "replace_fsync": ("temp write + fsync + replace + folder fsync (job file)", "ops/s"),
    "replace_nofsync": ("temp write + replace, no fsync (job file)", "ops/s"),
    "bare_cc": ("bare claim + complete: a replace, then a durable one", "jobs/s"),
    "pg_1row": ("PostgreSQL: 1-row INSERT + COMMIT", "tx/s"),
    "pg_100row": ("PostgreSQL: 100-row INSERT + COMMIT", "rows/s"),
    "pg_copy1000": ("PostgreSQL: COPY of 1,000 job rows + COMMIT", "rows/s"),
}


# -- the run -------------------------------------------------------------------------------------


@contextlib.contextmanager
def bench_database(admin_url: str) -> Iterator[str | None]:
    """A new database from template0 (its URL), dropped afterwards; None if the server
    cannot be used (the PostgreSQL parts are then skipped)."""
    name = f"jobledger_bench_all_{os.getpid()}"
    try:
        with pg.connect(admin_url) as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    except Exception as exc:
        print(f"PostgreSQL skipped: cannot create a database on {pg.redact(admin_url)}: {exc}")
        yield None
        return
    try:
        yield pg.with_database(admin_url, name)
    finally:
        with pg.connect(admin_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"dropped database {name}")


class Run:
    """One run: its folder, database, sizes and book; one method per section."""

    def __init__(
        self,
        ctx: BaseContext,
        work: str,
        size: dict[str, Any],
        db_url: str | None,
        peers: dict[str, peer_mod.Peer],
    ) -> None:
        self.ctx = ctx
        self.work = work
        self.size = size
        self.db_url = db_url
        self.peers = peers
        self.book = Book()
        self.data = sample_file()
        self.line = self.data.replace(b"\n", b" ").rstrip() + b"\n"
        self.ordered = orders_rename_over(work)
        self.tasks = task_names(30)
        self._seq = 0

    def folder(self, prefix: str) -> str:
        self._seq += 1
        return os.path.join(self.work, f"{prefix}-{self._seq}")

    @contextlib.contextmanager
    def schema(self, prefix: str) -> Iterator[str]:
        assert self.db_url is not None
        with pg.fresh_schema(self.db_url, prefix.replace("-", "_")) as url:
            yield url

    def place(self, peer: peer_mod.Peer, fn: Callable[[str], Any]) -> Any:
        """``fn(where)`` on a fresh, prepared store of the peer."""
        if peer.kind == "sqlite":
            where = self.folder(peer.name)
            peer.prepare(where)
            return fn(where)
        with self.schema(peer.name) as url:
            peer.prepare(url)
            return fn(url)

    def warm_up(self) -> None:
        """Page cache, imports, process start; not counted."""
        floor_round(self.folder("warm"), [self.data] * 30, True)
        enqueue_round(self.folder("warm"), 30)
        if self.db_url is not None:
            with self.schema("warm") as url:
                pg.floor_single(url, 30)
                enqueue_round(url, 30)

    # -- one round of each section ------------------------------------------------------------

    def machine_round(self) -> None:
        book, ops, data, f = self.book, self.size["ops"], self.data, self.folder
        book.run("append_fsync", lambda: summary(append_round(f("ap"), self.line, ops)))
        chunk = self.line * BATCH
        book.run(
            "append100_fsync",
            lambda: batch_summary(append_round(f("ap"), chunk, max(10, ops // 10)), BATCH),
        )
        book.run("replace_fsync", lambda: summary(floor_round(f("fl"), [data] * ops, True)))
        book.run("replace_nofsync", lambda: summary(floor_round(f("fl"), [data] * ops, False)))
        book.run(
            "bare_cc",
            lambda: summary(bare_claim_complete_round(f("bare"), data, ops, self.ordered)),
        )
        if self.db_url is not None:
            book.run("pg_1row", lambda: self.in_schema(self._pg_1row))
            book.run("pg_100row", lambda: self.in_schema(self._pg_100row))

    def _pg_1row(self, url: str) -> dict[str, Any]:
        return pg.floor_single(url, self.size["pg_single"])

    def _pg_100row(self, url: str) -> dict[str, Any]:
        return pg.floor_multirow(url, self.size["pg_rows"], BATCH)

    def in_schema(self, fn: Callable[[str], Any]) -> Any:
        with self.schema("jl") as url:
            return fn(url)

    def jobledger_round(self, prefix: str) -> None:
        """jobledger on files (prefix "files") or PostgreSQL ("pg")."""
        size, book = self.size, self.book
        on_pg = prefix == "pg"
        if on_pg and self.db_url is None:
            return

        def at(fn: Callable[[str], Any]) -> Callable[[], Any]:
            if on_pg:
                return lambda: self.in_schema(fn)
            return lambda: fn(self.folder(prefix))

        n_batch = size["pg_batch_jobs"] if on_pg else size["batch_jobs"]
        n_drain = size["pg_drain"] if on_pg else size["drain"]
        book.run(
            f"{prefix}.mark_done",
            at(lambda w: summary(mark_done_sets(w, self.tasks, size["sets"], on_pg))),
        )
        book.run(f"{prefix}.enqueue_one", at(lambda w: summary(enqueue_round(w, size["enqueue"]))))
        book.run(
            f"{prefix}.enqueue_batch",
            at(lambda w: batch_summary(jl_batch_round(w, n_batch, BATCH), BATCH)),
        )
        if on_pg:
            book.run_together(
                ("pg_copy1000", "pg.enqueue_many1000"),
                at(lambda w: copy_and_enqueue_many(w, size["pg_copy_jobs"])),
            )
        book.run(
            f"{prefix}.claim_complete",
            at(lambda w: summary(claim_complete_round(w, size["loop"]))),
        )
        for procs in (1, 2):
            book.run(
                f"{prefix}.drain{procs}", at(functools.partial(self._jl_drain, n_drain, procs))
            )
        if on_pg:
            book.run("pg.wake_latency", at(lambda w: run_wake_latency(self.ctx, w, size["wake"])))

    def _jl_drain(self, n: int, procs: int, where: str) -> dict[str, Any]:
        pg.prefill(where, [noop_job(i) for i in range(n)])
        return run_drain(self.ctx, pg.drain_worker, (where, WORKER_KWARGS), (False,), procs, n)

    def peers_round(self) -> None:
        size, book = self.size, self.book
        for name, peer in self.peers.items():
            on_pg = peer.kind == "postgres"
            n_batch = size["pg_batch_jobs"] if on_pg else size["batch_jobs"]
            n_drain = size["pg_drain"] if on_pg else size["drain"]
            book.run(
                f"{name}.enqueue_one",
                functools.partial(
                    self.place, peer, lambda w, p=peer: summary(p.enqueue_one(w, size["enqueue"]))
                ),
            )
            book.run(
                f"{name}.enqueue_batch",
                functools.partial(
                    self.place,
                    peer,
                    lambda w, p=peer, n=n_batch: batch_summary(p.enqueue_batch(w, n, BATCH), BATCH),
                ),
            )
            for procs in (1, 2):
                book.run(
                    f"{name}.drain{procs}",
                    functools.partial(
                        self.place, peer, functools.partial(self._peer_drain, peer, n_drain, procs)
                    ),
                )

    def _peer_drain(self, peer: peer_mod.Peer, n: int, procs: int, where: str) -> dict[str, Any]:
        peer.prefill(where, n)
        return run_drain(self.ctx, peer_mod.drain_child, (peer.name, where), (), procs, n)

    # -- once ---------------------------------------------------------------------------------

    def opening(self) -> None:
        """Files: memory with the small and the large history, then the cold open of the
        large one with the live jobs added; PostgreSQL: the cold open of the same."""
        book, size, ctx = self.book, self.size, self.ctx
        small, large = size["memory"]
        for n in (small, large) if large != size["history"] else (small,):
            hist = self.folder("hist")
            book.run(f"build.{n}", functools.partial(build_history, hist, n), once=True)
            book.run(f"memory.{n}", functools.partial(measure_memory, ctx, hist), once=True)
            shutil.rmtree(hist, ignore_errors=True)
        big = self.folder("big")
        book.run("build.history", lambda: build_history(big, size["history"]), once=True)
        if large == size["history"]:
            book.run(f"memory.{large}", lambda: measure_memory(ctx, big), once=True)
        # In real life history files are old: keep them out of the open's "changed since
        # queue.json" window (2 s), as bench.queue does.
        time.sleep(2.5)
        book.run("build.live", lambda: add_live(big, size["live"]), once=True)
        book.run("files.open", lambda: {"all_s": [cold_open(big) for _ in range(3)]}, once=True)
        shutil.rmtree(big, ignore_errors=True)
        if self.db_url is not None:
            book.run("pg.open", lambda: self.in_schema(self._pg_open), once=True)
        for name, peer in self.peers.items():
            if peer.open_note is None:
                book.run(
                    f"{name}.open",
                    functools.partial(self.place, peer, functools.partial(self._peer_open, peer)),
                    once=True,
                )

    def _peer_open(self, peer: peer_mod.Peer, where: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        peer.build_big(where, self.size["history"], self.size["live"])
        built = time.perf_counter() - t0
        return {"build_s": built, "all_s": [peer.cold_open(where) for _ in range(3)]}

    def _pg_open(self, url: str) -> dict[str, Any]:
        built = pg_build_big(url, self.size["history"], self.size["live"])
        return {"build_s": built, "all_s": [pg_cold_open(url) for _ in range(3)]}

    def recovery(self) -> None:
        book = self.book
        book.run("files.recovery", lambda: self._jl_recovery(self.folder("rec")), once=True)
        print(f"  jobledger files: {recovery_text(book.once.get('files.recovery'))}", flush=True)
        if self.db_url is not None:
            book.run("pg.recovery", lambda: self.in_schema(self._jl_recovery), once=True)
            print(f"  jobledger PostgreSQL: {recovery_text(book.once.get('pg.recovery'))}")
        for name, peer in self.peers.items():
            book.run(
                f"{name}.recovery",
                functools.partial(self.place, peer, functools.partial(self._peer_recovery, peer)),
                once=True,
            )
            text = recovery_text(book.once.get(f"{name}.recovery"), peer.recovery_note)
            print(f"  {name}: {text}", flush=True)

    def _jl_recovery(self, where: str) -> dict[str, Any]:
        others = self.size["others"]
        with jobledger.JobQueue(where, durability="flush") as q:
            q.enqueue_many([noop_job(i) for i in range(RECOVERY_JOBS)])
            q.enqueue_many([noop_job(i) for i in range(RECOVERY_JOBS, RECOVERY_JOBS + others)])
        return run_recovery(
            self.ctx,
            (jl_holder, (where,)),
            (jl_fresh, (where,)),
            others,
            self.size["recovery_timeout"],
        )

    def _peer_recovery(self, peer: peer_mod.Peer, where: str) -> dict[str, Any]:
        others = self.size["others"]
        peer.enqueue_batch(where, RECOVERY_JOBS + others, BATCH)
        return run_recovery(
            self.ctx,
            (peer_mod.holder_child, (peer.name, where)),
            (peer_mod.fresh_child, (peer.name, where)),
            others,
            self.size["recovery_timeout"],
            in_flight=lambda: peer.in_flight(where),
            recovers=peer.recovers,
        )


def peer_setup(
    wanted: list[str], db_url: str | None, work: str
) -> tuple[dict[str, peer_mod.Peer], dict[str, dict[str, str]]]:
    """The peers that run here, and for every wanted one its version, durability (read
    back from a store of its own), batch API and recovery, or why it is skipped."""
    peers: dict[str, peer_mod.Peer] = {}
    info: dict[str, dict[str, str]] = {}
    for name in wanted:
        peer = peer_mod.PEERS[name]
        info[name] = {"batch_api": peer.batch_api, "recovery": peer.recovery_note}
        try:
            peer.check()
            info[name]["version"] = peer.version()
        except Exception as exc:
            info[name]["skipped"] = (
                f"skipped: not installed ({type(exc).__name__}: {exc}; "
                "pip install -e '.[bench]' installs the peers)"
            )
            continue
        if peer.kind == "postgres" and db_url is None:
            info[name]["skipped"] = "skipped: no PostgreSQL server"
            continue
        try:
            if peer.kind == "sqlite":
                where = os.path.join(work, f"durability-{name}")
                peer.prepare(where)
                info[name]["durability"] = peer.durability(where)
            else:
                with pg.fresh_schema(db_url, name.replace("-", "_")) as url:  # type: ignore[arg-type]
                    peer.prepare(url)
                    info[name]["durability"] = peer.durability(url)
        except Exception as exc:
            info[name]["skipped"] = f"skipped: {type(exc).__name__}: {exc}".splitlines()[0][:200]
            continue
        peers[name] = peer
    return peers, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dir", help="folder on the disk to measure (default: under cwd)")
    parser.add_argument("--admin-url", default=pg.ADMIN_URL, help="PostgreSQL server (admin)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--rounds", type=int, help="alternating rounds (3; quick: 1; 0: none)")
    parser.add_argument("--peers", help="comma-separated peers (default: all)")
    parser.add_argument("--no-peers", action="store_true", help="jobledger and limits only")
    parser.add_argument("--no-pg", action="store_true", help="skip everything PostgreSQL")
    parser.add_argument("--no-recovery", action="store_true", help="skip the recovery runs")
    parser.add_argument("--no-open", action="store_true", help="skip opening and memory")
    parser.add_argument("--output", default=str(RESULTS), help="JSON results file")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a measure of jobledger or of the machine failed (CI: the benchmarks "
        "must keep working); a peer that is missing or fails is only reported",
    )
    args = parser.parse_args(argv)

    size = dict(SIZES["quick" if args.quick else "full"])
    if args.rounds is not None:
        size["rounds"] = args.rounds
    wanted = [p.strip() for p in args.peers.split(",")] if args.peers else list(peer_mod.PEERS)
    unknown = [p for p in wanted if p not in peer_mod.PEERS]
    if unknown:
        parser.error(f"unknown peers {unknown}; known: {', '.join(peer_mod.PEERS)}")
    if args.no_peers:
        wanted = []

    started = time.monotonic()
    work, fstype = work_folder(args.dir, "jobledger-bench-all-")
    result: dict[str, Any] = {
        **run_info(work, fstype),
        "mode": "quick" if args.quick else "full",
        "sizes": size,
        "batch": BATCH,
        "worker_kwargs": WORKER_KWARGS,
        "cpus": os.cpu_count(),
        "server": None,
    }
    pg_cm = contextlib.nullcontext(None) if args.no_pg else bench_database(args.admin_url)
    try:
        with pg_cm as db_url:
            if db_url is not None:
                info = pg.server_info(db_url)
                result["server"] = info
                print(f"database: {pg.redact(db_url)} (from template0; dropped at the end)")
                print(f"server: {info['version']}")
                print("settings: " + ", ".join(f"{k}={v}" for k, v in info["settings"].items()))
            peers, peer_info = peer_setup(wanted, db_url, work)
            for name, item in peer_info.items():
                print(f"{name}: {item.get('skipped') or item.get('durability')}")
            run = Run(multiprocessing.get_context("spawn"), work, size, db_url, peers)
            book = run.book
            print(
                f"\n{size['rounds']} round(s); job file {len(run.data)} B; Worker "
                f"{WORKER_KWARGS}; peers: {', '.join(peers) or 'none'}",
                flush=True,
            )
            run.warm_up()
            for r in range(size["rounds"]):
                t_round = time.monotonic()
                print(f"\nround {r + 1} of {size['rounds']}", flush=True)
                run.machine_round()
                run.jobledger_round("files")
                run.jobledger_round("pg")
                run.peers_round()
                shown = [
                    f"{key} {book.rounds[key][-1]['rate']:,.0f}/s"
                    for key in (
                        "replace_fsync",
                        "files.enqueue_one",
                        "files.drain1",
                        "pg_1row",
                        "pg_copy1000",
                        "pg.enqueue_many1000",
                        "pg.drain1",
                    )
                    if book.rounds.get(key) and len(book.rounds[key]) == r + 1
                ]
                if len(book.rounds.get("pg.wake_latency", [])) == r + 1:
                    wake = book.rounds["pg.wake_latency"][-1]
                    shown.append(f"wake p50 {wake['p50_ms']:.1f} ms, p99 {wake['p99_ms']:.1f} ms")
                print(f"  {', '.join(shown)}; round took {time.monotonic() - t_round:.0f}s")
            if not args.no_open:
                print("\nopening and memory ...", flush=True)
                run.opening()
            if not args.no_recovery:
                print(
                    f"\nrecovery: {RECOVERY_JOBS} jobs of a SIGKILLed worker, "
                    f"{size['others']} more queued behind them",
                    flush=True,
                )
                run.recovery()

            result["targets"] = _targets.evaluate(
                book,
                {name: info.get("skipped") for name, info in peer_info.items()},
                db_url is not None,
            )
            tables = render(book, result, peer_info, peers, size, db_url is not None)
            print()
            print("\n\n".join(tables))
            result.update(
                {
                    "peers": peer_info,
                    "limits": {k: book.median(k) for k in LIMITS},
                    "median": {
                        k: {f: book.median(k, f) for f, x in v[0].items() if isinstance(x, float)}
                        for k, v in book.rounds.items()
                        if v
                    },
                    "ratios": ratios_of(book, peers),
                    "once": book.once,
                    "skipped": book.skipped,
                    "rounds_detail": dict(book.rounds),
                    "tables": tables,
                    "elapsed_s": time.monotonic() - started,
                }
            )
            write_results(args.output, result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"total {time.monotonic() - started:.0f}s")
    broken = {
        key: why
        for key, why in book.skipped.items()
        if why.startswith("failed:") and key.split(".")[0] not in peer_mod.PEERS
    }
    if args.check and broken:
        for key, why in sorted(broken.items()):
            print(f"--check: {key} {why}", file=sys.stderr)
        return 1
    return 0


# -- tables -------------------------------------------------------------------------------------

# Which limit each operation is measured against.
MATCH = {
    "files.mark_done": "replace_fsync",
    "files.enqueue_one": "replace_fsync",
    "files.enqueue_batch": "replace_fsync",
    "files.claim_complete": "bare_cc",
    "files.drain1": "bare_cc",
    "files.drain2": "bare_cc",
    "pg.mark_done": "pg_1row",
    "pg.enqueue_one": "pg_1row",
    "pg.enqueue_batch": "pg_100row",
    "pg.enqueue_many1000": "pg_copy1000",
    "pg.claim_complete": "pg_1row",
    "pg.drain1": "pg_1row",
    "pg.drain2": "pg_1row",
}
PEER_MATCH = {
    "sqlite": {
        "enqueue_one": "append_fsync",
        "enqueue_batch": "append100_fsync",
        "drain1": "append_fsync",
        "drain2": "append_fsync",
    },
    "postgres": {
        "enqueue_one": "pg_1row",
        "enqueue_batch": "pg_100row",
        "drain1": "pg_1row",
        "drain2": "pg_1row",
    },
}
OPS = {
    "mark_done": "task checkpoint: mark_done (30-task sets)",
    "enqueue_one": "enqueue, one by one",
    "enqueue_batch": f"enqueue, batches of {BATCH}",
    "claim_complete": "claim + complete loop, 1 process",
    "drain1": "drain by workers, 1 process",
    "drain2": "drain by workers, 2 processes",
}
SHORT = {
    "append_fsync": "append+fsync",
    "append100_fsync": "append 100+fsync",
    "replace_fsync": "replace+fsync",
    "bare_cc": "bare claim+complete",
    "pg_1row": "1-row commit",
    "pg_100row": "100-row commit",
    "pg_copy1000": "COPY 1,000",
}


def ratios_of(book: Book, peers: dict[str, peer_mod.Peer]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, limit in MATCH.items():
        out[key] = {"limit": limit, "ratio": book.ratio(key, limit)}
    for name, peer in peers.items():
        for op, limit in PEER_MATCH[peer.kind].items():
            out[f"{name}.{op}"] = {"limit": limit, "ratio": book.ratio(f"{name}.{op}", limit)}
    return out


def _lat(book: Book, key: str) -> tuple[str, str]:
    p50, p99 = book.median(key, "p50_ms"), book.median(key, "p99_ms")
    return (f"{p50:.2f}" if p50 is not None else "", f"{p99:.2f}" if p99 is not None else "")


def _figure(book: Book, key: str, limit: str, unit: str = "jobs/s") -> list[str]:
    """[rate, p50, p99, ratio] cells; a skipped key says why."""
    if key in book.skipped or not book.rounds.get(key):
        return [book.skipped.get(key, "skipped: not run"), "", "", ""]
    rate = book.median(key)
    p50, p99 = _lat(book, key)
    ratio = book.ratio(key, limit)
    cell = f"{ratio:.2f} of {SHORT[limit]}" if ratio is not None else "no limit measured"
    dup = book.total(key, "duplicates")
    missing = book.total(key, "missing")
    text = f"{rate:,.0f} {unit}"
    if dup:
        text += f", {dup} handed out twice"
    if missing:
        text += f", {missing} never served"
    return [text, p50, p99, cell]


def wake_row(book: Book) -> str:
    """The wake-up latency's row: samples, p50 and p99 (median of the rounds)."""
    label = "enqueue to handler start, idle worker (LISTEN/NOTIFY)"
    key = "pg.wake_latency"
    if key in book.skipped or not book.rounds.get(key):
        return f"| {label} | {book.skipped.get(key, 'skipped: not run')} | | | |"
    p50, p99 = _lat(book, key)
    samples = book.total(key, "samples")
    call = book.median(key, "enqueue_p50_ms")
    return (
        f"| {label} | {samples} samples; the enqueue call itself p50 {call:.2f} ms "
        f"| {p50} | {p99} | - |"
    )


def render(
    book: Book,
    result: dict[str, Any],
    peer_info: dict[str, dict[str, str]],
    peers: dict[str, peer_mod.Peer],
    size: dict[str, Any],
    with_pg: bool,
) -> list[str]:
    rounds = size["rounds"]
    head = (
        "| measure | rate | p50 ms | p99 ms | vs the machine's limit (same run) |\n"
        "|---|---:|---:|---:|---|"
    )
    tables = []

    lines = [
        f"### Machine limits ({result['filesystem']} at {result['folder']};"
        f" median of {rounds} round(s))",
        "",
        "| limit | rate | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
    ]
    for key, (label, unit) in LIMITS.items():
        if key.startswith("pg_") and not with_pg:
            continue
        if key in book.skipped or not book.rounds.get(key):
            lines.append(f"| {label} | {book.skipped.get(key, 'skipped')} | | |")
            continue
        p50, p99 = _lat(book, key)
        lines.append(f"| {label} | {book.median(key):,.0f} {unit} | {p50} | {p99} |")
    if with_pg and result.get("server"):
        s = result["server"]["settings"]
        lines.append("")
        lines.append(
            f"PostgreSQL {result['server']['server_version']}: synchronous_commit="
            f"{s['synchronous_commit']}, fsync={s['fsync']}, wal_sync_method={s['wal_sync_method']}"
        )
    tables.append("\n".join(lines))

    def open_rows(prefix: str) -> list[str]:
        rows = []
        opened = book.once.get(f"{prefix}.open")
        label = f"open a queue of {size['history']:,} finished + {size['live']:,} queued jobs"
        if opened:
            rows.append(
                f"| {label} | {statistics.median(opened['all_s']) * 1000:,.0f} ms | | | - |"
            )
        elif f"{prefix}.open" in book.skipped:
            rows.append(f"| {label} | {book.skipped[f'{prefix}.open']} | | | |")
        rec = book.once.get(f"{prefix}.recovery")
        if rec is not None or f"{prefix}.recovery" in book.skipped:
            text = recovery_text(rec) if rec else book.skipped[f"{prefix}.recovery"]
            rows.append(
                f"| recovery of {RECOVERY_JOBS} jobs of a SIGKILLed worker | {text} | | | - |"
            )
        return rows

    for prefix, title in (("files", "jobledger, files"), ("pg", "jobledger, PostgreSQL")):
        if prefix == "pg" and not with_pg:
            continue
        dura = (
            'durability="fsync"'
            if prefix == "files"
            else 'durability="fsync" (synchronous_commit on)'
        )
        lines = [f"### {title} ({dura}; Worker {WORKER_KWARGS})", "", head]
        for op, label in OPS.items():
            key = f"{prefix}.{op}"
            lines.append("| " + " | ".join([label, *_figure(book, key, MATCH[key])]) + " |")
            if prefix == "pg" and op == "enqueue_batch":
                key = "pg.enqueue_many1000"
                cells = _figure(book, key, MATCH[key])
                lines.append(
                    f"| enqueue_many, batches of {COPY_BATCH:,} | " + " | ".join(cells) + " |"
                )
        if prefix == "pg":
            lines.append(wake_row(book))
        lines += open_rows(prefix)
        if prefix == "files":
            for n in size["memory"]:
                mem = book.once.get(f"memory.{n}")
                label = f"memory: open with {n:,} finished jobs"
                if mem:
                    lines.append(
                        f"| {label} | peak RSS +{mem['rss_peak_growth_mb']:.1f} MB over the "
                        f"{mem['rss_before_mb']:.0f} MB before, "
                        f"+{mem['rss_kept_growth_mb']:.1f} MB kept; tracemalloc peak "
                        f"{mem['traced_peak_mb']:.1f} MB; open {mem['open_s'] * 1000:,.0f} ms"
                        " | | | - |"
                    )
                elif f"memory.{n}" in book.skipped:
                    lines.append(f"| {label} | {book.skipped[f'memory.{n}']} | | | |")
        tables.append("\n".join(lines))

    lines = [
        "### Peers (the same jobs; each peer's durability below)",
        "",
        "| peer | measure | rate | p50 ms | p99 ms | vs the machine's limit | durability |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for name, info in peer_info.items():
        if "skipped" in info:
            lines.append(f"| {name} | all | {info['skipped']} | | | | |")
            continue
        peer = peers[name]
        short = short_durability(info.get("durability", ""))
        for op in ("enqueue_one", "enqueue_batch", "drain1", "drain2"):
            key = f"{name}.{op}"
            cells = _figure(book, key, PEER_MATCH[peer.kind][op])
            label = OPS[op]
            if op == "enqueue_batch":
                label += f" ({peer.batch_api.split(':')[0]})"
            lines.append("| " + " | ".join([name, label, *cells, short]) + " |")
        opened = book.once.get(f"{name}.open")
        label = f"open a queue of {size['history']:,} finished + {size['live']:,} queued jobs"
        if opened:
            ms = statistics.median(opened["all_s"]) * 1000
            lines.append(f"| {name} | {label} | {ms:,.0f} ms | | | - | {short} |")
        elif f"{name}.open" in book.skipped:
            lines.append(f"| {name} | {label} | {book.skipped[f'{name}.open']} | | | | {short} |")
        elif peer.open_note:
            lines.append(f"| {name} | {label} | {peer.open_note} | | | | {short} |")
        rec = book.once.get(f"{name}.recovery")
        if rec is not None or f"{name}.recovery" in book.skipped:
            text = recovery_text(rec) if rec else book.skipped[f"{name}.recovery"]
            lines.append(
                f"| {name} | recovery of {RECOVERY_JOBS} jobs | {text} | | | - | {short} |"
            )
    tables.append("\n".join(lines))

    lines = [
        "### Peers' durability and recovery",
        "",
        "| peer | version | durability | batch | recovery |",
        "|---|---|---|---|---|",
    ]
    for name, info in peer_info.items():
        lines.append(
            f"| {name} | {info.get('version', '-')} | "
            f"{info.get('durability', info.get('skipped', '-'))} | {info.get('batch_api', '-')} | "
            f"{info.get('recovery', '-')} |"
        )
    tables.append("\n".join(lines))
    tables.append(_targets.render(result["targets"]))
    return tables


def short_durability(text: str) -> str:
    """'journal_mode=WAL, synchronous=FULL' or 'synchronous_commit=on', from the long text."""
    parts = []
    for token in ("journal_mode=", "synchronous=", "synchronous_commit=", "durability="):
        at = text.find(token)
        if at >= 0:
            end = min((i for i in (text.find(c, at) for c in ",; )") if i >= 0), default=len(text))
            parts.append(text[at:end])
    return ", ".join(parts) or "-"


if __name__ == "__main__":
    sys.exit(main())
