"""jobledger for asyncio: :class:`AsyncJobQueue`, the job queue's methods as coroutines.

For a web service (FastAPI, Starlette, aiohttp...) that enqueues jobs and waits for their
results in its request handlers, without blocking its event loop::

    from jobledger.aio import AsyncJobQueue

    queue = AsyncJobQueue("postgresql://app@db/app")      # or a folder

    async def create_report(body: dict) -> dict:
        return {"job_id": await queue.enqueue({"type": "Report", **body})}

    async def report(job_id: str) -> dict:
        return {"result": await queue.wait(job_id, timeout=30)}

The jobs are run by a :class:`jobledger.Worker` (whose handlers may be ``async def``), in
this process or any other.

Where each call runs:

- on PostgreSQL, :data:`NATIVE_ON_POSTGRES` (``enqueue``, ``enqueue_many``, ``get`` and
  ``wait``) are native: psycopg's ``AsyncConnection`` (a small pool of its own), the same
  statements, row codec and enqueue policy as :class:`jobledger.JobQueue`, and ``wait``
  woken by an async LISTEN (``backends/postgres/_async.py``);
- everything else, and every call on a folder, runs the :class:`jobledger.JobQueue`
  method in a thread (``executor``, default: the loop's default executor), so the event
  loop never waits on a lock, a file or the network. ``wait`` on a folder is a
  coroutine that reads the job in a thread and sleeps on the loop between reads: a
  thousand waits hold no thread.

The policy is :class:`jobledger.JobQueue`'s, exactly: :attr:`AsyncJobQueue.queue` is the
JobQueue underneath (hand it to a Worker), and what it says about durability, reads and
errors holds here. An AsyncJobQueue belongs to one event loop (its connections and
listener do); ``await queue.close()`` (or ``async with``) releases them.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import datetime as dt
import functools
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import ConfigError
from ._job_fields import JobStatus
from ._job_record import JobRecord
from ._job_view import Job
from ._limits import Limits
from ._queue import JobQueue
from ._waiting import DEFAULT_POLL, wait_async, wait_limits
from .backends._contract import QueuedCounts

if TYPE_CHECKING:
    from .backends.postgres._async import AsyncJobs

__all__ = ["NATIVE_ON_POSTGRES", "AsyncJobQueue"]

T = TypeVar("T")

#: The methods that run natively on asyncio on PostgreSQL (the others use a thread).
NATIVE_ON_POSTGRES = frozenset({"enqueue", "enqueue_many", "get", "wait"})

_PG_JOBS = "jobledger.backends.postgres.jobs"


def _native(queue: JobQueue, max_connections: int) -> AsyncJobs | None:
    """The native asyncio access of a PostgreSQL queue, or None (a folder)."""
    module = sys.modules.get(_PG_JOBS)  # a PostgreSQL backend has imported it
    if module is None or not isinstance(queue.backend, module.PostgresJobBackend):
        return None
    from .backends.postgres._async import AsyncJobs

    return AsyncJobs(queue.backend, max_connections=max_connections)


class AsyncJobQueue:
    """:class:`jobledger.JobQueue` for asyncio: the same methods, as coroutines.

    ``AsyncJobQueue(dir, durability="fsync", **options)`` opens a JobQueue with the same
    arguments (``retry_delay``, ``worker_lease``, ``backend``...); ``queue=`` wraps one
    you have instead (:meth:`close` then leaves it open). ``executor`` runs the methods
    that are not native (default: the event loop's default executor);
    ``max_connections`` (PostgreSQL) bounds the pool of the native calls (default 4).
    See the module docstring for which calls are native.
    """

    def __init__(
        self,
        dir: str | os.PathLike[str] | None = None,
        durability: str = "fsync",
        *,
        queue: JobQueue | None = None,
        executor: Executor | None = None,
        max_connections: int = 4,
        **options: Any,
    ) -> None:
        if queue is not None:
            if dir is not None or options or durability != "fsync":
                raise ConfigError(
                    "AsyncJobQueue got queue= and also the arguments of a queue to open "
                    "(dir, durability or options): give one or the other"
                )
            self.queue = queue
        else:
            self.queue = JobQueue(dir, durability, **options)
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ConfigError(f"max_connections must be an integer >= 1, got {max_connections!r}")
        self._owns_queue = queue is None
        self._executor = executor
        self._native = _native(self.queue, max_connections)
        self._schema_checked = False  # a native read found the schema there
        #: A folder's absolute path, or the URL without its password, for messages.
        self.dir = self.queue.dir

    def __repr__(self) -> str:
        return f"AsyncJobQueue({self.dir!r})"

    async def __aenter__(self) -> AsyncJobQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def native(self) -> frozenset[str]:
        """The methods this queue runs natively on asyncio (none on a folder)."""
        return NATIVE_ON_POSTGRES if self._native is not None else frozenset()

    async def _thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in the executor, with this task's context."""
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _writing(self) -> None:
        """Before a native write: the queue's first use as a writer (migration, recovery
        of dead workers' jobs), once, in a thread."""
        if self.queue._recovered_at is None:
            await self._thread(self.queue._opened)

    async def _read(self, job_id: str) -> JobRecord | None:
        """The stored job, read natively (PostgreSQL). Until the queue has written, the
        schema is checked first, as a read-only reader checks it: never created."""
        assert self._native is not None
        if self.queue._recovered_at is None and not self._schema_checked:
            from .backends.postgres._async import ensure_schema

            await self._thread(ensure_schema, self.queue.reader)
            self._schema_checked = True
        return await self._native.get(job_id)

    # -- enqueue --------------------------------------------------------------------------

    async def enqueue(
        self,
        job: object,
        job_id: str | None = None,
        priority: int = 0,
        run_after: dt.datetime | dt.timedelta | float | None = None,
        max_attempts: int = 3,
        timeout: dt.timedelta | float | None = None,
        *,
        unique_key: str | None = None,
        unique_for: dt.timedelta | float | None = None,
        queue: str = "default",
        rate_key: str | None = None,
    ) -> str:
        """:meth:`JobQueue.enqueue`: store a job, durable before it returns; its id. A job
        with a ``unique_key`` is stored by the blocking backend, in a thread (its key is
        settled there, see :meth:`JobQueue.enqueue`)."""
        if self._native is None or unique_key is not None or unique_for is not None:
            return await self._thread(
                self.queue.enqueue,
                job,
                job_id,
                priority,
                run_after,
                max_attempts,
                timeout,
                unique_key=unique_key,
                unique_for=unique_for,
                queue=queue,
                rate_key=rate_key,
            )
        record, fresh = self.queue._new_record(
            job, job_id, priority, run_after, max_attempts, timeout, None, queue, rate_key
        )
        await self._writing()
        stored = await self._native.put([record], fresh)
        self.queue._announce(stored)
        return stored[0][0].job_id

    async def enqueue_many(
        self,
        jobs: Iterable[object],
        *,
        priority: int = 0,
        run_after: dt.datetime | dt.timedelta | float | None = None,
        max_attempts: int = 3,
        job_ids: Iterable[str | None] | None = None,
        timeout: dt.timedelta | float | None = None,
        unique_keys: Iterable[str | None] | None = None,
        unique_for: dt.timedelta | float | None = None,
        queue: str = "default",
        rate_keys: Iterable[str | None] | None = None,
    ) -> builtins.list[str]:
        """:meth:`JobQueue.enqueue_many`: many jobs in one batch; their ids. A batch with
        ``unique_keys`` is stored by the blocking backend, in a thread."""
        if self._native is None or unique_keys is not None or unique_for is not None:
            return await self._thread(
                self.queue.enqueue_many,
                jobs,
                priority=priority,
                run_after=run_after,
                max_attempts=max_attempts,
                job_ids=job_ids,
                timeout=timeout,
                unique_keys=unique_keys,
                unique_for=unique_for,
                queue=queue,
                rate_keys=rate_keys,
            )
        records, fresh = self.queue._new_records(
            jobs, job_ids, priority, run_after, max_attempts, timeout, None, queue, rate_keys
        )
        await self._writing()
        stored = await self._native.put(records, fresh)
        self.queue._announce(stored)
        return [r.job_id for r, _ in stored]

    # -- reading --------------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        """:meth:`JobQueue.get`: the job, or None. Reads only."""
        if self._native is None:
            return await self._thread(self.queue.get, job_id)
        record = await self._read(job_id)
        return self.queue._job(record) if record is not None else None

    async def wait(
        self,
        job_id: str,
        timeout: dt.timedelta | float | None = None,
        *,
        poll_interval: dt.timedelta | float = DEFAULT_POLL,
    ) -> Any:
        """:meth:`JobQueue.wait`: the result of the job once it is Completed;
        :class:`jobledger.JobFailed`, :class:`jobledger.JobCancelled`,
        :class:`jobledger.JobNotFound`, or :class:`jobledger.WaitTimeout` (a
        ``TimeoutError``) after ``timeout``. Reads only; holds no thread while it waits.

        On PostgreSQL it is woken by the finished jobs' notification, heard by one async
        LISTEN per AsyncJobQueue, and reads again every ``poll_interval`` besides; on a
        folder it reads the job's file again after 10 ms, doubling up to
        ``poll_interval`` (1 s). A job finished through :attr:`queue` (a Worker in this
        process) wakes it at once on both."""
        limit, poll = wait_limits(timeout, poll_interval)
        waiters = self.queue._finished.waiters
        read: Callable[[], Awaitable[JobRecord | None]]
        if self._native is not None:
            read = functools.partial(self._read, job_id)
        else:
            read = functools.partial(self._thread, self._read_in_thread, job_id)
        return await wait_async(
            job_id, read, waiters, self._listening, timeout=limit, poll=poll, where=self.dir
        )

    def _listening(self) -> bool:
        """Start the async listener for finished jobs (PostgreSQL) unless it runs;
        whether there is one (a folder has none: its waits poll)."""
        if self._native is None:
            return False
        self._native.listen_finished(self.queue._finished.waiters.wake_one)
        return True

    def _read_in_thread(self, job_id: str) -> JobRecord | None:
        """The stored job, read as :meth:`JobQueue.get` reads it (blocking)."""
        return self.queue._reading().get(job_id)

    async def list(self, status: JobStatus | str | None = None) -> builtins.list[Job]:
        """:meth:`JobQueue.list`: jobs with ``status`` (all when None). Reads only."""
        return await self._thread(self.queue.list, status)

    async def counts(self) -> dict[str, int]:
        """:meth:`JobQueue.counts`: jobs per status. Reads only."""
        return await self._thread(self.queue.counts)

    async def pending_count(self, types: Iterable[str] | None = None) -> int:
        """:meth:`JobQueue.pending_count`: Queued jobs (of these types)."""
        return await self._thread(self.queue.pending_count, types)

    async def queued_by_type(self) -> dict[str, QueuedCounts]:
        """:meth:`JobQueue.queued_by_type`: Queued jobs per type, due and delayed."""
        return await self._thread(self.queue.queued_by_type)

    async def live_workers(self) -> builtins.list[str]:
        """:meth:`JobQueue.live_workers`: ids of the live workers."""
        return await self._thread(self.queue.live_workers)

    async def prunable(self, older_than: dt.timedelta | float) -> builtins.list[Job]:
        """:meth:`JobQueue.prunable`: what :meth:`prune` would delete. Reads only."""
        return await self._thread(self.queue.prunable, older_than)

    # -- claim and finish -----------------------------------------------------------------

    async def claim(
        self,
        worker: str | None = None,
        types: Iterable[str] | None = None,
        *,
        queues: Iterable[str] | None = None,
    ) -> Job | None:
        """:meth:`JobQueue.claim`: take the next due job, or None."""
        return await self._thread(self.queue.claim, worker, types, queues=queues)

    async def claim_many(
        self,
        limit: int,
        worker: str | None = None,
        types: Iterable[str] | None = None,
        *,
        queues: Iterable[str] | None = None,
    ) -> builtins.list[Job]:
        """:meth:`JobQueue.claim_many`: take up to ``limit`` due jobs at once."""
        return await self._thread(self.queue.claim_many, limit, worker, types, queues=queues)

    # -- limits ---------------------------------------------------------------------------

    async def set_limit(self, queue_name: str, limit: int | None) -> None:
        """:meth:`JobQueue.set_limit`: a named queue's most Running jobs (None: none)."""
        await self._thread(self.queue.set_limit, queue_name, limit)

    async def set_rate_limit(
        self, job_type: str, n: int | None, per_seconds: float, *, key_field: str | None = None
    ) -> None:
        """:meth:`JobQueue.set_rate_limit`: a job type's most starts per key per window."""
        await self._thread(self.queue.set_rate_limit, job_type, n, per_seconds, key_field=key_field)

    async def limits(self) -> Limits:
        """:meth:`JobQueue.limits`: the stored limits. Reads only."""
        return await self._thread(self.queue.limits)

    async def counts_by_queue(self) -> dict[str, dict[str, int]]:
        """:meth:`JobQueue.counts_by_queue`: jobs per queue and status. Reads only."""
        return await self._thread(self.queue.counts_by_queue)

    async def complete(self, job_id: str, result: Any = None) -> Job:
        """:meth:`JobQueue.complete`: record success (fenced)."""
        return await self._thread(self.queue.complete, job_id, result)

    async def complete_many(
        self, results: Mapping[str, Any] | Iterable[tuple[str, Any]]
    ) -> builtins.list[Job]:
        """:meth:`JobQueue.complete_many`: record many successes as one batch."""
        return await self._thread(self.queue.complete_many, results)

    async def fail(self, job_id: str, error: BaseException | str) -> Job:
        """:meth:`JobQueue.fail`: record a failed attempt (retried or Failed)."""
        return await self._thread(self.queue.fail, job_id, error)

    async def snooze(self, job: str | Job, seconds: dt.timedelta | float) -> Job:
        """:meth:`JobQueue.snooze`: queue a job this worker runs again later, its
        attempt not counted."""
        return await self._thread(self.queue.snooze, job, seconds)

    async def requeue(self, job_id: str) -> Job:
        """:meth:`JobQueue.requeue`: give back a job this worker runs."""
        return await self._thread(self.queue.requeue, job_id)

    async def cancel(self, job_id: str) -> Job:
        """:meth:`JobQueue.cancel`: cancel a Queued or Running job."""
        return await self._thread(self.queue.cancel, job_id)

    async def retry(self, job_id: str) -> Job:
        """:meth:`JobQueue.retry`: queue a Failed or Cancelled job again."""
        return await self._thread(self.queue.retry, job_id)

    async def recover(self) -> builtins.list[Job]:
        """:meth:`JobQueue.recover`: give dead workers' jobs back to the queue now."""
        return await self._thread(self.queue.recover)

    # -- maintenance ----------------------------------------------------------------------

    async def prune(self, older_than: dt.timedelta | float, *, dry_run: bool = False) -> int:
        """:meth:`JobQueue.prune`: delete finished jobs older than ``older_than``."""
        return await self._thread(self.queue.prune, older_than, dry_run=dry_run)

    async def checkpoint(self) -> None:
        """:meth:`JobQueue.checkpoint`: bring ``queue.json`` up to date now."""
        await self._thread(self.queue.checkpoint)

    async def clear(self) -> int:
        """:meth:`JobQueue.clear`: delete every job (refused while a worker lives)."""
        if self._native is not None:
            await self._native.close()
        return await self._thread(self.queue.clear)

    async def close(self) -> None:
        """Close the native connections and stop the listener; close the JobQueue too
        unless it was given (``queue=``). Everything opens again on next use."""
        if self._native is not None:
            await self._native.close()
        if self._owns_queue:
            await self._thread(self.queue.close)
