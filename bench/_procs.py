"""The benchmark's child processes and what they measure: drains by N worker processes,
recovery of a killed worker's jobs, the wake-up latency of an idle worker, and the memory
and time of opening a big queue.

Separate from ``bench/all.py`` (which runs them and reports) so that each stays readable;
functions here are importable by spawned children.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue as stdqueue
import random
import signal
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable
from multiprocessing.context import BaseContext
from typing import Any

import jobledger
from bench import peers as peer_mod
from bench import pg
from bench._common import kill_all

RECOVERY_JOBS = 50
NO_RECOVERY_WINDOW_S = 15.0  # how long to watch a peer that does not recover by design
WORKER_KWARGS = {"concurrency": 1, "batch_size": None}  # Worker's defaults, said out loud


# -- processes: drains and recovery -------------------------------------------------------------


def run_drain(
    ctx: BaseContext,
    target: Callable[..., None],
    args: tuple[Any, ...],
    extra: tuple[Any, ...],
    processes: int,
    n: int,
) -> dict[str, Any]:
    """``processes`` processes of ``target(*args, barrier, results, *extra)`` drain n
    prefilled jobs: jobs/s from the start barrier until the last has reported (exited)."""
    barrier = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(*args, barrier, results, *extra), daemon=True)
        for _ in range(processes)
    ]
    reports: list[dict[str, Any]] = []
    try:
        for p in procs:
            p.start()
        try:
            barrier.wait(timeout=120)
        except Exception:
            early = []
            with contextlib.suppress(stdqueue.Empty):
                while True:
                    early.append(results.get(timeout=1).get("error"))
            raise RuntimeError(f"a worker did not start: {early or 'no report'}") from None
        t0 = time.perf_counter()
        while len(reports) < processes:
            try:
                reports.append(results.get(timeout=1))
            except stdqueue.Empty:
                if time.perf_counter() - t0 > 600 or not any(p.is_alive() for p in procs):
                    raise RuntimeError("a worker process died without reporting") from None
        elapsed = time.perf_counter() - t0
        for p in procs:
            p.join(60)
    finally:
        kill_all(procs)
    errors = [r["error"] for r in reports if "error" in r]
    if errors:
        raise RuntimeError(f"worker failed: {errors[0]}")
    out: dict[str, Any] = {
        "rate": n / elapsed,
        "seconds": elapsed,
        "per_process": [r.get("processed") for r in reports],
    }
    items = [i for r in reports for i in r.get("items", [])]
    if items:
        distinct = len(set(items))
        out["duplicates"] = len(items) - distinct
        out["missing"] = n - distinct
        out["lock_errors"] = sum(r.get("errors", 0) for r in reports)
    elif sum(r.get("processed") or 0 for r in reports) != n:
        out["missing"] = n - sum(r.get("processed") or 0 for r in reports)
    return out


def jl_holder(where: str, n: int, ready: Any) -> None:
    """Recovery: a jobledger worker process that claims n jobs and blocks (SIGKILLed)."""
    logging.getLogger("jobledger").setLevel(logging.ERROR)
    q = jobledger.JobQueue(where)
    for _ in range(n):
        assert q.claim() is not None
    ready.set()
    while True:
        time.sleep(3600)


def jl_fresh(where: str, out: Any) -> None:
    """Recovery: a new jobledger Worker (one thread) reporting each job it serves."""
    logging.getLogger("jobledger").setLevel(logging.ERROR)

    def serve(job: jobledger.Job) -> None:
        i = job.raw["i"]
        out.put((i, time.time()))
        if i >= RECOVERY_JOBS:
            time.sleep(peer_mod.OTHER_SLEEP_S)

    with jobledger.JobQueue(where) as q:
        jobledger.Worker(q, {"Noop": serve}, handle_signals=False, **WORKER_KWARGS).run()


def run_recovery(
    ctx: BaseContext,
    holder: tuple[Callable[..., None], tuple[Any, ...]],
    fresh: tuple[Callable[..., None], tuple[Any, ...]],
    others: int,
    timeout: float,
    in_flight: Callable[[], int | None] | None = None,
    recovers: bool = True,
) -> dict[str, Any]:
    """Jobs 0..49 then ``others`` jobs are queued. ``holder`` takes the 50 and is killed
    (SIGKILL); ``fresh`` starts at once. Returns when it has served all 50 again, or after
    ``timeout`` s (or 3 s after it found the queue empty, for a peer that does not
    recover by design)."""
    ready = ctx.Event()
    out = ctx.Queue()
    h = ctx.Process(target=holder[0], args=(*holder[1], RECOVERY_JOBS, ready), daemon=True)
    f = ctx.Process(target=fresh[0], args=(*fresh[1], out), daemon=True)
    order: list[tuple[int, float]] = []
    back: dict[int, float] = {}
    empty_at = None
    try:
        h.start()
        deadline = time.monotonic() + 120
        while True:
            held = in_flight() if in_flight is not None else None
            if ready.is_set() or held == RECOVERY_JOBS:
                break
            if time.monotonic() > deadline or not h.is_alive():
                raise RuntimeError(f"the first worker holds {held} of {RECOVERY_JOBS} jobs")
            time.sleep(0.02)
        os.kill(h.pid, signal.SIGKILL)  # type: ignore[arg-type]
        killed = time.time()
        h.join()
        f.start()
        while len(back) < RECOVERY_JOBS:
            now = time.time() - killed
            if now > timeout:
                break
            if not recovers and (
                now > NO_RECOVERY_WINDOW_S or (empty_at is not None and now - empty_at > 3)
            ):
                break
            if not f.is_alive():
                raise RuntimeError(f"the fresh worker exited (code {f.exitcode})")
            try:
                i, t = out.get(timeout=0.2)
            except stdqueue.Empty:
                continue
            if i == "empty":
                empty_at = t - killed if empty_at is None else empty_at
                continue
            order.append((i, t))
            if i < RECOVERY_JOBS and i not in back:
                back[i] = t - killed
        waited = time.time() - killed
    finally:
        kill_all((h, f))
    result: dict[str, Any] = {
        "served_again": len(back),
        "of": RECOVERY_JOBS,
        "waited_s": waited,
        "others_queued": others,
        "queue_ran_dry_s": empty_at,
    }
    if back:
        seq = [i for i, _ in order]
        first = next(k for k, i in enumerate(seq) if i < RECOVERY_JOBS)
        last = max(k for k, i in enumerate(seq) if i < RECOVERY_JOBS)
        others_before = sum(1 for i in seq[:first] if i >= RECOVERY_JOBS)
        between = sum(1 for i in seq[first:last] if i >= RECOVERY_JOBS)
        result.update(
            first_back_s=min(back.values()),
            all_back_s=max(back.values()) if len(back) == RECOVERY_JOBS else None,
            others_served_before=others_before,
            others_served_among=between,
            others_left_at_first=others - others_before,
        )
        if len(back) == RECOVERY_JOBS and others - others_before > 0:
            result["served_first"] = between == 0
        else:
            result["served_first"] = None
    return result


def recovery_text(r: dict[str, Any] | None, note: str = "") -> str:
    if r is None:
        return "-"
    if r.get("all_back_s") is not None:
        first = r.get("served_first")
        how = (
            "served first"
            if first
            else ("NOT served first" if first is False else "first: n/a (no other job left)")
        )
        return f"{r['all_back_s']:.2f} s, {how}"
    text = f"{r['served_again']} of {r['of']} served again within {r['waited_s']:.0f} s"
    if r.get("queue_ran_dry_s") is not None:
        text += f" (the queue ran dry at {r['queue_ran_dry_s']:.0f} s)"
    return text + (f": {note}" if note else "")


# -- wake-up latency of an idle worker -------------------------------------------------------

WAKE_GAP_S = (0.01, 0.04)  # the idle time before each enqueue (uniform, seeded)


def wake_child(where: str, stop: Any, out: Any) -> None:
    """Wake-up latency: a default ``Worker`` (``WORKER_KWARGS``), idle, whose handler puts
    (job number, ``time.time()`` as it starts) on ``out``; stops when ``stop`` is set."""
    logging.getLogger("jobledger").setLevel(logging.ERROR)

    def serve(job: jobledger.Job) -> None:
        out.put((job.raw["i"], time.time()))

    with jobledger.JobQueue(where) as q:
        q.recover()
        q.worker_id  # noqa: B018 - register before the parent starts timing
        worker = jobledger.Worker(q, {"Noop": serve}, handle_signals=False, **WORKER_KWARGS)
        threading.Thread(target=lambda: (stop.wait(), worker.stop()), daemon=True).start()
        worker.run()


def _listening(url: str, pid: int) -> bool:
    """Whether process ``pid`` has its LISTEN session open (the library names its
    sessions ``jobledger <purpose> pid <pid> on <host>``)."""
    with pg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE %s AND query ILIKE 'LISTEN%%'",
            (f"jobledger listen for new jobs pid {pid} %",),
        ).fetchone()
    return bool(row and row[0])


def run_wake_latency(ctx: BaseContext, url: str, samples: int, seed: int = 7) -> dict[str, Any]:
    """Enqueue-to-handler-start latency with a worker idle and waiting (PostgreSQL:
    LISTEN/NOTIFY): a ``wake_child`` in its own process; once its listener is connected
    and it has served two jobs (not counted), the parent, ``samples`` times, lets it idle
    for a random 10-40 ms, enqueues one job (``enqueue``, one by one) and waits for its
    handler to start. Each sample is the handler's start minus the moment the parent
    called ``enqueue``, both ``time.time()`` on this machine; ``enqueue_ms`` is the
    enqueue call's own share."""
    stop = ctx.Event()
    out = ctx.Queue()
    child = ctx.Process(target=wake_child, args=(url, stop, out), daemon=True)
    rng = random.Random(seed)
    waits: list[float] = []
    calls: list[float] = []
    try:
        child.start()
        deadline = time.monotonic() + 60
        while not _listening(url, child.pid):  # type: ignore[arg-type]
            if time.monotonic() > deadline or not child.is_alive():
                raise RuntimeError("the idle worker never listened for new jobs")
            time.sleep(0.02)
        with jobledger.JobQueue(url) as q:
            q.recover()  # connect and migrate before timing
            for i in range(-2, samples):
                time.sleep(rng.uniform(*WAKE_GAP_S))
                t0 = time.time()
                q.enqueue({"type": "Noop", "i": i})
                t1 = time.time()
                try:
                    got, started = out.get(timeout=30)
                except stdqueue.Empty:
                    raise RuntimeError(f"job {i} did not start within 30 s") from None
                if got != i:
                    raise RuntimeError(f"job {got} started where job {i} was expected")
                if i >= 0:
                    waits.append(started - t0)
                    calls.append(t1 - t0)
        stop.set()
        child.join(30)
    finally:
        kill_all((child,))
    ordered = sorted(waits)
    return {
        "samples": len(ordered),
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max_ms": 1000 * ordered[-1],
        "mean_ms": 1000 * statistics.fmean(ordered),
        "enqueue_p50_ms": 1000 * statistics.median(calls),
    }


# -- opening and memory ------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status, in KB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(root: str, traced: bool, out: Any) -> None:
    """In a fresh process: open the files queue at ``root`` (``counts()``), report memory.
    ``traced``: tracemalloc's peak (slower); else the peak RSS during the open (VmHWM,
    its high-water mark reset just before through /proc/self/clear_refs; ru_maxrss would
    carry the parent's peak across the spawn's exec) and the RSS kept after it."""
    try:
        before = _status_kb("VmRSS")
        with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
        if traced:
            tracemalloc.start()
        t0 = time.perf_counter()
        q = jobledger.JobQueue(root)
        counts = q.counts()
        elapsed = time.perf_counter() - t0
        report: dict[str, Any] = {"counts": counts, "open_s": elapsed}
        if traced:
            current, peak = tracemalloc.get_traced_memory()
            report.update(traced_peak_mb=peak / 2**20, traced_kept_mb=current / 2**20)
        else:
            peak = _status_kb("VmHWM")
            report.update(
                rss_before_mb=before / 1024,
                rss_peak_mb=peak / 1024,
                rss_peak_growth_mb=(peak - before) / 1024,
                rss_kept_growth_mb=(_status_kb("VmRSS") - before) / 1024,
            )
        q.close()
        out.put(report)
    except BaseException as exc:
        out.put({"error": f"{type(exc).__name__}: {exc}"})


def measure_memory(ctx: BaseContext, root: str) -> dict[str, Any]:
    """``memory_child`` twice (RSS, then tracemalloc), each in a fresh process."""
    report: dict[str, Any] = {}
    for traced in (False, True):
        out = ctx.Queue()
        p = ctx.Process(target=memory_child, args=(root, traced, out))
        p.start()
        try:
            while True:
                try:
                    r = out.get(timeout=1)
                    break
                except stdqueue.Empty:
                    if not p.is_alive():
                        raise RuntimeError(f"the process exited (code {p.exitcode})") from None
        finally:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join()
        if "error" in r:
            raise RuntimeError(r["error"])
        report.update({k: v for k, v in r.items() if k != "open_s" or not traced})
    return report


def pg_build_big(url: str, history: int, live: int) -> float:
    """``history`` Completed and ``live`` Queued jobs in the schema (VACUUM ANALYZEd, as a
    queue in use for a while is); seconds taken."""
    t0 = time.perf_counter()
    pg.prefill(url, [pg.text_job(i) for i in range(history)])
    with pg.connect(url) as conn:
        conn.execute(
            "UPDATE jobledger_jobs SET status = 'Completed', attempts = 1,"
            " started = created, finished = created, result = '{\"ok\": true}'"
        )
    pg.prefill(url, [pg.text_job(i) for i in range(history, history + live)])
    with pg.connect(url) as conn:
        conn.execute("VACUUM ANALYZE jobledger_jobs")
    return time.perf_counter() - t0


def pg_cold_open(url: str) -> float:
    t0 = time.perf_counter()
    with jobledger.JobQueue(url) as q:
        counts = q.counts()
    elapsed = time.perf_counter() - t0
    assert counts["Queued"] > 0
    return elapsed
