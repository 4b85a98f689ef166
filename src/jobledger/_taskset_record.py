"""The task-set record: the task-set file format, and its strict reader.

On disk (files backend) a record is exactly this JSON::

    {"date": "2025-01-20", "account": "user@email.com", "type": "daily-set",
     "completed": ["daily-check-in", "quiz-1"], "remaining": ["quiz-2"],
     "lastUpdate": "2025-01-20T10:30:00.000Z"}

plus optional keys of ours: ``failures`` (task -> attempts, lastError, lastFailure),
``progress`` (task -> done, total), ``durations`` (task -> seconds of its successful run)
and ``running`` (the task being worked on: task, since, pid, host). Unknown keys are kept
as they are and written back, so a newer writer's data survives an older one.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ._errors import LeaseHolder
from ._json import dumps_indented

__all__ = [
    "Failure",
    "Progress",
    "RunLease",
    "ShapeError",
    "TaskSetKey",
    "TaskSetRecord",
    "for_key",
    "parse_date",
]


class ShapeError(ValueError):
    """A document is valid JSON but not a task-set record; the message says which key."""


class TaskSetKey(NamedTuple):
    """What identifies a task set: (account, type, ISO date)."""

    account: str
    type: str
    date: str


class Progress(NamedTuple):
    """How far a countable task has got: ``done`` of ``total``."""

    done: int
    total: int


class Failure(NamedTuple):
    """A task's failures so far: how many attempts failed, the last error, and when."""

    attempts: int
    error: str
    at: str


class RunLease(NamedTuple):
    """A task set's run lease as stored: who took it, and whether that holder still lives.

    ``alive`` False means the holder died without giving the lease back (killed, or its
    machine or session lost): its run ended unfinished, whatever the record says.
    """

    key: TaskSetKey
    holder: LeaseHolder
    alive: bool


def parse_date(value: dt.date | str) -> str:
    """An ISO ``YYYY-MM-DD`` string from a date or a string; ValueError otherwise."""
    if isinstance(value, dt.datetime):
        raise ValueError(f"date must be a date, not a datetime: {value!r}")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and len(value) == 10:
        return dt.date.fromisoformat(value).isoformat()
    raise ValueError(f"date must be a datetime.date or 'YYYY-MM-DD', got {value!r}")


_KNOWN = (
    "date",
    "account",
    "type",
    "completed",
    "remaining",
    "lastUpdate",
    "failures",
    "progress",
    "durations",
    "running",
)


@dataclass
class TaskSetRecord:
    """One task set's state. Treated as immutable by the policy: changes go to a copy."""

    date: str
    account: str
    type: str
    completed: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)
    last_update: str | None = None
    failures: dict[str, Failure] = field(default_factory=dict)
    progress: dict[str, Progress] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    running: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> TaskSetKey:
        """This record's (account, type, date)."""
        return TaskSetKey(self.account, self.type, self.date)

    def copy(self) -> TaskSetRecord:
        """A copy whose lists and dicts can be changed freely."""
        return TaskSetRecord(
            date=self.date,
            account=self.account,
            type=self.type,
            completed=list(self.completed),
            remaining=list(self.remaining),
            last_update=self.last_update,
            failures=dict(self.failures),
            progress=dict(self.progress),
            durations=dict(self.durations),
            running=dict(self.running) if self.running is not None else None,
            extra=copy.deepcopy(self.extra) if self.extra else {},
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON document, the document's keys first and in its order."""
        doc: dict[str, Any] = {
            "date": self.date,
            "account": self.account,
            "type": self.type,
            "completed": self.completed,
            "remaining": self.remaining,
            "lastUpdate": self.last_update,
        }
        if self.failures:
            doc["failures"] = {
                t: {"attempts": f.attempts, "lastError": f.error, "lastFailure": f.at}
                for t, f in self.failures.items()
            }
        if self.progress:
            doc["progress"] = {
                t: {"done": p.done, "total": p.total} for t, p in self.progress.items()
            }
        if self.durations:
            doc["durations"] = self.durations
        if self.running is not None:
            doc["running"] = self.running
        doc.update(self.extra)
        return doc

    def dumps(self) -> bytes:
        """The UTF-8 JSON bytes written to disk: indented, human-readable, one per file."""
        return dumps_indented(self.to_json())

    @classmethod
    def from_json(cls, doc: object) -> TaskSetRecord:
        """Parse and validate a document; :class:`ShapeError` names the first bad key."""
        if not isinstance(doc, dict):
            raise ShapeError(f"the document is a JSON {type(doc).__name__}, not an object")
        for key in ("date", "account", "type"):
            if not isinstance(doc.get(key), str):
                raise ShapeError(f"key {key!r} is missing or not a string")
        try:
            parse_date(doc["date"])
        except ValueError as exc:
            raise ShapeError(f"key 'date' is not a YYYY-MM-DD date: {doc['date']!r}") from exc
        lists = {}
        for key in ("completed", "remaining"):
            value = doc.get(key, [])
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise ShapeError(f"key {key!r} is not a list of task names")
            lists[key] = value
        last = doc.get("lastUpdate")
        if last is not None and not isinstance(last, str):
            raise ShapeError("key 'lastUpdate' is not a string")
        try:
            failures = {
                t: Failure(int(f["attempts"]), str(f["lastError"]), str(f["lastFailure"]))
                for t, f in _obj(doc, "failures").items()
            }
            progress = {
                t: Progress(int(p["done"]), int(p["total"]))
                for t, p in _obj(doc, "progress").items()
            }
            durations = {t: float(s) for t, s in _obj(doc, "durations").items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ShapeError(
                f"an entry of 'failures', 'progress' or 'durations' is malformed: {exc}"
            ) from exc
        running = doc.get("running")
        if running is not None and not isinstance(running, dict):
            raise ShapeError("key 'running' is not an object")
        return cls(
            date=doc["date"],
            account=doc["account"],
            type=doc["type"],
            completed=lists["completed"],
            remaining=lists["remaining"],
            last_update=last,
            failures=failures,
            progress=progress,
            durations=durations,
            running=running,
            extra={k: v for k, v in doc.items() if k not in _KNOWN},
        )

    @classmethod
    def loads(cls, data: bytes) -> TaskSetRecord:
        """Parse bytes from disk; ValueError (JSON or shape) if they are not a record."""
        try:
            doc = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 text: {exc}") from exc
        return cls.from_json(doc)


def for_key(record: TaskSetRecord, key: TaskSetKey, holder: str) -> TaskSetRecord:
    """``record``, checked to be the one stored under ``key``; ``holder`` ("file", "row")
    names what held it in the error."""
    if record.key != key:
        raise ShapeError(
            f"the {holder} holds account {record.account!r}, type {record.type!r}, date "
            f"{record.date!r}, which does not match where it is stored"
        )
    return record


def _obj(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ShapeError(f"key {key!r} is not an object")
    return value
