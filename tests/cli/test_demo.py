"""`jobledger demo` really crashes a run and shows it resuming."""

from __future__ import annotations

from pathlib import Path

import jobledger
from jobledger import _demo
from tests.cli._demo_run import demo_output


def test_demo_skips_a_and_resumes_b_with_two_remaining() -> None:
    out = demo_output()
    assert "Script crashes (SIGKILL)" in out
    assert "Account A: Skipped (already complete, 5/5)" in out
    assert "Account B: Resumes with 2 remaining tasks (quiz-2, search-desktop)" in out
    assert "each of the 10 tasks did its work exactly once" in out
    assert "Demo passed" in out


def test_demo_verification_catches_a_task_that_ran_twice(tmp_path: Path) -> None:
    state = jobledger.JobState(tmp_path / "job-state", timezone="UTC", durability="flush")
    date = state.today().isoformat()
    lines = []
    for account in (_demo.ACCOUNT_A, _demo.ACCOUNT_B):
        ts = state.taskset(account, _demo.TYPE, _demo.TASKS, date=date)
        for task in _demo.TASKS:
            ts.mark_done(task)
            lines.append(f"{account} {task}\n")
    lines.append(f"{_demo.ACCOUNT_B} quiz-1\n")  # re-run after a restart: the bug to catch
    (tmp_path / "executions.log").write_text("".join(lines), encoding="utf-8")
    said: list[str] = []
    problems = _demo._verify(str(tmp_path), date, said.append, _demo._marks(False))
    assert problems == [f"task '{_demo.ACCOUNT_B} quiz-1' did its work 2 times, not once"]
    assert any("complete, 5/5" in line for line in said)
