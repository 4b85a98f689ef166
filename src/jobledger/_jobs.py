"""Jobs: the "Job Persistence System" document's job file format, and the public Job view.

A job file is the document's shape: ``type``, ``job_id``, ``status``, ``error_message`` and
the payload fields at the top level, exactly as the document's TextJob example. Our own
bookkeeping goes under one key, ``"_jobledger"``, which payloads may not use::

    {"type": "TextJob", "job_id": "123e...", "status": "Running", "error_message": null,
     "model": "mistralai/Mistral-7B-v0.1", "dataset": "my-dataset.json", ...,
     "_jobledger": {"priority": 0, "attempts": 1, "max_attempts": 3, "seq": 17,
                    "created": "...Z", "started": "...Z", "finished": null,
                    "worker": "host-4242-1a2b3c4d", "run_after": null, "result": null,
                    "recovered": false, "traceback": null}}

``traceback`` is the full Python traceback of the last failed attempt whose handler raised
(null when there is none: never failed, completed since, failed without an exception).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

from ._records import dumps_lines

__all__ = ["META_KEY", "RESERVED_KEYS", "Job", "JobRecord", "JobStatus", "new_job_id"]

META_KEY = "_jobledger"
#: Top-level keys of a job file that are not payload.
RESERVED_KEYS = frozenset({"type", "job_id", "status", "error_message", META_KEY})


def new_job_id() -> str:
    """A new random id: a version 4 UUID as text, as ``str(uuid.uuid4())`` gives, built
    from the same OS randomness at half its cost (every enqueue without an id makes one)."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class JobStatus(str, enum.Enum):
    """A job's status, spelled in files as the document spells it."""

    QUEUED = "Queued"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    #: The finished statuses, Completed, Failed and Cancelled: a job in one is never
    #: served again (unless retried) and may be pruned. Set below the class (an enum's
    #: body would make it a member). Iterate ``JobStatus`` for a stable order.
    FINISHED: ClassVar[frozenset[JobStatus]]

    @property
    def is_live(self) -> bool:
        """Queued or Running: still to be served (not :attr:`FINISHED`)."""
        return self not in JobStatus.FINISHED

    def __str__(self) -> str:
        return str(self.value)  # a str already; says so to mypy, which FINISHED confuses


JobStatus.FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True)
class JobRecord:
    """A job as stored. Immutable: transitions make new records with ``replace``."""

    job_id: str
    type: str
    status: JobStatus
    payload: dict[str, Any]
    error_message: str | None = None
    priority: int = 0
    attempts: int = 0
    max_attempts: int = 3
    seq: int = 0
    created: str | None = None
    started: str | None = None
    finished: str | None = None
    worker: str | None = None
    run_after: str | None = None
    result: Any = None
    recovered: bool = False
    extra_meta: dict[str, Any] = field(default_factory=dict)
    traceback: str | None = None

    @classmethod
    def queued(
        cls,
        job_id: str,
        type: str,
        payload: dict[str, Any],
        *,
        priority: int,
        max_attempts: int,
        created: str,
        run_after: str | None,
    ) -> JobRecord:
        """A new job's record, as every enqueue builds one: the same as the constructor
        with these fields (the rest at their defaults), at a third of the cost of the
        frozen dataclass's ``__init__``, which sets each field through ``object``."""
        new = object.__new__(cls)
        new.__dict__.update(
            job_id=job_id,
            type=type,
            status=JobStatus.QUEUED,
            payload=payload,
            error_message=None,
            priority=priority,
            attempts=0,
            max_attempts=max_attempts,
            seq=0,
            created=created,
            started=None,
            finished=None,
            worker=None,
            run_after=run_after,
            result=None,
            recovered=False,
            extra_meta={},
            traceback=None,
        )
        return new

    def evolve(self, **changes: Any) -> JobRecord:
        """A copy with ``changes`` applied (field names only, as ``dataclasses.replace``).

        Every claim and completion makes one: copied field by field, without
        ``replace``'s generic machinery, which cost five times as much."""
        unknown = changes.keys() - _FIELD_NAMES
        if unknown:
            return replace(self, **changes)  # raises its TypeError naming the field
        new = object.__new__(type(self))
        values = new.__dict__
        values.update(self.__dict__)
        values.update(changes)
        return new

    def with_seq(self, seq: int) -> JobRecord:
        """A copy with ``seq`` set: what every enqueue does to every job."""
        return self.evolve(seq=seq)

    def sort_key(self) -> tuple[int, int, int]:
        """Serving order: recovered jobs first, then higher priority, then FIFO."""
        return (0 if self.recovered else 1, -self.priority, self.seq)

    def to_json(self) -> dict[str, Any]:
        """The job file's document."""
        doc: dict[str, Any] = {
            "type": self.type,
            "job_id": self.job_id,
            "status": self.status.value,
            "error_message": self.error_message,
        }
        doc.update(self.payload)
        meta = {
            "priority": self.priority,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "seq": self.seq,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "worker": self.worker,
            "run_after": self.run_after,
            "result": self.result,
            "recovered": self.recovered,
            "traceback": self.traceback,
        }
        meta.update(self.extra_meta)
        doc[META_KEY] = meta
        return doc

    def dumps(self) -> bytes:
        """UTF-8 JSON, one top-level key per line, for people and for speed."""
        return dumps_lines(self.to_json())

    @classmethod
    def from_json(cls, doc: object) -> JobRecord:
        """Parse a job document; ValueError names what is wrong.

        Every field this library reads is checked by type and range, so that a damaged or
        hand-edited file is found corrupt here (and set aside), never later as a crash in
        the middle of a claim: ints are ints (not booleans) in ``0 <= n < 2**63`` (priority
        in ``-2**63 <= n < 2**63``), timestamps ISO 8601 text or null. A ``worker`` that is
        not text is kept as its JSON text: such a Running job is recovered as a dead
        worker's, not set aside (see the files backend's ``recover``)."""
        if not isinstance(doc, dict):
            raise ValueError(f"the document is a JSON {type(doc).__name__}, not an object")
        for key in ("type", "job_id", "status"):
            if not isinstance(doc.get(key), str):
                raise ValueError(f"key {key!r} is missing or not a string")
        if not doc["type"]:
            raise ValueError("key 'type' is empty")
        if not doc["job_id"]:
            raise ValueError("key 'job_id' is empty")
        try:
            status = JobStatus(doc["status"])
        except ValueError as exc:
            raise ValueError(f"key 'status' is not a known status: {doc['status']!r}") from exc
        error = doc.get("error_message")
        if error is not None and not isinstance(error, str):
            raise ValueError("key 'error_message' is not a string or null")
        meta = doc.get(META_KEY, {})
        if not isinstance(meta, dict):
            raise ValueError(f"key {META_KEY!r} is not an object")
        try:
            recovered = meta.get("recovered", False)
            if type(recovered) is not bool:
                raise ValueError(f"'recovered' is not true or false: {_shown(recovered)}")
            worker = meta.get("worker")
            if worker is not None and not isinstance(worker, str):
                worker = _shown(worker)  # unusable as a worker id: recovered as a dead one
            return cls(
                job_id=doc["job_id"],
                type=doc["type"],
                status=status,
                payload={k: v for k, v in doc.items() if k not in RESERVED_KEYS},
                error_message=error,
                priority=_int(meta, "priority", 0, -_INT_LIMIT),
                attempts=_int(meta, "attempts", 0, 0),
                max_attempts=_int(meta, "max_attempts", 3, 1),
                seq=_int(meta, "seq", 0, 0),
                created=_opt_time(meta, "created"),
                started=_opt_time(meta, "started"),
                finished=_opt_time(meta, "finished"),
                worker=worker,
                run_after=_opt_time(meta, "run_after"),
                result=meta.get("result"),
                recovered=recovered,
                extra_meta={k: v for k, v in meta.items() if k not in _KNOWN_META},
                traceback=_opt_str(meta, "traceback"),
            )
        except ValueError as exc:
            raise ValueError(f"key {META_KEY!r} is malformed: {exc}") from exc

    @classmethod
    def loads(cls, data: bytes) -> JobRecord:
        """Parse bytes from disk; ValueError if they are not a job. Whatever the bytes,
        nothing else is raised: nesting too deep for the parser (RecursionError) is a
        corrupt file too."""
        try:
            doc = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 text: {exc}") from exc
        except RecursionError:
            raise ValueError("JSON nested too deep to read") from None
        except (ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if b"\\u" in data:
            # An escaped lone surrogate parses, but no UTF-8 file can hold it: the job's
            # next write would fail. Looked for only where an escape is (rare).
            try:
                json.dumps(doc, ensure_ascii=False).encode("utf-8")
            except (UnicodeEncodeError, RecursionError, ValueError) as exc:
                raise ValueError(f"text that UTF-8 cannot hold: {exc}") from None
        return cls.from_json(doc)


_KNOWN_META = frozenset(
    {
        "priority",
        "attempts",
        "max_attempts",
        "seq",
        "created",
        "started",
        "finished",
        "worker",
        "run_after",
        "result",
        "recovered",
        "traceback",
    }
)
#: Bookkeeping integers stay within a signed 64-bit integer, as PostgreSQL stores them.
_INT_LIMIT = 1 << 63


def _shown(value: object) -> str:
    """A short JSON text of ``value`` for a message (nothing read can make it fail)."""
    try:
        text = json.dumps(value)
    except (ValueError, TypeError, RecursionError, OverflowError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _int(meta: dict[str, Any], key: str, default: int, low: int) -> int:
    value = meta.get(key, default)
    if type(value) is not int:
        raise ValueError(f"{key!r} is not an integer: {_shown(value)}")
    if not low <= value < _INT_LIMIT:
        raise ValueError(f"{key!r} is out of range ({low} to 2**63 - 1): {_shown(value)}")
    return value


def _opt_time(meta: dict[str, Any], key: str) -> str | None:
    value = _opt_str(meta, key)
    if value is not None:
        # Python 3.10's fromisoformat does not take the "Z" that iso_utc writes.
        text = value[:-1] + "+00:00" if value.endswith("Z") else value
        try:
            dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{key!r} is not an ISO 8601 time: {_shown(value)}") from None
    return value


_FIELD_NAMES = frozenset(f.name for f in fields(JobRecord))


def _opt_str(meta: dict[str, Any], key: str) -> str | None:
    value = meta.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key!r} is not a string or null: {_shown(value)}")
    return value


@dataclass(frozen=True)
class Job:
    """A job as the queue hands it out.

    ``payload`` is an instance of the registered job type (see :func:`jobledger.job_type`)
    or, for a dict job or an unknown type, the payload dict. ``raw`` is always the dict.
    """

    job_id: str
    type: str
    status: JobStatus
    payload: Any
    attempts: int
    max_attempts: int
    priority: int
    error_message: str | None
    result: Any
    worker: str | None
    created: str | None
    started: str | None
    finished: str | None
    run_after: str | None
    raw: dict[str, Any]
    known_type: bool = True
    #: The full Python traceback of the last failed attempt whose handler raised, or None.
    traceback: str | None = None
