"""Forked children for the job-queue tests: pipes to synchronise, an execution log to count runs.

A child runs ``target(chan)`` and ends with ``os._exit``: 0 when ``target`` returned, 3 when
it raised (the traceback goes up the pipe as ``ERR ...`` lines). The parent blocks on pipe
reads and never sleeps to synchronise.
"""

from __future__ import annotations

import json
import os
import signal
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Chan:
    """The child's side: ``say`` lines up to the parent, ``hear`` lines down from it."""

    def __init__(self, up: int, down: int) -> None:
        self.up = up
        self.down = down
        self._buf = b""

    def say(self, line: str) -> None:
        os.write(self.up, line.encode() + b"\n")

    def hear(self) -> str:
        while b"\n" not in self._buf:
            chunk = os.read(self.down, 4096)
            if not chunk:
                raise EOFError("the parent closed the pipe")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()


class Child:
    """A forked process running ``target(chan)``."""

    def __init__(self, target: Callable[[Chan], None]) -> None:
        up_r, up_w = os.pipe()
        down_r, down_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns into pytest
            code = 3
            try:
                os.close(up_r)
                os.close(down_w)
                target(Chan(up_w, down_r))
                code = 0
            except BaseException:
                for line in traceback.format_exc().splitlines():
                    os.write(up_w, b"ERR " + line.encode() + b"\n")
            finally:
                os._exit(code)
        os.close(up_w)
        os.close(down_r)
        self.pid = pid
        self._up = up_r
        self._down = down_w
        self._buf = b""
        self.status: int | None = None
        self.errors: list[str] = []

    def line(self) -> str | None:
        """The child's next line, or None at end of file (it exited or died)."""
        while b"\n" not in self._buf:
            chunk = os.read(self._up, 65536)
            if not chunk:
                return None
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\n")
        text = raw.decode()
        if text.startswith("ERR "):
            self.errors.append(text[4:])
            return self.line()
        return text

    def expect(self, prefix: str) -> str:
        """Read lines up to one starting with ``prefix``; return the rest of it."""
        seen = []
        while True:
            text = self.line()
            if text is None:
                self.wait()
                raise AssertionError(
                    f"child ended (status {self.status}) before saying {prefix!r}; "
                    f"it said {seen}; errors:\n" + "\n".join(self.errors)
                )
            if text.startswith(prefix):
                return text[len(prefix) :]
            seen.append(text)

    def tell(self, line: str) -> None:
        os.write(self._down, line.encode() + b"\n")

    def kill(self) -> None:
        """SIGKILL and reap it."""
        os.kill(self.pid, signal.SIGKILL)
        self.wait()

    def drain(self) -> list[str]:
        """Every remaining line, until the child closes its end."""
        out = []
        while (text := self.line()) is not None:
            out.append(text)
        return out

    def wait(self) -> int:
        """Reap the child; its wait status (see os.waitstatus_to_exitcode)."""
        if self.status is None:
            _, status = os.waitpid(self.pid, 0)
            self.status = status
            os.close(self._up)
            os.close(self._down)
        return self.status

    def exit_code(self) -> int:
        """The exit code (negative: killed by that signal)."""
        return os.waitstatus_to_exitcode(self.wait())

    def check(self) -> None:
        """Reap it and fail if it raised or did not exit 0."""
        code = self.exit_code()
        assert not self.errors, "\n".join(self.errors)
        assert code == 0, f"child exited with {code}"


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
    return {i: d["status"] for i, d in job_files(qdir).items()}


def queue_doc(qdir: Path) -> dict[str, Any]:
    return json.loads((qdir / "queue.json").read_text())
