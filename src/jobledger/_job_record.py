"""The job record: a job as stored, in the job file format.

A job file's shape: ``type``, ``job_id``, ``status``, ``error_message`` and
the payload fields at the top level, as in the README's TextJob example. Our own
bookkeeping goes under one key, ``"_jobledger"``, which payloads may not use::

    {"type": "TextJob", "job_id": "123e...", "status": "Running", "error_message": null,
     "model": "mistralai/Mistral-7B-v0.1", "dataset": "my-dataset.json", ...,
     "_jobledger": {"priority": 0, "attempts": 1, "max_attempts": 3, "seq": 17,
                    "created": "...Z", "started": "...Z", "finished": null,
                    "worker": "host-4242-1a2b3c4d", "run_after": null, "result": null,
                    "recovered": false, "traceback": null, "timeout": null,
                    "cancel_requested_at": null, "progress_done": null, "progress_total": null,
                    "progress_note": null, "progress_at": null, "checkpoint_json": null,
                    "checkpoint_at": null, "unique_key": null, "queue": "default",
                    "rate_key": null}}

The fields, where each goes, and how each is checked when read are the table's
(``_job_fields.FIELDS``); this module lays them out. ``traceback`` is the full Python
traceback of the last failed attempt whose handler raised (null when there is none: never
failed, completed since, failed without an exception). ``timeout`` is the job's own
timeout in seconds (null: its type's, else the Worker's, applies). ``cancel_requested_at``,
``progress_*`` and ``checkpoint_*`` are what a running attempt records: a cancel asked of
its worker, its last progress report, its last checkpoint (as JSON text). ``unique_key``
is the key given to ``enqueue(..., unique_key=)`` (null: none). ``queue`` is the named
queue the job waits in, ``rate_key`` the key its type's rate limit counts it under
(``enqueue(..., queue=, rate_key=)``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ._job_fields import DOC, EXTRA, FIELDS, META, PAYLOAD, REQUIRED, JobStatus, Reader
from ._json import dumps_lines

__all__ = ["META_KEY", "RESERVED_KEYS", "JobRecord", "JobStatus", "new_job_id"]

META_KEY = "_jobledger"
#: Top-level keys of a job file that are not payload.
RESERVED_KEYS = frozenset({f.name for f in FIELDS if f.where == DOC} | {META_KEY})


def new_job_id() -> str:
    """A new random id: a version 4 UUID as text, as ``str(uuid.uuid4())`` gives, built
    from the same OS randomness at a third of its cost (every enqueue without an id makes
    one): the version digit written over, the variant's two bits set on the hex digit."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


# A hex digit with its top two bits made 10 (the RFC 4122 variant): 8, 9, a or b.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


@dataclass(frozen=True)
class JobRecord:
    """A job as stored. Immutable: transitions make new records with ``replace``.

    Its fields are those of the table (``_job_fields.FIELDS``), named again here for the
    type checker, in the same order with the same defaults (tests/test_job_fields.py)."""

    type: str
    job_id: str
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
    timeout: float | None = None
    cancel_requested_at: str | None = None
    progress_done: float | None = None
    progress_total: float | None = None
    progress_note: str | None = None
    progress_at: str | None = None
    checkpoint_json: str | None = None
    checkpoint_at: str | None = None
    unique_key: str | None = None
    queue: str = "default"
    rate_key: str | None = None

    @classmethod
    def from_fields(cls, values: dict[str, Any]) -> JobRecord:
        """The record of ``values``, which gives every field by name (unchecked: for
        mappings made from the table, such as a PostgreSQL row), at a third of the cost
        of the frozen dataclass's ``__init__``, which sets each field through ``object``."""
        new = object.__new__(cls)
        new.__dict__.update(values)
        return new

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
        timeout: float | None = None,
        unique_key: str | None = None,
        queue: str = "default",
        rate_key: str | None = None,
    ) -> JobRecord:
        """A new job's record, as every enqueue builds one: the same as the constructor
        with these fields (the rest at their defaults), built as :meth:`from_fields`."""
        new = object.__new__(cls)
        values = new.__dict__
        values.update(_DEFAULTS)
        for name, factory in _FACTORIES:
            values[name] = factory()
        # One key at a time: a keyword dict for update() costs as much as the rest.
        values["job_id"] = job_id
        values["type"] = type
        values["status"] = JobStatus.QUEUED
        values["payload"] = payload
        values["priority"] = priority
        values["max_attempts"] = max_attempts
        values["created"] = created
        values["run_after"] = run_after
        values["timeout"] = timeout
        values["unique_key"] = unique_key
        values["queue"] = queue
        values["rate_key"] = rate_key
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
        """A copy with ``seq`` set: what every enqueue does to every job (:meth:`evolve`
        without its check of the names, for this one known field)."""
        new = object.__new__(type(self))
        values = new.__dict__
        values.update(self.__dict__)
        values["seq"] = seq
        return new

    def sort_key(self) -> tuple[int, int, int]:
        """Serving order: recovered jobs first, then higher priority, then FIFO."""
        return (0 if self.recovered else 1, -self.priority, self.seq)

    def to_json(self) -> dict[str, Any]:
        """The job file's document: the DOC fields, the payload, then under
        ``"_jobledger"`` the META fields and the extra keys."""
        values = self.__dict__
        doc = {n: values[n] if enc is None else enc(values[n]) for n, enc in _DOC_OUT}
        doc.update(values[_PAYLOAD])
        meta = {n: values[n] if enc is None else enc(values[n]) for n, enc in _META_OUT}
        meta.update(values[_EXTRA])
        doc[META_KEY] = meta
        return doc

    def dumps(self) -> bytes:
        """UTF-8 JSON, one top-level key per line, for people and for speed."""
        return dumps_lines(self.to_json())

    @classmethod
    def from_json(cls, doc: object) -> JobRecord:
        """Parse a job document; ValueError names what is wrong.

        Every field this library reads is checked by type and range (the table's
        ``read``), so that a damaged or hand-edited file is found corrupt here (and set
        aside), never later as a crash in the middle of a claim: ints are ints (not
        booleans) in ``0 <= n < 2**63`` (priority in ``-2**63 <= n < 2**63``), timestamps
        ISO 8601 text or null. A ``worker`` that is not text is kept as its JSON text: such
        a Running job is recovered as a dead worker's, not set aside (see the files
        backend's ``recover``)."""
        if not isinstance(doc, dict):
            raise ValueError(f"the document is a JSON {type(doc).__name__}, not an object")
        values: dict[str, Any] = {}
        try:
            _read(values, doc, _DOC_IN)
        except ValueError as exc:
            raise ValueError(f"key {exc}") from None
        values[_PAYLOAD] = {k: v for k, v in doc.items() if k not in RESERVED_KEYS}
        meta = doc.get(META_KEY, {})
        if not isinstance(meta, dict):
            raise ValueError(f"key {META_KEY!r} is not an object")
        try:
            _read(values, meta, _META_IN)
        except ValueError as exc:
            raise ValueError(f"key {META_KEY!r} is malformed: {exc}") from exc
        values[_EXTRA] = {k: v for k, v in meta.items() if k not in _KNOWN_META}
        return cls.from_fields(values)

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


# What to_json, from_json and queued go through, made once from the table.
_DOC_OUT = tuple((f.name, f.encode) for f in FIELDS if f.where == DOC)
_META_OUT = tuple((f.name, f.encode) for f in FIELDS if f.where == META)
_Readers = tuple[tuple[str, Any, Reader], ...]


def _readers(where: str) -> _Readers:
    """(key, value if missing, check) of each field read from ``where``."""
    return tuple(
        (f.name, None if f.default is REQUIRED else f.default, f.read)
        for f in FIELDS
        if f.where == where and f.read is not None
    )


def _read(values: dict[str, Any], source: dict[str, Any], readers: _Readers) -> None:
    """Check the fields of ``readers`` in ``source`` into ``values``; ValueError."""
    for name, default, read in readers:
        values[name] = read(name, source.get(name, default))


_DOC_IN = _readers(DOC)
_META_IN = _readers(META)
[_PAYLOAD] = [f.name for f in FIELDS if f.where == PAYLOAD]
[_EXTRA] = [f.name for f in FIELDS if f.where == EXTRA]
_KNOWN_META = frozenset(f.name for f in FIELDS if f.where == META)
_DEFAULTS = {f.name: f.default for f in FIELDS if f.default is not REQUIRED}
_FACTORIES = tuple((f.name, f.factory) for f in FIELDS if f.factory is not None)
_FIELD_NAMES = frozenset(f.name for f in fields(JobRecord))
