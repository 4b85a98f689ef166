"""Wake-ups: the callbacks a queue calls when jobs may have become claimable, or when a
Running job's cancel was asked.

A change made through a queue wakes that queue's watchers at once; other processes'
changes reach them through the backend's own ``watch`` (PostgreSQL: LISTEN/NOTIFY).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .backends._contract import JobBackend

__all__ = ["Watchers"]


class Watchers:
    """One queue's watchers; safe to use from several threads."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []
        self._on_cancel: list[Callable[[], None]] = []
        self._guard = threading.Lock()

    def watch(
        self,
        backend: JobBackend,
        callback: Callable[[], None],
        on_cancel: Callable[[], None] | None = None,
    ) -> Callable[[], None]:
        """Call ``callback()`` on this queue's changes and on those ``backend`` reports,
        and ``on_cancel()`` on cancels asked of Running jobs likewise; returns the
        function that stops both."""
        with self._guard:
            self._callbacks.append(callback)
            if on_cancel is not None:
                self._on_cancel.append(on_cancel)
        stop_backend = backend.watch(callback, on_cancel=on_cancel)

        def stop() -> None:
            with self._guard:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)
                if on_cancel in self._on_cancel:
                    self._on_cancel.remove(on_cancel)
            stop_backend()

        return stop

    def wake(self) -> None:
        """Call every watcher now (outside the lock: a callback may watch or stop)."""
        with self._guard:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def cancel_asked(self) -> None:
        """Call every ``on_cancel`` now: a Running job's cancel was asked here."""
        with self._guard:
            callbacks = list(self._on_cancel)
        for callback in callbacks:
            callback()
