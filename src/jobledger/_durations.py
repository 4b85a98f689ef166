"""Durations, one way everywhere: the API takes a ``timedelta`` or a number of seconds, the
CLI takes ``30s``, ``15m``, ``1h``, ``7d``, ``2w`` (or a combination such as ``1h30m``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import TypeAlias

from ._errors import ConfigError

__all__ = [
    "DURATION_FORMS",
    "Duration",
    "human_seconds",
    "is_bare_number",
    "parse_duration",
    "to_days",
    "to_seconds",
    "to_timedelta",
    "to_timeout",
    "to_wait",
]

#: What a duration parameter of the API accepts: a timedelta, or seconds.
Duration: TypeAlias = dt.timedelta | float

#: The accepted spellings, for messages and help texts.
DURATION_FORMS = "30s, 15m, 1h, 7d, 2w, a combination such as 1h30m, or a number of seconds"

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_NUMBER = r"\d+(?:\.\d+)?"
_PART = re.compile(rf"({_NUMBER})([smhdw])")
_WHOLE = re.compile(rf"(?:{_NUMBER}[smhdw])+")


def to_seconds(value: dt.timedelta | float, what: str) -> float:
    """``value`` (a timedelta or a number of seconds) as seconds.

    Raises :class:`ConfigError` naming ``what`` (the parameter) when it is negative, not a
    finite number, or of another type (a ``bool`` is refused: ``True`` is not a duration).
    """
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigError(
            f"{what} must be a datetime.timedelta or a number of seconds, got {value!r}"
        )
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ConfigError(f"{what} must be a finite duration of 0 or more, got {value!r}")
    return seconds


def to_timedelta(value: dt.timedelta | float, what: str) -> dt.timedelta:
    """``value`` (a timedelta or a number of seconds) as a timedelta; checked as
    :func:`to_seconds` checks it."""
    if isinstance(value, dt.timedelta):
        to_seconds(value, what)
        return value
    return dt.timedelta(seconds=to_seconds(value, what))


def to_timeout(value: dt.timedelta | float | None, what: str = "timeout") -> float | None:
    """A timeout: None (none), or a timedelta or seconds, more than 0, as seconds (a
    timeout of 0 would time every attempt out before it starts)."""
    if value is None:
        return None
    seconds = to_seconds(value, what)
    if seconds <= 0:
        raise ConfigError(
            f"{what} must be more than 0 seconds (or None: no timeout), got {value!r}"
        )
    return seconds


def to_wait(value: bool | dt.timedelta | float, what: str = "wait") -> bool | float:
    """A lease wait: ``False`` (do not wait), ``True`` (wait forever), or how long (a
    timedelta or seconds, checked as :func:`to_seconds` checks it) as seconds."""
    if isinstance(value, bool):
        return value
    return to_seconds(value, what)


def to_days(value: float, what: str) -> float:
    """``value``, a number of days, checked: finite, 0 or more, not a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be a number of days, got {value!r}")
    if not 0 <= value < math.inf:
        raise ConfigError(f"{what} must be a finite number of days, 0 or more, got {value!r}")
    return float(value)


def parse_duration(text: str) -> dt.timedelta:
    """``30s``, ``15m``, ``1h``, ``7d``, ``2w``, ``1h30m`` or a bare number of seconds
    (``90``, ``0.5``) as a timedelta. Spaces around and between parts are allowed.

    Raises ValueError saying which forms are accepted.
    """
    compact = "".join(text.split()).lower()
    if re.fullmatch(_NUMBER, compact):
        return dt.timedelta(seconds=float(compact))
    if compact.startswith("-"):
        raise ValueError(f"the duration {text!r} is negative; write 0 or more, e.g. 30s, 15m")
    if not compact or not _WHOLE.fullmatch(compact):
        raise ValueError(f"cannot read the duration {text!r}; write it as {DURATION_FORMS}")
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(compact))
    return dt.timedelta(seconds=seconds)


def is_bare_number(text: str) -> bool:
    """Whether ``text`` is a number without a unit (``7``, ``1.5``)."""
    return re.fullmatch(_NUMBER, "".join(text.split())) is not None


def human_seconds(seconds: float) -> str:
    """A duration for people: ``0.25s``, ``12.3s``, ``4m05s``, ``1h02m``."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
