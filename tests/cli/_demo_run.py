"""Running ``jobledger demo`` for real, as a user would, for the demo tests."""

from __future__ import annotations

import subprocess
import sys


def demo_output(*args: str) -> str:
    """Run ``python -m jobledger.cli demo ARGS...``; its stdout, once it passed (exit 0)."""
    proc = subprocess.run(
        [sys.executable, "-m", "jobledger.cli", "demo", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
