"""The claims a JobQueue handed out and still holds: what its fenced changes write by swap.

``complete``, ``fail`` and ``requeue`` of a job this queue object claimed are computed by
the policy (``_job_transitions.py``) from the record as claimed, and written by the
backend's ``swap``: fenced by the storage itself (the job must still be Running under
this worker, in the same attempt, since the same start), with no row lock to take and no
record to read first: on PostgreSQL one statement. Where the job no longer holds that
claim (taken over after this worker was presumed dead, cancelled, requeued...), or this
object never claimed it, the change goes through ``transition_many`` as before, which
applies the policy to the stored record and refuses as it always did (JobConflict,
JobNotFound). So a swap only ever writes what the locking path would have.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ._errors import JobLedgerError
from ._job_fields import JobStatus
from ._job_record import JobRecord
from ._job_transitions import Change
from .backends._contract import JobBackend

__all__ = ["HeldClaims", "Outcome", "Pairs", "Planned"]

#: What a change of one job came to: the stored record, or why it was refused.
Outcome = JobRecord | JobLedgerError
#: (the record as claimed, the record to write) per job: a backend swap's argument.
Pairs = list[tuple[JobRecord, JobRecord]]
# A claim this queue does not complete is forgotten past this many (the oldest first):
# its job then takes the locking path, as it would anyway.
_MOST = 10_000


class Planned:
    """A batch of changes split for the backend: ``pairs`` to swap (``at``: their places in
    the batch), the rest for ``transition_many``; :meth:`finish` puts the outcomes
    together in the batch's order."""

    def __init__(self, changes: Sequence[tuple[str, Change]], held: HeldClaims) -> None:
        self._changes = changes
        self.pairs: Pairs = []
        self.at: list[int] = []
        self.rest: list[int] = []
        for i, (job_id, change) in enumerate(changes):
            claimed = held.take(job_id)
            if claimed is not None:
                try:
                    self.pairs.append((claimed, change(claimed)))
                    self.at.append(i)
                    continue
                except JobLedgerError:
                    pass  # the policy refuses it as claimed: the stored record decides
            self.rest.append(i)

    def finish(
        self,
        backend: JobBackend,
        swapped: Sequence[JobRecord | None],
        *,
        fsync: bool = True,
        claimed: Sequence[JobRecord] = (),
    ) -> list[Outcome]:
        """The outcome of every change: the swaps' (``swapped``, in the order of
        :attr:`pairs`), and, for the rest and for every swap that did not write,
        ``transition_many``'s, in the batch's order (a job given twice sees its first
        change).

        ``claimed``: the jobs claimed together with the swaps. Such a job was Queued when
        the changes were made (a claim takes nothing else), so its change is applied to
        it as it was then, never to the claim made after: a worker's late result must not
        complete the job it has just been handed again."""
        out: list[Outcome | None] = [None] * len(self._changes)
        rest = list(self.rest)
        for i, written in zip(self.at, swapped, strict=True):
            if written is None:
                rest.append(i)
            else:
                out[i] = written
        taken = {r.job_id: r for r in claimed}
        for i in list(rest):
            job_id, change = self._changes[i]
            if job_id in taken:
                before = taken[job_id].evolve(status=JobStatus.QUEUED, worker=None)
                refusal = _refusal(change, before)
                if refusal is not None:  # else (a change Queued allows) the stored one decides
                    rest.remove(i)
                    out[i] = refusal
        if rest:
            rest.sort()
            outcomes = backend.transition_many([self._changes[i] for i in rest], fsync=fsync)
            for i, outcome in zip(rest, outcomes, strict=True):
                out[i] = outcome
        return [o for o in out if o is not None]


def _refusal(change: Change, record: JobRecord) -> JobLedgerError | None:
    """What ``change`` of ``record`` raises (the policy refusing it), or None."""
    try:
        change(record)
    except JobLedgerError as exc:
        return exc
    return None


class HeldClaims:
    """Job id -> the record as this queue claimed it, until it changes the job (or forgets
    the oldest, past ``most``). Thread-safe."""

    def __init__(self, most: int = _MOST) -> None:
        self._claims: dict[str, JobRecord] = {}
        self._most = most
        self._lock = threading.Lock()

    def hold(self, records: Sequence[JobRecord]) -> None:
        """Note the records a claim just returned."""
        with self._lock:
            for record in records:
                self._claims.pop(record.job_id, None)  # to the end: the newest
                self._claims[record.job_id] = record
            while len(self._claims) > self._most:
                del self._claims[next(iter(self._claims))]

    def refresh(self, records: Sequence[JobRecord]) -> None:
        """Hold the records a running attempt wrote (its progress, its checkpoint) in place
        of the held claims of their jobs, if held: a swap writes the fields in which its
        new record differs from the held one, so a completion must see the checkpoint the
        attempt stored to drop it."""
        with self._lock:
            for record in records:
                if record.job_id in self._claims:
                    self._claims[record.job_id] = record

    def take(self, job_id: str) -> JobRecord | None:
        """The claimed record of ``job_id``, no longer held; None if not held."""
        with self._lock:
            return self._claims.pop(job_id, None)

    def clear(self) -> None:
        """Forget every claim (the worker id they were made under is gone)."""
        with self._lock:
            self._claims.clear()

    def plan(self, changes: Sequence[tuple[str, Change]]) -> Planned:
        """Split ``changes`` into swaps and the rest (see :class:`Planned`)."""
        return Planned(changes, self)

    def apply(
        self, backend: JobBackend, changes: Sequence[tuple[str, Change]], *, fsync: bool = True
    ) -> list[Outcome]:
        """Apply ``changes`` (each a job id and its policy change), as ``transition_many``
        would, swapping those of held claims: one swap, then one ``transition_many`` for
        the rest, if any."""
        planned = self.plan(changes)
        swapped = backend.swap(planned.pairs) if planned.pairs else []
        return planned.finish(backend, swapped, fsync=fsync)
