"""Policy details that do not depend on the backend: dates, time zones, config, disabled."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

import jobledger
from jobledger._durations import parse_duration


def test_date_defaults_to_today_in_the_configured_zone(tmp_path, clock):
    clock.set("2025-01-20T23:30:00+00:00")
    utc = jobledger.JobState(tmp_path, timezone="UTC", clock=clock)
    tokyo = jobledger.JobState(tmp_path, timezone="Asia/Tokyo", clock=clock)
    la = jobledger.JobState(tmp_path, timezone="America/Los_Angeles", clock=clock)
    assert utc.taskset("a", "t").date == dt.date(2025, 1, 20)
    assert tokyo.taskset("a", "t").date == dt.date(2025, 1, 21)
    assert la.taskset("a", "t").date == dt.date(2025, 1, 20)


def test_a_run_crossing_midnight_stays_on_its_day(tmp_path, clock):
    clock.set("2025-01-20T23:59:59+00:00")
    state = jobledger.JobState(tmp_path, timezone="UTC", clock=clock)
    ts = state.taskset("a", "daily-set", ["x", "y"])
    clock.advance(seconds=2)  # now 2025-01-21
    ts.mark_done("x")
    assert (tmp_path / "a" / "daily-set-2025-01-20.json").exists()
    assert not (tmp_path / "a" / "daily-set-2025-01-21.json").exists()
    # A new run on the new day starts fresh; yesterday's history is kept.
    today = state.taskset("a", "daily-set", ["x", "y"])
    assert today.date == dt.date(2025, 1, 21)
    assert today.remaining == ["x", "y"]
    assert state.taskset("a", "daily-set", date="2025-01-20").completed == ["x"]


def test_last_update_is_iso_utc_with_milliseconds(tmp_path, clock):
    clock.set("2025-01-20T11:30:00.123456+01:00")
    state = jobledger.JobState(tmp_path, timezone="Europe/Paris", clock=clock)
    state.taskset("user@email.com", "daily-set", ["a"]).mark_done("a")
    doc = json.loads((tmp_path / "user@email.com" / "daily-set-2025-01-20.json").read_text())
    assert doc["lastUpdate"] == "2025-01-20T10:30:00.123Z"
    assert list(doc)[:6] == ["date", "account", "type", "completed", "remaining", "lastUpdate"]


def test_date_argument_forms(tmp_path, clock):
    state = jobledger.JobState(tmp_path, timezone="UTC", clock=clock)
    assert state.taskset("a", "t", date=dt.date(2024, 2, 29)).date == dt.date(2024, 2, 29)
    assert state.taskset("a", "t", date="2024-02-29").date == dt.date(2024, 2, 29)
    for bad in ("2024-02-30", "20240229", "yesterday", dt.datetime(2024, 1, 1)):
        with pytest.raises(jobledger.ConfigError):
            state.taskset("a", "t", date=bad)


def test_unknown_timezone_is_a_config_error(tmp_path):
    with pytest.raises(jobledger.ConfigError, match="Mars/Olympus"):
        jobledger.JobState(tmp_path, timezone="Mars/Olympus")


def test_constructing_and_opening_lazily(tmp_path, clock):
    state = jobledger.JobState(tmp_path / "nothing-yet", clock=clock)
    assert not (tmp_path / "nothing-yet").exists()
    state.taskset("a", "t")  # no plan, nothing to save
    assert not (tmp_path / "nothing-yet").exists()
    state.taskset("a", "t", ["x"])
    assert (tmp_path / "nothing-yet" / "a").is_dir()


def test_disabled_mode_reads_and_writes_nothing(tmp_path, clock):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "t-2025-01-20.json").write_text("not even json")
    state = jobledger.JobState(tmp_path, enabled=False, clock=clock)
    with state.taskset("a", "t", ["x", "y"]) as ts:
        assert list(ts.pending()) == ["x", "y"]
        with ts.task("x"):
            pass
        ts.mark_failed("y", "nope")
        assert ts.completed == ["x"]
    assert state.taskset("a", "t", ["x", "y"]).remaining == ["x", "y"]
    assert sorted(os.listdir(tmp_path / "a")) == ["t-2025-01-20.json"]
    assert (tmp_path / "a" / "t-2025-01-20.json").read_text() == "not even json"
    assert state.keys() == []


def test_empty_dir_means_sessions_job_state_under_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = jobledger.JobState.from_config({"jobState": {"enabled": True, "dir": ""}})
    assert state.dir == str(tmp_path / "sessions" / "job-state")


def test_from_config_file(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "other": 1,
                "jobState": {"dir": str(tmp_path / "s"), "timezone": "UTC", "durability": "flush"},
            }
        )
    )
    state = jobledger.JobState.from_config(cfg)
    assert state.dir == str(tmp_path / "s")
    assert state.durability == "flush"
    assert state.timezone == "UTC"
    assert jobledger.JobState.from_config({}).enabled is True


@pytest.mark.parametrize(
    ("block", "match"),
    [
        ({"enabeld": True}, "jobState.enabeld"),
        ({"enabled": "yes"}, "jobState.enabled"),
        ({"dir": 3}, "jobState.dir"),
        ({"durability": "always"}, "jobState.durability"),
        ({"timezone": 5}, "jobState.timezone"),
    ],
)
def test_config_errors_name_the_key(block, match):
    with pytest.raises(jobledger.ConfigError, match=match):
        jobledger.JobState.from_config({"jobState": block})


def test_config_file_errors_name_the_path(tmp_path):
    missing = tmp_path / "missing.json"
    with pytest.raises(jobledger.ConfigError, match=r"missing\.json"):
        jobledger.JobState.from_config(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(jobledger.ConfigError, match=r"broken\.json"):
        jobledger.JobState.from_config(broken)
    with pytest.raises(jobledger.ConfigError, match="jobState"):
        jobledger.JobState.from_config({"jobState": []})


def test_bad_constructor_arguments(tmp_path):
    with pytest.raises(jobledger.ConfigError, match="durability"):
        jobledger.JobState(tmp_path, durability="sometimes")
    with pytest.raises(jobledger.ConfigError, match="enabled"):
        jobledger.JobState(tmp_path, enabled="no")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", None, 3, "a\x00b"])
def test_names_must_be_non_empty_strings(tmp_path, bad):
    state = jobledger.JobState(tmp_path)
    with pytest.raises(jobledger.InvalidNameError):
        state.taskset(bad, "t")
    with pytest.raises(jobledger.InvalidNameError):
        state.taskset("a", bad)
    with pytest.raises(jobledger.InvalidNameError):
        state.taskset("a", "t", [bad])


def test_log_lines_match_the_document(tmp_path, clock, caplog_jl):
    state = jobledger.JobState(tmp_path, clock=clock, timezone="UTC")
    ts = state.taskset(
        "user@email.com",
        "daily-set",
        ["daily-check-in", "quiz-1", "poll-1", "quiz-2", "search-desktop"],
    )
    for t in ("daily-check-in", "quiz-1", "poll-1"):
        ts.mark_done(t)
    caplog_jl.clear()
    ts = state.taskset("user@email.com", "daily-set")
    for task in ts.pending():
        with ts.task(task):
            pass
        break
    assert caplog_jl.messages[:5] == [
        "Loading job state for user@email.com (daily-set)",
        "Found 3 completed tasks, 2 remaining",
        "Skipping completed task: daily-check-in",
        "Skipping completed task: quiz-1",
        "Skipping completed task: poll-1",
    ]
    assert "Starting task: quiz-2" in caplog_jl.messages


def test_ages_are_read_by_the_one_duration_parser():
    # The CLI's ages (--older-than) go through parse_duration; its own second parser, which
    # read a bare number as days, is gone with the command that used it.
    assert parse_duration("7d") == dt.timedelta(days=7)
    assert parse_duration("2w") == dt.timedelta(weeks=2)
    assert parse_duration("36h") == dt.timedelta(hours=36)
    with pytest.raises(ValueError, match="7d"):
        parse_duration("soon")
