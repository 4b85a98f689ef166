"""Forked children that talk to the test over pipes, and the invariants of a state file.

A child runs a function and ends with ``os._exit`` (never returning into pytest). It
reports lines on one pipe and receives commands on another; the parent blocks on reads,
so nothing here ever sleeps to synchronise. An exception in the child is reported as an
``ERR ...`` line, which the parent turns into a test failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobledger.backends.files._atomic import TEMP_MARK


class Channel:
    """The child's side: ``report`` lines up, ``recv`` lines down."""

    def __init__(self, up: int, down: int) -> None:
        self._up = up
        self._down = os.fdopen(down, "rb", buffering=0)
        self._buf = b""

    def report(self, line: str) -> None:
        os.write(self._up, line.encode("utf-8", "backslashreplace") + b"\n")

    def recv(self) -> str:
        while b"\n" not in self._buf:
            chunk = self._down.read(4096)
            if not chunk:
                raise EOFError("the parent closed the command pipe")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode("utf-8")


class ChildError(AssertionError):
    """The child raised; the message is its traceback."""


class Child:
    """A forked process running ``target(channel)``; the parent's handle on it."""

    def __init__(self, target: Callable[[Channel], None]) -> None:
        up_r, up_w = os.pipe()
        down_r, down_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which never returns
            code = 1
            try:
                os.close(up_r)
                os.close(down_w)
                target(Channel(up_w, down_r))
                code = 0
            except BaseException:
                text = traceback.format_exc().replace("\n", " | ")
                with contextlib.suppress(BaseException):
                    os.write(up_w, f"ERR {text}\n".encode("utf-8", "backslashreplace"))
            finally:
                os._exit(code)
        os.close(up_w)
        os.close(down_r)
        self.pid = pid
        self._reader = os.fdopen(up_r, "rb")
        self._down = down_w
        self.status: int | None = None

    def readline(self) -> str | None:
        """The next reported line, or None at EOF (the child is gone)."""
        raw = self._reader.readline()
        if not raw:
            return None
        line = raw.decode("utf-8").rstrip("\n")
        if line.startswith("ERR "):
            self.kill()
            raise ChildError(f"child {self.pid} failed: {line[4:].replace(' | ', chr(10))}")
        return line

    def expect(self, wanted: str) -> None:
        """Read one line and check it is ``wanted``."""
        line = self.readline()
        assert line == wanted, f"child {self.pid} said {line!r}, expected {wanted!r}"

    def drain(self) -> list[str]:
        """Every line left in the pipe, until the child is gone and EOF."""
        lines = []
        while (line := self.readline()) is not None:
            lines.append(line)
        return lines

    def send(self, line: str) -> None:
        os.write(self._down, line.encode("utf-8") + b"\n")

    def kill(self) -> int:
        """SIGKILL the child (if not yet reaped) and reap it; returns the wait status."""
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            return self.wait()
        return self.status

    def wait(self) -> int:
        if self.status is None:
            _, self.status = os.waitpid(self.pid, 0)
        return self.status

    def close(self) -> None:
        self.kill()
        self._reader.close()
        os.close(self._down)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
