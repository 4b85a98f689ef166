"""Cron expressions in a time zone: the occurrences of a schedule, by croniter.

croniter (``pip install -e '.[cron]'``) is imported only when a schedule is used: a queue
without schedules, on either backend, works without it, and a schedule without it raises
:class:`ConfigError` naming the extra.

Occurrences are local wall-clock times in the schedule's zone (zoneinfo), turned into
instants by one rule across daylight saving changes:

- a local time that does not exist (spring forward: 02:30 on the night the clocks go
  from 02:00 to 03:00 in Europe/Paris) runs once, at the first instant after the gap
  (03:00 local), as croniter places it; an hourly schedule's 02:00 and 03:00 are then one
  occurrence, at 03:00;
- a local time that happens twice (fall back: 02:30 on the night the clocks go from
  03:00 back to 02:00 in Europe/Paris) runs once, at its first instant (02:30 summer
  time): each wall-clock time of a schedule fires at most once. An hourly schedule skips
  the repeated hour's second 02:00.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._errors import ConfigError

__all__ = ["CRON_EXTRA", "check_cron", "check_timezone", "last_before", "next_after"]

#: How to install what schedules need, for messages.
CRON_EXTRA = "pip install -e '.[cron]'"

_UTC = dt.timezone.utc
# An instant after which croniter's backward walk starts, so that an occurrence exactly at
# ``now`` counts as due (croniter's get_prev returns times strictly before its start).
_JUST_AFTER = dt.timedelta(microseconds=1)


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError:
        raise ConfigError(
            "schedules need croniter, which is not installed; install the cron extra: "
            f"{CRON_EXTRA} (from a clone of jobledger)"
        ) from None
    return croniter


def check_timezone(name: object) -> ZoneInfo:
    """The IANA zone ``name`` (ConfigError naming it otherwise)."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a schedule's timezone must be an IANA name such as 'UTC', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from exc


def check_cron(expression: object) -> str:
    """``expression`` if croniter reads it as a cron expression (ConfigError otherwise)."""
    croniter = _croniter()
    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise ConfigError(
            f"{expression!r} is not a cron expression: give five fields, minute hour "
            "day-of-month month day-of-week, e.g. '0 7 * * *' (07:00 every day) or "
            "'*/15 * * * *' (every 15 minutes)"
        )
    return expression


def _first_instant(moment: dt.datetime, tz: ZoneInfo) -> bool:
    """Whether ``moment`` is the first instant of its local wall-clock time (not the
    second run of a time the autumn change repeats)."""
    wall = moment.astimezone(tz).replace(tzinfo=None)
    first = wall.replace(tzinfo=tz, fold=0)
    if first.utcoffset() == wall.replace(tzinfo=tz, fold=1).utcoffset():
        return True  # not a repeated time
    return first.astimezone(_UTC) == moment.astimezone(_UTC)


def _walk(
    expression: str, tz: ZoneInfo, start: dt.datetime, forward: bool
) -> Iterator[dt.datetime]:
    """The occurrences after (``forward``) or before ``start``, as aware UTC instants,
    nearest first, each wall-clock time once (see the module docstring)."""
    it = _croniter()(expression, start.astimezone(tz))
    step = it.get_next if forward else it.get_prev
    seen: dt.datetime | None = None
    while True:
        moment = step(dt.datetime).astimezone(_UTC)
        if moment == seen or not _first_instant(moment, tz):
            continue
        seen = moment
        yield moment


def next_after(expression: str, tz: ZoneInfo, moment: dt.datetime) -> dt.datetime:
    """The first occurrence strictly after ``moment`` (aware UTC)."""
    return next(_walk(expression, tz, moment, forward=True))


def last_before(
    expression: str, tz: ZoneInfo, now: dt.datetime, after: dt.datetime, limit: int
) -> list[dt.datetime]:
    """The occurrences in ``(after, now]``, newest first, at most ``limit`` of them (aware
    UTC). Walks back from ``now``: a schedule idle for a year costs ``limit`` steps, not
    a year of them."""
    out: list[dt.datetime] = []
    if limit <= 0:
        return out
    for moment in _walk(expression, tz, now + _JUST_AFTER, forward=False):
        if moment <= after:
            break
        out.append(moment)
        if len(out) >= limit:
            break
    return out
