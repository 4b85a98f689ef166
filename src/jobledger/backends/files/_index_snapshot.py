"""Reading ``queue.json``: the snapshot of a files queue's index, checked whole before any
of it is used (``_index_format.index_problem``). A damaged one is set aside by a writer
and reported by a reader; either way the index is then counted from the job files."""

from __future__ import annotations

import errno
import logging
from typing import Any

from ..._clock import Clock
from ._index_format import index_problem, parse_json
from ._reading import MAX_INDEX_BYTES, RefusedFile, read_bytes
from ._set_aside import set_aside

__all__ = ["load_snapshot"]

log = logging.getLogger("jobledger")


def load_snapshot(path: str, clock: Clock, *, read_only: bool) -> dict[str, Any] | None:
    """queue.json's document, every value checked (``index_problem``); None when it is
    missing, or damaged (a writer sets it aside, a reader reports it)."""
    try:
        data = read_bytes(path, MAX_INDEX_BYTES, "queue.json")
    except RefusedFile as exc:
        if exc.errno == errno.EISDIR:
            raise  # a folder in the way is reported, never taken for a damaged index
        _snapshot_refused(path, clock, read_only, exc)
        return None
    if data is None:
        return None
    try:
        doc = parse_json(data)
        problem = index_problem(doc)
        if problem is not None:
            raise ValueError(problem)
    except ValueError as exc:
        if read_only:
            log.warning(
                "queue.json %s is torn or corrupt (%s); counting from the job files. "
                "Nothing was changed: the queue's next write rebuilds it.",
                path,
                exc,
            )
            return None
        aside = set_aside(path, clock.now())
        log.warning(
            "queue.json %s is torn or corrupt (%s); moved it aside to %s and "
            "rebuilding it from the job files",
            path,
            exc,
            aside,
        )
        return None
    checked: dict[str, Any] = doc  # index_problem found it an object of our shape
    return checked


def _snapshot_refused(path: str, clock: Clock, read_only: bool, exc: RefusedFile) -> None:
    """queue.json is a link, FIFO, device or too large: no index, like a corrupt one
    (a writer renames the entry itself aside, never what a link points to)."""
    if read_only:
        log.warning(
            "queue.json %s %s; counting from the job files. Nothing was changed: the "
            "queue's next write sets it aside and rebuilds it.",
            path,
            exc.reason,
        )
        return
    aside = set_aside(path, clock.now())
    log.warning(
        "queue.json %s %s; moved it aside to %s and rebuilding it from the job files",
        path,
        exc.reason,
        aside,
    )
