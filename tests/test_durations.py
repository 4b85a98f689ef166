"""Durations: a timedelta or seconds in the API, ``30s``/``15m``/``1h``/``7d`` on the CLI.

The defect: ``state.cleanup(7)`` meant 7 days while ``queue.prune(7)`` meant 7 seconds.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import jobledger
from jobledger import ConfigError, JobQueue, JobState, Worker
from jobledger._durations import parse_duration, to_seconds, to_timedelta
from jobledger.cli import _worker as worker_cli_module
from jobledger.cli import cli
from tests.conftest import FakeClock

# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("1h", 3600),
        ("7d", 7 * 86400),
        ("2w", 14 * 86400),
        ("36h", 36 * 3600),
        ("1h30m", 5400),
        ("1d 12h", 36 * 3600),
        (" 1H30M ", 5400),
        ("1.5h", 5400),
        ("90", 90),  # a bare number is seconds
        ("0.5", 0.5),
        ("0", 0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "7x", "h", "1h-", "seven days", "-5", "1h 5"])
def test_parse_duration_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match=r"30s, 15m, 1h, 7d|negative"):
        parse_duration(text)


def test_to_seconds_and_to_timedelta() -> None:
    assert to_seconds(dt.timedelta(minutes=2), "x") == 120.0
    assert to_seconds(5, "x") == 5.0
    assert to_timedelta(2.5, "x") == dt.timedelta(seconds=2.5)
    for bad in (-1, dt.timedelta(seconds=-1), math.nan, math.inf, True, "5"):
        with pytest.raises(ConfigError, match="poll_interval"):
            to_seconds(bad, "poll_interval")  # type: ignore[arg-type]


# -- JobState.cleanup and JobQueue.prune --------------------------------------------------------


@pytest.fixture
def state(tmp_path: Path) -> JobState:
    clock = FakeClock("2025-01-20T10:30:00+00:00")
    s = JobState(tmp_path / "state", timezone="UTC", durability="flush", clock=clock)
    for date in ("2025-01-01", "2025-01-12", "2025-01-19", "2025-01-20"):
        s.taskset("a", "t", ["x"], date=date).mark_done("x")
    return s


def _dates(keys: list[jobledger.TaskSetKey]) -> list[str]:
    return [k.date for k in keys]


def test_cleanup_with_a_timedelta_does_not_warn(state: JobState) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        doomed = state.cleanup(dt.timedelta(days=7), dry_run=True)
        assert _dates(doomed) == ["2025-01-01", "2025-01-12"]
        assert _dates(state.cleanup(days=7, dry_run=True)) == ["2025-01-01", "2025-01-12"]


def test_cleanup_with_a_bare_number_still_means_days_but_warns(state: JobState) -> None:
    with pytest.deprecated_call(match=r"pass a timedelta.*days=7"):
        doomed = state.cleanup(7, dry_run=True)
    assert _dates(doomed) == ["2025-01-01", "2025-01-12"]  # days: the sets of 1-19 survive
    with pytest.deprecated_call():
        assert _dates(state.cleanup(older_than=7)) == ["2025-01-01", "2025-01-12"]
    assert _dates(state.keys()) == ["2025-01-19", "2025-01-20"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"older_than": dt.timedelta(days=1), "days": 1},
        {"older_than": dt.timedelta(days=-1)},
        {"days": -1},
        {"days": True},
        {"older_than": "7d"},
    ],
)
def test_cleanup_refuses_a_missing_doubled_or_bad_age(
    state: JobState, kwargs: dict[str, object]
) -> None:
    with pytest.raises(ConfigError):
        state.cleanup(**kwargs)  # type: ignore[arg-type]
    assert len(state.keys()) == 4


def test_prune_takes_seconds_or_a_timedelta_and_refuses_negative(tmp_path: Path) -> None:
    clock = FakeClock("2025-01-20T10:30:00+00:00")
    with JobQueue(tmp_path / "q", durability="flush", clock=clock) as q:
        q.enqueue({"type": "t"}, job_id="done")
        assert q.claim() is not None
        q.complete("done", None)
        clock.advance(seconds=60)
        assert q.prune(dt.timedelta(minutes=2)) == 0
        assert q.prune(120) == 0  # seconds, as the timedelta above
        with pytest.raises(ConfigError, match="older_than"):
            q.prune(-1)  # would have pruned every finished job, however recent
        assert q.get("done") is not None
        assert q.prune(30) == 1


def test_api_durations_take_timedelta_or_seconds(tmp_path: Path) -> None:
    q = JobQueue(
        tmp_path / "q",
        retry_delay=dt.timedelta(seconds=2),
        max_retry_delay=dt.timedelta(minutes=1),
        recover_every=dt.timedelta(seconds=3),
    )
    assert (q.retry_delay, q.max_retry_delay, q.recover_every) == (2.0, 60.0, 3.0)
    w = Worker(
        q,
        {"t": lambda job: None},
        poll_interval=dt.timedelta(milliseconds=100),
        grace_period=dt.timedelta(minutes=1),
        handle_signals=False,
    )
    assert (w.poll_interval, w.grace_period) == (0.1, 60.0)
    with pytest.raises(ConfigError, match="grace_period"):
        Worker(q, {"t": lambda job: None}, grace_period=-1)
    with pytest.raises(ConfigError, match="retry_delay"):
        JobQueue(tmp_path / "q", retry_delay=-5)
    q.close()


def test_taskset_wait_takes_a_timedelta(tmp_path: Path) -> None:
    state = JobState(tmp_path / "s", durability="flush")
    holder = state.taskset("a", "t", ["x"])
    with holder:
        waiting = state.taskset("a", "t", wait=dt.timedelta(0))
        with pytest.raises(jobledger.AlreadyRunning):
            waiting.acquire()
        with pytest.raises(jobledger.AlreadyRunning):
            state.taskset("a", "t").acquire(wait=dt.timedelta(0))
    with pytest.raises(ConfigError, match="wait"):
        state.taskset("a", "t", wait=-1)


# -- the CLI's duration options -----------------------------------------------------------------


def test_enqueue_delay_takes_units(tmp_path: Path) -> None:
    qdir = tmp_path / "q"
    qdir.mkdir()
    before = dt.datetime.now(dt.timezone.utc)
    result = CliRunner().invoke(
        cli, ["jobs", "enqueue", "t", "--dir", str(qdir), "--id", "j", "--delay", "1h30m"]
    )
    assert result.exit_code == 0, result.output
    with JobQueue(qdir) as q:
        job = q.get("j")
    assert job is not None and job.run_after is not None
    run_after = dt.datetime.fromisoformat(job.run_after.replace("Z", "+00:00"))
    assert dt.timedelta(minutes=89) < run_after - before < dt.timedelta(minutes=91)
    bare = CliRunner().invoke(
        cli, ["jobs", "enqueue", "t", "--dir", str(qdir), "--id", "k", "--delay", "90"]
    )
    assert bare.exit_code == 0, bare.output  # a bare number: seconds, as before


@pytest.mark.parametrize(
    "args",
    [
        ["cleanup", "--older-than", "7"],
        ["jobs", "prune", "--older-than", "7"],
    ],
)
def test_older_than_needs_a_unit(tmp_path: Path, args: list[str]) -> None:
    """A bare number used to mean days here: read as seconds now it would delete far more,
    so it is refused with the two spellings to choose from."""
    (tmp_path / "q").mkdir()
    if args[0] == "jobs":
        args = [*args, "--dir", str(tmp_path / "q")]
    else:
        args = ["--dir", str(tmp_path / "s"), *args]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "Invalid value for '--older-than'" in result.stderr
    assert "7d for days or 7s for seconds" in result.stderr


@pytest.mark.parametrize("option", ["--delay", "--older-than", "--grace"])
def test_bad_durations_are_usage_errors_naming_the_forms(tmp_path: Path, option: str) -> None:
    args = {
        "--delay": ["jobs", "enqueue", "t", "--dir", str(tmp_path / "q"), "--delay", "soon"],
        "--older-than": ["--dir", str(tmp_path), "cleanup", "--older-than", "soon"],
        "--grace": ["worker", "--dir", str(tmp_path), "--handlers", "m:H", "--grace", "soon"],
    }[option]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.stderr
    assert "cannot read the duration 'soon'" in result.stderr
    assert "30s, 15m, 1h, 7d" in result.stderr


def test_cleanup_older_than_in_hours_and_minutes(tmp_path: Path) -> None:
    state = JobState(tmp_path / "s", durability="flush", timezone="UTC")
    today = state.today()
    for days_ago in (0, 3, 10):
        date = (today - dt.timedelta(days=days_ago)).isoformat()
        state.taskset("a", "t", ["x"], date=date).mark_done("x")
    result = CliRunner().invoke(
        cli, ["--dir", str(tmp_path / "s"), "cleanup", "--older-than", "1w"]
    )
    assert result.exit_code == 0, result.output
    assert "Removed 1 task set" in result.stdout
    result = CliRunner().invoke(
        cli, ["--dir", str(tmp_path / "s"), "cleanup", "--older-than", "48h", "--dry-run"]
    )
    assert "Would remove 1 task set" in result.stdout


@pytest.fixture
def handlers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "durations_test_handlers"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent("HANDLERS = {'t': lambda job: None}\n"), encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    yield f"{name}:HANDLERS"
    sys.modules.pop(name, None)


def test_worker_grace_takes_units(
    tmp_path: Path, handlers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float] = []

    class Recording(Worker):
        def __init__(self, *args: object, **kwargs: object) -> None:
            seen.append(kwargs["grace_period"])  # type: ignore[arg-type]
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker_cli_module, "Worker", Recording)
    (tmp_path / "q").mkdir()
    for grace, seconds in (("1m30s", 90.0), ("45", 45.0), (None, 30.0)):
        args = ["worker", "--dir", str(tmp_path / "q"), "--handlers", handlers, "--until-empty"]
        result = CliRunner().invoke(cli, args + (["--grace", grace] if grace else []))
        assert result.exit_code == 0, result.output
        assert seen[-1] == seconds
