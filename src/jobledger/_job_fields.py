"""The one table of a job record's fields: :data:`FIELDS`.

Each field is named once, here, with where it goes in a job file, how a job file's value
is checked, its PostgreSQL type and its default. Everything that lists the fields is made
from this table: ``JobRecord.to_json`` and ``from_json`` (the bookkeeping keys under
``"_jobledger"``, the set of keys known, each value's check), ``JobRecord.queued`` (the
defaults), and the PostgreSQL backend's column list, ``jsonb_to_recordset`` types, COPY
row, JSON rows and row-to-record mapping. The ``JobRecord`` dataclass names its fields
again, for the type checker; tests/test_job_fields.py holds it to this table (names,
order, defaults), and the contract tests store every field of the table, set away from
its default, through every backend and read it back.

A field's name is at once the ``JobRecord`` attribute, the key in the job file and the
PostgreSQL column: one spelling, so nothing maps one to another.

Adding a job option (say ``timeout``, seconds, default none):

1. The table: a line in :data:`FIELDS` (``Field("timeout", META, "bigint",
   opt_int_at_least(1))``-like: where it goes, its PostgreSQL type, its check, its
   default), and the attribute, same name, type, default and place, in ``JobRecord``
   (``tests/test_job_fields.py`` says where they differ). A new kind of value gets its
   check here, beside the others, raising ValueError that names the key.
2. The policy that uses it: ``JobQueue`` (``_queue.py``) sets it (an ``enqueue``
   argument, passed to ``JobRecord.queued``) and acts on it, and ``Job`` shows it.
3. A migration: ``backends/postgres/sql/NNNN_<what>.sql`` adding the column, with the
   type the table gives and a default equal to the field's, so that existing rows read
   as before. Job files need none: a missing key reads as the default, and an older
   version keeps the key it does not know (``extra_meta``) and writes it back.
4. Its tests: the value in ``tests/contract/test_job_fields.py``'s ``NOT_DEFAULT``
   (the test fails until it is there), a file with a bad value refused by
   ``from_json``, and the policy's behaviour through the public API on every backend.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "DOC",
    "EXTRA",
    "FIELDS",
    "META",
    "PAYLOAD",
    "REQUIRED",
    "Field",
    "JobStatus",
    "Reader",
    "shown",
]


class JobStatus(str, enum.Enum):
    """A job's status, spelled in files as the job file format spells it."""

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


#: Where a field goes in a job file: a top-level key of the document ...
DOC = "doc"
#: ... a key under ``"_jobledger"`` ...
META = "meta"
#: ... the document's other top-level keys (the payload) ...
PAYLOAD = "payload"
#: ... or the other keys under ``"_jobledger"`` (kept for a newer version that wrote them).
EXTRA = "extra"


class _Required:
    """The default of a field that has none: every record gives it."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

#: A check: ``(key, value read)`` to the field's value; ValueError starting with the key.
Reader = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Field:
    """One field of a job record; see the module docstring.

    ``read`` checks the value found in a job file (the default if the key is missing):
    None for the PAYLOAD and EXTRA fields, which are what is left over. ``encode`` makes
    the attribute a JSON value (in a job file and in PostgreSQL's JSON rows) and
    ``decode`` makes a PostgreSQL column's value the attribute; None: as it is.
    ``factory`` makes a fresh mutable default (then ``default`` is REQUIRED)."""

    name: str
    where: str
    pg_type: str
    read: Reader | None
    default: Any = REQUIRED
    factory: Callable[[], Any] | None = None
    encode: Callable[[Any], Any] | None = None
    decode: Callable[[Any], Any] | None = None

    @property
    def required(self) -> bool:
        """Whether every record must give it (no default, no factory)."""
        return self.default is REQUIRED and self.factory is None


#: Bookkeeping integers stay within a signed 64-bit integer, as PostgreSQL stores them.
_INT_LIMIT = 1 << 63


def shown(value: object) -> str:
    """A short JSON text of ``value`` for a message (nothing read can make it fail)."""
    try:
        text = json.dumps(value)
    except (ValueError, TypeError, RecursionError, OverflowError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _name(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key!r} is missing or not a string")
    if not value:
        raise ValueError(f"{key!r} is empty")
    return value


def _status(key: str, value: Any) -> JobStatus:
    if not isinstance(value, str):
        raise ValueError(f"{key!r} is missing or not a string")
    try:
        return JobStatus(value)
    except ValueError:
        raise ValueError(f"{key!r} is not a known status: {value!r}") from None


def _opt_str(key: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key!r} is not a string or null: {shown(value)}")
    return value


def _opt_time(key: str, value: Any) -> str | None:
    stamp = _opt_str(key, value)
    if stamp is not None:
        # Python 3.10's fromisoformat does not take the "Z" that iso_utc writes.
        text = stamp[:-1] + "+00:00" if stamp.endswith("Z") else stamp
        try:
            dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{key!r} is not an ISO 8601 time: {shown(stamp)}") from None
    return stamp


def _int_at_least(low: int) -> Reader:
    """A check of an integer (not a boolean) in ``low <= n < 2**63``."""

    def read(key: str, value: Any) -> int:
        if type(value) is not int:
            raise ValueError(f"{key!r} is not an integer: {shown(value)}")
        if not low <= value < _INT_LIMIT:
            raise ValueError(f"{key!r} is out of range ({low} to 2**63 - 1): {shown(value)}")
        return value

    return read


def _bool(key: str, value: Any) -> bool:
    if type(value) is not bool:
        raise ValueError(f"{key!r} is not true or false: {shown(value)}")
    return value


def _worker(key: str, value: Any) -> str | None:
    # A worker that is not text is kept as its JSON text: such a Running job is recovered
    # as a dead worker's, not set aside (see the files backend's ``recover``).
    return value if value is None or isinstance(value, str) else shown(value)


def _any(key: str, value: Any) -> Any:
    return value


def _opt_seconds(key: str, value: Any) -> float | None:
    # A float whatever was written: PostgreSQL's double precision reads 30 back as 30.0,
    # so a job file holds 30.0 too and both backends read back the same.
    if value is None:
        return None
    if type(value) not in (int, float):
        raise ValueError(f"{key!r} is not a number of seconds or null: {shown(value)}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{key!r} is not a positive, finite number of seconds: {shown(value)}")
    return seconds


def _opt_number(key: str, value: Any) -> float | None:
    # Stored as a float whatever was reported: PostgreSQL's double precision column reads
    # 3 back as 3.0, so a job file holds 3.0 too and both backends read back the same.
    if value is None:
        return None
    if type(value) not in (int, float):
        raise ValueError(f"{key!r} is not a number or null: {shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{key!r} is not a finite number: {shown(value)}")
    return number


def _opt_key(key: Any, value: Any) -> str | None:
    text = _opt_str(key, value)
    if text is not None and not text:
        raise ValueError(f"{key!r} is empty")
    return text


def _queue_name(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key!r} is not a string: {shown(value)}")
    if not value:
        raise ValueError(f"{key!r} is empty")
    return value


def _opt_json_text(key: str, value: Any) -> str | None:
    # Parsed once here so that damaged text is found corrupt on reading, never later as a
    # crash of the claim that hands the checkpoint to its handler.
    text = _opt_str(key, value)
    if text is not None:
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            raise ValueError(f"{key!r} is not JSON text: {shown(text)}") from None
    return text


#: An enum's JSON value (C, not a Python frame: every job write takes a status's).
_value: Callable[[Any], Any] = operator.attrgetter("value")

#: The fields, in ``JobRecord``'s order; the DOC ones in the document's order, the META
#: ones in the order written under ``"_jobledger"`` (EXTRA's keys after them).
FIELDS: tuple[Field, ...] = (
    Field("type", DOC, "text", _name),
    Field("job_id", DOC, "text", _name),
    Field("status", DOC, "text", _status, encode=_value, decode=JobStatus),
    Field("payload", PAYLOAD, "jsonb", None),
    Field("error_message", DOC, "text", _opt_str, None),
    Field("priority", META, "bigint", _int_at_least(-_INT_LIMIT), 0),
    Field("attempts", META, "integer", _int_at_least(0), 0),
    Field("max_attempts", META, "integer", _int_at_least(1), 3),
    Field("seq", META, "bigint", _int_at_least(0), 0),
    Field("created", META, "text", _opt_time, None),
    Field("started", META, "text", _opt_time, None),
    Field("finished", META, "text", _opt_time, None),
    Field("worker", META, "text", _worker, None),
    Field("run_after", META, "text", _opt_time, None),
    Field("result", META, "jsonb", _any, None),
    Field("recovered", META, "boolean", _bool, False),
    Field("extra_meta", EXTRA, "jsonb", None, factory=dict),
    #: The full Python traceback of the last failed attempt whose handler raised (null
    #: when there is none: never failed, completed since, failed without an exception).
    Field("traceback", META, "text", _opt_str, None),
    #: Seconds an attempt may run before the Worker stops it (null: the job gives none,
    #: and its type's timeout applies, else the Worker's; see ``_worker.py``).
    Field("timeout", META, "double precision", _opt_seconds, None),
    #: When ``JobQueue.cancel`` asked the worker of this Running job to stop it (null:
    #: never asked). The job stays Running until its worker ends the attempt.
    Field("cancel_requested_at", META, "text", _opt_time, None),
    #: The last progress report of an attempt (``job.progress``): how much is done, of
    #: what total (null: not known), a note, and when it was reported. Floats.
    Field("progress_done", META, "double precision", _opt_number, None),
    Field("progress_total", META, "double precision", _opt_number, None),
    Field("progress_note", META, "text", _opt_str, None),
    Field("progress_at", META, "text", _opt_time, None),
    #: The last acknowledged checkpoint (``job.checkpoint``) as its JSON text, and when it
    #: was stored. Text, not a JSON value: PostgreSQL's jsonb would read back 1e16 as an
    #: integer and -0.0 as 0; the text reads back exactly what was written.
    Field("checkpoint_json", META, "text", _opt_json_text, None),
    Field("checkpoint_at", META, "text", _opt_time, None),
    #: The key that makes the job unique (``enqueue(..., unique_key=)``): while a job with
    #: it is Queued or Running, enqueueing the key again returns that job (null: none).
    Field("unique_key", META, "text", _opt_key, None),
    #: The named queue the job waits in (``enqueue(..., queue=)``): a Worker serves the
    #: queues it is given, and a queue's limit bounds its Running jobs everywhere.
    Field("queue", META, "text", _queue_name, "default"),
    #: The key its type's rate limit counts the job's starts under (``enqueue(...,
    #: rate_key=)``; null: the payload's field the limit names, else one key per type).
    Field("rate_key", META, "text", _opt_key, None),
)
