"""What both demos (``_demo`` and ``_demo_daily``) do alike: run a jobledger child process
that reports JSON lines on stdout and is paced through stdin, kill it with SIGKILL, check the
execution log its tasks append to, and clean up and give the verdict at the end.

Only the standard library and jobledger itself are used, so the children run anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

from ._job_state import JobState

__all__ = [
    "TIMEOUT",
    "WORK_SECONDS",
    "DemoFailed",
    "DemoProcess",
    "Say",
    "check_executions",
    "check_tasksets",
    "clean_up",
    "clock",
    "marks",
    "verdict",
]

#: Simulated work per task: long enough to watch, short enough for a demo under 5 s.
WORK_SECONDS = 0.15
#: How long the parent waits for any line from a child before giving up.
TIMEOUT = 30.0

Say = Callable[[str], None]


class DemoFailed(Exception):
    """The run did not resume as jobledger promises; the message says what differed."""


def clock() -> str:
    """The time of day, as the demos narrate it."""
    return time.strftime("%I:%M:%S %p").lstrip("0")


def marks(unicode: bool) -> dict[str, str]:
    """The marks the demos narrate with: emoji, or plain text for a terminal without them."""
    if unicode:
        return {"ok": "✅", "tick": "✓", "busy": "🔄", "crash": "❌", "run": "…"}
    return {"ok": "[done]", "tick": "+", "busy": "[..]", "crash": "[X]", "run": "..."}


class DemoProcess:
    """``python -m MODULE ARGS...`` with this very jobledger; a thread reads its stdout and
    passes each JSON line to ``deliver`` as a dict (then ``None`` once the child closed its
    stdout), so the parent's reads can time out."""

    def __init__(
        self,
        module: str,
        args: Sequence[str],
        deliver: Callable[[dict[str, Any] | None], None],
        *,
        stderr_path: str | None = None,
    ) -> None:
        env = dict(os.environ)
        # The child must import this very jobledger, installed or not.
        src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        self._stderr: IO[bytes] | None = None
        if stderr_path is not None:
            self._stderr = open(stderr_path, "wb")  # noqa: SIM115 - closed by close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
            bufsize=1,
            env=env,
        )
        threading.Thread(target=self._read, args=(deliver,), daemon=True).start()

    def _read(self, deliver: Callable[[dict[str, Any] | None], None]) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "text", "text": line.rstrip("\n")}
            deliver(event if isinstance(event, dict) else {"event": "text"})
        deliver(None)

    def send(self, line: str) -> None:
        """Write one line to the child's stdin; a child already gone is not an error."""
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL where it exists (no cleanup of any kind runs), else TerminateProcess."""
        if self.proc.poll() is None:
            sigkill = getattr(signal, "SIGKILL", None)
            if sigkill is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, sigkill)
            else:  # pragma: no cover - Windows
                self.proc.kill()
        self.close()

    def close(self) -> int:
        """Wait for the child to exit and close the pipes; its exit code."""
        code = self.proc.wait(timeout=TIMEOUT)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if self._stderr is not None:
            self._stderr.close()
        return code


def check_tasksets(
    state: JobState,
    accounts: Iterable[str],
    type_: str,
    tasks: Sequence[str],
    date: str,
    say: Say,
    m: dict[str, str],
) -> list[str]:
    """Check that each account's set is complete, each task once and none failed; the
    problems found."""
    problems = []
    for account in accounts:
        ts = state.taskset(account, type_, date=date)
        done = ts.completed
        complete = sorted(done) == sorted(tasks) and len(set(done)) == len(done)
        if ts.is_complete and complete and not ts.failed:
            say(f"  {m['tick']} {account}: {type_}-{date}.json complete, {len(done)}/{len(tasks)}")
        else:
            problems.append(f"{account}'s set is not complete: done {done}, left {ts.remaining}")
    return problems


def check_executions(root: str, accounts: Iterable[str], tasks: Sequence[str]) -> list[str]:
    """Check by the execution log that each account's tasks did their work exactly once;
    the problems found."""
    problems = []
    with open(os.path.join(root, "executions.log"), encoding="utf-8") as fh:
        runs = Counter(line.strip() for line in fh if line.strip())
    expected = {f"{a} {t}" for a in accounts for t in tasks}
    for run in sorted(expected):
        if runs[run] != 1:
            problems.append(f"task {run!r} did its work {runs[run]} times, not once")
    for run in sorted(set(runs) - expected):
        problems.append(f"unexpected task run {run!r}")
    return problems


def clean_up(children: Iterable[DemoProcess], root: str, keep: bool, say: Say) -> None:
    """Leave no child behind (one still running was interrupted, by Ctrl-C or a failed
    check), then remove the demo folder unless ``keep``."""
    for child in children:
        if child.proc.poll() is None:
            child.kill()
        else:
            child.close()
    if keep:
        say(f"The demo folder is kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


def verdict(problems: list[str], say: Say, m: dict[str, str], failed: str, passed: str) -> int:
    """Say the problems found and then ``failed``, or ``passed`` when there are none; the
    demo's exit code."""
    if problems:
        for problem in problems:
            say(f"  {m['crash']} {problem}")
        say(failed)
        return 1
    say(passed)
    return 0
