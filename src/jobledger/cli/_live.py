"""The loop of the live terminal views (``status --watch``, ``jobs top``): a frame drawn
again every ``--interval`` seconds on the terminal's alternate screen until ``q``, Ctrl-C
or SIGTERM, with the terminal given back as it was on every way out.

A view is a function that reads and returns one frame (a rich renderable); this module
owns the terminal:

- **Not a terminal.** When stdout is not a terminal (piped, redirected, a test runner),
  one frame is printed and the command exits 0, as ``top -b -n 1`` does: a script or a
  log gets the same figures, once, without escape codes.
- **Keys.** While the view runs, and only then, a terminal on stdin is put in cbreak mode
  (keys arrive one by one, unechoed; Ctrl-C still sends SIGINT), so that ``q`` quits
  without Enter. Its settings are put back on every way out: ``q``, Ctrl-C, SIGTERM and an
  error alike. When stdin is not a terminal it is not read at all: Ctrl-C quits.
- **Ctrl-C** quits at once, whether the view is waiting or reading (the read is
  interrupted), with exit status 0. Nothing catches a second Ctrl-C, so one pressed while
  the view is closing (a database connection being given back) acts at once too.
- **Ctrl-Z** (SIGTSTP) gives the terminal back (normal screen, cursor, settings) before
  the process stops; ``fg`` takes it again and redraws at once.
- **SIGTERM** quits as ``q`` does (exit 0), the terminal restored; the handler before the
  view is put back afterwards.
- **Warnings** the library logs while the view runs (a corrupt file met by a read) would
  be written over the screen at every refresh: they are shown at the top of the frame of
  the read that met them instead, each once. Those of a first read that fails are logged
  as usual, before its error.
- **Pace.** The next read starts ``interval`` seconds after the last one ended, or as
  long after as that read took, if longer: a view over a large folder never keeps the
  disk busy more than half of the time.
- **Errors.** An error reading the first frame is the command's error, before the
  terminal is touched (a mistyped folder says so and exits 2). An error on a later read
  (a database restarting) is shown under the last good frame and the view reads again at
  the next refresh; it quits only when asked to.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import IO, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from .._clock import iso_utc
from .._errors import JobLedgerError
from .._redact import redact_text
from ._render import short_time

__all__ = ["Frame", "KeyInput", "is_terminal", "run_live"]

#: A view: ``frame(live)`` reads what it shows and returns it. ``live`` is False for the
#: one frame printed when stdout is not a terminal (the view then says no keys work).
Frame = Callable[[bool], RenderableType]

#: The keys that quit (any case).
QUIT_KEYS = b"qQ"


def is_terminal(stream: IO[str]) -> bool:
    """Whether ``stream`` is a terminal (False for a closed or fake stream)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class KeyInput:
    """Keys read from a terminal on ``fd`` in cbreak mode, or, without one, no keys at all
    (``fd`` None): :meth:`wait` then only waits. ``wake``, a pipe's read end, ends a wait
    early when a byte comes (a redraw asked for)."""

    def __init__(self, fd: int | None, wake: int | None = None) -> None:
        self.fd = fd
        self.wake = wake
        self._saved: list[Any] | None = None

    @classmethod
    def of(cls, stream: IO[str]) -> KeyInput:
        """Keys from ``stream`` if it is a terminal, else none."""
        if os.name != "posix" or not is_terminal(stream):
            return cls(None)
        return cls(stream.fileno())

    def enter(self) -> None:
        """cbreak mode, the settings before kept for :meth:`leave`."""
        if self.fd is None or self._saved is not None:
            return
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd, termios.TCSANOW)

    def leave(self) -> None:
        """The settings :meth:`enter` found, back."""
        if self.fd is None or self._saved is None:
            return
        import termios

        # TCSAFLUSH: keys typed but not read (a q pressed twice) do not reach the shell.
        termios.tcsetattr(self.fd, termios.TCSAFLUSH, self._saved)
        self._saved = None

    @contextlib.contextmanager
    def cbreak(self) -> Iterator[None]:
        """cbreak mode for as long as the block runs; the settings before are put back
        however it ends."""
        try:
            self.enter()
            yield
        finally:
            self.leave()

    def wait(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> bool:
        """Wait up to ``seconds``, or until woken; True as soon as a quit key is pressed."""
        deadline = clock() + seconds
        while True:
            left = deadline - clock()
            if left <= 0:
                return False
            watched = [fd for fd in (self.fd, self.wake) if fd is not None]
            if not watched:
                time.sleep(left)  # Ctrl-C interrupts it: the handler raises
                return False
            ready, _, _ = select.select(watched, [], [], left)
            if not ready:
                return False
            if self.wake is not None and self.wake in ready:
                os.read(self.wake, 64)
                return False
            data = os.read(self.fd, 64) if self.fd is not None else b""
            if not data:
                self.fd = None  # end of input: no more keys, Ctrl-C still quits
                continue
            if any(key in data for key in QUIT_KEYS):
                return True


#: What gives a terminal its normal screen and cursor back, and what takes them again.
_LEAVE_SCREEN = b"\x1b[?25h\x1b[?1049l"
_TAKE_SCREEN = b"\x1b[?1049h\x1b[H\x1b[?25l"


@contextlib.contextmanager
def _suspendable(out: int, keys: KeyInput) -> Iterator[None]:
    """Ctrl-Z (SIGTSTP) while the block runs: the terminal is given back (normal screen,
    cursor, settings) before the process stops, and taken again, with a redraw, when it
    is continued (``fg``). The codes are written straight to ``out``: the handler may run
    in the middle of a frame's write, whose buffers are not to be touched from there."""
    if not hasattr(signal, "SIGTSTP"):  # pragma: no cover - not on Windows
        yield
        return
    wake_r, wake_w = os.pipe()

    def stop(signum: int, frame: FrameType | None) -> None:
        os.write(out, _LEAVE_SCREEN)
        keys.leave()
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        try:
            os.kill(os.getpid(), signal.SIGTSTP)  # stopped here until continued
        finally:
            signal.signal(signal.SIGTSTP, stop)
            keys.enter()
            os.write(out, _TAKE_SCREEN)
            os.write(wake_w, b"r")  # redraw now, not at the end of the wait

    try:
        before = signal.signal(signal.SIGTSTP, stop)
    except ValueError:  # not the main thread
        os.close(wake_r)
        os.close(wake_w)
        yield
        return
    keys.wake = wake_r
    try:
        yield
    finally:
        signal.signal(signal.SIGTSTP, before)
        keys.wake = None
        os.close(wake_r)
        os.close(wake_w)


class _Quit(Exception):
    """Raised by the SIGTERM handler in the main thread: quit as ``q`` does."""


@contextlib.contextmanager
def _sigterm_quits() -> Iterator[None]:
    """SIGTERM raises :class:`_Quit` while the block runs (the main thread only: a
    handler cannot be set elsewhere, and the view then simply has none)."""

    def quit_(signum: int, frame: FrameType | None) -> None:
        raise _Quit

    try:
        before = signal.signal(signal.SIGTERM, quit_)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


class _Warnings(logging.Handler):
    """The jobledger logger's warnings while a view runs, kept to be drawn in the frame."""

    #: The most records kept between two frames: a read that warns per file stays cheap.
    KEEP = 100

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record (the first KEEP of a read)."""
        if len(self.records) < self.KEEP:
            self.records.append(record)

    def take(self) -> list[str]:
        """The distinct messages since the last take, in order; forgotten here."""
        messages = dict.fromkeys(redact_text(r.getMessage()) for r in self.records)
        self.records.clear()
        return list(messages)


@contextlib.contextmanager
def _warnings_kept() -> Iterator[_Warnings]:
    """The jobledger logger's records go to a :class:`_Warnings` for as long as the block
    runs, and nowhere else (not over the screen); those not taken when it ends are logged
    as they would have been."""
    logger = logging.getLogger("jobledger")
    kept = _Warnings()
    handlers, propagate = logger.handlers[:], logger.propagate
    logger.handlers[:] = [kept]
    logger.propagate = False
    try:
        yield kept
    finally:
        logger.handlers[:] = handlers
        logger.propagate = propagate
        for record in kept.records:
            logger.handle(record)


def _with_warnings(frame: RenderableType, messages: list[str]) -> RenderableType:
    if not messages:
        return frame
    return Group(*(Text(f"warning: {m}", "yellow") for m in messages), frame)


def _now() -> str:
    return short_time(iso_utc(dt.datetime.now(dt.timezone.utc)))


def _stale(frame: RenderableType, exc: BaseException, at: str) -> RenderableType:
    """The last good frame with the error of the read that failed under it."""
    message = redact_text(str(exc))
    return Group(
        frame,
        Text(f"reading failed at {at}: {message}; trying again at the next refresh", "red"),
    )


def run_live(
    console: Console,
    frame: Frame,
    interval: float,
    *,
    keys: KeyInput | None = None,
) -> None:
    """Show ``frame`` on ``console`` every ``interval`` seconds until ``q``, Ctrl-C or
    SIGTERM (see the module's notes); one frame when the console is not a terminal."""
    if not is_terminal(console.file):
        console.print(frame(False))
        return
    keys = keys if keys is not None else KeyInput.of(sys.stdin)
    with _warnings_kept() as warnings:
        began = time.monotonic()
        shown = frame(True)  # an error here is the command's, the terminal untouched
        took = time.monotonic() - began
        live = Live(
            _with_warnings(shown, warnings.take()),
            # A console of its own: the CLI's writes long lines whole for the terminal to
            # wrap (soft wrap), which a screen drawn in place would crop instead.
            console=Console(file=console.file, highlight=False),
            screen=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        try:
            with _sigterm_quits(), keys.cbreak():
                # Started and stopped by hand, not by ``with``: a Ctrl-C while the first
                # frame is written (a slow link) interrupts start(), and the screen must be
                # given back all the same, which __exit__ would not do for an __enter__
                # that raised.
                try:
                    # Ctrl-Z is handled from before the screen is taken (a Ctrl-Z while
                    # the first frame is written) until before it is given back (one
                    # after that would take it again for good).
                    with _suspendable(console.file.fileno(), keys):
                        live.start(refresh=True)
                        _loop(live, frame, interval, keys, took, shown, warnings)
                finally:
                    live.stop()  # the normal screen and cursor back, before the settings
        except (KeyboardInterrupt, _Quit):
            pass  # asked to quit: everything above has put back what it changed


def _loop(
    live: Live,
    frame: Frame,
    interval: float,
    keys: KeyInput,
    took: float,
    shown: RenderableType,
    warnings: _Warnings,
) -> None:
    """Read and draw until a quit key; ``took``: how long the first read took, ``shown``
    its frame."""
    # A read slower than the interval spaces the next as long as it took: watching
    # never keeps the storage busy more than half of the time.
    while not keys.wait(max(interval, took)):
        began = time.monotonic()
        try:
            shown = frame(True)
        except (JobLedgerError, OSError) as exc:  # a database's errors included
            drawn = _stale(shown, exc, _now())
        else:
            drawn = shown
        took = time.monotonic() - began
        live.update(_with_warnings(drawn, warnings.take()), refresh=True)
