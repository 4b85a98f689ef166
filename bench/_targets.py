"""The performance targets of ``python -m bench``: each a ratio (or a latency) measured in
the run, against the machine's limit or a peer measured in the same rounds, and whether
it is met. The last table of the run, and ``"targets"`` in its JSON.

A ratio is the median over the rounds of each round's figure over the other figure of
the same round (``Book.ratio``). A target against a peer that is not installed (or whose
measure failed) says so instead of a verdict; a target whose own measure failed says why.
Targets never change the exit status: ``--check`` is about measures that failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["TARGETS", "Target", "evaluate", "render"]


class _Book(Protocol):
    """What the targets read of ``bench.all.Book``."""

    rounds: dict[str, list[dict[str, Any]]]
    skipped: dict[str, str]
    once: dict[str, Any]

    def ratio(self, key: str, limit: str) -> float | None: ...

    def median(self, key: str, field: str = "rate") -> float | None: ...


@dataclass(frozen=True)
class Target:
    """One target: ``key``'s figure (``field``, or its rate over ``against``'s) compared
    with ``need``: at least (``most=False``) or at most (``most=True``)."""

    name: str
    key: str
    against: str | None  # a limit or a peer's measure (its rate divides key's), or None
    need: float
    unit: str = "x"  # "x": a ratio; "ms": a latency (``field`` of key)
    field: str = "rate"
    most: bool = False  # the figure must be at most ``need`` (a latency)
    peer: str | None = None  # ``against`` is this peer's measure


PG, FILES = "PostgreSQL", "files"
TARGETS: tuple[Target, ...] = (
    Target(
        f"{PG}: default Worker, 1 process, vs pgqueuer's worker, 1 process",
        "pg.drain1",
        "pgqueuer.drain1",
        2.0,
        peer="pgqueuer",
    ),
    Target(
        f"{PG}: default Worker, 2 processes, vs pgqueuer's, 2 processes",
        "pg.drain2",
        "pgqueuer.drain2",
        2.0,
        peer="pgqueuer",
    ),
    Target(
        f"{PG}: claim + complete one at a time, vs 1-row commit",
        "pg.claim_complete",
        "pg_1row",
        0.45,
    ),
    Target(f"{PG}: enqueue one at a time, vs 1-row commit", "pg.enqueue_one", "pg_1row", 0.85),
    Target(
        f"{PG}: enqueue_many, batches of 1,000, vs COPY of 1,000 rows",
        "pg.enqueue_many1000",
        "pg_copy1000",
        0.8,
    ),
    Target(
        f"{PG}: enqueue to handler start, idle worker, p50",
        "pg.wake_latency",
        None,
        5.0,
        unit="ms",
        field="p50_ms",
        most=True,
    ),
    Target(
        f"{PG}: enqueue to handler start, idle worker, p99",
        "pg.wake_latency",
        None,
        20.0,
        unit="ms",
        field="p99_ms",
        most=True,
    ),
    Target(
        f"{FILES}: default Worker, 1 process, vs durable replace",
        "files.drain1",
        "replace_fsync",
        1.0,
    ),
    Target(
        f"{FILES}: claim + complete one at a time, vs the bare two writes",
        "files.claim_complete",
        "bare_cc",
        0.6,
    ),
    Target(
        f"{FILES}: enqueue one at a time, vs durable replace",
        "files.enqueue_one",
        "replace_fsync",
        0.85,
    ),
)
RECOVERY_WITHIN_S = 1.0  # the 50 jobs of a SIGKILLed worker, all served again within


def _why_missing(book: _Book, key: str) -> str:
    return book.skipped.get(key, "not measured")


def _peer_missing(peer: str, peers: dict[str, str | None]) -> str | None:
    """Why ``peer`` has no figures in this run (None: it ran)."""
    if peer not in peers:
        return "peer not measured (left out by --peers or --no-peers)"
    why = peers[peer]
    if why is None:
        return None
    if "not installed" in why:
        return "peer not installed"
    return f"peer {why}"


def _check(target: Target, book: _Book, peers: dict[str, str | None]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "target": target.name,
        "measure": target.key,
        "against": target.against,
        "need": ("<= " if target.most else ">= ")
        + (f"{target.need:g} ms" if target.unit == "ms" else f"{target.need:g}x"),
        "value": None,
        "met": None,
    }
    missing = _peer_missing(target.peer, peers) if target.peer is not None else None
    if missing is not None:
        row["verdict"] = missing
        return row
    if not book.rounds.get(target.key):
        row["verdict"] = _why_missing(book, target.key)
        return row
    if target.against is None:
        value = book.median(target.key, target.field)
    elif not book.rounds.get(target.against):
        row["verdict"] = (
            f"peer {_why_missing(book, target.against)}"
            if target.peer
            else _why_missing(book, target.against)
        )
        return row
    else:
        value = book.ratio(target.key, target.against)
    if value is None:
        row["verdict"] = "not measured"
        return row
    met = value <= target.need if target.most else value >= target.need
    row.update(value=value, met=met, verdict="met" if met else "not met")
    return row


def _recovery(book: _Book) -> dict[str, Any]:
    row: dict[str, Any] = {
        "target": f"{PG}: 50 Running jobs of a SIGKILLed worker, a new worker started at "
        f"once: all back within {RECOVERY_WITHIN_S:g} s, served before any Queued job",
        "measure": "pg.recovery",
        "against": None,
        "need": f"<= {RECOVERY_WITHIN_S:g} s, served first",
        "value": None,
        "met": None,
    }
    rec = book.once.get("pg.recovery")
    if rec is None:
        row["verdict"] = book.skipped.get("pg.recovery", "not measured (--no-recovery)")
        return row
    back = rec.get("all_back_s")
    row["value"] = back
    row["served_first"] = rec.get("served_first")
    met = back is not None and back <= RECOVERY_WITHIN_S and rec.get("served_first") is True
    row["met"] = met
    row["verdict"] = "met" if met else "not met"
    return row


def evaluate(book: _Book, peers: dict[str, str | None], with_pg: bool) -> list[dict[str, Any]]:
    """Every target's row: its figure, what it needs, "met"/"not met" or why not judged.
    ``peers``: each wanted peer, None if it ran, else why not ("skipped: ...");
    ``with_pg``: whether PostgreSQL was measured."""
    rows = []
    for target in TARGETS:
        if target.key.startswith("pg.") and not with_pg:
            rows.append(
                {
                    "target": target.name,
                    "measure": target.key,
                    "met": None,
                    "verdict": "no PostgreSQL",
                }
            )
            continue
        rows.append(_check(target, book, peers))
    if with_pg:
        rows.insert(7, _recovery(book))
    rows.append(
        {
            "target": f"{PG}: scale (many jobs queued, history)",
            "measure": None,
            "met": None,
            "verdict": "measured elsewhere: python -m bench.pg --scale",
        }
    )
    return rows


def _value(row: dict[str, Any]) -> str:
    value = row.get("value")
    if value is None:
        return ""
    if row["measure"] == "pg.recovery":
        first = row.get("served_first")
        how = "served first" if first else ("NOT served first" if first is False else "first: n/a")
        return f"{value:.2f} s, {how}"
    if str(row.get("need", "")).endswith("ms"):
        return f"{value:.2f} ms"
    return f"{value:.2f}x"


def render(rows: list[dict[str, Any]]) -> str:
    """The Targets table (Markdown)."""
    lines = [
        "### Targets (ratios within this run; median over its rounds)",
        "",
        "| target | measured | needed | verdict |",
        "|---|---:|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['target']} | {_value(row)} | {row.get('need', '')} | {row['verdict']} |"
        )
    return "\n".join(lines)
