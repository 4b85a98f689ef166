"""Formatting helpers shared by the CLI commands: consoles, tables that fit, plain
(tab-separated) output, sizes, rates, times, bars."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import sys
from collections.abc import Collection, Iterable, Sequence
from typing import TextIO

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, OverflowMethod, RenderableType, RenderResult
from rich.measure import Measurement
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .._durations import human_seconds
from .._errors import LeaseHolder
from .._taskset_record import TaskSetRecord

__all__ = [
    "FitTable",
    "bar",
    "describe_holder",
    "done_total",
    "human_count",
    "human_seconds",
    "human_size",
    "make_console",
    "percent",
    "plain_lines",
    "plain_time",
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
    """Bytes as ``du`` prints them: ``512B``, ``1.5KB``, ``2.3GB`` (1024-based)."""
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


def percent(rate: float | None) -> str:
    """A 0..1 fraction as ``86%``; ``-`` when there is nothing to measure."""
    return "-" if rate is None else f"{rate * 100:.0f}%"


def signed_percent(change: float | None) -> str:
    """A relative change as ``+12%`` / ``-5%``; ``-`` when unknown."""
    return "-" if change is None else f"{change * 100:+.0f}%"


def short_time(iso: str | None) -> str:
    """A stored time as the CLI writes every time: ISO 8601 in UTC to the second,
    ``2025-01-20T10:30:00Z``; ``-`` when there is none."""
    if not iso:
        return "-"
    try:
        moment = dt.datetime.fromisoformat(iso[:-1] + "+00:00" if iso.endswith("Z") else iso)
    except ValueError:
        return iso  # not ours to reformat: shown as stored rather than hidden
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def plain_time(iso: str | None) -> str | None:
    """A stored time for ``--plain``: as :func:`short_time`, None (an empty field) when
    there is none."""
    return short_time(iso) if iso else None


def _plain_cell(value: object) -> str:
    # One record per line, one field per tab: the characters that would break that are
    # written as escapes (documented in the commands' --help).
    if value is None:
        return ""
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def plain_lines(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """``--plain`` output: a header line, then one tab-separated line per record (``None``
    as an empty field; tab, newline, carriage return and backslash written as ``\\t``,
    ``\\n``, ``\\r`` and ``\\\\``), no colour, no markup, no wrapping."""
    lines = ["\t".join(header)]
    lines.extend("\t".join(_plain_cell(v) for v in row) for row in rows)
    return "\n".join(lines)


def describe_holder(holder: LeaseHolder | None) -> str | None:
    """Who holds a run lease (``pid 4242 on host1 since 2025-01-20T10:30:00Z``, its time
    written as every CLI time), or None when nobody does."""
    if holder is None:
        return None
    since = short_time(holder.since) if holder.since else None
    return dataclasses.replace(holder, since=since).describe()


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


#: The narrowest a folding column (a path, an error message) is made before the table
#: gives up its box: narrower, a message is more line breaks than words.
FOLD_MIN = 16


class FitTable:
    """A table that fits the console it is printed on, without ever cutting a value short.

    Names, ids, numbers and times (every column not in ``fold``) stay whole and on one
    line, so they can be pasted into the next command. To fit, in turn: the ``fold``
    columns (paths, error messages) fold onto more lines; the ``optional`` columns
    (decorations such as progress bars) are dropped; the box is dropped (columns two,
    then one space apart); and last, each row is written as a block of ``Column: value``
    lines under its first value (a ``-``, no value, is left out there). The layout is
    chosen when printed, from the console's width.
    """

    def __init__(
        self,
        title: str | None,
        columns: Sequence[str],
        fold: Collection[str] = (),
        optional: Collection[str] = (),
    ) -> None:
        self.title = title
        self.columns = list(columns)
        self.fold = frozenset(fold)
        self.optional = frozenset(optional)
        self.rows: list[tuple[RenderableType, ...]] = []

    def add_row(self, *cells: RenderableType) -> None:
        """One row, a cell per column (a string, or a renderable such as :func:`bar`)."""
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(cells)

    def _widths(self, console: Console, options: ConsoleOptions) -> list[int]:
        """Each column's narrowest width that cuts nothing (folding columns: FOLD_MIN)."""
        widths = []
        for index, name in enumerate(self.columns):
            widest = cell_len(name)
            for row in self.rows:
                cell = row[index]
                if isinstance(cell, str):
                    w = max((cell_len(line) for line in cell.splitlines()), default=0)
                else:
                    w = Measurement.get(console, options, cell).maximum
                widest = max(widest, w)
            widths.append(min(widest, FOLD_MIN) if name in self.fold else widest)
        return widths

    def _grid(self, keep: list[int], style: str) -> Table:
        if style == "box":
            t = Table(title=self.title, title_justify="left", expand=False)
        else:
            gap = 1 if style == "gap1" else 2
            t = Table(
                title=self.title,
                title_justify="left",
                expand=False,
                box=None,
                pad_edge=False,
                padding=(0, 0, 0, gap),
            )
        for index in keep:
            name = self.columns[index]
            if name in self.fold:
                t.add_column(name, overflow="fold")
            else:
                t.add_column(name, no_wrap=True)
        for row in self.rows:
            t.add_row(*(row[index] for index in keep))
        return t

    def _blocks(self, soft: bool) -> Iterable[RenderableType]:
        if self.title:
            yield Text(self.title, style="italic")
        keep = [i for i, name in enumerate(self.columns) if name not in self.optional]
        first, rest = keep[0], keep[1:]
        # The CLI's consoles soft-wrap (``soft``): a line wider than the terminal is
        # written whole (the terminal wraps it; copy and paste get it whole). A console
        # that crops gets it folded instead, so that nothing is lost either way.
        no_wrap = soft
        overflow: OverflowMethod = "ignore" if soft else "fold"
        for row in self.rows:
            head = row[first]
            if isinstance(head, str):
                head = Text(head, style="bold", no_wrap=no_wrap, overflow=overflow)
            yield head
            for index in rest:
                name, cell = self.columns[index], row[index]
                if cell == "-":
                    continue  # no value: a line saying so only lengthens the block
                if isinstance(cell, str) and name not in self.fold:
                    yield Text.assemble(
                        (f"  {name}: ", "bold"), cell, no_wrap=no_wrap, overflow=overflow
                    )
                    continue
                # A folding value (or a renderable) wraps beside its label, indented.
                line = Table.grid(padding=(0, 1))
                line.add_column(no_wrap=True)
                line.add_column(overflow="fold")
                line.add_row(Text(f"  {name}:", style="bold"), cell)
                yield line

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Render the widest layout that fits ``options.max_width``."""
        if not self.rows:
            yield self._grid(list(range(len(self.columns))), "box")
            return
        width = options.max_width
        widths = self._widths(console, options)
        every = list(range(len(self.columns)))
        kept = [i for i in every if self.columns[i] not in self.optional]
        candidates = [
            # a column's cells are padded by one space on each side, with a rule between
            (every, "box", sum(widths[i] + 3 for i in every) + 1),
            (kept, "box", sum(widths[i] + 3 for i in kept) + 1),
            (kept, "gap2", sum(widths[i] + 2 for i in kept) - 2),
            (kept, "gap1", sum(widths[i] + 1 for i in kept) - 1),
        ]
        for keep, style, needed in candidates:
            if needed <= width:
                yield self._grid(keep, style)
                return
        yield from self._blocks(soft=bool(options.no_wrap) and options.overflow == "ignore")


def table(
    title: str | None, *columns: str, fold: Collection[str] = (), optional: Collection[str] = ()
) -> FitTable:
    """A :class:`FitTable` with the CLI's look: columns never wrap or get cut (names, ids,
    numbers and times stay whole for copy and grep) except those named in ``fold``
    (paths, error messages), which fold onto more lines; ``optional`` columns (bars) are
    dropped when the table does not fit otherwise."""
    return FitTable(title, columns, fold=fold, optional=optional)
