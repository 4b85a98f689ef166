"""Time, injectable: tests pass a fake clock instead of sleeping."""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._errors import ConfigError

__all__ = ["Clock", "SystemClock", "iso_utc", "resolve_timezone", "today_in"]


class Clock(Protocol):
    """Where jobledger reads time from."""

    def now(self) -> dt.datetime:
        """The current time, timezone-aware."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for durations."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> dt.datetime:
        """The current time in UTC."""
        return dt.datetime.now(dt.timezone.utc)

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()


def iso_utc(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as a task-set file's ``lastUpdate``."""
    u = moment.astimezone(dt.timezone.utc)
    # Formatted by hand: strftime costs more than the rest of a checkpoint's bookkeeping.
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:"
        f"{u.second:02d}.{u.microsecond // 1000:03d}Z"
    )


def resolve_timezone(name: str | None) -> dt.tzinfo | None:
    """An IANA zone by name; ``None`` means the machine's local time."""
    if name is None or name == "":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown time zone {name!r} (key 'timezone'); use an IANA name such as "
            "'Europe/Paris' or 'UTC', or leave it empty for local time"
        ) from exc


def today_in(clock: Clock, tz: dt.tzinfo | None) -> dt.date:
    """Today's date in ``tz`` (local time when ``None``)."""
    now = clock.now()
    return (now.astimezone(tz) if tz is not None else now.astimezone()).date()
