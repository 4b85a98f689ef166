"""What ``enqueue`` stores: a new job's record, built from what it was given and checked.

Every check happens here, before anything is stored: a payload JSON cannot represent, a
payload key the job file reserves, a bad job id, ``max_attempts``, ``priority`` or
``timeout``, a naive ``run_after``. A batch whose ids are all generated is built on first
use (:class:`LazyRecords`): a backend that streams it (PostgreSQL's COPY) builds each job
while the storage takes in the ones before, and a job that fails its checks ends the
batch's transaction, which then stores nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import overload

from ._clock import iso_utc
from ._errors import ConfigError, JobConflict
from ._inputs import check_name
from ._job_record import RESERVED_KEYS, JobRecord, new_job_id
from ._job_types import encode_job
from ._limits import DEFAULT_QUEUE, check_queue_name
from ._log import log

__all__ = [
    "LazyRecords",
    "announce",
    "check_unique_key",
    "key_taken_conflict",
    "new_record",
    "new_records",
    "run_after_text",
]

#: The longest unique key (characters): a key is stored with its job and indexed.
MAX_UNIQUE_KEY = 1000

# Keys a payload may not use (its own "job_id" is taken as the job's id).
_RESERVED_IN_PAYLOAD = RESERVED_KEYS - {"job_id"}


def run_after_text(
    value: dt.datetime | dt.timedelta | float | None, now: dt.datetime
) -> str | None:
    """``run_after`` (an aware datetime, a timedelta or seconds from ``now``) as stored."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ConfigError(f"run_after must be timezone-aware, got {value!r}")
        return iso_utc(value)
    if isinstance(value, dt.timedelta):
        return iso_utc(now + value)
    return iso_utc(now + dt.timedelta(seconds=float(value)))


def new_record(
    job: object,
    job_id: str | None,
    priority: int,
    run_after: str | None,
    max_attempts: int,
    now: str,
    fresh: set[str],
    timeout: float | None = None,
    unique_key: str | None = None,
    queue: str = DEFAULT_QUEUE,
    rate_key: str | None = None,
) -> JobRecord:
    """The Queued record of ``job`` (a dict with a ``"type"`` or a registered type's
    instance). Its id is ``job_id``, else the payload's own ``job_id``, else a new one,
    which is added to ``fresh`` (no stored job can have it: the backend need not look).
    ``timeout`` is seconds, already checked (``to_timeout``); ``unique_key`` is checked
    here (:func:`check_unique_key`), as are ``queue`` and ``rate_key``."""
    type_name, payload = encode_job(job)
    if not _RESERVED_IN_PAYLOAD.isdisjoint(payload):
        clash = _RESERVED_IN_PAYLOAD.intersection(payload)
        raise TypeError(
            f"payload field(s) {sorted(clash)} of the {type_name} job are "
            "reserved by the job file format; rename them"
        )
    embedded = payload.pop("job_id", None)
    job_id = job_id if job_id is not None else embedded
    if job_id is None:
        job_id = new_job_id()
        fresh.add(job_id)
    check_name(job_id, "job id")
    _check_options(priority, max_attempts)
    if unique_key is not None:
        check_unique_key(unique_key)
    if queue != DEFAULT_QUEUE:
        check_queue_name(queue)
    if rate_key is not None:
        check_unique_key(rate_key, "rate_key")
    return JobRecord.queued(
        job_id,
        type_name,
        payload,
        priority=priority,
        max_attempts=max_attempts,
        created=now,
        run_after=run_after,
        timeout=timeout,
        unique_key=unique_key,
        queue=queue,
        rate_key=rate_key,
    )


def check_unique_key(key: object, what: str = "unique_key") -> str:
    """``key`` if it can be a job's unique key: a non-empty string of storable text without
    NUL characters, at most :data:`MAX_UNIQUE_KEY` characters (InvalidNameError, a
    ConfigError for the length, otherwise)."""
    check_name(key, what)
    assert isinstance(key, str)
    if len(key) > MAX_UNIQUE_KEY:
        raise ConfigError(
            f"{what} is {len(key)} characters long, more than {MAX_UNIQUE_KEY}: "
            f"{key[:40]!r}...; use a shorter key (a hash of a long one, say)"
        )
    return key


def key_taken_conflict(job_ids: list[str], holder: JobRecord | None, where: str) -> JobConflict:
    """The refusal of making finished jobs live again (a retry) while another live job
    holds their unique key."""
    which = ", ".join(job_ids)
    if holder is None:
        held = "another job holding its unique key became live meanwhile"
    else:
        held = (
            f"job {holder.job_id} holds its unique key {holder.unique_key!r} and is "
            f"{holder.status.value}"
        )
    return JobConflict(
        f"job {which} in {where} cannot be queued again: {held}; wait for that job to "
        "finish (or cancel it), then retry"
    )


def _check_options(priority: int, max_attempts: int) -> None:
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise ConfigError(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
    if not isinstance(priority, int):
        raise ConfigError(f"priority must be an integer, got {priority!r}")


class LazyRecords(Sequence[JobRecord]):
    """The records of a batch, each built by ``build(i)`` on first use, in order, once
    (raising as :func:`new_record` does). A backend that writes job by job must take
    ``list(records)`` before it writes anything."""

    def __init__(self, count: int, build: Callable[[int], JobRecord]) -> None:
        self._count = count
        self._build = build
        self._built: list[JobRecord] = []

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[JobRecord]:
        built = self._built
        for i in range(self._count):
            if i == len(built):
                built.append(self._build(i))
            yield built[i]

    @overload
    def __getitem__(self, index: int) -> JobRecord: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[JobRecord]: ...

    def __getitem__(self, index: int | slice) -> JobRecord | Sequence[JobRecord]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        at = index + self._count if index < 0 else index
        if not 0 <= at < self._count:
            raise IndexError(f"record {index} of a batch of {self._count}")
        while len(self._built) <= at:
            self._built.append(self._build(len(self._built)))
        return self._built[at]


def new_records(
    jobs: Iterable[object],
    job_ids: Iterable[str | None] | None,
    priority: int,
    run_after: dt.datetime | dt.timedelta | float | None,
    max_attempts: int,
    now: dt.datetime,
    timeout: float | None = None,
    unique_keys: Iterable[str | None] | None = None,
    queue: str = DEFAULT_QUEUE,
    rate_keys: Iterable[str | None] | None = None,
) -> tuple[Sequence[JobRecord], frozenset[str]]:
    """The Queued records of a batch (``enqueue_many``), each as :func:`new_record` builds
    it, and the ids generated for them (``fresh``). ``job_ids`` and ``unique_keys``, when
    given, have one id or key (or None) per job; ``timeout`` (seconds, checked) applies to
    every job.

    When every id is to be generated (none given, each job a dict without a ``job_id``)
    and no key is given, the ids are drawn now and the records come as
    :class:`LazyRecords`, built on first use; otherwise they are built (and checked) now.
    The options are checked now either way."""
    stamp = iso_utc(now)
    after = run_after_text(run_after, now)
    jobs = list(jobs)
    ids = list(job_ids) if job_ids is not None else [None] * len(jobs)
    if len(ids) != len(jobs):
        raise ConfigError(f"job_ids has {len(ids)} entries for {len(jobs)} jobs")
    keys = list(unique_keys) if unique_keys is not None else [None] * len(jobs)
    if len(keys) != len(jobs):
        raise ConfigError(f"unique_keys has {len(keys)} entries for {len(jobs)} jobs")
    rates = list(rate_keys) if rate_keys is not None else [None] * len(jobs)
    if len(rates) != len(jobs):
        raise ConfigError(f"rate_keys has {len(rates)} entries for {len(jobs)} jobs")
    _check_options(priority, max_attempts)
    if queue != DEFAULT_QUEUE:
        check_queue_name(queue)
    fresh: set[str] = set()
    if (
        any(i is not None for i in ids)
        or any(k is not None for k in keys)
        or any(r is not None for r in rates)
        or not all(type(job) is dict and "job_id" not in job for job in jobs)
    ):
        records = [
            new_record(j, i, priority, after, max_attempts, stamp, fresh, timeout, k, queue, r)
            for j, i, k, r in zip(jobs, ids, keys, rates, strict=True)
        ]
        return records, frozenset(fresh)
    drawn = [new_job_id() for _ in jobs]
    fresh.update(drawn)

    def build(i: int) -> JobRecord:
        return new_record(
            jobs[i], drawn[i], priority, after, max_attempts, stamp, fresh, timeout, None, queue
        )

    return LazyRecords(len(jobs), build), frozenset(fresh)


def announce(stored: list[tuple[JobRecord, bool]]) -> None:
    """Log each enqueue of ``stored`` (record, whether it is new)."""
    if not log.isEnabledFor(logging.INFO):
        return  # asked once for the batch, not once per job
    for record, is_new in stored:
        if is_new:
            log.info("Enqueued job %s (%s)", record.job_id, record.type)
        elif record.unique_key is not None:
            log.info(
                "Job %s (%s) holds the unique key %r; not enqueued again",
                record.job_id,
                record.status.value,
                record.unique_key,
            )
        else:
            log.info(
                "Job %s already exists (%s); not enqueued again",
                record.job_id,
                record.status.value,
            )
