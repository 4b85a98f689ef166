"""Async handlers: ``async def handler(job)`` in a :class:`Worker`, run on one event loop.

A handler that returns an awaitable (an ``async def`` handler returns its coroutine) has
it awaited on ONE event loop, in a thread of its own (:class:`HandlerLoop`): started by
the Worker's first such job, stopped when ``Worker.run()`` returns. Each of the Worker's
``concurrency`` threads hands its job's coroutine to that loop
(``asyncio.run_coroutine_threadsafe``) and waits for it, so ``concurrency`` counts the
coroutines in flight as it counts plain handlers' threads: with ``concurrency=50``, up to
50 async handlers await side by side on the one loop, each in a task of its own. The
threads only wait; the loop runs every coroutine, so a handler that blocks (a
``time.sleep``, a synchronous HTTP call) blocks its peers too: await instead, or use a
plain ``def`` handler.

What the Worker does with a handler's outcome is the same either way: a return value is
the result, an exception fails the attempt (retried per ``max_attempts``), and
``job.check()``, ``job.progress()`` and ``job.checkpoint()`` work inside the coroutine
(the last blocks the loop for one durable write).

When ``run()`` returns, coroutines still running (their jobs were given back to the queue
when the grace period ran out, or a second signal forced the stop) are cancelled, given up
to :data:`CANCEL_GRACE` seconds to unwind, and the loop is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ._log import log

__all__ = ["CANCEL_GRACE", "HandlerLoop"]

T = TypeVar("T")

#: Seconds the coroutines left running when a Worker stops have to unwind once cancelled.
CANCEL_GRACE = 5.0


async def _awaited(awaitable: Awaitable[T]) -> T:
    """A coroutine of any awaitable (``run_coroutine_threadsafe`` takes only those)."""
    return await awaitable


class HandlerLoop:
    """The event loop a Worker's async handlers run on, in a thread of its own."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def call(self, handler: Callable[[Any], Any], job: Any) -> Any:
        """``handler(job)``; an awaitable it returns is awaited on the loop (this thread
        waits for it), and its outcome, value or exception, is the handler's."""
        result = handler(job)
        if not inspect.isawaitable(result):
            return result
        future = asyncio.run_coroutine_threadsafe(_awaited(result), self._running())
        return future.result()

    def _running(self) -> asyncio.AbstractEventLoop:
        """The loop, started on first use."""
        with self._guard:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._main,
                    args=(loop, ready),
                    name="jobledger-async-handlers",
                    daemon=True,
                )
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    @staticmethod
    def _main(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            # What still runs belongs to jobs already given back: cancel it, and give it
            # a bounded time to unwind (a coroutine may ignore cancellation).
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=CANCEL_GRACE))
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        """Cancel what still runs and close the loop (a later job starts a new one).
        Returns once the loop is closed, or, if a coroutine blocks the loop's thread,
        after :data:`CANCEL_GRACE` seconds and a bit, leaving that daemon thread behind."""
        with self._guard:
            loop, thread = self._loop, self._thread
            self._loop, self._thread = None, None
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # closed already
            loop.call_soon_threadsafe(loop.stop)
        thread.join(CANCEL_GRACE + 1.0)
        if thread.is_alive():
            log.warning(
                "an async handler blocks its event loop's thread; left behind as the "
                "worker stops (await instead of blocking in an async handler)"
            )
