"""What a Worker tells about its jobs: a line per finished job, or, under load, a summary.

The lines are INFO records on the ``jobledger.worker`` logger (a library configures no
logging: an application shows them by giving that logger a handler; ``jobledger worker``
does so on stderr). One line per finished job::

    done 1234abcd-... TextJob in 0.52s
    failed 1234abcd-... TextJob in 0.10s (attempt 1 of 3, retry at 2026-12-06T21:00:10Z): ...
    snoozed 1234abcd-... TextJob in 0.02s (snoozed for 30 s, due again at ...; attempt not counted)

When jobs finish faster than a person can read (more than ``burst`` lines within one
second), the per-job lines stop and a summary comes every ``summary_every`` seconds
instead (``120 completed, 3 failed in the last 5.0s (24.6 jobs/s)``; ``, 2 snoozed``
after the failures when some were), until a summary
period's rate is back under ``burst`` a second, or the worker goes idle or stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["JobReporter", "worker_log"]

#: The logger of a Worker's own lines (start, per job, summaries, signals, warnings).
worker_log = logging.getLogger("jobledger.worker")


class JobReporter:
    """Turns finished jobs into log lines, or summaries under load (thread-safe).

    ``burst``: finished-job lines within one second beyond which summaries take over;
    ``summary_every``: seconds between summaries; ``monotonic``: the clock (injectable,
    so that a test decides when a second or a period has passed).
    """

    def __init__(
        self,
        *,
        burst: int = 20,
        summary_every: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        logger: logging.Logger = worker_log,
    ) -> None:
        self.burst = burst
        self.summary_every = summary_every
        self.monotonic = monotonic
        self.log = logger
        self._lock = threading.Lock()
        self._window_start: float | None = None  # the current one-second window
        self._window_lines = 0
        self._summarising = False
        self._period_start = 0.0
        self._completed = 0
        self._failed = 0
        self._snoozed = 0

    @property
    def summarising(self) -> bool:
        """Whether summaries have taken over from per-job lines."""
        return self._summarising

    def finished(
        self, job_id: str, job_type: str, outcome: str, seconds: float, detail: str = ""
    ) -> None:
        """Report one finished attempt: ``outcome`` is ``done``, ``failed``,
        ``cancelled``, ``snoozed`` or ``refused`` (its completion was refused: cancelled
        or taken over meanwhile)."""
        now = self.monotonic()
        with self._lock:
            if not self._summarising:
                if self._window_start is None or now - self._window_start >= 1.0:
                    self._window_start, self._window_lines = now, 0
                self._window_lines += 1
                if self._window_lines <= self.burst:
                    self.log.info(
                        "%s %s %s in %.2fs%s",
                        outcome,
                        job_id,
                        job_type,
                        seconds,
                        f" {detail}" if detail else "",
                    )
                    return
                self._summarising = True
                self._period_start, self._completed, self._failed = now, 0, 0
                self._snoozed = 0
                self.log.info(
                    "more than %d jobs finished within a second: a summary every %gs "
                    "instead of a line per job",
                    self.burst,
                    self.summary_every,
                )
            if outcome == "done":
                self._completed += 1
            elif outcome == "snoozed":
                self._snoozed += 1
            else:
                self._failed += 1
            if now - self._period_start >= self.summary_every:
                self._summary(now)

    def flush(self) -> None:
        """End summarising (the worker went idle or stops): the last summary, if any."""
        with self._lock:
            if self._summarising:
                self._summary(self.monotonic())
                self._summarising = False
                self._window_start = None

    def _summary(self, now: float) -> None:
        elapsed = max(now - self._period_start, 1e-9)
        rate = (self._completed + self._failed + self._snoozed) / elapsed
        if self._completed or self._failed or self._snoozed:
            self.log.info(
                "%d completed, %d failed%s in the last %.1fs (%.1f jobs/s)",
                self._completed,
                self._failed,
                f", {self._snoozed} snoozed" if self._snoozed else "",
                elapsed,
                rate,
            )
        if rate <= self.burst:  # back to a pace a person can read
            self._summarising = False
            self._window_start = None
        self._period_start, self._completed, self._failed = now, 0, 0
        self._snoozed = 0
