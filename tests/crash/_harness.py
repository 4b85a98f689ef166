"""The invariants of a task-set state file after a crash, and the files a crash leaves.

The forked children that crash live in ``tests/_child.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jobledger.backends.files._atomic_write import TEMP_MARK


def read_state(path: Path) -> dict[str, Any]:
    """The state file parsed directly, as a user (or another tool) would: no recovery."""
    with open(path, encoding="utf-8") as fh:
        doc = json.loads(fh.read())
    assert isinstance(doc, dict), f"{path} holds a JSON {type(doc).__name__}"
    return doc


def check_state(
    path: Path,
    plan: list[str],
    before: list[str],
    reported: list[str],
    *,
    context: str = "",
) -> dict[str, Any]:
    """Assert every invariant of a task-set file after a crash; returns the document.

    ``before`` is the completed list when the last child started; ``reported`` the tasks
    that child reported after its mark_done returned, in order.
    """
    doc = read_state(path)
    completed, remaining = doc["completed"], doc["remaining"]
    where = f"{path} ({context})"
    assert len(set(completed)) == len(completed), f"a task appears twice in completed: {where}"
    assert len(set(remaining)) == len(remaining), f"a task appears twice in remaining: {where}"
    assert not set(completed) & set(remaining), f"completed and remaining overlap: {where}"
    assert sorted(completed + remaining) == sorted(plan), f"tasks lost or invented: {where}"
    assert [t for t in plan if t in remaining] == remaining, f"remaining not in plan order: {where}"
    missing = [t for t in before + reported if t not in completed]
    assert not missing, f"reported as done but not stored: {missing} in {where}"
    # One writer at a time, in plan order: what is stored is what was there, what was
    # reported, plus at most the one task whose save the kill cut after the replace.
    expected = before + reported
    assert completed[: len(expected)] == expected, (
        f"completion order broken: {where}: completed={completed} expected={expected}"
    )
    assert len(completed) - len(expected) in (0, 1), f"unreported completions: {where}"
    bak = path.with_name(path.name + ".bak")
    if bak.exists():
        previous = read_state(bak)
        assert completed[: len(previous["completed"])] == previous["completed"], (
            f"the previous generation is not a prefix of the current one: {where}"
        )
    return doc


def stray_files(folder: Path) -> list[str]:
    """Names in ``folder`` other than state files, their generations and lease files."""
    kept = (".json", ".json.bak", ".lock")
    return sorted(
        p.name for p in folder.iterdir() if TEMP_MARK in p.name or not p.name.endswith(kept)
    )


def temp_files(root: Path) -> list[Path]:
    """Every temp file under ``root``."""
    return sorted(p for p in root.rglob("*") if TEMP_MARK in p.name)
