"""The live views, ``status --watch`` and ``jobs top``, in a real terminal.

Each runs as a child process on a pseudo-terminal of its own (its controlling terminal,
so that a Ctrl-C typed there is the kernel's SIGINT, as at a keyboard), 50 rows by 200
columns. The test reads the terminal until the expected text has been drawn (a generous
deadline, no sleeping), then presses ``q`` or Ctrl-C, or sends SIGTERM, and checks that
the child exits 0 and leaves the terminal as it found it: the settings it had (no cbreak
mode left behind) and the normal screen (the alternate one left, the cursor shown).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobledger
from tests.backends.files.test_read_only import damaged, snapshot
from tests.cli.conftest import ALICE, BOB, build, fill
from tests.cli.test_jobs_cli import PreparedQueue, prepared_queue
from tests.conftest import BACKENDS, FakeClock

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="pseudo-terminals as on Linux")

#: How long a child may take to draw or to exit: a loaded machine starts Python slowly.
DEADLINE = 60.0
ROWS, COLS = 50, 200
# CSI sequences, other two-byte escapes, OSC strings: what is left is the text drawn.
_ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")
LEAVE_ALT_SCREEN = b"\x1b[?1049l"
SHOW_CURSOR = b"\x1b[?25h"


def _take_terminal() -> None:  # pragma: no cover - runs in the child, before exec
    # The child leads a new session (start_new_session): its stdout, the terminal,
    # becomes its controlling terminal, whose Ctrl-C signals its process group.
    fcntl.ioctl(1, termios.TIOCSCTTY, 0)


class Terminal:
    """``python -m jobledger ARGS`` on a pseudo-terminal; stdin is the terminal too,
    unless ``stdin_tty`` is False (then /dev/null)."""

    def __init__(
        self, args: list[str], *, stdin_tty: bool = True, rows: int = ROWS, cols: int = COLS
    ) -> None:
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.before = termios.tcgetattr(self.slave)
        env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": os.pathsep.join(sys.path)}
        for name in ("COLUMNS", "LINES", "NO_COLOR", "JOBLEDGER_QUEUE_DIR", "JOBLEDGER_VERBOSE"):
            env.pop(name, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobledger", *args],
            stdin=self.slave if stdin_tty else subprocess.DEVNULL,
            stdout=self.slave,
            stderr=self.slave,
            env=env,
            start_new_session=True,
            preexec_fn=_take_terminal,
        )
        self.raw = b""

    def _read(self, timeout: float) -> bool:
        """Take what the child wrote within ``timeout`` seconds; False if nothing came."""
        ready, _, _ = select.select([self.master], [], [], max(0.0, timeout))
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the terminal has no writer left
            return False
        self.raw += chunk
        return bool(chunk)

    @property
    def text(self) -> str:
        return _ESCAPES.sub(b"", self.raw).decode("utf-8", "replace")

    def expect(self, *pattern: str) -> str:
        """Read until the text drawn matches every regular expression; the text."""
        deadline = time.monotonic() + DEADLINE
        while not all(re.search(p, self.text) for p in pattern):
            if self.proc.poll() is not None:
                self._read(0)
                if all(re.search(p, self.text) for p in pattern):
                    break
                raise AssertionError(
                    f"the child exited ({self.proc.returncode}) before drawing {pattern}:\n"
                    f"{self.text[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern} not drawn within {DEADLINE} s:\n{self.text}")
            self._read(deadline - time.monotonic())
        return self.text

    def expect_bytes(self, data: bytes, start: int = 0) -> bytes:
        """Read until ``data`` has been written after offset ``start``; what was written
        from there. (A pseudo-terminal hands the child's writes over to this side a moment
        later: bytes written just before the child exited may still be on their way.)"""
        deadline = time.monotonic() + DEADLINE
        while data not in self.raw[start:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"{data!r} not written within {DEADLINE} s: {self.raw!r}")
            self._read(deadline - time.monotonic())
        return self.raw[start:]

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def exit_status(self) -> int:
        """Wait for the child to end (reading what it writes meanwhile); its status."""
        deadline = time.monotonic() + DEADLINE
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"the child did not exit within {DEADLINE} s")
            self._read(0.05)  # drained meanwhile, so that the child never blocks writing
        return self.proc.returncode

    def settings(self) -> list[object]:
        return termios.tcgetattr(self.slave)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def _lflag(settings: list[object]) -> int:
    flags = settings[3]
    assert isinstance(flags, int)
    return flags


def _quit_and_check(terminal: Terminal, how: str) -> None:
    """Quit as ``how`` says; exit 0, the terminal as it was before the child started."""
    # While the view runs its terminal is in cbreak mode: no line editing, no echo.
    assert not _lflag(terminal.settings()) & (termios.ICANON | termios.ECHO)
    drawn = len(terminal.raw)
    if how == "q":
        terminal.press(b"q")
    elif how == "ctrl-c":
        terminal.press(b"\x03")  # the terminal's interrupt character: SIGINT
    elif how == "sigterm":
        terminal.proc.send_signal(signal.SIGTERM)
    else:  # pragma: no cover
        raise AssertionError(how)
    assert terminal.exit_status() == 0, terminal.text[-3000:]
    assert terminal.settings() == terminal.before
    after = terminal.expect_bytes(LEAVE_ALT_SCREEN, drawn)
    assert SHOW_CURSOR in after, after
    assert "Traceback" not in terminal.text and "Aborted" not in terminal.text


# -- the prepared places ---------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def queue_at(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PreparedQueue]:
    """The queue of tests/cli/test_jobs_cli.py: Queued 2, Running 1 (job "running"),
    Completed 2, Failed 1, Cancelled 1; a folder or a PostgreSQL schema."""
    yield from prepared_queue(request, tmp_path)


@pytest.fixture(params=BACKENDS)
def state_args(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """The options that point ``status`` at today's sets of tests/cli/conftest.py (alice
    3/5 with quiz-2 failed twice, bob 5/5), in a folder or a PostgreSQL schema."""
    if request.param == "files":
        prepared = build(tmp_path)
        yield ["--config", str(prepared.config)]
        return
    url = request.getfixturevalue("pg_url")
    today = dt.datetime.now(dt.timezone.utc).date()
    clock = FakeClock(f"{today.isoformat()}T10:30:00+00:00")
    state = jobledger.JobState(url=url, timezone="UTC", durability="flush", clock=clock)
    fill(state, clock, today)
    state.close()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"jobState": {"timezone": "UTC"}}))
    yield ["--config", str(config), "--dir", url]


# -- jobs top --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["q", "ctrl-c"])
def test_jobs_top_draws_the_queue_and_quits(
    queue_at: PreparedQueue, terminals: list[Terminal], how: str
) -> None:
    terminal = Terminal(["jobs", "top", "--dir", str(queue_at.dir)])
    terminals.append(terminal)
    text = terminal.expect(
        r"Jobs: Queued 2, Running 1, Completed 2, Failed 1, Cancelled 1 \(total 7\)",
        r"│ running\s+│ slow\s+│",
        r"q or Ctrl-C quits",
    )
    running = next(line for line in text.splitlines() if re.search(r"│ running\s+│", line))
    assert queue_at.queue.worker_id in running  # the worker that holds it
    assert "1/3" in running  # its attempt
    assert re.search(r"│ default\s+│ 2\s+│ 1\s+│", text)  # live jobs by queue
    _quit_and_check(terminal, how)


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_jobs_top_without_a_terminal_on_stdin_reads_no_keys_and_quits(
    queue_at: PreparedQueue, terminals: list[Terminal], how: str
) -> None:
    terminal = Terminal(["jobs", "top", "--dir", str(queue_at.dir)], stdin_tty=False)
    terminals.append(terminal)
    terminal.expect(r"│ running\s+│")
    # stdin is not read: the terminal's settings are left alone (no cbreak mode).
    assert terminal.settings() == terminal.before
    drawn = len(terminal.raw)
    if how == "ctrl-c":
        terminal.press(b"\x03")  # the terminal, in its own mode, signals SIGINT
    else:
        terminal.proc.send_signal(signal.SIGTERM)
    assert terminal.exit_status() == 0
    assert terminal.settings() == terminal.before
    assert SHOW_CURSOR in terminal.expect_bytes(LEAVE_ALT_SCREEN, drawn)


def test_jobs_top_quits_on_sigterm_and_restores_cbreak(
    queue_at: PreparedQueue, terminals: list[Terminal]
) -> None:
    terminal = Terminal(["jobs", "top", "--dir", str(queue_at.dir)])
    terminals.append(terminal)
    terminal.expect(r"│ running\s+│")
    _quit_and_check(terminal, "sigterm")


@pytest.mark.parametrize("command", [["jobs", "top", "--dir"], ["status", "--watch", "--dir"]])
def test_a_missing_folder_is_an_error_before_the_terminal_changes(
    tmp_path: Path, terminals: list[Terminal], command: list[str]
) -> None:
    terminal = Terminal([*command, str(tmp_path / "typo")])
    terminals.append(terminal)
    assert terminal.exit_status() == 2
    terminal.expect(r"error: the (queue|state) folder .*typo does not exist")
    assert terminal.settings() == terminal.before
    assert b"\x1b[?1049h" not in terminal.raw  # the alternate screen never taken
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_quitting_while_the_first_frame_is_written_gives_the_terminal_back(
    queue_at: PreparedQueue, terminals: list[Terminal], how: str
) -> None:
    # A frame larger than the terminal's buffers: still being written when the key comes.
    terminal = Terminal(["jobs", "top", "--dir", str(queue_at.dir)], rows=400, cols=400)
    terminals.append(terminal)
    terminal.expect(r"q or Ctrl-C quits")  # the first line only
    _quit_and_check(terminal, how)


def test_ctrl_z_gives_the_terminal_back_before_stopping_and_takes_it_again(
    queue_at: PreparedQueue, terminals: list[Terminal]
) -> None:
    """The child leads a process group no shell controls (orphaned): the kernel does not
    stop such a group at Ctrl-Z, so the view goes on at once, as after ``fg``."""
    # A screen whose frame is larger than the terminal's buffers: the child is still
    # writing its first frame (blocked until this side reads on) when Ctrl-Z comes.
    terminal = Terminal(
        ["jobs", "top", "--dir", str(queue_at.dir), "--interval", "1h"], rows=400, cols=400
    )
    terminals.append(terminal)
    terminal.expect(r"q or Ctrl-C quits")  # the first line only
    drawn = len(terminal.raw)
    terminal.press(b"\x1a")  # the terminal's suspend character: SIGTSTP
    after = terminal.expect_bytes(b"\x1b[?1049h", drawn)
    assert after.index(LEAVE_ALT_SCREEN) < after.index(b"\x1b[?1049h")
    assert SHOW_CURSOR in after[: after.index(b"\x1b[?1049h")]
    # Redrawn at once, not an hour later, and still reading keys in cbreak mode.
    terminal.expect_bytes(b"q or Ctrl-C quits", drawn + after.index(b"\x1b[?1049h"))
    _quit_and_check(terminal, "q")


# -- status --watch --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["q", "ctrl-c"])
def test_status_watch_draws_todays_sets_and_quits(
    state_args: list[str], terminals: list[Terminal], how: str
) -> None:
    terminal = Terminal([*state_args, "status", "--watch", "--interval", "0.5s"])
    terminals.append(terminal)
    terminal.expect(
        rf"│ {re.escape(ALICE)}\s+│ daily-set\s+│ 3/5\s+│",
        rf"│ {re.escape(BOB)}\s+│ daily-set\s+│ 5/5\s+│",
        r"q or Ctrl-C quits",
        r"│ quiz-2\s+│ 2\s+│ \S+\s+│ TimeoutError: page did not load",  # failed, its attempts
        r"│ desktop-search\s+│ 0/1\s+│",
    )
    _quit_and_check(terminal, how)


# -- reads only ------------------------------------------------------------------------------


@pytest.mark.parametrize("index", ["missing", "stale"])
def test_the_live_views_leave_a_damaged_folder_as_it_was(
    tmp_path: Path, terminals: list[Terminal], index: str
) -> None:
    """A corrupt job file, a dead worker's Running job, a missing or stale queue.json, a
    corrupt set file: several refreshes later, not a byte or an mtime has changed."""
    state_dir, qdir, _ = damaged(tmp_path, index)
    before = snapshot(tmp_path)
    for args in (
        ["jobs", "top", "--dir", str(qdir), "--interval", "0.1"],
        ["--dir", str(state_dir), "status", "--watch", "--interval", "0.1"],
    ):
        terminal = Terminal(args)
        terminals.append(terminal)
        if args[0] == "jobs":
            # The rate is measured from the second refresh on: three refreshes at least.
            terminal.expect(r"│ b\s+│ T\s+│ gone-host-1-deadbeef \(not alive\)", r"0\.0/s")
        else:
            terminal.expect(r"│ 29/30\s+│")
            terminal.expect_bytes(b"\x1b[H", len(terminal.raw))  # another frame drawn
        _quit_and_check(terminal, "q")
        assert snapshot(tmp_path) == before, args
