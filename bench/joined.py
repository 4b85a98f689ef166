"""Benchmark: what an enqueue inside the caller's own transaction costs that transaction
(``JobQueue(url).enqueue(job, connection=conn)``, PostgreSQL).

Run from the project root (PostgreSQL must answer; psycopg 3 installed)::

    python -m bench.joined                     # 1,000 transactions per way, 3 rounds
    python -m bench.joined --transactions 300 --rounds 5
    JOBLEDGER_BENCH_PG=postgresql://u@db/postgres python -m bench.joined

It creates its own database (``jobledger_bench_joined_<pid>``, from template0, on the
server of ``--admin-url``, as ``bench.pg`` does) and drops it at the end. On one psycopg 3
connection (not autocommit, as an application's), in alternating rounds, each of
``--transactions`` times, three ways:

- **alone**: the application's transaction, one INSERT into its own table + COMMIT;
- **joined**: the same with ``queue.enqueue(job, connection=conn)`` inside it (the job
  and the row commit together, or neither);
- **after**: the same transaction, then a plain ``queue.enqueue(job)`` (a second commit,
  the queue's: the job can be lost between them, or enqueued for a rolled back row).

Reported: ms per transaction of each (median of the rounds), and each round's ratio of
``joined`` to ``alone`` and to ``after``. Results go to ``bench/results/joined.json``.
Never collected by pytest.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jobledger

RESULTS = "bench/results/joined.json"
WAYS = ("alone", "joined", "after")


def _round(url: str, n: int) -> dict[str, float]:
    """ms per transaction of each way, ``n`` transactions each, on a fresh schema."""
    from bench.pg import connect

    out: dict[str, float] = {}
    with jobledger.JobQueue(url) as q, connect(url, autocommit=False) as conn:
        q.pending_count()  # the queue's first use (its tables), not timed
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        conn.commit()
        seq = iter(range(10**9))

        def alone() -> None:
            conn.execute("INSERT INTO orders VALUES (%s)", (next(seq),))
            conn.commit()

        def joined() -> None:
            order = next(seq)
            conn.execute("INSERT INTO orders VALUES (%s)", (order,))
            q.enqueue({"type": "Ship", "order": order}, connection=conn)
            conn.commit()

        def after() -> None:
            order = next(seq)
            conn.execute("INSERT INTO orders VALUES (%s)", (order,))
            conn.commit()
            q.enqueue({"type": "Ship", "order": order})

        ways: dict[str, Callable[[], None]] = {"alone": alone, "joined": joined, "after": after}
        for name in WAYS:
            t0 = time.perf_counter()
            for _ in range(n):
                ways[name]()
            out[name] = (time.perf_counter() - t0) / n * 1000
        assert q.counts()["Queued"] == 2 * n
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    import psycopg

    from bench._common import run_info, write_results
    from bench.pg import ADMIN_URL, connect, fresh_schema, redact, with_database

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default=ADMIN_URL, help="server to use (an admin URL)")
    parser.add_argument("--transactions", type=int, default=1000, help="per way (1000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    args = parser.parse_args(argv)
    name = f"jobledger_bench_joined_{os.getpid()}"
    try:
        with connect(args.admin_url) as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    except psycopg.Error as exc:
        print(f"cannot create a database on {redact(args.admin_url)}: {exc}", file=sys.stderr)
        return 2
    db_url = with_database(args.admin_url, name)
    try:
        with fresh_schema(db_url, "warm") as url:
            _round(url, 50)
        rounds: list[dict[str, float]] = []
        for r in range(args.rounds):
            with fresh_schema(db_url, "joined") as url:
                rounds.append(_round(url, args.transactions))
            print(
                f"round {r + 1}: "
                + ", ".join(f"{w} {rounds[-1][w]:.2f} ms" for w in WAYS)
                + f"; joined/alone {rounds[-1]['joined'] / rounds[-1]['alone']:.2f}, "
                f"joined/after {rounds[-1]['joined'] / rounds[-1]['after']:.2f}",
                flush=True,
            )
        median = {w: statistics.median(r[w] for r in rounds) for w in WAYS}
        ratio = {
            f"joined/{w}": statistics.median(r["joined"] / r[w] for r in rounds)
            for w in ("alone", "after")
        }
        print("\n| transaction | ms (median) |\n| --- | ---: |")
        for w in WAYS:
            print(f"| {w} | {median[w]:.2f} |")
        print(
            f"\njoined/alone {ratio['joined/alone']:.2f}, joined/after "
            f"{ratio['joined/after']:.2f} (medians of the rounds' ratios)"
        )
        result: dict[str, Any] = {
            "run_info": run_info(redact(db_url), "?"),
            "transactions": args.transactions,
            "rounds": rounds,
            "median_ms": median,
            "ratio": ratio,
        }
        write_results(RESULTS, result)
    finally:
        with connect(args.admin_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
