"""Every state command on a prepared folder: output content and exit codes."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobledger.cli import _maint, cli

from .conftest import ALICE, BOB, TASKS, Prepared


def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- status ---------------------------------------------------------------------------------


def test_status_shows_todays_sets_per_account(prepared: Prepared) -> None:
    result = prepared.run("status")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert prepared.today.isoformat() in out
    lines = {line for line in out.splitlines() if "daily-set" in line}
    alice = next(line for line in lines if ALICE in line)
    bob = next(line for line in lines if BOB in line)
    assert "3/5" in alice and "60%" in alice
    assert re.search(r"│ 1\s+│", alice)  # one failed task (quiz-2)
    assert "5/5" in bob and "100%" in bob
    assert "desktop-search" in out
    # only today: the old sets are not listed
    assert prepared.day(3) not in out


def test_status_names_the_live_lease_holder(prepared: Prepared) -> None:
    with prepared.state().taskset(BOB, "daily-set"):
        result = prepared.run("status")
    assert result.exit_code == 0
    bob = next(line for line in result.stdout.splitlines() if BOB in line)
    assert f"pid {os.getpid()}" in bob


def test_status_with_nothing_today(tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()  # a missing folder is an error now (issue 11)
    result = CliRunner().invoke(cli, ["--dir", str(tmp_path / "none"), "status"])
    assert result.exit_code == 0
    assert "No task sets" in result.stdout


# -- show -----------------------------------------------------------------------------------


def test_show_lists_each_task_with_failures_progress_and_durations(prepared: Prepared) -> None:
    result = prepared.run("show", ALICE)
    assert result.exit_code == 0, result.output
    out = result.stdout
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert "done" in rows["quiz-1"] and "3.00s" in rows["quiz-1"]
    assert "failed" in rows["quiz-2"] and "TimeoutError: page did not load" in rows["quiz-2"]
    assert re.search(r"│ 2\s+│", rows["quiz-2"])  # two failed attempts
    assert "remaining" in rows["search-desktop"]
    assert "12/30" in rows["search"]
    assert "3/5 done" in out


def test_show_type_filter_and_date(prepared: Prepared) -> None:
    result = prepared.run("show", ALICE, "--type", "desktop-search")
    assert "desktop-search" in result.stdout and "quiz-2" not in result.stdout
    past = prepared.run("show", BOB, "--date", prepared.day(3))
    assert past.exit_code == 0
    assert "5/5 done" in past.stdout and prepared.day(3) in past.stdout


def test_show_json_prints_the_records(prepared: Prepared) -> None:
    result = prepared.run("show", ALICE, "--json")
    assert result.exit_code == 0
    docs = json.loads(result.stdout)
    assert [d["type"] for d in docs] == ["daily-set", "desktop-search"]
    daily = docs[0]
    assert daily["account"] == ALICE and daily["date"] == prepared.today.isoformat()
    assert daily["completed"] == TASKS[:3]
    assert daily["remaining"] == TASKS[3:]
    assert daily["failures"]["quiz-2"]["attempts"] == 2
    assert docs[1]["progress"]["search"] == {"done": 12, "total": 30}
    assert json.loads(prepared.run("show", "nobody@x", "--json").stdout) == []


def test_show_unknown_account_and_bad_date(prepared: Prepared) -> None:
    result = prepared.run("show", "nobody@example.com")
    assert result.exit_code == 0
    assert "No task sets" in result.stdout and "nobody@example.com" in result.stdout
    bad = prepared.run("show", ALICE, "--date", "20-01-2025")
    assert bad.exit_code == 2
    assert "YYYY-MM-DD" in bad.stderr


# -- list -----------------------------------------------------------------------------------


def test_list_shows_every_state_file(prepared: Prepared) -> None:
    result = prepared.run("list")
    assert result.exit_code == 0
    out = result.stdout
    assert "6 task sets" in out
    for day in (prepared.day(10), prepared.day(3), prepared.today.isoformat()):
        assert f"{ALICE}/daily-set-{day}.json" in out
    row = next(line for line in out.splitlines() if f"daily-set-{prepared.day(10)}" in line)
    assert "1/5" in row and ALICE in row


# -- stats ----------------------------------------------------------------------------------


def test_stats_shows_rates_and_the_failing_task(prepared: Prepared) -> None:
    result = prepared.run("stats")
    assert result.exit_code == 0, result.output
    out = result.stdout
    lines = out.splitlines()
    # 7 days: alice has today's daily-set (3/5), desktop-search (0/1) and 3 days ago (5/5)
    alice = next(line for line in lines if ALICE in line)
    assert "1/3" in alice and "8/11" in alice and "73%" in alice
    bob = next(line for line in lines if BOB in line)
    assert "2/2" in bob and "100%" in bob
    failing = next(line for line in lines if "quiz-2" in line and "TimeoutError" in line)
    assert re.search(r"│ 4\s+│", failing)  # 2 today + 1 for each account 3 days ago
    assert "Task durations" in out and "+50%" in out


def test_stats_days_narrows_the_window(prepared: Prepared) -> None:
    result = prepared.run("stats", "--days", "1")
    assert result.exit_code == 0
    assert "3 sets" in result.stdout
    assert prepared.run("stats", "--days", "0").exit_code == 2


# -- cleanup --------------------------------------------------------------------------------


def test_cleanup_dry_run_removes_nothing(prepared: Prepared) -> None:
    before = prepared.state().keys()
    result = prepared.run("cleanup", "--older-than", "7d", "--dry-run")
    assert result.exit_code == 0
    assert "Would remove 1 task set" in result.stdout and prepared.day(10) in result.stdout
    assert prepared.state().keys() == before


def test_cleanup_removes_only_old_sets(prepared: Prepared) -> None:
    result = prepared.run("cleanup", "--older-than", "7d")
    assert result.exit_code == 0
    assert "Removed 1 task set" in result.stdout
    dates = {k.date for k in prepared.state().keys()}
    assert dates == {prepared.day(3), prepared.today.isoformat()}
    again = prepared.run("cleanup", "--older-than", "1w")
    assert again.exit_code == 0 and "Nothing to remove" in again.stdout


def test_cleanup_bad_age_is_a_usage_error(prepared: Prepared) -> None:
    result = prepared.run("cleanup", "--older-than", "seven days")
    assert result.exit_code == 2
    # a click usage error now (one duration type for every option), naming the forms
    assert "Invalid value for '--older-than'" in result.stderr and "7d" in result.stderr


# -- reset ----------------------------------------------------------------------------------


def test_reset_account(prepared: Prepared) -> None:
    result = prepared.run("reset", "--account", ALICE, "--yes")
    assert result.exit_code == 0, result.output
    assert "Deleted 4 task sets" in result.stdout
    assert {k.account for k in prepared.state().keys()} == {BOB}


def test_reset_all(prepared: Prepared) -> None:
    result = prepared.run("reset", "--all", "--yes")
    assert result.exit_code == 0
    assert prepared.state().keys() == []
    assert "nothing to reset" in prepared.run("reset", "--all", "--yes").stdout


@pytest.mark.parametrize("args", [[], ["--account", ALICE, "--all"]])
def test_reset_needs_exactly_one_of_account_and_all(prepared: Prepared, args: list[str]) -> None:
    result = prepared.run("reset", *args, "--yes")
    assert result.exit_code == 2
    assert "--account" in result.stderr and "--all" in result.stderr
    assert len(prepared.state().keys()) == 6


def test_reset_without_yes_and_without_a_tty_refuses(prepared: Prepared) -> None:
    result = prepared.run("reset", "--all")
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert len(prepared.state().keys()) == 6


def test_reset_asks_on_a_tty(prepared: Prepared, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_maint, "stdin_is_tty", lambda: True)
    declined = prepared.run("reset", "--account", BOB, input="n\n")
    assert declined.exit_code == 1
    assert len(prepared.state().keys()) == 6
    accepted = prepared.run("reset", "--account", BOB, input="y\n")
    assert accepted.exit_code == 0
    assert {k.account for k in prepared.state().keys()} == {ALICE}


def test_reset_of_a_running_set_is_refused(prepared: Prepared) -> None:
    with prepared.state().taskset(BOB, "daily-set"):
        result = prepared.run("reset", "--account", BOB, "--yes")
    assert result.exit_code == 1
    assert "error:" in result.stderr and "already running" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    # the running set survives
    assert (BOB, "daily-set", prepared.today.isoformat()) in prepared.state().keys()


# -- du -------------------------------------------------------------------------------------

DU_LINE = re.compile(r"^Job state directory: [\d.]+(B|KB|MB|GB) \([\d,]+ files\)$")


def test_du_prints_the_documents_line(prepared: Prepared) -> None:
    result = prepared.run("du")
    assert result.exit_code == 0
    assert DU_LINE.match(result.stdout.rstrip("\n"))
    _size, files = prepared.state().usage()
    assert f"({files:,} files)" in result.stdout


def test_du_of_a_missing_folder(tmp_path: Path) -> None:
    # Issue 11: a missing folder is an error naming it, no longer "0B (0 files)".
    result = CliRunner().invoke(cli, ["--dir", str(tmp_path / "nothing"), "du"])
    assert result.exit_code == 2
    assert f"{tmp_path / 'nothing'} does not exist" in result.stderr
    assert not (tmp_path / "nothing").exists()


def test_du_of_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()
    result = CliRunner().invoke(cli, ["--dir", str(tmp_path / "nothing"), "du"])
    assert result.exit_code == 0
    assert result.stdout == "Job state directory: 0B (0 files)\n"


# -- doctor ---------------------------------------------------------------------------------


def test_doctor_repairs_then_reports_healthy(prepared: Prepared) -> None:
    today = prepared.today.isoformat()
    corrupt = prepared.dir / ALICE / f"daily-set-{today}.json"
    corrupt.write_bytes(b'{"date": "trunc')
    temp = prepared.dir / BOB / f".daily-set-{today}.json.tmp-{dead_pid()}-0"
    temp.write_bytes(b"{}")

    result = prepared.run("doctor")
    assert result.exit_code == 1
    out = result.stdout
    assert re.search(r"^corrupt: .*daily-set-.*\(repaired\)$", out, re.M)
    assert re.search(r"^temp: .*\.tmp-.*\(repaired\)$", out, re.M)
    assert "2 problems found" in out
    assert not temp.exists()
    # restored from its previous generation: alice still has her 3 completed tasks
    assert len(prepared.state().taskset(ALICE, "daily-set").completed) == 3

    # The corrupt file set aside waits for a person: doctor exits 1 until it is gone.
    again = prepared.run("doctor")
    assert again.exit_code == 1, again.output
    (aside,) = (prepared.dir / ALICE).glob("*.corrupt-*")
    assert f"note: {aside}" in again.stdout
    assert "inspect each, then delete it" in again.stdout
    aside.unlink()
    healed = prepared.run("doctor")
    assert healed.exit_code == 0, healed.output
    assert "No problems found" in healed.stdout


def test_doctor_no_repair_leaves_files(prepared: Prepared) -> None:
    temp = prepared.dir / BOB / f".daily-set-{prepared.day(3)}.json.tmp-{dead_pid()}-0"
    temp.write_bytes(b"{}")
    result = prepared.run("doctor", "--no-repair")
    assert result.exit_code == 1
    assert "NOT repaired" in result.stdout and "without --no-repair" in result.stdout
    assert temp.exists()


def test_doctor_on_a_healthy_folder(prepared: Prepared) -> None:
    result = prepared.run("doctor")
    assert result.exit_code == 0
    assert "No problems found" in result.stdout


# -- global options and errors --------------------------------------------------------------


def test_config_with_an_unknown_key_names_it(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"jobState": {"dir": str(tmp_path), "colour": "red"}}))
    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "jobState.colour" in result.stderr and str(config) in result.stderr


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "nope.json"), "list"])
    assert result.exit_code == 2
    assert "cannot read the config file" in result.stderr


def test_dir_overrides_the_config(prepared: Prepared, tmp_path: Path) -> None:
    config = tmp_path / "other.json"
    config.write_text(json.dumps({"jobState": {"dir": str(tmp_path / "empty")}}))
    args = ["--config", str(config), "--dir", str(prepared.dir), "list"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0
    assert "6 task sets" in result.stdout and str(prepared.dir) in result.stdout
    plain = CliRunner().invoke(cli, ["--dir", str(prepared.dir), "list"])
    assert "6 task sets" in plain.stdout


def test_disabled_config_still_reads_the_folder(prepared: Prepared, tmp_path: Path) -> None:
    config = tmp_path / "off.json"
    config.write_text(json.dumps({"jobState": {"enabled": False, "dir": str(prepared.dir)}}))
    result = CliRunner().invoke(cli, ["--config", str(config), "list"])
    assert result.exit_code == 0
    assert "6 task sets" in result.stdout
    assert "enabled is false" in result.stderr


def test_invalid_name_is_a_usage_error(prepared: Prepared) -> None:
    result = prepared.run("reset", "--account", "", "--yes")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "account" in result.stderr


def test_verbose_turns_on_info_logging(prepared: Prepared) -> None:
    result = prepared.run("--verbose", "doctor")
    assert result.exit_code == 0
    logger = logging.getLogger("jobledger")
    assert logger.level == logging.INFO and logger.handlers


def test_main_and_python_dash_m(prepared: Prepared) -> None:
    for module in ("jobledger", "jobledger.cli"):
        proc = subprocess.run(
            [sys.executable, "-m", module, "--config", str(prepared.config), "du"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert DU_LINE.match(proc.stdout.strip())
