"""`jobledger demo --daily` really runs two worker processes, kills one mid-account with
SIGKILL, and shows the other resuming it, every task run once."""

from __future__ import annotations

from pathlib import Path

from jobledger import Worker, _demo_daily
from tests.cli._demo_run import demo_output


def test_daily_demo_kills_a_worker_mid_account_and_the_other_resumes_it() -> None:
    out = demo_output("--daily")
    assert "Enqueued again (a second scheduler, a retry): the same jobs, none stored twice" in out
    assert "Worker 1 takes alice@example.com" in out
    assert "Worker 2 takes bob@example.com" in out  # both ran at once
    assert "Worker 1 is killed (SIGKILL) in the middle of alice@example.com's poll-1" in out
    assert (
        "Worker 2 takes over alice@example.com's run lease and resumes with 3 remaining "
        "tasks (poll-1, quiz-2, search-desktop)" in out
    )
    assert "alice@example.com's took 2 attempts" in out
    assert "each of the 15 tasks did its work exactly once" in out
    assert "Demo passed: every task ran once" in out


def test_daily_demo_verification_catches_a_task_that_ran_twice(tmp_path: Path) -> None:
    lines: list[str] = []
    daily = _demo_daily._daily(str(tmp_path), lambda t: lines.append(f"{t.account} {t.task}\n"))
    date = daily.today().isoformat()
    daily.enqueue_day(date)
    Worker(daily.queue, daily.handlers, handle_signals=False).run(until_empty=True)
    daily.queue.close()
    lines.append("bob@example.com quiz-1\n")  # run again after a kill: the bug to catch
    (tmp_path / "executions.log").write_text("".join(lines), encoding="utf-8")
    said: list[str] = []
    problems = _demo_daily._verify(str(tmp_path), date, "nobody", said.append, {"tick": "+"})
    assert problems == ["task 'bob@example.com quiz-1' did its work 2 times, not once"]
    assert sum("complete, 5/5" in line for line in said) == 3
