"""``jobledger demo``: an interrupted daily run, performed for real.

Two accounts each have a 5-task ``daily-set``. A child process runs them; the parent kills
it with SIGKILL in the middle of account B's 4th task, starts it again, and checks that A
is skipped, B resumes with its 2 remaining tasks, and no completed task ran twice.

The child (``python -m jobledger._demo child ROOT DATE``) reports JSON lines on stdout,
each ``done`` line only after ``mark_done`` returned. Inside each task it waits for a
``go`` line on stdin before doing the work: the parent paces it that way so that the kill
lands mid-task at the same point every time, without any timing guesswork.

Only the standard library and jobledger itself are used, so the child runs anywhere.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import tempfile
import time
from typing import Any

from ._demo_process import (
    TIMEOUT,
    WORK_SECONDS,
    DemoFailed,
    DemoProcess,
    Say,
    check_executions,
    check_tasksets,
    clean_up,
    verdict,
)
from ._demo_process import clock as _clock
from ._demo_process import marks as _marks
from ._job_state import JobState

__all__ = ["ACCOUNT_A", "ACCOUNT_B", "TASKS", "TYPE", "child", "main", "run_demo"]

ACCOUNT_A = "alice@example.com"
ACCOUNT_B = "bob@example.com"
TYPE = "daily-set"
TASKS = ("daily-check-in", "quiz-1", "poll-1", "quiz-2", "search-desktop")
#: B's tasks done when the crash comes ("3/5 daily tasks done").
CRASH_AFTER = 3

# -- the child: the "script" that does the daily run ----------------------------------------


def _emit(event: str, account: str = "", **data: Any) -> None:
    print(json.dumps({"event": event, "account": account, **data}), flush=True)


def child(root: str, date: str) -> int:
    """Run A's then B's daily set under ``root``, reporting each step on stdout."""
    state = JobState(os.path.join(root, "job-state"), timezone="UTC", durability="fsync")
    log_path = os.path.join(root, "executions.log")
    for account in (ACCOUNT_A, ACCOUNT_B):
        with state.taskset(account, TYPE, TASKS, date=date) as ts:
            if ts.is_complete:
                _emit("skip", account, done=len(ts.completed), total=len(TASKS))
                continue
            _emit("open", account, done=len(ts.completed), remaining=ts.remaining)
            for task in ts.pending():
                with ts.task(task):
                    _emit("start", account, task=task)
                    if sys.stdin.readline().strip() != "go":
                        # The parent is gone: leave without recording this task as done.
                        raise SystemExit(3)
                    with open(log_path, "a", encoding="utf-8") as fh:
                        fh.write(f"{account} {task}\n")
                    time.sleep(WORK_SECONDS)
                _emit("done", account, task=task, done=len(ts.completed), total=len(TASKS))
    _emit("finished")
    return 0


# -- the parent: drives the child, crashes it, restarts it, checks the result ---------------


class _Child(DemoProcess):
    """A running child, its events read from a queue so that reads can time out."""

    def __init__(self, root: str, date: str) -> None:
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        super().__init__("jobledger._demo", ["child", root, date], self._events.put)

    def next(self) -> dict[str, Any] | None:
        """The next event, or None when the child closed its stdout (exited)."""
        try:
            return self._events.get(timeout=TIMEOUT)
        except queue.Empty:
            self.kill()
            raise DemoFailed(f"the child process sent nothing for {TIMEOUT:.0f} s") from None

    def go(self) -> None:
        """Let the child do the work of the task it just started."""
        self.send("go")


def _run(child_proc: _Child, say: Say, m: dict[str, str], crash: bool) -> str | None:
    """Feed the child until it finishes (returns None) or, with ``crash``, until B's 4th task
    has started (kills it and returns that task's name)."""
    names = {ACCOUNT_A: "A", ACCOUNT_B: "B"}
    b_done = 0
    while True:
        ev = child_proc.next()
        if ev is None:
            code = child_proc.close()
            raise DemoFailed(f"the child process exited early (exit code {code})")
        kind, who = ev["event"], names.get(ev.get("account", ""), "?")
        if kind == "skip":
            say(
                f"  {m['ok']} Account {who}: Skipped (already complete, {ev['done']}/{ev['total']})"
            )
        elif kind == "open" and ev["done"]:
            rest = ev["remaining"]
            say(
                f"  {m['busy']} Account {who}: Resumes with {len(rest)} remaining tasks "
                f"({', '.join(rest)}); {ev['done']} already done are not run again"
            )
        elif kind == "open":
            say(f"  Account {who} ({ev['account']}): starting its {len(TASKS)} daily tasks")
        elif kind == "start":
            if crash and who == "B" and b_done >= CRASH_AFTER:
                say(f"      {m['run']} {ev['task']} started")
                child_proc.kill()
                say(f"  {m['crash']} Script crashes (SIGKILL) in the middle of {ev['task']}")
                return str(ev["task"])
            child_proc.go()
        elif kind == "done":
            say(f"      {m['tick']} {ev['task']} ({ev['done']}/{ev['total']})")
            if who == "B":
                b_done = int(ev["done"])
            if ev["done"] == ev["total"]:
                say(f"  {m['ok']} Account {who}: Daily set completed")
            elif crash and who == "B" and b_done == CRASH_AFTER:
                say(f"  {m['busy']} Account B: {b_done}/{len(TASKS)} daily tasks done")
        elif kind == "finished":
            child_proc.close()
            return None
        else:
            say(f"      (child) {ev.get('text', ev)}")


def _verify(root: str, date: str, say: Say, m: dict[str, str]) -> list[str]:
    """Check the state files and the execution log; the problems found."""
    state = JobState(os.path.join(root, "job-state"), timezone="UTC")
    accounts = (ACCOUNT_A, ACCOUNT_B)
    problems = check_tasksets(state, accounts, TYPE, TASKS, date, say, m)
    problems += check_executions(root, accounts, TASKS)
    if not problems:
        say(
            f"  {m['tick']} execution log: each of the {len(accounts) * len(TASKS)} tasks did "
            f"its work exactly once; B's first {CRASH_AFTER} were not re-run after the crash"
        )
    return problems


def run_demo(say: Say = print, *, keep: bool = False, unicode: bool = True) -> int:
    """Run the demo in a fresh temporary folder, narrating through ``say``; exit code."""
    root = tempfile.mkdtemp(prefix="jobledger-demo-")
    m = _marks(unicode)
    date = JobState(os.path.join(root, "job-state"), timezone="UTC").today().isoformat()
    children: list[_Child] = []
    try:
        say("Interrupted Daily Run, for real: 2 accounts, a 5-task daily set each,")
        say(f"a crash (SIGKILL) and a restart. State folder: {os.path.join(root, 'job-state')}")
        say("")
        say(f"Day 1 - {_clock()}:")
        first = _Child(root, date)
        children.append(first)
        say(f"  Script starts (pid {first.proc.pid})")
        cut = _run(first, say, m, crash=True)
        if cut is None:
            raise DemoFailed("the first run finished before the crash point")
        say(f"      {cut} was cut off before its completion was recorded: it stays remaining")
        say("")
        say(f"Day 1 - {_clock()}:")
        second = _Child(root, date)
        children.append(second)
        say(f"  {m['busy']} Script restarts (pid {second.proc.pid})")
        _run(second, say, m, crash=False)
        say("")
        say("Checking the state files and the execution log:")
        problems = _verify(root, date, say, m)
    except DemoFailed as exc:
        problems = [str(exc)]
    finally:
        clean_up(children, root, keep, say)
    return verdict(
        problems,
        say,
        m,
        "Demo FAILED: the run did not skip what was done and resume the rest.",
        "Demo passed: nothing completed was lost or done twice.",
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m jobledger._demo [child ROOT DATE]``: the child, or the whole demo."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["child"] and len(args) == 3:
        return child(args[1], args[2])
    if args:
        print("usage: python -m jobledger._demo [child ROOT DATE]", file=sys.stderr)
        return 2
    return run_demo()


if __name__ == "__main__":
    sys.exit(main())
