"""``jobledger demo --daily``: a daily run across accounts, with a worker killed mid-account.

Three accounts each have a 5-task ``daily-set``. The parent enqueues the day's jobs
(``daily_run(...).enqueue_day``, twice: the second stores nothing) and starts two worker
processes. It kills worker 1 with SIGKILL in the middle of its account's 3rd task; worker
2 runs the other accounts, recovers the killed job, takes the set's run lease over and
resumes at that task. Then the parent checks the queue, the task sets and the execution
log: every task did its work exactly once.

A worker (``python -m jobledger._demo_daily worker ROOT``) reports JSON lines on
stdout; inside each task it waits for a ``go`` line on stdin before doing the work, so the
parent places the kill at the same point every time, without timing guesswork. Only the
standard library and jobledger itself are used.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import tempfile
import threading
import time
from typing import Any

from ._daily import DailyRun, DailyTask, daily_run
from ._demo import TASKS
from ._demo_process import (
    TIMEOUT,
    WORK_SECONDS,
    DemoFailed,
    DemoProcess,
    Say,
    check_executions,
    check_tasksets,
    clean_up,
    clock,
    marks,
    verdict,
)
from ._job_fields import JobStatus
from ._job_state import JobState
from ._queue import JobQueue
from ._worker import Worker

__all__ = ["ACCOUNTS", "CRASH_AT", "TYPE", "main", "run_daily_demo", "worker"]

ACCOUNTS = ("alice@example.com", "bob@example.com", "carol@example.com")
TYPE = "daily-set"
#: The task of worker 1's account during which worker 1 is killed (0-based: the 3rd).
CRASH_AT = 2


def _daily(root: str, handler: Any) -> DailyRun:
    state = JobState(os.path.join(root, "job-state"), timezone="UTC")
    # A short recover_every: the surviving worker notices its dead peer within 0.1 s.
    q = JobQueue(os.path.join(root, "queue"), recover_every=0.1)
    return daily_run(state, q, ACCOUNTS, TYPE, TASKS, handler, at=None)


# -- a worker process ----------------------------------------------------------------------


def _emit(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, **data}), flush=True)


def worker(root: str) -> int:
    """Serve the daily run's jobs, pacing each task by a ``go`` line on stdin."""
    goes: queue.Queue[str] = queue.Queue()
    opened: set[str] = set()
    log_path = os.path.join(root, "executions.log")

    def handler(t: DailyTask) -> None:
        if t.job.job_id not in opened:  # this worker's first task of the account's job
            opened.add(t.job.job_id)
            _emit("open", account=t.account, done=t.taskset.completed, left=t.taskset.remaining)
        _emit("start", account=t.account, task=t.task, done=len(t.taskset.completed))
        if goes.get() != "go":
            raise SystemExit(3)  # the parent is gone: leave the task undone
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(f"{t.account} {t.task}\n")
        time.sleep(WORK_SECONDS)  # the work, slow enough to watch (no synchronisation)
        _emit("worked", account=t.account, task=t.task)

    daily = _daily(root, handler)
    serving = Worker(daily.queue, daily.handlers, poll_interval=0.05)

    def commands() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
            goes.put(line.strip())
        goes.put("stop")
        serving.stop()

    threading.Thread(target=commands, daemon=True).start()
    _emit("ready", worker=daily.queue.worker_id)
    serving.run()
    _emit("stopped")
    return 0


# -- the parent ----------------------------------------------------------------------------


class _Worker(DemoProcess):
    """A worker process whose stdout lines go to the parent's one event queue."""

    def __init__(self, root: str, name: str, events: queue.Queue[Any]) -> None:
        self.name = name

        def deliver(event: dict[str, Any] | None) -> None:
            events.put((self, {"event": "exited"} if event is None else event))

        super().__init__(
            "jobledger._demo_daily",
            ["worker", root],
            deliver,
            stderr_path=os.path.join(root, f"{name.replace(' ', '-')}.log"),
        )


def _next(events: queue.Queue[Any]) -> tuple[_Worker, dict[str, Any]]:
    try:
        got: tuple[_Worker, dict[str, Any]] = events.get(timeout=TIMEOUT)
    except queue.Empty:
        raise DemoFailed(f"the workers sent nothing for {TIMEOUT:.0f} s") from None
    return got


def _drive(root: str, say: Say, m: dict[str, str], started: list[_Worker]) -> str:
    """Start both workers, kill worker 1 mid-account, let worker 2 finish; the account
    whose worker was killed."""
    events: queue.Queue[tuple[_Worker, dict[str, Any]]] = queue.Queue()
    first = _Worker(root, "worker 1", events)
    started.append(first)
    killed: str | None = None
    worked = 0
    second: _Worker | None = None
    held: _Worker | None = None  # worker 1, waiting at its first task for worker 2
    while worked < len(ACCOUNTS) * len(TASKS):
        who, ev = _next(events)
        kind = ev["event"]
        if kind == "exited" and who is first and killed is not None:
            continue  # the worker just killed: its pipe closed
        if kind == "ready":
            say(f"  {who.name.capitalize()} starts (pid {who.proc.pid})")
        elif kind == "open" and ev["done"]:
            say(
                f"  {m['busy']} {who.name.capitalize()} takes over {ev['account']}'s run lease "
                f"and resumes with {len(ev['left'])} remaining tasks ({', '.join(ev['left'])}); "
                f"the {len(ev['done'])} done are not run again"
            )
        elif kind == "open":
            say(f"  {who.name.capitalize()} takes {ev['account']}: its {len(TASKS)} daily tasks")
        elif kind == "start":
            if who is first and ev["done"] == CRASH_AT:
                first.kill()
                killed = str(ev["account"])
                say(
                    f"  {m['crash']} Worker 1 is killed (SIGKILL) in the middle of {killed}'s "
                    f"{ev['task']} ({ev['done']}/{len(TASKS)} done); its job stays Running "
                    "until worker 2 sees it died"
                )
                continue
            if who is first and second is None:
                # Worker 1 holds its first account: start worker 2 for the next one, and
                # let worker 1 go on only once worker 2 has one too (they run in parallel).
                second = _Worker(root, "worker 2", events)
                started.append(second)
                held = first
                continue
            who.send("go")
            if held is not None:
                held.send("go")
                held = None
        elif kind == "worked":
            worked += 1
            say(f"      [{who.name}] {m['tick']} {ev['account']} {ev['task']}")
        else:
            raise DemoFailed(f"{who.name} said {ev} (see {who.name.replace(' ', '-')}.log)")
    if second is None or killed is None:
        raise DemoFailed("worker 1 was never killed: the crash point was not reached")
    second.send("stop")  # stops gracefully: its last completion is recorded
    while (ev := _next(events)[1])["event"] != "stopped":
        if ev["event"] == "exited":
            raise DemoFailed("worker 2 exited before it stopped")
    say("  Worker 2 stops: every job is done")
    return killed


def _verify(root: str, date: str, killed: str, say: Say, m: dict[str, str]) -> list[str]:
    """Check the queue, the task sets and the execution log; the problems found."""
    problems = []
    daily = _daily(root, print)
    jobs = daily.queue.list()
    want = {daily.job_id(a, date): a for a in ACCOUNTS}
    if sorted(j.job_id for j in jobs) != sorted(want):
        problems.append(f"the queue holds {[j.job_id for j in jobs]}, not one job per account")
    for job in jobs:
        attempts = 2 if want.get(job.job_id) == killed else 1
        if job.status is not JobStatus.COMPLETED or job.attempts != attempts:
            problems.append(f"job {job.job_id} is {job.status} after {job.attempts} attempts")
    if not problems:
        say(
            f"  {m['tick']} queue: {len(jobs)} jobs, one per account, all Completed; "
            f"{killed}'s took 2 attempts (worker 1's, cut off, and worker 2's)"
        )
    problems += check_tasksets(daily.state, ACCOUNTS, TYPE, TASKS, date, say, m)
    problems += check_executions(root, ACCOUNTS, TASKS)
    if not problems:
        say(
            f"  {m['tick']} execution log: each of the {len(ACCOUNTS) * len(TASKS)} tasks did "
            f"its work exactly once; {killed}'s first {CRASH_AT} were not re-run after the kill"
        )
    daily.queue.close()
    return problems


def run_daily_demo(say: Say = print, *, keep: bool = False, unicode: bool = True) -> int:
    """Run the demo in a fresh temporary folder, narrating through ``say``; exit code."""
    root = tempfile.mkdtemp(prefix="jobledger-daily-demo-")
    m = marks(unicode)
    started: list[_Worker] = []
    try:
        daily = _daily(root, print)
        date = daily.today().isoformat()
        say(f"Daily run across accounts, for real: {len(ACCOUNTS)} accounts, a {len(TASKS)}-task")
        say("daily set each, 2 worker processes, one killed (SIGKILL) in the middle of an account.")
        say(f"Queue: {os.path.join(root, 'queue')}, state: {os.path.join(root, 'job-state')}")
        say("")
        say(f"{date} - {clock()} (a schedule, daily_run(..., at='07:00'), enqueues this):")
        ids = daily.enqueue_day(date)
        say(f"  Enqueued {len(ids)} jobs, one per (account, type, day):")
        for job_id in ids:
            say(f"      {job_id}")
        again = daily.enqueue_day(date)
        if again != ids or len(daily.queue.list()) != len(ids):
            raise DemoFailed(f"enqueueing the day again stored more jobs: {again}")
        say("  Enqueued again (a second scheduler, a retry): the same jobs, none stored twice")
        daily.queue.close()
        killed = _drive(root, say, m, started)
        say("")
        say("Checking the queue, the task sets and the execution log:")
        problems = _verify(root, date, killed, say, m)
    except DemoFailed as exc:
        problems = [str(exc)]
    finally:
        clean_up(started, root, keep, say)
    return verdict(
        problems,
        say,
        m,
        "Demo FAILED: the daily run did not do every task exactly once.",
        "Demo passed: every task ran once, across accounts, workers and a kill.",
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m jobledger._demo_daily [worker ROOT]``: a worker, or the demo."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["worker"] and len(args) == 2:
        return worker(args[1])
    if args:
        print("usage: python -m jobledger._demo_daily [worker ROOT]", file=sys.stderr)
        return 2
    return run_daily_demo()


if __name__ == "__main__":
    sys.exit(main())
