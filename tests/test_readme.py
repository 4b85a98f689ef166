"""The README's examples run as written (the manual stays true)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import jobledger

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_resumable_loop_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = next(b for b in _python_blocks() if "ts.pending()" in b)
    ran: list[str] = []
    exec(block, {"run": ran.append})
    assert ran == ["daily-check-in", "quiz-1", "poll-1", "quiz-2", "search-desktop"]
    exec(block, {"run": ran.append})  # a second run skips everything
    assert len(ran) == 5


def test_the_queue_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = next(b for b in _python_blocks() if "Worker(" in b)
    assert ".run()" in block
    module = types.ModuleType("readme_example")
    monkeypatch.setitem(sys.modules, "readme_example", module)  # dataclasses look it up
    exec(block.replace(".run()", ".run(until_empty=True)"), module.__dict__)
    queue = jobledger.JobQueue(tmp_path / "jobs-state")
    job = queue.get("123e4567-e89b-12d3-a456-426614174000")
    assert job is not None
    assert job.status is jobledger.JobStatus.COMPLETED
    assert job.result == {"repo": None}
    assert (tmp_path / "jobs-state" / "jobs" / f"{job.job_id}.json").exists()
