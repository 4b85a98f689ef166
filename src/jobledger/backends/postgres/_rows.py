"""A job record as a PostgreSQL row, and back: the codec every statement of the job
backend goes through, derived once from the job field table (``_job_fields.FIELDS``) in
the column order of ``_queries.COLUMNS``."""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

from ..._job_fields import FIELDS, Field
from ..._job_record import JobRecord
from ..._json import encode_compact
from . import _queries as q
from ._db import stored_as

__all__ = ["SEQ", "copy_row", "doc_of", "record_of", "same"]


def copy_row(r: JobRecord) -> list[Any]:
    """A record as a row of COPY's text format, in q.COLUMNS's order (JSON columns as text).

    Every column's value taken at once, then only the few that need it encoded: a batch
    COPY makes one row per job (a quarter less than a loop over every column)."""
    row = list(_COLUMN_VALUES(r.__dict__))
    for at, encode in _COPY_ENCODED:
        row[at] = encode(row[at])
    return row


def record_of(row: tuple[Any, ...]) -> JobRecord:
    """The record of a row of q.COLUMNS, field by field by name."""
    values = dict(zip(q.COLUMNS, row, strict=True))
    for name, decode in _DECODE:
        values[name] = decode(values[name])
    return JobRecord.from_fields(values)


def doc_of(r: JobRecord) -> dict[str, Any]:
    """A record as one object of put's JSON array (keys: the columns)."""
    values = r.__dict__
    return {n: values[n] if enc is None else enc(values[n]) for n, enc in _DOC_OUT}


def _jsonb_text(value: Any) -> str | None:
    """A jsonb column's COPY text: compact JSON; NULL for None (an empty object, the
    usual ``extra_meta``, without the encoder)."""
    if value is None:
        return None
    return "{}" if value == {} else encode_compact(value)


def _copy_text(f: Field) -> Callable[[Any], Any] | None:
    """How COPY takes a field: its JSON value, as compact text for a jsonb column."""
    if f.pg_type != "jsonb":
        return f.encode
    encode = f.encode
    if encode is None:
        return _jsonb_text
    return lambda value: _jsonb_text(encode(value))


# How each field becomes a column (its JSON value; COPY wants a jsonb's text) and a column
# the field, made once from the table.
_DOC_OUT = tuple((f.name, f.encode) for f in FIELDS)
_COPY_OUT = tuple((f.name, _copy_text(f)) for f in FIELDS)
_COLUMN_VALUES = itemgetter(*q.COLUMNS)
_COPY_ENCODED = tuple(
    (q.COLUMNS.index(name), encode) for name, encode in _COPY_OUT if encode is not None
)
SEQ = q.COLUMNS.index("seq")
_DECODE = tuple((f.name, f.decode) for f in FIELDS if f.decode is not None)


def same(stored: JobRecord, written: JobRecord) -> bool:
    """Whether the stored row is, column for column, the record a transaction wrote: its
    new status and stamps (finished, run_after, seq...) with the claim's worker, attempt
    and start, which no other transaction writes all alike."""
    return stored_as(doc_of(stored), doc_of(written))
