"""What ``queue.json`` and ``.queue.journal`` lines may hold: checked as they are read.

Both are derived from the job files and can always be rebuilt from them, so anything that
is not exactly what this library writes is damage: a ``queue.json`` that fails
:func:`index_problem` is rebuilt from the job files (counted in memory by a read-only
reader), and a damaged journal line makes the index reload from the job files. Nothing
read here can raise out of the parse (deep nesting, huge numbers, invalid UTF-8): the
checks run before a single value is used, so no half-applied index is left behind.

``queue.json``::

    {"running": [job ids], "queued": [job ids],
     "finished": {"Completed": n, "Failed": n, "Cancelled": n[, "Completed:gpu": n...]},
     "revision": n}

``finished`` counts the jobs of the default queue under the status alone and those of
a named queue under ``"<status>:<queue>"`` (a key only once the queue has some).

Journal lines: ``{"n": n, "id": job id, "s": "Queued"|"Running", "k": [0|1, int, int],
"a": time|null, "t": type, "w": worker|null[, "u": unique key][, "q": queue][, "f":
deltas]}`` for a live job (``"q"``: only a queue other than the default one), ``{"n",
"id", "s": null[, "u": unique key][, "f"]}`` for a job that left the index (with ``"u"``:
a pruned job, whose key is forgotten), ``{"n", "f"}`` for counts alone and ``{"n",
"pruning": true}`` for a prune begun. ``"f"`` moves the counts of ``finished``'s keys.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..._errors import InvalidNameError
from ..._job_fields import shown as _shown
from ..._job_record import JobStatus
from ._names import decode, encode

__all__ = [
    "FINISHED_NAMES",
    "finished_key_ok",
    "index_problem",
    "job_id_of_file",
    "parse_json",
    "parse_line",
    "valid_job_id",
]

log = logging.getLogger("jobledger")

FINISHED_NAMES = frozenset(
    s.value for s in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
)
_LIVE_NAMES = frozenset((JobStatus.QUEUED.value, JobStatus.RUNNING.value))
_INT_LIMIT = 1 << 63  # counts and numbers stay within a signed 64-bit integer


def parse_json(data: bytes) -> Any:
    """The JSON value in ``data``; ValueError for anything that is not readable JSON,
    including nesting too deep for the parser (RecursionError) and invalid UTF-8."""
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError("JSON nested too deep to read") from None
    except (ValueError, TypeError, OverflowError) as exc:  # UnicodeDecodeError included
        raise ValueError(f"not JSON: {exc}") from exc


def valid_job_id(value: object) -> bool:
    """Whether ``value`` can name a job: a non-empty string that makes a file name."""
    if not isinstance(value, str):
        return False
    try:
        encode(value, "job id")
    except InvalidNameError:
        return False
    return True


def job_id_of_file(stem: str) -> str | None:
    """The job id whose file is ``<stem>.json``; None for a name no job id encodes to (a
    file put there by hand: too long, badly escaped, not UTF-8), which is no job's file
    and is left alone: reading it by its id would name another file, or none."""
    job_id = decode(stem)
    try:
        if encode(job_id, "job id") == stem:
            return job_id
    except InvalidNameError:
        pass
    log.debug("Skipping %s.json in the jobs folder: no job id is stored under that name", stem)
    return None


def _count(value: object, low: int = 0) -> bool:
    return type(value) is int and low <= value < _INT_LIMIT


def index_problem(doc: object) -> str | None:
    """What is wrong with a ``queue.json`` document, or None when every key is as this
    library writes it (unknown extra keys are left alone)."""
    if not isinstance(doc, dict):
        return f"the document is a JSON {type(doc).__name__}, not an object"
    for key in ("running", "queued"):
        ids = doc.get(key)
        if not isinstance(ids, list):
            return f"key {key!r} is missing or not a list: {_shown(ids)}"
        for job_id in ids:
            if not valid_job_id(job_id):
                return f"key {key!r} holds {_shown(job_id)}, which is not a job id"
    finished = doc.get("finished")
    if not isinstance(finished, dict):
        return f"key 'finished' is missing or not an object: {_shown(finished)}"
    if not set(finished) >= FINISHED_NAMES or not all(map(finished_key_ok, finished)):
        return f"key 'finished' does not count {sorted(FINISHED_NAMES)} (per queue)"
    for status, n in finished.items():
        if not _count(n):
            return f"key 'finished' counts {status} as {_shown(n)}, not an integer >= 0"
    revision = doc.get("revision")
    if not _count(revision):
        return f"key 'revision' is missing or not an integer >= 0: {_shown(revision)}"
    return None


def finished_key_ok(key: str) -> bool:
    """Whether ``key`` is a key of the finished counts: a finished status, with a
    queue's name after a ``:`` for a named queue's."""
    status, _, queue = key.partition(":")
    return status in FINISHED_NAMES and (queue != "" or key == status)


def _deltas_ok(value: object) -> bool:
    return isinstance(value, dict) and all(
        finished_key_ok(k) and _count(v, -_INT_LIMIT) for k, v in value.items()
    )


def _opt_str(value: object) -> bool:
    return value is None or isinstance(value, str)


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """A journal line, or None when it is damaged (not JSON, or not of a shape this
    library writes: every value that applying it uses is checked here)."""
    try:
        line = parse_json(raw)
    except ValueError:
        return None
    if not isinstance(line, dict) or not _count(line.get("n")):
        return None
    if "f" in line and not _deltas_ok(line["f"]):
        return None
    if "pruning" in line and type(line["pruning"]) is not bool:
        return None
    job_id = line.get("id")
    if job_id is None:
        return line
    if not valid_job_id(job_id):
        return None
    if "u" in line and not (isinstance(line["u"], str) and line["u"]):
        return None
    if "q" in line and not (isinstance(line["q"], str) and line["q"]):
        return None
    status = line.get("s")
    if status is None:
        return line
    if status not in _LIVE_NAMES:
        return None
    k = line.get("k")
    if not (
        isinstance(k, list)
        and len(k) == 3
        and k[0] in (0, 1)
        and type(k[0]) is int
        and type(k[1]) is int
        and -_INT_LIMIT <= k[1] <= _INT_LIMIT  # minus the priority
        and _count(k[2])
    ):
        return None
    t = line.get("t")
    if not (isinstance(t, str) and t and _opt_str(line.get("a")) and _opt_str(line.get("w"))):
        return None
    return line
