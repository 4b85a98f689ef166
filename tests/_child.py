"""Forked children that talk to the test over pipes.

A child runs ``target(channel)`` and ends with ``os._exit`` (it never returns into pytest):
0 when ``target`` returned, 1 when it raised. It sends lines up one pipe and receives lines
down another; the parent blocks on pipe reads, so nothing here sleeps to synchronise. An
exception in the child goes up as one ``ERR`` line, which the parent turns into a
``ChildError`` (with the child's traceback) the moment it reads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobledger import Worker

# The prefix of the line that carries a child's traceback; no test line starts with it.
_ERR = "ERR "


class Channel:
    """The child's end: ``send`` lines up to the test, ``recv`` lines down from it."""

    def __init__(self, up: int, down: int) -> None:
        """Wrap the child's ends of the two pipes (raw descriptors)."""
        self._up = up
        self._down = down
        self._buf = b""

    def send(self, line: str) -> None:
        """Send one line to the test."""
        # One write per line: a line never interleaves with another thread's.
        os.write(self._up, line.encode("utf-8", "backslashreplace") + b"\n")

    def recv(self) -> str:
        """The next line from the test; EOFError once the test has closed its end."""
        while b"\n" not in self._buf:
            chunk = os.read(self._down, 4096)
            if not chunk:
                raise EOFError("the parent closed the command pipe")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode("utf-8")


class ChildError(AssertionError):
    """The child raised; the message is its traceback."""


class Child:
    """A forked process running ``target(channel)``; the test's handle on it."""

    def __init__(self, target: Callable[[Channel], None]) -> None:
        """Fork and start ``target`` in the child."""
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
                # JSON keeps the whole traceback on one line, so it cannot be torn apart.
                line = _ERR + json.dumps(traceback.format_exc()) + "\n"
                with contextlib.suppress(BaseException):
                    os.write(up_w, line.encode("ascii"))
            finally:
                os._exit(code)
        os.close(up_w)
        os.close(down_r)
        self.pid = pid
        # File objects, not bare descriptors: a Child dropped without close() frees them.
        self._up = os.fdopen(up_r, "rb", buffering=0)
        self._down = os.fdopen(down_w, "wb", buffering=0)
        self._buf = b""
        self.status: int | None = None
        self.errors: list[str] = []

    def fileno(self) -> int:
        """The descriptor of the child's output, so that a Child can be passed to select()."""
        return self._up.fileno()

    def readline(self) -> str | None:
        """The child's next line; None at end of file; ChildError if it is a traceback."""
        while b"\n" not in self._buf:
            chunk = None if self._up.closed else self._up.read(65536)
            if not chunk:
                return None
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\n")
        line = raw.decode("utf-8")
        if line.startswith(_ERR):
            text = json.loads(line[len(_ERR) :])
            self.errors.extend(text.splitlines())
            self.kill()
            raise ChildError(f"child {self.pid} failed:\n{text}")
        return line

    def expect(self, line: str) -> None:
        """Read one line and check that it is exactly ``line``."""
        got = self.readline()
        assert got == line, f"child {self.pid} said {got!r}, expected {line!r}"

    def read_until(self, prefix: str) -> str:
        """Skip lines up to the first that starts with ``prefix``; return the rest of it."""
        seen = []
        while True:
            line = self.readline()
            if line is None:
                self.wait()
                raise AssertionError(
                    f"child {self.pid} ended (status {self.status}) before saying "
                    f"{prefix!r}; it said {seen}"
                )
            if line.startswith(prefix):
                return line[len(prefix) :]
            seen.append(line)

    def drain(self) -> list[str]:
        """Every line left, until the child (dead or alive) closes its end."""
        lines = []
        while (line := self.readline()) is not None:
            lines.append(line)
        return lines

    def send(self, line: str) -> None:
        """Send one line to the child."""
        self._down.write(line.encode("utf-8") + b"\n")

    def kill(self) -> int:
        """SIGKILL the child unless it is already reaped, and reap it; its wait status."""
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        return self.wait()

    def wait(self) -> int:
        """Reap the child; its wait status (see os.waitstatus_to_exitcode)."""
        if self.status is None:
            _, self.status = os.waitpid(self.pid, 0)
            self._down.close()
            # Dead, it writes nothing more, and what it wrote can be read without blocking:
            # keep that for readline() and drain(), and free the pipe at once.
            os.set_blocking(self._up.fileno(), False)
            while chunk := self._up.read(65536):
                self._buf += chunk
            self._up.close()
        return self.status

    def exit_code(self) -> int:
        """Reap the child; its exit code (negative: killed by that signal)."""
        return os.waitstatus_to_exitcode(self.wait())

    def check(self) -> None:
        """Reap the child and fail unless ``target`` returned (exit 0, nothing raised)."""
        code = self.exit_code()
        if code > 0:
            self.drain()  # raises ChildError with the traceback if it is still unread
        assert not self.errors, "\n".join(self.errors)
        assert code == 0, f"child {self.pid} exited with {code}"

    def close(self) -> None:
        """Kill and reap the child if need be, which closes its pipes."""
        self.kill()

    def __enter__(self) -> Child:
        """The child itself; it is closed on leaving the block."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the child, whatever happened in the block."""
        self.close()


def first_readable(children: Sequence[Child], timeout: float) -> Child | None:
    """The first of ``children`` with a line (or EOF) to read within ``timeout`` s, or None."""
    for child in children:
        # A line already read off the pipe, or a reaped child's, would not wake select().
        if b"\n" in child._buf or child._up.closed:
            return child
    ready, _, _ = select.select(list(children), [], [], timeout)
    return next((c for c in children if c in ready), None)


def released_together(targets: Sequence[Callable[[Channel], None]]) -> list[str]:
    """Fork one child per target, wait until every one said ``ready``, release them at once
    (``go``), and return what each reports (its ``result`` line), in the targets' order."""
    children = [Child(t) for t in targets]
    try:
        for child in children:
            child.expect("ready")
        for child in children:
            child.send("go")
        results = [child.read_until("result ") for child in children]
        for child in children:
            child.check()
        return results
    finally:
        for child in children:
            child.close()


def serve_until_stopped(chan: Channel, worker: Worker) -> None:
    """In a child that said it is ready: wait for ``go``, then run ``worker`` until the
    parent says ``stop``.

    A thread is the only reader of the pipe: ``stop``, or the parent gone (EOF), stops the
    worker, so a failed test never leaves a worker serving behind it."""
    assert chan.recv() == "go"

    def listen() -> None:
        try:
            while chan.recv() != "stop":
                pass
        except EOFError:
            pass
        worker.stop()

    threading.Thread(target=listen, daemon=True).start()
    worker.run()


class Spawned:
    """A child started with ``subprocess`` (not forked), its output read line by line:
    stdout and stderr merged (``merge_stderr``), or stderr alone with stdout discarded.
    Tests synchronise on the lines it prints, never on time."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None,
        env: dict[str, str],
        merge_stderr: bool,
        new_session: bool = False,
    ) -> None:
        """Start ``args``; ``new_session``: in a session (and process group) of its own,
        which a test can signal as a terminal signals its foreground group."""
        self.proc = subprocess.Popen(
            list(args),
            cwd=cwd,
            start_new_session=new_session,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if merge_stderr else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            env=env,
            text=True,
        )
        stream = self.proc.stdout if merge_stderr else self.proc.stderr
        assert stream is not None
        self._stream = stream
        self.lines: list[str] = []
        # A safety net against a hung test run (a child that does not exit when it
        # should), not a synchronisation: nothing waits on it.
        self._watchdog = threading.Timer(120, self.proc.kill)
        self._watchdog.start()

    def wait_for(self, text: str) -> str:
        """Read lines until one contains ``text``; fail if the process ends first."""
        for line in self._stream:
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"the process ended before printing {text!r}:\n{self.output}")

    def finish(self) -> int:
        """Read the rest, wait for the exit; the exit code."""
        self.lines.extend(self._stream)
        code = self.proc.wait()
        self._watchdog.cancel()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        return code

    @property
    def output(self) -> str:
        """Every line read so far."""
        return "".join(self.lines)
