"""The job-queue tests' view of the disk: an execution log to count runs, and the queue's
files read directly (no recovery). The forked workers live in ``tests/_child.py``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any


def log_run(path: Path, job_id: str) -> None:
    """Append one line to the execution log (O_APPEND: one write, never interleaved)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, job_id.encode() + b"\n")
    finally:
        os.close(fd)


def runs(path: Path) -> Counter[str]:
    """How many times each job id was started, from the execution log."""
    if not path.exists():
        return Counter()
    return Counter(line for line in path.read_text().splitlines() if line)


def job_files(qdir: Path) -> dict[str, dict[str, Any]]:
    """Every job file's document, by job id, read straight from disk (no recovery)."""
    out = {}
    for p in sorted((qdir / "jobs").glob("*.json")):
        doc = json.loads(p.read_text())
        out[doc["job_id"]] = doc
    return out


def statuses(qdir: Path) -> dict[str, str]:
    """Every job's status, by job id, read straight from disk."""
    return {i: d["status"] for i, d in job_files(qdir).items()}


def queue_doc(qdir: Path) -> dict[str, Any]:
    """The queue.json index, read straight from disk."""
    return json.loads((qdir / "queue.json").read_text())
