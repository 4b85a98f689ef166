"""The peers a user would pick instead of jobledger, driven through the same workload.

Not run on its own: ``python -m bench`` (``bench/all.py``) uses it. Install the peers with
``pip install -e '.[bench]'``. One small adapter per peer, each with the peer's defaults:

- ``persist-queue`` (``persistqueue.SQLiteAckQueue(path)``), ``litequeue``
  (``LiteQueue(file)``) and ``huey`` (``SqliteHuey(filename=...)``): a SQLite file in a
  fresh folder on the measured disk;
- ``procrastinate`` (``App(connector=PsycopgConnector(conninfo=url))``, its schema applied)
  and ``pgqueuer`` (``QueueManager(Queries(AsyncpgDriver(conn)))``, ``Queries.install()``):
  a fresh schema of the bench database (the URL's ``search_path``).

What each adapter does: ``prepare`` (create the store); ``enqueue_one`` (n jobs one by
one: each latency); ``enqueue_batch`` (n jobs in batches: each batch's latency, through
the peer's batch API or what it has instead, said in ``batch_api``); ``prefill``; a drain
worker process, ``drain_child``, that claims and completes until the queue is empty, as
the peer's own worker does it (persist-queue ``get()`` + ``ack()``; litequeue ``pop()`` +
``done()``; huey ``dequeue()`` + ``execute()``, which stores the result, the consumer's
per-task work; procrastinate ``run_worker(wait=False, concurrency=1)``; pgqueuer
``QueueManager.run(mode=drain)``), reporting the job numbers it was handed so that
duplicates across processes are counted; ``build_big`` and ``cold_open`` for the opening
of a queue with history (``open_note`` says why a peer has none); and for recovery a
``holder_child`` (takes the first 50 jobs like a worker and blocks until SIGKILLed: for
procrastinate and pgqueuer a real worker with 50 slots, so that their heartbeats run)
and a ``fresh_child`` (a new worker reporting each job it serves, with the time).

``durability`` says what a commit means there, read back from the store (SQLite's
pragmas, PostgreSQL's ``synchronous_commit``) next to what the peer's source does;
``recovery_note`` says how the peer gets a dead worker's jobs back. Every job is
``bench.queue.job(i)`` (a ~510-byte JSON-able dict) plus its number ``"i"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from bench.queue import job as text_job

OTHER_SLEEP_S = 0.01  # the fresh worker's cost of each job that is not a recovered one
SQLITE_SYNC = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def payload(i: int) -> dict[str, Any]:
    """Job number i: bench.queue's TextJob shape, with its number."""
    return {**text_job(i), "i": i}


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _block_forever() -> None:
    while True:
        time.sleep(3600)


class Peer:
    """What every adapter offers; ``where`` is a folder (SQLite) or a URL (PostgreSQL)."""

    name = ""
    kind = ""  # "sqlite" or "postgres"
    modules: tuple[str, ...] = ()
    batch_api = ""
    recovery_note = ""
    recovers = True  # False: a dead worker's jobs never come back by themselves

    def check(self) -> None:
        """Raise ImportError when the peer is not installed."""
        for module in self.modules:
            __import__(module)

    def version(self) -> str:
        from importlib.metadata import version

        return version(self.name)

    def prepare(self, where: str) -> None:
        """Create the (empty) store."""

    def durability(self, where: str) -> str:
        raise NotImplementedError

    def enqueue_one(self, where: str, n: int) -> list[float]:
        raise NotImplementedError

    def enqueue_batch(self, where: str, n: int, batch: int) -> list[float]:
        raise NotImplementedError

    def prefill(self, where: str, n: int) -> None:
        self.enqueue_batch(where, n, 1000)

    def drain_child(self, where: str, barrier: Any, results: Any) -> None:
        """In a worker process: open, wait at the barrier, get + ack until empty; report
        {"processed", "items", "errors"}."""
        raise NotImplementedError

    # Opening a queue with history (None: not measured for this peer, and why).
    open_note: str | None = None

    def build_big(self, where: str, finished: int, live: int) -> None:
        """``finished`` finished and ``live`` queued jobs in the store."""
        raise NotImplementedError

    def cold_open(self, where: str) -> float:
        """Seconds to open the store from a new object and read its counts."""
        raise NotImplementedError

    def holder_child(self, where: str, n: int, ready: Any) -> None:
        """In a process: take the first n jobs, set ``ready``, block until killed."""
        raise NotImplementedError

    def in_flight(self, where: str) -> int | None:
        """Jobs taken and not finished, counted in the store (None: use the ready event)."""
        return None

    def fresh_child(self, where: str, out: Any) -> None:
        """In a process: serve jobs forever, putting (i, time.time()) on ``out`` for each,
        ("empty", time) when it finds the queue empty; jobs i >= 50 take OTHER_SLEEP_S."""
        raise NotImplementedError


# -- SQLite peers ---------------------------------------------------------------------------


def _pragmas(conn: sqlite3.Connection) -> str:
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return f"journal_mode={str(mode).upper()}, synchronous={SQLITE_SYNC.get(sync, sync)}"


class PersistQueue(Peer):
    name = "persist-queue"
    kind = "sqlite"
    modules = ("persistqueue",)
    batch_api = "none: put() one by one (a commit each)"
    recovery_note = "auto_resume=True (default): opening the queue puts every unacked job back"

    def _open(self, where: str) -> Any:
        import persistqueue

        return persistqueue.SQLiteAckQueue(where)

    def durability(self, where: str) -> str:
        q = self._open(where)
        try:
            pragmas = _pragmas(q._putter)
        finally:
            q.close()
        return (
            f"SQLite {pragmas} (WAL set by persist-queue, synchronous SQLite's default); "
            "auto_commit: put, get and ack are a commit each; get is a SELECT then an UPDATE "
            "outside one transaction"
        )

    def enqueue_one(self, where: str, n: int) -> list[float]:
        q = self._open(where)
        try:
            return [_timed(lambda i=i: q.put(payload(i))) for i in range(n)]
        finally:
            q.close()

    def enqueue_batch(self, where: str, n: int, batch: int) -> list[float]:
        q = self._open(where)

        def put_all(s: int) -> None:
            for i in range(s, min(n, s + batch)):
                q.put(payload(i))

        try:
            return [_timed(lambda s=s: put_all(s)) for s in range(0, n, batch)]
        finally:
            q.close()

    def drain_child(self, where: str, barrier: Any, results: Any) -> None:
        from persistqueue.exceptions import Empty

        out: dict[str, Any] = {"pid": os.getpid(), "items": [], "errors": 0}
        try:
            q = self._open(where)
            barrier.wait(timeout=300)
            while True:
                try:
                    item = q.get(block=False, raw=True)
                except Empty:
                    break
                except sqlite3.OperationalError:  # "database is locked"
                    out["errors"] += 1
                    continue
                out["items"].append(item["data"]["i"])
                while True:
                    try:
                        q.ack(id=item["pqid"])
                        break
                    except sqlite3.OperationalError:
                        out["errors"] += 1
            q.close()
            out["processed"] = len(out["items"])
        except BaseException as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            results.put(out)

    def holder_child(self, where: str, n: int, ready: Any) -> None:
        q = self._open(where)
        for _ in range(n):
            q.get(block=False)
        ready.set()
        _block_forever()

    def build_big(self, where: str, finished: int, live: int) -> None:
        """Rows written straight into the queue's table, as put() and ack() leave them
        (status 5 acked, 0 ready), in one transaction."""
        from persistqueue.serializers import pickle as serializer

        q = self._open(where)
        table = q._table_name
        q.close()
        now = time.time()
        path = os.path.join(where, "data.db")
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            conn.executemany(
                f"INSERT INTO {table} (data, timestamp, status) VALUES (?, ?, ?)",
                (
                    (serializer.dumps(payload(i)), now, 5 if i < finished else 0)
                    for i in range(finished + live)
                ),
            )

    def cold_open(self, where: str) -> float:
        t0 = time.perf_counter()
        q = self._open(where)
        counts = (q.qsize(), q.acked_count(), q.unack_count())
        elapsed = time.perf_counter() - t0
        q.close()
        assert counts[0] > 0
        return elapsed

    def fresh_child(self, where: str, out: Any) -> None:
        from persistqueue.exceptions import Empty

        q = self._open(where)  # auto_resume: the unacked jobs are Ready again
        while True:
            try:
                item = q.get(block=False, raw=True)
            except Empty:
                out.put(("empty", time.time()))
                time.sleep(0.05)
                continue
            i = item["data"]["i"]
            out.put((i, time.time()))
            if i >= 50:
                time.sleep(OTHER_SLEEP_S)
            q.ack(id=item["pqid"])


class LiteQueuePeer(Peer):
    name = "litequeue"
    kind = "sqlite"
    modules = ("litequeue",)
    batch_api = "put() inside one LiteQueue.transaction()"
    recovery_note = (
        "none: a popped message stays LOCKED until the application calls list_locked() and retry()"
    )
    recovers = False

    def _open(self, where: str) -> Any:
        import litequeue

        return litequeue.LiteQueue(os.path.join(where, "queue.db"))

    def prepare(self, where: str) -> None:
        os.makedirs(where, exist_ok=True)

    def durability(self, where: str) -> str:
        self.prepare(where)
        q = self._open(where)
        try:
            pragmas = _pragmas(q.conn)
        finally:
            q.close()
        return (
            f"SQLite {pragmas} (both set by litequeue): a commit is not fsynced (survives a "
            "process crash, not a power loss); put, pop and done are a commit each"
        )

    def enqueue_one(self, where: str, n: int) -> list[float]:
        q = self._open(where)
        try:
            return [_timed(lambda i=i: q.put(json.dumps(payload(i)))) for i in range(n)]
        finally:
            q.close()

    def enqueue_batch(self, where: str, n: int, batch: int) -> list[float]:
        q = self._open(where)

        def put_all(s: int) -> None:
            with q.transaction():
                for i in range(s, min(n, s + batch)):
                    q.put(json.dumps(payload(i)))

        try:
            return [_timed(lambda s=s: put_all(s)) for s in range(0, n, batch)]
        finally:
            q.close()

    def drain_child(self, where: str, barrier: Any, results: Any) -> None:
        out: dict[str, Any] = {"pid": os.getpid(), "items": [], "errors": 0}
        try:
            q = self._open(where)
            barrier.wait(timeout=300)
            while True:
                try:
                    message = q.pop()
                except sqlite3.OperationalError:
                    out["errors"] += 1
                    continue
                if message is None:
                    break
                out["items"].append(json.loads(message.data)["i"])
                q.done(message.message_id)
            q.close()
            out["processed"] = len(out["items"])
        except BaseException as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            results.put(out)

    def holder_child(self, where: str, n: int, ready: Any) -> None:
        q = self._open(where)
        for _ in range(n):
            q.pop()
        ready.set()
        _block_forever()

    def build_big(self, where: str, finished: int, live: int) -> None:
        """put() of every job in one transaction, then the first ``finished`` marked DONE
        (one UPDATE, the state done() leaves)."""
        q = self._open(where)
        try:
            with q.transaction():
                for i in range(finished + live):
                    q.put(json.dumps(payload(i)))
            q.conn.execute(
                f"UPDATE {q.table} SET status = 2, done_time = in_time WHERE rowid <= ?",
                (finished,),
            )
        finally:
            q.close()

    def cold_open(self, where: str) -> float:
        t0 = time.perf_counter()
        q = self._open(where)
        size = q.qsize()
        elapsed = time.perf_counter() - t0
        q.close()
        assert size > 0
        return elapsed

    def fresh_child(self, where: str, out: Any) -> None:
        q = self._open(where)
        while True:
            message = q.pop()
            if message is None:
                out.put(("empty", time.time()))
                time.sleep(0.05)
                continue
            i = json.loads(message.data)["i"]
            out.put((i, time.time()))
            if i >= 50:
                time.sleep(OTHER_SLEEP_S)
            q.done(message.message_id)


def _huey(where: str) -> tuple[Any, Any]:
    """A SqliteHuey on the folder and its one task (which returns a result to store)."""
    from huey import SqliteHuey

    huey = SqliteHuey(name="bench", filename=os.path.join(where, "huey.db"))

    @huey.task(name="noop")
    def noop(job: dict[str, Any]) -> dict[str, bool]:
        return {"ok": True}

    return huey, noop


class HueyPeer(Peer):
    name = "huey"
    kind = "sqlite"
    modules = ("huey",)
    batch_api = "task.map(): enqueues one by one (a commit each)"
    recovery_note = (
        "none: dequeue() deletes the task, so a killed worker's tasks are gone (at most once)"
    )
    recovers = False
    open_note = "not measured: huey keeps no finished tasks (dequeue deletes them)"

    def prepare(self, where: str) -> None:
        os.makedirs(where, exist_ok=True)

    def durability(self, where: str) -> str:
        self.prepare(where)
        huey, _ = _huey(where)
        pragmas = _pragmas(huey.storage.conn)
        huey.storage.close()
        return (
            f"SQLite {pragmas} (SqliteStorage fsync=None keeps SQLite's synchronous; WAL "
            "is its default); enqueue a commit; the worker's dequeue deletes the task (a "
            "commit), its result is stored in a second"
        )

    def enqueue_one(self, where: str, n: int) -> list[float]:
        huey, noop = _huey(where)
        try:
            return [_timed(lambda i=i: noop(payload(i))) for i in range(n)]
        finally:
            huey.storage.close()

    def enqueue_batch(self, where: str, n: int, batch: int) -> list[float]:
        huey, noop = _huey(where)
        try:
            return [
                _timed(lambda s=s: noop.map([payload(i) for i in range(s, min(n, s + batch))]))
                for s in range(0, n, batch)
            ]
        finally:
            huey.storage.close()

    def drain_child(self, where: str, barrier: Any, results: Any) -> None:
        out: dict[str, Any] = {"pid": os.getpid(), "items": [], "errors": 0}
        try:
            huey, _ = _huey(where)
            huey.storage.conn  # noqa: B018 - connect before the barrier
            barrier.wait(timeout=300)
            while True:
                try:
                    task = huey.dequeue()
                except sqlite3.OperationalError:
                    out["errors"] += 1
                    continue
                if task is None:
                    break
                out["items"].append(task.args[0]["i"])
                huey.execute(task)  # runs it and stores its result
            out["processed"] = len(out["items"])
        except BaseException as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            results.put(out)

    def holder_child(self, where: str, n: int, ready: Any) -> None:
        huey, _ = _huey(where)
        for _ in range(n):
            huey.dequeue()
        ready.set()
        _block_forever()

    def fresh_child(self, where: str, out: Any) -> None:
        huey, _ = _huey(where)
        while True:
            task = huey.dequeue()
            if task is None:
                out.put(("empty", time.time()))
                time.sleep(0.05)
                continue
            i = task.args[0]["i"]
            out.put((i, time.time()))
            if i >= 50:
                time.sleep(OTHER_SLEEP_S)
            huey.execute(task)


# -- PostgreSQL peers -----------------------------------------------------------------------


def _sync_commit(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT current_setting('synchronous_commit'), current_setting('fsync')"
        ).fetchone()
    return f"synchronous_commit={row[0]}, fsync={row[1]}"


def _count(url: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return int(conn.execute(sql).fetchone()[0])


def _procrastinate(url: str, handler: Callable[[dict[str, Any]], Any] | None = None) -> Any:
    """A procrastinate App on the URL and its one async task ``noop``; ``handler(kwargs)``
    is awaited by the task when given."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="noop")
    async def noop(**job: Any) -> None:
        if handler is not None:
            await handler(job)

    return app, noop


class ProcrastinatePeer(Peer):
    name = "procrastinate"
    kind = "postgres"
    modules = ("procrastinate", "psycopg")
    batch_api = "task.batch_defer(*jobs): one INSERT"
    open_note = "not measured (PostgreSQL: opening reads no history)"
    recovery_note = (
        "none by itself: stalled jobs (worker without heartbeat for 30 s, the default) are "
        "retried by application code, get_stalled_jobs() + retry_job() (here swept every "
        "1 s by the fresh worker)"
    )

    def prepare(self, where: str) -> None:
        app, _ = _procrastinate(where)
        with app.open():
            app.schema_manager.apply_schema()

    def durability(self, where: str) -> str:
        return (
            f"PostgreSQL {_sync_commit(where)}: defer, fetch and finish are a commit each; "
            "worker heartbeat every 10 s (default)"
        )

    def enqueue_one(self, where: str, n: int) -> list[float]:
        app, noop = _procrastinate(where)
        with app.open():
            return [_timed(lambda i=i: noop.defer(**payload(i))) for i in range(n)]

    def enqueue_batch(self, where: str, n: int, batch: int) -> list[float]:
        app, noop = _procrastinate(where)
        with app.open():
            return [
                _timed(
                    lambda s=s: noop.batch_defer(*[payload(i) for i in range(s, min(n, s + batch))])
                )
                for s in range(0, n, batch)
            ]

    def drain_child(self, where: str, barrier: Any, results: Any) -> None:
        out: dict[str, Any] = {"pid": os.getpid(), "items": [], "errors": 0}

        async def record(job: dict[str, Any]) -> None:
            out["items"].append(job["i"])

        async def main() -> None:
            app, _ = _procrastinate(where, record)
            async with app.open_async():
                await app.job_manager.check_connection_async()
                barrier.wait(timeout=300)
                await app.run_worker_async(wait=False, concurrency=1, install_signal_handlers=False)

        try:
            asyncio.run(main())
            out["processed"] = len(out["items"])
        except BaseException as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            results.put(out)

    def holder_child(self, where: str, n: int, ready: Any) -> None:
        async def block(job: dict[str, Any]) -> None:
            await asyncio.Event().wait()

        app, _ = _procrastinate(where, block)
        app.run_worker(concurrency=n, install_signal_handlers=False)

    def in_flight(self, where: str) -> int | None:
        return _count(where, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'")

    def fresh_child(self, where: str, out: Any) -> None:
        async def serve(job: dict[str, Any]) -> None:
            out.put((job["i"], time.time()))
            if job["i"] >= 50:
                await asyncio.sleep(OTHER_SLEEP_S)

        app, _ = _procrastinate(where, serve)

        async def sweep() -> None:
            while True:
                for stalled in await app.job_manager.get_stalled_jobs():
                    await app.job_manager.retry_job(stalled)
                await asyncio.sleep(1.0)

        async def main() -> None:
            async with app.open_async():
                sweeper = asyncio.create_task(sweep())
                try:
                    await app.run_worker_async(concurrency=1, install_signal_handlers=False)
                finally:
                    sweeper.cancel()

        asyncio.run(main())


async def _pgq_connect(url: str) -> Any:
    import asyncpg

    return await asyncpg.connect(url)


def _pgq_manager(conn: Any) -> Any:
    from pgqueuer import QueueManager
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    return QueueManager(Queries(AsyncpgDriver(conn)))


class PgQueuerPeer(Peer):
    name = "pgqueuer"
    kind = "postgres"
    modules = ("pgqueuer", "asyncpg")
    batch_api = "Queries.enqueue([...], [...], [...]): one INSERT"
    open_note = "not measured (PostgreSQL: opening reads no history)"
    recovery_note = (
        "automatic: a picked job whose heartbeat is older than heartbeat_timeout (30 s, "
        "the default of QueueManager.run) is picked again"
    )

    def _run(self, url: str, fn: Callable[[Any], Any]) -> Any:
        async def main() -> Any:
            conn = await _pgq_connect(url)
            try:
                return await fn(conn)
            finally:
                await conn.close()

        return asyncio.run(main())

    def _queries(self, conn: Any) -> Any:
        from pgqueuer.db import AsyncpgDriver
        from pgqueuer.queries import Queries

        return Queries(AsyncpgDriver(conn))

    def prepare(self, where: str) -> None:
        self._run(where, lambda conn: self._queries(conn).install())

    def durability(self, where: str) -> str:
        from pgqueuer.domain.settings import DBSettings

        level = DBSettings().durability.value
        return (
            f"PostgreSQL {_sync_commit(where)}, pgqueuer durability={level} (logged tables, "
            "the default): enqueue a commit; the worker dequeues batches of 10 (batch_size "
            "default) and writes completions in batches, up to 10 or every ~0.1 s: "
            "a completion is durable up to 0.1 s after the job returned"
        )

    def enqueue_one(self, where: str, n: int) -> list[float]:
        async def go(conn: Any) -> list[float]:
            q = self._queries(conn)
            lat = []
            for i in range(n):
                data = json.dumps(payload(i)).encode()
                t0 = time.perf_counter()
                await q.enqueue("noop", data, 0)
                lat.append(time.perf_counter() - t0)
            return lat

        return self._run(where, go)

    def enqueue_batch(self, where: str, n: int, batch: int) -> list[float]:
        async def go(conn: Any) -> list[float]:
            q = self._queries(conn)
            lat = []
            for s in range(0, n, batch):
                datas = [json.dumps(payload(i)).encode() for i in range(s, min(n, s + batch))]
                t0 = time.perf_counter()
                await q.enqueue(["noop"] * len(datas), datas, [0] * len(datas))
                lat.append(time.perf_counter() - t0)
            return lat

        return self._run(where, go)

    def drain_child(self, where: str, barrier: Any, results: Any) -> None:
        from pgqueuer.domain.types import QueueExecutionMode

        out: dict[str, Any] = {"pid": os.getpid(), "items": [], "errors": 0}

        async def main() -> None:
            conn = await _pgq_connect(where)
            try:
                qm = _pgq_manager(conn)

                @qm.entrypoint("noop")
                async def noop(job: Any) -> None:
                    out["items"].append(json.loads(job.payload)["i"])

                barrier.wait(timeout=300)
                await qm.run(mode=QueueExecutionMode.drain)
            finally:
                await conn.close()

        try:
            asyncio.run(main())
            out["processed"] = len(out["items"])
        except BaseException as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            results.put(out)

    def holder_child(self, where: str, n: int, ready: Any) -> None:
        async def main() -> None:
            conn = await _pgq_connect(where)
            qm = _pgq_manager(conn)

            @qm.entrypoint("noop")
            async def block(job: Any) -> None:
                await asyncio.Event().wait()

            # At most n picked by this worker (it must be >= 2 x batch_size, 10).
            await qm.run(max_concurrent_tasks=n)

        asyncio.run(main())

    def in_flight(self, where: str) -> int | None:
        return _count(where, "SELECT count(*) FROM pgqueuer WHERE status = 'picked'")

    def fresh_child(self, where: str, out: Any) -> None:
        async def main() -> None:
            conn = await _pgq_connect(where)
            qm = _pgq_manager(conn)

            @qm.entrypoint("noop")
            async def serve(job: Any) -> None:
                i = json.loads(job.payload)["i"]
                out.put((i, time.time()))
                if i >= 50:
                    # Blocking, like a job doing work: the jobs of a dequeued batch run
                    # one after the other, as in the other peers' single-threaded workers
                    # (an awaited sleep would run the whole queue at once).
                    time.sleep(OTHER_SLEEP_S)

            await qm.run()

        asyncio.run(main())


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (PersistQueue(), LiteQueuePeer(), HueyPeer(), ProcrastinatePeer(), PgQueuerPeer())
}


# -- process entry points (module level: picklable under "spawn") ---------------------------


def drain_child(name: str, where: str, barrier: Any, results: Any) -> None:
    PEERS[name].drain_child(where, barrier, results)


def holder_child(name: str, where: str, n: int, ready: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    PEERS[name].holder_child(where, n, ready)


def fresh_child(name: str, where: str, out: Any) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        PEERS[name].fresh_child(where, out)


__all__ = ["OTHER_SLEEP_S", "PEERS", "Peer", "drain_child", "fresh_child", "holder_child"]
