"""How a :class:`~jobledger.Worker` takes SIGINT and SIGTERM (a base class of it): the
first stops it gracefully (running jobs get ``grace_period``), a second forces the stop
(``forced_by``); both say so at once on stderr."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from ._words import plural
from ._worker_report import worker_log

__all__ = ["WorkerSignals", "stop_signals_to"]


@contextlib.contextmanager
def stop_signals_to(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """Inside the block SIGINT and SIGTERM call ``handler``; the previous handlers come
    back after it. Main thread only (Python's rule for signal handlers)."""
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class WorkerSignals:
    """The signal handling of :class:`~jobledger.Worker` (its base class)."""

    handle_signals: bool
    grace_period: float
    forced_by: signal.Signals | None
    _running: dict[str, threading.Thread]
    _halt: threading.Event

    def stop(self) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return
        seen = {"count": 0, "stopping": 0}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # No lock taken here: the main thread may hold it when the signal comes.
            seen["count"] += 1
            name = signal.Signals(signum).name
            running = len(self._running)
            if seen["count"] == 1:
                again = (
                    "press Ctrl-C again"
                    if signum == signal.SIGINT
                    else "send SIGTERM again (or press Ctrl-C)"
                )
                if running:
                    worker_log.warning(
                        "Received %s: stopping; waiting up to %gs for %s to finish; %s to "
                        "requeue %s now",
                        name,
                        self.grace_period,
                        plural(running, "running job"),
                        again,
                        "it" if running == 1 else "them",
                    )
                else:
                    worker_log.warning("Received %s: stopping (no job is running)", name)
            elif self.forced_by is None:
                self.forced_by = signal.Signals(signum)
                worker_log.warning(
                    "Received %s again: requeueing %s and stopping now",
                    name,
                    plural(running, "running job"),
                )
                self._halt.set()
            # A second signal that lands inside the first one's stop() (both run in the
            # main thread) would wait forever for a lock that handler holds: it leaves
            # the stop to the handler it interrupted, which finishes it on return.
            if seen["stopping"]:
                return
            seen["stopping"] = 1
            try:
                self.stop()
            finally:
                seen["stopping"] = 0

        with stop_signals_to(on_signal):
            yield
