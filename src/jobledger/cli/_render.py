"""Formatting helpers shared by the CLI commands: consoles, sizes, rates, bars."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Collection
from typing import TextIO

from rich.console import Console, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .._records import TaskSetRecord

__all__ = [
    "bar",
    "done_total",
    "human_count",
    "human_seconds",
    "human_size",
    "make_console",
    "percent",
    "short_time",
    "signed_percent",
    "table",
]

#: The width of piped output (at least): wide enough that a `list` row with its file path
#: stays on one line, as grep and tests want it.
MIN_WIDTH = 160


def make_console(stream: TextIO | None = None) -> Console:
    """A rich Console on ``stream`` (stdout by default), as wide as needed when piped.

    On a terminal rich measures the window. When piped (or under click's CliRunner) it
    would fall back to 80 columns and fold cells, so there at least :data:`MIN_WIDTH`.
    Plain lines are never wrapped (``soft_wrap``), so paths stay whole for copy and grep.
    """
    file = stream if stream is not None else sys.stdout
    try:
        tty = file.isatty()
    except (AttributeError, ValueError):
        tty = False
    width = None if tty else max(MIN_WIDTH, shutil.get_terminal_size((MIN_WIDTH, 24)).columns)
    return Console(file=file, width=width, highlight=False, soft_wrap=True)


def human_size(size: int) -> str:
    """Bytes as the document writes them: ``512B``, ``1.5KB``, ``2.3GB`` (1024-based)."""
    if size < 1024:
        return f"{size}B"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        # Move up a unit when rounding would print 1024.0 of this one.
        if round(value, 1) < 1024 or unit == "GB":
            return f"{value:.1f}{unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def human_count(n: int) -> str:
    """An integer with thousands separators: ``1,247``."""
    return f"{n:,}"


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


def percent(rate: float | None) -> str:
    """A 0..1 fraction as ``86%``; ``-`` when there is nothing to measure."""
    return "-" if rate is None else f"{rate * 100:.0f}%"


def signed_percent(change: float | None) -> str:
    """A relative change as ``+12%`` / ``-5%``; ``-`` when unknown."""
    return "-" if change is None else f"{change * 100:+.0f}%"


def short_time(iso: str | None) -> str:
    """``2025-01-20T10:30:00.000Z`` as ``2025-01-20 10:30:00Z``; ``-`` when never saved."""
    if not iso:
        return "-"
    return iso.replace("T", " ").split(".")[0] + ("Z" if iso.endswith("Z") else "")


def done_total(record: TaskSetRecord) -> tuple[int, int]:
    """(completed, planned) task counts of a record."""
    done = len(record.completed)
    return done, done + len(record.remaining)


def bar(done: int, total: int, width: int = 20) -> RenderableType:
    """A progress bar with its percentage, for a table cell."""
    grid = Table.grid(padding=(0, 1))
    grid.add_row(
        ProgressBar(total=max(total, 1), completed=done, width=width),
        Text(f"{done * 100 // total if total else 0:3d}%"),
    )
    return grid


def table(title: str | None, *columns: str, fold: Collection[str] = ()) -> Table:
    """A table with the CLI's look. Columns never wrap (names, numbers and times stay on
    one line for grep) except those named in ``fold`` (paths, error messages), which fold
    onto more lines rather than being cut short."""
    t = Table(title=title, title_justify="left", expand=False)
    for name in columns:
        if name in fold:
            t.add_column(name, overflow="fold")
        else:
            t.add_column(name, no_wrap=True)
    return t
