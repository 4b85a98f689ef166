"""The serving order of a files queue's live jobs: what its index keeps of each, in memory.

A live job is Queued or Running. The Queued ones are kept sorted by their serving key
(recovered first, then priority, then FIFO by ``seq``), so that a claim takes the first
due one without reading any file; the Running ones are kept as a plain list, sorted only
when listed.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Iterator
from typing import Any

from ..._job_record import JobRecord, JobStatus
from ..._json import encode_compact, encode_str
from ..._limits import DEFAULT_QUEUE
from .._contract import QueuedCounts

__all__ = ["Entry", "ServingOrder"]

Key = tuple[int, int, int, str]  # (*JobRecord.sort_key(), job_id)


class Entry:
    """What the index keeps of a live job: enough to order and pick it without reading."""

    __slots__ = ("key", "queue", "run_after", "status", "type", "unique_key", "worker")

    def __init__(
        self,
        key: Key,
        status: JobStatus,
        worker: str | None,
        run_after: str | None,
        type_: str,
        unique_key: str | None = None,
        queue: str = DEFAULT_QUEUE,
    ) -> None:
        self.key = key
        self.status = status
        self.worker = worker
        self.run_after = run_after
        self.type = type_
        self.unique_key = unique_key
        self.queue = queue

    @classmethod
    def of(cls, record: JobRecord) -> Entry:
        """The entry of a live job's record."""
        return cls(
            (*record.sort_key(), record.job_id),
            record.status,
            record.worker,
            record.run_after,
            record.type,
            record.unique_key,
            record.queue,
        )

    @classmethod
    def of_line(cls, line: dict[str, Any]) -> Entry:
        """The entry a journal line (checked by ``parse_line``) gives a live job."""
        k = line["k"]
        key = (int(k[0]), int(k[1]), int(k[2]), str(line["id"]))
        return cls(
            key,
            JobStatus(line["s"]),
            line.get("w"),
            line.get("a"),
            str(line.get("t")),
            line.get("u"),
            line.get("q", DEFAULT_QUEUE),
        )

    def line(self, n: int, deltas: dict[str, int]) -> str:
        """This entry as a journal line: ``{"n", "id", "s", "k", "a", "t", "w"[, "u"][,
        "q"][, "f"]}`` (``"u"``: its unique key, only when it has one; ``"q"``: its queue,
        only when not the default one), formatted here (every change writes one; a dict
        through the encoder cost 5x)."""
        p, r, seq, job_id = self.key
        text = (
            f'{{"n":{n},"id":{encode_str(job_id)},"s":"{self.status.value}",'
            f'"k":[{p},{r},{seq}],"a":{_opt_str(self.run_after)},"t":{encode_str(self.type)},'
            f'"w":{_opt_str(self.worker)}'
        )
        if self.unique_key is not None:
            text += f',"u":{encode_str(self.unique_key)}'
        if self.queue != DEFAULT_QUEUE:
            text += f',"q":{encode_str(self.queue)}'
        return f'{text},"f":{encode_compact(deltas)}}}' if deltas else text + "}"


def _opt_str(value: str | None) -> str:
    return "null" if value is None else encode_str(value)


class ServingOrder:
    """The live jobs of a queue by id, the Queued ones in serving order.

    Invariants: every id in ``entries`` is in exactly one of ``queued`` (by its key, kept
    sorted) or ``running``, as its entry's status says; nothing else is in either.
    ``by_key`` maps the unique key of each live job that has one to its id (two live jobs
    never share a key; should a hand-edited file make them, the last placed is named).
    ``running_in`` counts the Running jobs of each queue (a queue's limit is checked
    against it under the queue lock, without reading a file).
    """

    __slots__ = ("by_key", "entries", "queued", "running", "running_in")

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.queued: list[Key] = []  # sorted: the serving order
        self.running: list[str] = []
        self.by_key: dict[str, str] = {}
        self.running_in: collections.Counter[str] = collections.Counter()

    def clear(self) -> None:
        """Forget every job."""
        self.entries.clear()
        self.queued.clear()
        self.running.clear()
        self.by_key.clear()
        self.running_in.clear()

    def place(self, entry: Entry) -> None:
        """Put (or move) a live job where its entry says."""
        job_id = entry.key[-1]
        self.drop(job_id)
        self.entries[job_id] = entry
        if entry.unique_key is not None:
            self.by_key[entry.unique_key] = job_id
        if entry.status is JobStatus.RUNNING:
            self.running.append(job_id)
            self.running_in[entry.queue] += 1
        else:
            bisect.insort(self.queued, entry.key)

    def drop(self, job_id: str) -> None:
        """Take a job out (no-op if it is not in)."""
        entry = self.entries.pop(job_id, None)
        if entry is None:
            return
        if entry.unique_key is not None and self.by_key.get(entry.unique_key) == job_id:
            del self.by_key[entry.unique_key]
        if entry.status is JobStatus.RUNNING:
            self.running.remove(job_id)
            self.running_in[entry.queue] -= 1
            if not self.running_in[entry.queue]:
                del self.running_in[entry.queue]
        else:
            i = bisect.bisect_left(self.queued, entry.key)
            if i < len(self.queued) and self.queued[i] == entry.key:
                del self.queued[i]

    def queued_ids(self) -> list[str]:
        """The Queued jobs in serving order."""
        return [k[-1] for k in self.queued]

    def running_in_order(self) -> list[str]:
        """The Running jobs in serving order (recovered, priority, FIFO), as PostgreSQL
        lists them: the order they were served in, whatever order the index learnt them."""
        return sorted(self.running, key=lambda job_id: self.entries[job_id].key)

    def due(
        self, now: str, types: frozenset[str] | None, queues: frozenset[str] | None = None
    ) -> Iterator[Entry]:
        """The Queued jobs due at ``now`` (of these types, in these queues), in serving
        order."""
        for key in self.queued:
            entry = self.entries[key[-1]]
            if entry.run_after is not None and entry.run_after > now:
                continue
            if types is not None and entry.type not in types:
                continue
            if queues is not None and entry.queue not in queues:
                continue
            yield entry

    def queued_count(self, types: frozenset[str] | None) -> int:
        """Queued jobs (of these types), due or not."""
        if types is None:
            return len(self.queued)
        return sum(1 for k in self.queued if self.entries[k[-1]].type in types)

    def live_by_queue(self) -> dict[str, dict[str, int]]:
        """The Queued and Running jobs per queue (only queues that have some)."""
        out: dict[str, dict[str, int]] = {}
        for entry in self.entries.values():
            counts = out.setdefault(entry.queue, {"Queued": 0, "Running": 0})
            counts[entry.status.value] += 1
        return out

    def queued_by_type(
        self, now: str, queues: frozenset[str] | None = None
    ) -> dict[str, QueuedCounts]:
        """The Queued jobs per type (of ``queues``), due or not at ``now``."""
        tally: dict[str, list[Any]] = {}
        for key in self.queued:
            entry = self.entries[key[-1]]
            if queues is not None and entry.queue not in queues:
                continue
            t = tally.setdefault(entry.type, [0, 0, None])
            if entry.run_after is None or entry.run_after <= now:
                t[0] += 1
            else:
                t[1] += 1
                if t[2] is None or entry.run_after < t[2]:
                    t[2] = entry.run_after
        return {k: QueuedCounts(*v) for k, v in tally.items()}
