"""The parts of the live views, in this process: the completion rate's window, the
failures ``jobs top`` names, its frames on every backend, the keys, the loop's handling of
a failing read and of warnings, and what the commands do when stdout is not a terminal.

(``test_live_views.py`` runs the commands themselves on a pseudo-terminal.)
"""

from __future__ import annotations

import io
import logging
import os
import re
import select
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console, RenderableType
from rich.text import Text

from jobledger import JobLedgerError, JobState
from jobledger._attempt_services import AttemptServices
from jobledger.cli import cli
from jobledger.cli._live import KeyInput, run_live
from jobledger.cli._top import SHOWN_FAILURES, RateWindow, TopView, live_by_queue
from jobledger.cli._watch import StatusView
from tests.cli.conftest import ALICE, BOB, Prepared
from tests.cli.test_jobs_cli import PreparedQueue, build_queue
from tests.conftest import FakeClock, QueueFactory

# -- the completion rate ---------------------------------------------------------------------


def test_the_rate_is_the_change_of_the_count_over_the_window() -> None:
    window = RateWindow(span=60.0)
    assert window.rate(10.0) is None
    window.add(0.0, 100)
    assert window.rate(10.0) is None  # one sample: nothing measured yet
    window.add(1.0, 103)
    assert window.rate(10.0) == (3.0, 1.0)
    for second in range(2, 31):
        window.add(float(second), 103 + 2 * (second - 1))  # 2 a second from here on
    per_second, span = window.rate(10.0) or (None, None)
    assert (per_second, span) == (2.0, 10.0)  # the last 10 s only
    per_minute, span = window.rate(60.0) or (None, None)
    assert span == 30.0 and per_minute == pytest.approx((161 - 100) / 30)


def test_the_window_forgets_old_samples_and_starts_again_when_the_count_falls() -> None:
    window = RateWindow(span=60.0)
    for second in range(1000):
        window.add(float(second), second)
    assert len(window._samples) <= 62  # bounded however long the view runs
    assert window.rate(60.0) == (1.0, 60.0)
    window.add(1000.0, 5)  # a prune deleted completed jobs
    assert window.rate(10.0) is None
    window.add(1001.0, 9)
    assert window.rate(10.0) == (4.0, 1.0)


def test_an_interval_longer_than_the_window_still_measures() -> None:
    window = RateWindow()
    window.add(0.0, 0)
    window.add(30.0, 60)
    assert window.rate(10.0) == (2.0, 30.0)


# -- failures and queues ---------------------------------------------------------------------


def test_the_latest_failures_are_shown_newest_first_and_only_they_are_read(
    make_queue: QueueFactory, clock: FakeClock
) -> None:
    q = make_queue()
    for n in range(SHOWN_FAILURES + 3):
        q.enqueue({"type": "T"}, job_id=f"j{n}", max_attempts=1)
        assert q.claim() is not None
        clock.advance(seconds=1)
        q.fail(f"j{n}", RuntimeError(f"error {n}"))
    view = TopView(make_queue(), Console(file=io.StringIO(), width=200, height=60), 1.0)
    frame = _text(view.frame(True))
    shown = re.findall(r"│ (j\d+)\s+│ T\s+│ 1/1", frame)
    newest = [f"j{n}" for n in range(SHOWN_FAILURES + 2, 2, -1)]
    assert shown == newest
    assert "RuntimeError: error 10" in frame and "error 2" not in frame
    assert f"lists all {SHOWN_FAILURES + 3}" in frame


def test_live_jobs_are_counted_per_queue_without_reading_a_job(
    make_queue: QueueFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="g1", queue="gpu")
    q.enqueue({"type": "T"}, job_id="g2", queue="gpu")
    q.enqueue({"type": "T"}, job_id="d1")
    q.enqueue({"type": "T"}, job_id="done")
    claimed = q.claim()
    assert claimed is not None and claimed.job_id == "g1"
    finished = q.claim(queues=["default"])
    assert finished is not None
    q.complete(finished.job_id)
    reader = make_queue()
    monkeypatch.setattr(reader.reader, "live", _no_history)
    monkeypatch.setattr(reader.reader, "all_records", _no_history)
    assert live_by_queue(reader.live_page("Queued", limit=0).by_queue) == {
        "gpu": {"Queued": 1, "Running": 1},
        "default": {"Queued": 1, "Running": 0},
    }


# -- jobs top's frames -----------------------------------------------------------------------


def _text(renderable: RenderableType, height: int = 60) -> str:
    out = io.StringIO()
    Console(file=out, width=200, height=height, highlight=False).print(renderable)
    return out.getvalue()


def test_top_frames_follow_the_queue_without_reading_history(
    make_queue: QueueFactory, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    q = make_queue()
    for n in range(4):
        q.enqueue({"type": "train"}, job_id=f"job-{n}", max_attempts=1)
    assert q.claim() is not None and q.claim() is not None  # job-0, job-1
    worker = q.worker_id
    reader = make_queue()
    monkeypatch.setattr(reader.reader, "all_records", _no_history)
    view = TopView(reader, Console(file=io.StringIO(), height=60), 1.0)

    first = _text(view.frame(True))
    assert "Jobs: Queued 2, Running 2, Completed 0, Failed 0, Cancelled 0 (total 4)" in first
    assert re.search(rf"│ job-0\s+│ train\s+│ {worker}\s+│", first)
    assert "Completed per second: - " in first
    assert "No job has failed." in first

    q.fail("job-0", RuntimeError("CUDA out of memory"))
    q.complete("job-1", {"ok": True})
    clock.advance(seconds=2)
    second = _text(view.frame(True))
    assert "Queued 2, Running 0, Completed 1, Failed 1" in second
    failed = r"│ job-0\s+│ train\s+│ 1/1\s+│ \S+\s+│ RuntimeError: CUDA out of memory"
    assert re.search(failed, second)
    assert "Completed per second: 0.5/s over the last 2.0 s; per minute: 30/min" in second
    assert "No job is running." in second
    assert "q or Ctrl-C quits" in second
    assert "q or Ctrl-C" not in _text(view.frame(False))  # one frame: no keys to tell of


def _no_history() -> Iterator[object]:
    raise AssertionError("jobs top read the history")


def test_top_shows_progress_and_only_as_many_running_jobs_as_fit(
    make_queue: QueueFactory,
) -> None:
    q = make_queue()
    for n in range(30):
        q.enqueue({"type": "T"}, job_id=f"r{n:02d}")
    claimed = q.claim_many(30)
    assert len(claimed) == 30
    first = next(job for job in claimed if job.job_id == "r00")
    services = AttemptServices(q)
    first.with_attempt(services.begin(first)).progress(3, 10)
    services.end("r00")  # the attempt's end writes the report
    view = TopView(make_queue(), Console(file=io.StringIO(), width=200, height=34), 1.0)
    text = _text(view.frame(True), height=34)
    assert "Running jobs (30)" in text
    assert re.search(r"│ r00\s+│.*│ 3/10 30%\s+│", text)
    assert len(text.splitlines()) <= 34  # the frame fits the screen, failures included
    assert "No job has failed." in text
    listed = len(re.findall(r"^│ r\d\d ", text, re.M))
    more = re.search(r"\.\.\. and (\d+) more running jobs", text)
    assert more is not None and listed >= 3 and listed + int(more.group(1)) == 30


# -- keys ------------------------------------------------------------------------------------


def test_keys_quit_on_q_and_nothing_else() -> None:
    read, write = os.pipe()
    try:
        keys = KeyInput(read)
        assert keys.wait(0) is False
        os.write(write, b"x")
        assert keys.wait(0.0) is False  # a key other than q: ignored (read, not kept)
        os.write(write, b"xQ")
        assert keys.wait(30.0) is True
        os.close(write)
        write = -1
        assert keys.wait(0.0) is False
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)


def test_without_a_terminal_on_stdin_no_key_is_read() -> None:
    keys = KeyInput.of(io.StringIO())
    assert keys.fd is None
    with keys.cbreak():  # nothing to change, nothing to restore
        assert keys.wait(0) is False


# -- the loop --------------------------------------------------------------------------------


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Console, int]]:
    """A console on a pseudo-terminal (its output read from the master end), 80 x 12."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "12")
    master, slave = os.openpty()
    out = os.fdopen(slave, "w", encoding="utf-8")
    yield Console(file=out, highlight=False), master
    out.close()
    os.close(master)


_END = "<the test's end mark>"


def _raw(console: Console, master: int) -> bytes:
    """What the view wrote: read until a mark written after it comes through (a
    pseudo-terminal hands writes over to the master end a moment later)."""
    console.file.write(_END)
    console.file.flush()
    raw = b""
    deadline = time.monotonic() + 60
    while _END.encode() not in raw:
        assert time.monotonic() < deadline, raw
        if select.select([master], [], [], deadline - time.monotonic())[0]:
            raw += os.read(master, 65536)
    return raw[: raw.index(_END.encode())]


def _drawn(console: Console, master: int) -> str:
    return re.sub(r"\x1b\[[0-?]*[ -/]*[@-~]", "", _raw(console, master).decode())


def test_a_failed_read_is_shown_under_the_last_frame_and_the_view_goes_on(
    screen: tuple[Console, int],
) -> None:
    console, master = screen
    calls: list[int] = []

    def frame(live: bool) -> RenderableType:
        calls.append(1)
        n = len(calls)
        if n == 2:
            raise JobLedgerError("the disk went away")
        if n == 4:
            raise KeyboardInterrupt  # Ctrl-C while reading
        logging.getLogger("jobledger").warning("odd file %d", n)
        return Text(f"frame {n}")

    run_live(console, frame, 0.1, keys=KeyInput(None))  # returns: Ctrl-C quits quietly
    text = _drawn(console, master)
    assert "frame 1" in text and "frame 3" in text
    assert re.search(r"reading failed at \S+Z: the disk went away; trying again", text)
    # Warnings drawn in the frame of the read that met them, once, not over the screen.
    assert "warning: odd file 1" in text and "warning: odd file 3" in text
    assert len(calls) == 4


def test_an_unexpected_error_gives_the_terminal_back_and_goes_up(
    screen: tuple[Console, int],
) -> None:
    console, master = screen
    tty_in = os.dup(console.file.fileno())  # the keys: the terminal written to
    before = termios.tcgetattr(tty_in)
    calls: list[int] = []

    def frame(live: bool) -> RenderableType:
        calls.append(1)
        if len(calls) == 2:
            # The keys were read in cbreak mode while the view ran.
            assert not termios.tcgetattr(tty_in)[3] & termios.ICANON
            raise ValueError("a bug")
        return Text("frame")

    try:
        with pytest.raises(ValueError, match="a bug"):
            run_live(console, frame, 0.1, keys=KeyInput(tty_in))
        assert termios.tcgetattr(tty_in) == before
        drawn = _raw(console, master)
        assert drawn.rindex(b"\x1b[?1049l") > drawn.rindex(b"frame")  # the screen given back
    finally:
        os.close(tty_in)


def test_the_first_read_failing_is_the_commands_error_with_its_warnings(
    screen: tuple[Console, int], caplog: pytest.LogCaptureFixture
) -> None:
    console, master = screen

    def frame(live: bool) -> RenderableType:
        logging.getLogger("jobledger").warning("corrupt file seen")
        raise JobLedgerError("no such database")

    with pytest.raises(JobLedgerError, match="no such database"):
        run_live(console, frame, 1.0, keys=KeyInput(None))
    assert "corrupt file seen" in caplog.text  # logged as usual
    assert _drawn(console, master) == ""  # the screen never taken


# -- not a terminal --------------------------------------------------------------------------


@pytest.fixture
def pq(tmp_path: Path) -> Iterator[PreparedQueue]:
    prepared = build_queue(tmp_path)
    yield prepared
    prepared.queue.close()


def test_piped_jobs_top_prints_one_frame(pq: PreparedQueue) -> None:
    result = CliRunner().invoke(cli, ["jobs", "top", "--dir", str(pq.dir)])
    assert result.exit_code == 0, result.output
    assert "Jobs: Queued 2, Running 1, Completed 2, Failed 1, Cancelled 1" in result.stdout
    assert re.search(r"│ running\s+│ slow\s+│", result.stdout)
    assert result.stdout.count(f"Queue {pq.dir} at ") == 1 and "\x1b[" not in result.stdout
    assert "'jobledger jobs list --status Failed' lists all 1" in result.stdout


def test_piped_status_watch_prints_one_frame(prepared: Prepared) -> None:
    result = prepared.run("status", "--watch")
    assert result.exit_code == 0, result.output
    assert re.search(rf"│ {re.escape(ALICE)}\s+│ daily-set\s+│ 3/5\s+│", result.stdout)
    assert "q or Ctrl-C" not in result.stdout


def test_usage_errors(prepared: Prepared, pq: PreparedQueue) -> None:
    both = prepared.run("status", "--watch", "--plain")
    assert both.exit_code == 2 and "--watch or --plain" in both.output
    alone = prepared.run("status", "--interval", "2s")
    assert alone.exit_code == 2 and "add --watch" in alone.output
    fast = CliRunner().invoke(cli, ["jobs", "top", "--dir", str(pq.dir), "--interval", "0.01"])
    assert fast.exit_code == 2 and "too short" in fast.output


# -- status --watch's frames -----------------------------------------------------------------


def test_status_frames_follow_todays_sets(
    make_state: Callable[[], JobState], clock: FakeClock
) -> None:
    state = make_state()
    state.taskset(BOB, "daily-set", ["x"], date="2025-01-19").mark_done("x")
    view = StatusView(make_state(), "the place", 0.5)
    assert "No task sets for 2025-01-20 yet." in _text(view.frame(True))  # yesterday's not

    tasks = [f"t{n}" for n in range(12)]
    with state.taskset(ALICE, "daily-set", tasks) as ts:
        ts.mark_done("t0")
        for n in range(1, 12):  # eleven failures, a second apart: the newest ten shown
            clock.advance(seconds=1)
            ts.mark_failed(f"t{n}", RuntimeError(f"error {n}"))
        ts.progress("t11", 4, 10)
        live = _text(view.frame(True))
        assert "at 2025-01-20T10:30:11Z, every 0.5s; q or Ctrl-C quits" in live
        row = next(line for line in live.splitlines() if ALICE in line and "daily-set" in line)
        assert re.search(r"│ 1/12\s+│.*│ 11\s+│ t11 4/10\s+│", row)
        assert f"pid {os.getpid()}" in row  # the lease holder
        assert "Failed tasks, newest first (10 of 11)" in live
        errors = re.findall(r"RuntimeError: error (\d+)", live)
        assert errors == [str(n) for n in range(11, 1, -1)]  # t1, the oldest, left out
        ts.mark_done("t11")
    again = _text(view.frame(True))
    row = next(line for line in again.splitlines() if ALICE in line and "daily-set" in line)
    assert re.search(r"│ 2/12\s+│.*│ 10\s+│ -\s+│ \S+\s+│ -\s+│$", row.rstrip())  # no holder now
