"""How a daily run is paced: its ``rate_limit``, checked here and applied in one place.

A daily run's ``rate_limit=(n, per_seconds)`` bounds how fast its account jobs start: at
most ``n`` of them per ``per_seconds``, whichever workers run them, so that many accounts
run in parallel without every one hitting the service they use at the same moment. The
limit itself is the queue's (``JobQueue.set_rate_limit``): :func:`apply_rate_limit` is the
one place a daily run asks for it, and the account jobs keep the account in their payload
field ``"account"`` (:data:`ACCOUNT_FIELD`) for a limit keyed by it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ._errors import ConfigError

if TYPE_CHECKING:
    from ._queue import JobQueue

__all__ = ["ACCOUNT_FIELD", "apply_rate_limit", "check_rate_limit"]

#: The payload field of an account job that names its account.
ACCOUNT_FIELD = "account"


def check_rate_limit(rate_limit: object) -> tuple[int, float] | None:
    """``rate_limit`` as ``(n, per_seconds)``, or None; ConfigError for anything else
    (``n`` a whole number of at least 1, ``per_seconds`` finite and more than 0)."""
    if rate_limit is None:
        return None
    if not isinstance(rate_limit, tuple | list) or len(rate_limit) != 2:
        raise ConfigError(
            f"rate_limit must be (n, per_seconds), e.g. (10, 60.0) for at most 10 accounts "
            f"started a minute, got {rate_limit!r}"
        )
    n, per = rate_limit
    if type(n) is not int or n < 1:
        raise ConfigError(f"rate_limit's n must be a whole number of at least 1, got {n!r}")
    if type(per) not in (int, float) or not math.isfinite(per) or per <= 0:
        raise ConfigError(f"rate_limit's per_seconds must be more than 0 seconds, got {per!r}")
    return n, float(per)


def apply_rate_limit(queue: JobQueue, job_type: str, rate_limit: tuple[int, float] | None) -> None:
    """Have ``queue`` start at most ``n`` jobs of ``job_type`` (a daily run's account
    jobs) per ``per_seconds``, across accounts and workers (``JobQueue.set_rate_limit``,
    stored with the queue so that every worker obeys it); nothing for None.

    Across accounts, not per account: a daily run has one job per account and day, so a
    limit per account would pace only its retries, while the service the accounts use is
    one. A limit per account would pass ``key_field=ACCOUNT_FIELD``."""
    if rate_limit is None:
        return
    n, per = rate_limit
    queue.set_rate_limit(job_type, n, per)
