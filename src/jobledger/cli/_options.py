"""Option types shared by the commands: durations (``--delay``, ``--older-than``,
``--grace``), ``--plain`` and the live views' ``--interval``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .._durations import is_bare_number, parse_duration

__all__ = [
    "AGE",
    "DURATION",
    "MIN_INTERVAL",
    "DurationType",
    "check_output_flags",
    "interval_option",
    "plain_option",
]

F = TypeVar("F", bound=Callable[..., Any])


class DurationType(click.ParamType[dt.timedelta]):
    """A duration on the command line: ``30s``, ``15m``, ``1h``, ``7d``, ``2w``, ``1h30m``,
    or a bare number of seconds; converted to a :class:`datetime.timedelta`.

    With ``unit_required``, a bare number is refused: where it used to mean days
    (``--older-than``), reading it as seconds now would silently delete far more.
    """

    name = "duration"

    def __init__(self, *, unit_required: bool = False) -> None:
        self.unit_required = unit_required

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.timedelta:
        """The timedelta of ``value``; a usage error (exit 2) naming the accepted forms."""
        if isinstance(value, dt.timedelta):
            return value
        text = str(value)
        if self.unit_required and is_bare_number(text):
            number = text.strip()
            self.fail(
                f"{number!r} has no unit: a bare number here used to mean days and will mean "
                f"seconds, so write the unit, e.g. {number}d for days or {number}s for seconds "
                "(also 15m, 36h, 2w, 1h30m)",
                param,
                ctx,
            )
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


#: A duration where a bare number means seconds (``--delay``, ``--grace``).
DURATION = DurationType()
#: A duration that must carry its unit (``--older-than``; see :class:`DurationType`).
AGE = DurationType(unit_required=True)


def plain_option(columns: str) -> Callable[[F], F]:
    """``--plain``: tab-separated output for scripts, its columns named in the help."""
    return click.option(
        "--plain",
        is_flag=True,
        help="Print tab-separated lines for scripts: a header line, then one record per "
        f"line, no colour or markup. Columns: {columns}. Empty field: no value; times are "
        "ISO 8601 UTC (2025-01-20T10:30:00Z); a tab, newline or backslash in a value is "
        "written \\t, \\n, \\\\.",
    )


def check_output_flags(as_json: bool, plain: bool) -> None:
    """``--json`` and ``--plain`` are two output formats: one at a time."""
    if as_json and plain:
        raise click.UsageError("pass --json or --plain, not both")


#: The shortest refresh of a live view, in seconds: a shorter one only loads the storage.
MIN_INTERVAL = 0.1


def _interval_seconds(ctx: click.Context, param: click.Parameter, value: dt.timedelta) -> float:
    seconds = value.total_seconds()
    if seconds < MIN_INTERVAL:
        raise click.BadParameter(
            f"{seconds:g}s is too short; refresh every {MIN_INTERVAL:g}s or more", ctx, param
        )
    return seconds


def interval_option(what: str) -> Callable[[F], F]:
    """``--interval``: seconds between two refreshes of a live view (``what`` it
    refreshes), passed on as a float; default 1 s."""
    return click.option(
        "--interval",
        type=DURATION,
        default="1s",
        show_default=True,
        metavar="DURATION",
        callback=_interval_seconds,
        help=f"Time between two refreshes of {what}: 0.5s, 2s, 1m (a bare number is "
        f"seconds; {MIN_INTERVAL:g}s at least; longer when a read takes longer).",
    )
