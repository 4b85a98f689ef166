"""``jobledger status --watch``: today's task sets, live in the terminal (the loop is
``_live.py``).

Each refresh reads today's records and their lease holders through the state's
read-only reads (nothing locked, moved or repaired), so it costs what ``status`` costs;
"today" is asked again at each refresh, so a view left open past midnight moves on to the
new day's sets.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from .._clock import iso_utc
from .._job_state import JobState
from .._taskset_record import TaskSetRecord
from .._words import plural
from ._render import bar, describe_holder, done_total, human_count, short_time, table

__all__ = ["SHOWN_FAILURES", "SHOWN_IN_PROGRESS", "StatusView"]

#: The most failed tasks a frame lists (newest first).
SHOWN_FAILURES = 10
#: The most tasks under way a set's row names.
SHOWN_IN_PROGRESS = 2


def _in_progress(record: TaskSetRecord, held: bool) -> str:
    """The tasks under way: the one the holder says it runs (a ``running`` entry, kept by
    other writers of the format), then those with a progress report and not done, with
    it: ``search 12/30``; ``-`` for none."""
    tasks: dict[str, None] = {}
    running = record.running.get("task") if held and record.running else None
    if isinstance(running, str) and running not in record.completed:
        tasks[running] = None
    done = set(record.completed)
    tasks.update((task, None) for task in record.progress if task not in done)
    if not tasks:
        return "-"
    shown = []
    for task in list(tasks)[:SHOWN_IN_PROGRESS]:
        progress = record.progress.get(task)
        shown.append(f"{task} {progress.done}/{progress.total}" if progress else task)
    more = len(tasks) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _unresolved(record: TaskSetRecord) -> int:
    return sum(1 for task in record.failures if task not in record.completed)


class StatusView:
    """The frames of ``status --watch`` on one state."""

    def __init__(self, state: JobState, where: str, interval: float) -> None:
        self.state = state
        self.where = where
        self.interval = interval

    def records(self, today: str) -> list[TaskSetRecord]:
        """The records of ``today``, as ``status`` reads them."""
        return [r for r in self.state.records(since=today) if r.date == today]

    def frame(self, live: bool) -> RenderableType:
        """Read today's sets once and draw them."""
        state = self.state
        today = state.today().isoformat()
        records = self.records(today)
        when = short_time(iso_utc(state.clock.now()))
        head = f"Task sets for {today} in {self.where} at {when}"
        if live:
            head += f", every {self.interval:g}s; q or Ctrl-C quits"
        parts: list[RenderableType] = [Text(head, style="bold")]
        if not records:
            parts.append(Text(f"No task sets for {today} yet."))
            return Group(*parts)
        done = sum(done_total(r)[0] for r in records)
        total = sum(done_total(r)[1] for r in records)
        failed = sum(_unresolved(r) for r in records)
        parts.append(
            Text(
                f"{plural(len(records), 'set')}: {human_count(done)}/{human_count(total)} "
                f"tasks done, {plural(failed, 'failed task')} not done since"
            )
        )
        parts.append(self._sets(records))
        parts.append(self._failures(records))
        return Group(*parts)

    def _sets(self, records: list[TaskSetRecord]) -> RenderableType:
        t = table(
            None,
            "Account",
            "Type",
            "Done",
            "Progress",
            "Failed",
            "In progress",
            "Last update",
            "Running in",
            fold=("Running in", "In progress"),
            optional=("Progress",),
        )
        for rec in records:
            done, total = done_total(rec)
            holder = describe_holder(self.state.holder(rec.key))
            t.add_row(
                rec.account,
                rec.type,
                f"{done}/{total}",
                bar(done, total),
                str(_unresolved(rec)),
                _in_progress(rec, holder is not None),
                short_time(rec.last_update),
                holder or "-",
            )
        return t

    def _failures(self, records: list[TaskSetRecord]) -> RenderableType:
        failed = [
            (failure.at, rec, task, failure)
            for rec in records
            for task, failure in rec.failures.items()
            if task not in rec.completed
        ]
        if not failed:
            return Text("No failed task.")
        failed.sort(key=lambda row: (row[0], row[1].key, row[2]), reverse=True)
        t = table(
            "Failed tasks, newest first"
            + (f" ({SHOWN_FAILURES} of {len(failed)})" if len(failed) > SHOWN_FAILURES else ""),
            "Account",
            "Type",
            "Task",
            "Attempts",
            "Last failed",
            "Error",
            fold=("Error",),
        )
        for _, rec, task, failure in failed[:SHOWN_FAILURES]:
            t.add_row(
                rec.account,
                rec.type,
                task,
                str(failure.attempts),
                short_time(failure.at),
                failure.error,
            )
        return t
