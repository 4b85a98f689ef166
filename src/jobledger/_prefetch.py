"""How many jobs a Worker thread claims at once: sized from how long recent jobs took.

A claim and a completion each cost a durable write (files) or a commit (PostgreSQL), so
for jobs of a millisecond the bookkeeping, not the work, sets the pace; claiming many at
once and recording their completions together (group commit) removes most of it. But a
claimed job waits Running behind the ones before it in its batch, where an idle peer
cannot take it: so batches are only for short jobs, and only as large as keeps a batch's
expected run time small. Long jobs are claimed one at a time.
"""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["PREFETCH_CAP", "RECORD_WITHIN", "Prefetch"]

#: The most jobs an adaptive claim takes, hence the most finished jobs whose completion
#: may wait unrecorded in one thread (the "count" bound of the unrecorded window).
PREFETCH_CAP = 50
#: Seconds a batch's jobs are expected to run in all, at most (mean duration x size).
BATCH_BUDGET = 0.05
#: A recent mean duration above this (seconds) means one job per claim.
SHORT_JOB = 0.005
#: Seconds after which the oldest finished-but-unrecorded job has its completion (and
#: every other pending one) recorded, without waiting for the end of its batch.
RECORD_WITHIN = 0.05
#: How many recent durations the mean is taken over.
WINDOW = 20


class Prefetch:
    """The claim size of a Worker: ``fixed`` when given (``batch_size=N``), else adaptive.

    Adaptive: one job while nothing is measured; then, while the mean of the recent
    durations stays at or under ``short`` seconds, a size that doubles per claim up to
    ``cap`` and up to ``budget / mean``; back to one as soon as the mean is longer.
    Thread-safe: a Worker's threads share one (they serve the same job types).
    """

    def __init__(
        self,
        fixed: int | None = None,
        *,
        cap: int = PREFETCH_CAP,
        budget: float = BATCH_BUDGET,
        short: float = SHORT_JOB,
        window: int = WINDOW,
    ) -> None:
        self.fixed = fixed
        self.cap = cap
        self.budget = budget
        self.short = short
        self._recent: deque[float] = deque(maxlen=window)
        self._size = 1
        self._lock = threading.Lock()

    @property
    def most(self) -> int:
        """The largest claim this can ask for."""
        return self.fixed if self.fixed is not None else self.cap

    def observe(self, seconds: float) -> None:
        """Note how long one job took (its handler, succeeded or failed)."""
        with self._lock:
            self._recent.append(max(0.0, seconds))

    def long_jobs(self) -> bool:
        """Whether, adaptive, the recent mean says jobs are long (claims of one)."""
        if self.fixed is not None:
            return False
        with self._lock:
            return bool(self._recent) and sum(self._recent) / len(self._recent) > self.short

    def size(self) -> int:
        """How many jobs the next claim asks for."""
        if self.fixed is not None:
            return self.fixed
        with self._lock:
            if not self._recent:
                return 1  # nothing measured: a job may be long, take one
            mean = sum(self._recent) / len(self._recent)
            if mean > self.short:
                self._size = 1
                return 1
            fits = self.cap if mean <= 0 else int(self.budget / mean)
            # Doubling, not a jump to the target: a few more measurements before a
            # large batch holds many jobs Running.
            self._size = max(1, min(self.cap, fits, self._size * 2))
            return self._size
