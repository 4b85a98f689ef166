"""The geometry of the task-set pages' charts, drawn as SVG by the server.

Pure functions: values in, shapes (coordinates, titles, classes) out. The templates
(``tasksets_charts.html``) write the shapes as SVG elements, escaped like every other
string, so a chart is readable without JavaScript and every data point is one element
of class ``mark`` with a ``<title>`` saying what it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote_plus

from markupsafe import Markup, escape

from .._durations import human_seconds
from ._taskset_views import HeatMap

__all__ = [
    "Bar",
    "BarChart",
    "HeatGrid",
    "HeatRect",
    "LineChart",
    "Series",
    "bar_chart",
    "heat_cells",
    "heat_grid",
    "line_chart",
]

#: Fill of each heat-map level (``Cell.level``).
HEAT_FILLS = {
    "none": "#eef1f6",
    "empty": "#d9dee7",
    "failed": "#e8a09a",
    "part": "#9fc1ee",
    "done": "#3f9a5c",
}


@dataclass(frozen=True)
class Bar:
    """One bar: its box, its label below and its title (the tooltip)."""

    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class BarChart:
    """A bar chart of values between 0 and ``top``: bars and the x labels."""

    width: int
    height: int
    bars: list[Bar]
    labels: list[tuple[float, str]]
    baseline: float
    top_label: str


def bar_chart(
    values: Sequence[tuple[str, float | None, str]],
    *,
    top: float = 1.0,
    top_label: str = "100%",
    width: int = 640,
    height: int = 160,
) -> BarChart:
    """A bar per (label, value, title) whose value is not None, in order; a None leaves
    its slot empty. Labels are kept for about a dozen slots so that they stay legible."""
    left, bottom, upper = 36.0, 20.0, 8.0
    slots = max(len(values), 1)
    slot = (width - left - 4) / slots
    inner = height - bottom - upper
    baseline = height - bottom
    bars = []
    labels = []
    every = max(1, -(-slots // 12))  # ceiling: at most about 12 labels
    for i, (label, value, title) in enumerate(values):
        x = left + i * slot
        if value is not None:
            h = max(0.0, min(value / top, 1.0)) * inner if top else 0.0
            bars.append(
                Bar(
                    round(x + slot * 0.15, 2),
                    round(baseline - h, 2),
                    round(slot * 0.7, 2),
                    round(max(h, 1.0), 2),
                    title,
                )
            )
        if i % every == 0:
            labels.append((round(x + slot / 2, 2), label))
    return BarChart(width, height, bars, labels, baseline, top_label)


@dataclass(frozen=True)
class Series:
    """One line: its name, its points (x, y, title) and its colour."""

    name: str
    points: list[tuple[float, float, str]]
    colour: str

    @property
    def path(self) -> str:
        """The polyline's points attribute."""
        return " ".join(f"{x},{y}" for x, y, _ in self.points)


@dataclass(frozen=True)
class LineChart:
    """Lines over a common x axis of slots (days), with the y axis's top value."""

    width: int
    height: int
    series: list[Series]
    labels: list[tuple[float, str]]
    baseline: float
    top_label: str


def line_chart(
    slots: Sequence[str],
    lines: Sequence[tuple[str, str, dict[str, float]]],
    *,
    width: int = 640,
    height: int = 160,
    unit: str = "s",
) -> LineChart:
    """A line per (name, colour, {slot: value}): a point (a mark) per slot it has a value
    for, on a y axis from 0 to the largest value of every line."""
    left, bottom, upper = 52.0, 20.0, 8.0
    count = max(len(slots), 1)
    step = (width - left - 12) / max(count - 1, 1)
    inner = height - bottom - upper
    baseline = height - bottom
    peak = max((v for _, _, values in lines for v in values.values()), default=0.0)
    top = peak if peak > 0 else 1.0
    index = {slot: i for i, slot in enumerate(slots)}
    series = []
    for name, colour, values in lines:
        points = []
        for slot in slots:
            if slot in values:
                v = values[slot]
                x = left + index[slot] * step
                y = baseline - (v / top) * inner
                text = human_seconds(v) if unit == "s" else f"{v:g}"
                points.append((round(x, 2), round(y, 2), f"{name} {slot}: {text}"))
        series.append(Series(name, points, colour))
    every = max(1, -(-count // 12))
    labels = [(round(left + i * step, 2), s) for i, s in enumerate(slots) if i % every == 0]
    top_label = human_seconds(top) if unit == "s" and peak > 0 else "0"
    return LineChart(width, height, series, labels, baseline, top_label)


class HeatRect(NamedTuple):
    """One heat-map cell: its box, fill, tooltip, level, and whose sets of which day."""

    x: float
    y: float
    fill: str
    title: str
    level: str
    account: str
    date: str
    sets: int


@dataclass(frozen=True)
class HeatGrid:
    """The heat map as SVG: cells, row labels (accounts) and column labels (days)."""

    width: int
    height: int
    size: int
    cells: list[HeatRect]
    rows: list[tuple[float, str]]
    columns: list[tuple[float, str]]
    left: int


_CELL = (
    '<rect class="cell level-{level}" x="{x}" y="{y}" width="{side}" height="{side}" '
    'fill="{fill}"><title>{title}</title></rect>'
)
_LINK = '<a href="{href}">{cell}</a>'


def heat_cells(grid: HeatGrid, root: str) -> Markup:
    """The heat map's cells as SVG, each with its title; a cell with sets links to the
    account's sets of that day (``root``: where the dashboard is mounted). Written here
    rather than by a template loop, which costs tens of milliseconds for 3,000 cells;
    every stored string still goes through ``escape``, as autoescape would."""
    side = grid.size - 2
    parts = []
    quoted: dict[str, str] = {}
    for c in grid.cells:
        cell = _CELL.format(
            level=c.level, x=c.x, y=c.y, side=side, fill=c.fill, title=escape(c.title)
        )
        if c.sets:
            account = quoted.get(c.account)
            if account is None:
                account = quoted[c.account] = quote_plus(c.account)
            href = escape(f"{root}/tasksets/day?account={account}&date={c.date}")
            cell = _LINK.format(href=href, cell=cell)
        parts.append(cell)
    return Markup("\n".join(parts))


def heat_grid(heat: HeatMap, *, size: int = 16, left: int = 220) -> HeatGrid:
    """A square of ``size`` pixels per cell, accounts down, days across."""
    top = 22
    cells = []
    for r, row in enumerate(heat.rows):
        for c, cell in enumerate(row):
            if cell.sets:
                rate = f"{cell.done}/{cell.total} tasks"
                failed = f", {cell.failed} failed" if cell.failed else ""
                title = f"{cell.account} {cell.date}: {cell.sets} sets, {rate}{failed}"
            else:
                title = f"{cell.account} {cell.date}: no set"
            cells.append(
                HeatRect(
                    left + c * size,
                    top + r * size,
                    HEAT_FILLS[cell.level],
                    title,
                    cell.level,
                    cell.account,
                    cell.date,
                    cell.sets,
                )
            )
    rows = [(top + r * size + size * 0.75, a) for r, a in enumerate(heat.accounts)]
    every = max(1, -(-len(heat.days) // 10))
    columns = [(float(left + c * size), d[5:]) for c, d in enumerate(heat.days) if c % every == 0]
    width = left + max(len(heat.days), 1) * size + 8
    height = top + max(len(heat.accounts), 1) * size + 4
    return HeatGrid(width, height, size, cells, rows, columns, left)
