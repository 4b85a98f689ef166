"""Named queues' limits and job types' rate limits: what they are, and which claims they
allow (the policy; the backends store the limits and count what this needs).

- A queue's limit (``JobQueue.set_limit``): at most ``n`` of its jobs Running at once,
  across every worker and machine.
- A type's rate limit (``JobQueue.set_rate_limit``): at most ``n`` starts of its jobs per
  rate key within any ``per`` seconds. A job's key is its ``rate_key``, else its
  payload's ``key_field``, else none: the jobs of the type without one share one key.
  A job over the limit is not claimed (its attempt is not counted) and waits, while
  jobs of other keys are served.

:class:`Gate` decides, one candidate job at a time in serving order, whether a claim may
take it, from what the backend counted under its lock (the Running jobs of the limited
queues, the recent starts of the limited types) and what this claim took already. Both
backends call it, so they agree by construction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ._clock import iso_utc
from ._errors import ConfigError
from ._inputs import check_name
from ._job_record import JobRecord

__all__ = [
    "DEFAULT_QUEUE",
    "Gate",
    "Limits",
    "RateLimit",
    "check_limit",
    "check_queue_name",
    "check_rate",
    "rate_key_of",
    "window_start",
]

#: The queue of a job enqueued without ``queue=``.
DEFAULT_QUEUE = "default"
#: The longest queue name.
MAX_QUEUE_NAME = 200


def check_queue_name(name: object) -> str:
    """``name`` if it can name a queue: storable text without NUL, at most 200 characters,
    without ``:`` (the CLI's ``NAME:SLOTS``) or surrounding spaces; ConfigError (an
    InvalidNameError for what no text can store) otherwise."""
    check_name(name, "queue")
    assert isinstance(name, str)
    if len(name) > MAX_QUEUE_NAME or ":" in name or name != name.strip():
        raise ConfigError(
            f"queue name {name[:60]!r} is not usable: a queue's name has at most "
            f"{MAX_QUEUE_NAME} characters, no ':' and no spaces around it"
        )
    return name


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """At most ``n`` starts per rate key within ``per`` seconds; ``key_field``: the
    payload field a job without a ``rate_key`` takes its key from."""

    n: int
    per: float
    key_field: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored form (a folder's limits.json, the CLI's JSON)."""
        return {"n": self.n, "per": self.per, "key_field": self.key_field}

    @classmethod
    def from_json(cls, value: Any) -> RateLimit:
        """The limit of its stored form; ValueError when it is not one."""
        if not isinstance(value, dict):
            raise ValueError(f"a rate limit is an object, not {type(value).__name__}")
        n, per, field = value.get("n"), value.get("per"), value.get("key_field")
        if type(n) is not int or n < 0:
            raise ValueError(f"a rate limit's 'n' is not an integer >= 0: {n!r}")
        if not isinstance(per, (int, float)) or isinstance(per, bool):
            raise ValueError(f"a rate limit's 'per' is not a positive number: {per!r}")
        if not (math.isfinite(per) and per > 0):
            raise ValueError(f"a rate limit's 'per' is not a positive number: {per!r}")
        if field is not None and not (isinstance(field, str) and field):
            raise ValueError(f"a rate limit's 'key_field' is not a name: {field!r}")
        return cls(n, float(per), field)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Every stored limit: queue name -> most Running jobs, job type -> rate limit."""

    queues: Mapping[str, int] = dataclasses.field(default_factory=dict)
    rates: Mapping[str, RateLimit] = dataclasses.field(default_factory=dict)

    def applying(
        self, queues: frozenset[str] | None, types: frozenset[str] | None
    ) -> tuple[dict[str, int], dict[str, RateLimit]]:
        """The limits a claim of ``queues`` and ``types`` (None: all) must obey."""
        return (
            {q: n for q, n in self.queues.items() if queues is None or q in queues},
            {t: r for t, r in self.rates.items() if types is None or t in types},
        )

    def to_json(self) -> dict[str, Any]:
        """The stored form: ``{"queues": {name: n}, "rates": {type: {n, per, key_field}}}``."""
        return {
            "queues": dict(sorted(self.queues.items())),
            "rates": {t: r.to_json() for t, r in sorted(self.rates.items())},
        }

    @classmethod
    def from_json(cls, doc: Any) -> Limits:
        """The limits of their stored form; ValueError when it is not one."""
        if not isinstance(doc, dict):
            raise ValueError("the limits are not a JSON object")
        queues, rates = doc.get("queues", {}), doc.get("rates", {})
        if not isinstance(queues, dict) or not isinstance(rates, dict):
            raise ValueError("'queues' and 'rates' are not objects")
        for name, n in queues.items():
            if type(n) is not int or n < 0:
                raise ValueError(f"the limit of queue {name!r} is not an integer >= 0: {n!r}")
        return cls(dict(queues), {t: RateLimit.from_json(r) for t, r in rates.items()})


def check_limit(limit: object, what: str) -> int:
    """``limit`` if it is an integer of 0 or more (0: nothing starts)."""
    if type(limit) is not int or limit < 0:
        raise ConfigError(f"{what} must be an integer >= 0 (or None to remove it), got {limit!r}")
    return limit


def check_rate(n: object, per: object, key_field: object) -> RateLimit:
    """The RateLimit of ``set_rate_limit``'s arguments, checked."""
    count = check_limit(n, "a rate limit's n")
    if not isinstance(per, (int, float)) or isinstance(per, bool):
        raise ConfigError(f"per_seconds must be a positive number of seconds, got {per!r}")
    if not (math.isfinite(per) and per > 0):
        raise ConfigError(f"per_seconds must be a positive number of seconds, got {per!r}")
    field = None if key_field is None else check_name(key_field, "key_field")
    return RateLimit(count, float(per), field)


def rate_key_of(record: JobRecord, rate: RateLimit) -> str:
    """The key ``rate`` counts ``record``'s starts under: its ``rate_key``, else its
    payload's ``key_field`` (a value other than a string as its JSON text, as
    PostgreSQL's ``payload->>field`` gives it: a number 7 and a string "7" are one key),
    else "" (one key for the type's jobs that have none)."""
    if record.rate_key is not None:
        return record.rate_key
    if rate.key_field is not None:
        value = record.payload.get(rate.key_field)
        if value is not None:
            return value if isinstance(value, str) else json.dumps(value)
    return ""


def window_start(now: str, per: float) -> str:
    """The ISO time ``per`` seconds before ``now``: a start after it is in the window."""
    moment = dt.datetime.fromisoformat(now[:-1] + "+00:00" if now.endswith("Z") else now)
    return iso_utc(moment - dt.timedelta(seconds=per))


class Gate:
    """Which candidate jobs one claim may take (see the module docstring).

    ``queues``: the limits of the queues the claim serves; ``running``: their Running jobs
    now (under the backend's lock). ``rates``: the rate limits of the types it serves;
    ``starts``: the times (ISO) of their recent starts, by (type, key)."""

    def __init__(
        self,
        queues: Mapping[str, int],
        running: Mapping[str, int],
        rates: Mapping[str, RateLimit],
        starts: Mapping[tuple[str, str], Iterable[str]],
        now: str,
    ) -> None:
        self.room = {q: n - running.get(q, 0) for q, n in queues.items()}
        self.rates = rates
        self.now = now
        self._cutoff = {t: window_start(now, r.per) for t, r in rates.items()}
        self.used: dict[tuple[str, str], int] = {}
        for (t, key), times in starts.items():
            rate = rates.get(t)
            if rate is not None:
                cutoff = self._cutoff[t]
                self.used[(t, key)] = sum(1 for s in times if s > cutoff)

    def cutoff(self, job_type: str) -> str:
        """The start of the window of ``job_type``'s rate limit at this claim."""
        return self._cutoff[job_type]

    def queue_full(self, queue: str) -> bool:
        """Whether the claim can take no more jobs of ``queue``."""
        room = self.room.get(queue)
        return room is not None and room <= 0

    def full_queues(self) -> list[str]:
        """The limited queues with no room left."""
        return sorted(q for q, room in self.room.items() if room <= 0)

    def full_keys(self) -> dict[str, list[str]]:
        """Per rate-limited type, the keys whose window is full."""
        out: dict[str, list[str]] = {}
        for (t, key), n in self.used.items():
            if n >= self.rates[t].n:
                out.setdefault(t, []).append(key)
        return {t: sorted(keys) for t, keys in out.items()}

    def admit(self, record: JobRecord) -> bool:
        """Whether the claim may take ``record`` (a due Queued job, in serving order);
        if so, its queue's room and its key's starts count it."""
        if self.queue_full(record.queue):
            return False
        rate = self.rates.get(record.type)
        scope: tuple[str, str] | None = None
        if rate is not None:
            scope = (record.type, rate_key_of(record, rate))
            if self.used.get(scope, 0) >= rate.n:
                return False
        if record.queue in self.room:
            self.room[record.queue] -= 1
        if scope is not None:
            self.used[scope] = self.used.get(scope, 0) + 1
        return True
