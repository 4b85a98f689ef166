"""Tables that fit the terminal, ``--plain`` output, one time format, counts that agree.

The console's width is forced as a terminal would set it: ``COLUMNS`` in the environment,
with the piped-output minimum (``MIN_WIDTH``) turned off, or a rich Console of that width.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from jobledger import JobQueue
from jobledger.cli import _render, cli
from jobledger.cli._render import bar, table
from tests.cli.conftest import ALICE, BOB, Prepared
from tests.cli.test_jobs_cli import PreparedQueue, build_queue

LONG_ERROR = "RuntimeError: model download timed out after 600 seconds on the third mirror"
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def pq(tmp_path: Path) -> Iterator[PreparedQueue]:
    prepared = build_queue(tmp_path)
    yield prepared
    prepared.queue.close()


def _uuid_failed_job(queue: JobQueue) -> str:
    job_id = queue.enqueue({"type": "flaky-uuid"}, max_attempts=1)
    assert queue.claim(types=["flaky-uuid"]) is not None
    queue.fail(job_id, RuntimeError(LONG_ERROR.removeprefix("RuntimeError: ")))
    return job_id


def run_at(width: int, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """The CLI as on a terminal ``width`` columns wide."""
    monkeypatch.setattr(_render, "MIN_WIDTH", 0)
    return CliRunner(env={"COLUMNS": str(width)}).invoke(cli, list(args))


def _words(text: str) -> str:
    """The output's text with the layout's line breaks and table rules taken out."""
    return " ".join(re.sub(r"[│┃║|]", " ", text).split())


# -- tables that fit ----------------------------------------------------------------------


@pytest.mark.parametrize("width", [80, 60])
def test_jobs_list_keeps_ids_whole_and_the_error_at_narrow_widths(
    pq: PreparedQueue, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    job_id = _uuid_failed_job(pq.queue)
    result = run_at(width, monkeypatch, "jobs", "list", "--dir", str(pq.dir))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "…" not in out
    # the id is on one line, whole, so it can be pasted into `jobs show` / `jobs retry`
    assert any(job_id in line for line in out.splitlines())
    for other in ("old-done", "q-high", "running", "cancelled"):
        assert other in out
    # the Error column is still there, folded or not
    assert "Error" in out
    assert LONG_ERROR in _words(out).replace("- ", "-")


@pytest.mark.parametrize("width", [80, 60])
def test_status_keeps_accounts_whole_and_running_in_at_narrow_widths(
    prepared: Prepared, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    with prepared.state().taskset(BOB, "daily-set"):
        result = run_at(width, monkeypatch, "--config", str(prepared.config), "status")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "…" not in out
    lines = out.splitlines()
    assert any(ALICE in line for line in lines) and any(BOB in line for line in lines)
    assert "Running in" in out
    assert f"pid {os.getpid()}" in _words(out)


@pytest.mark.parametrize("width", [80, 60])
def test_show_keeps_task_names_whole(
    prepared: Prepared, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    result = run_at(width, monkeypatch, "--config", str(prepared.config), "show", ALICE)
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    for task in ("daily-check-in", "search-desktop", "quiz-2"):
        assert any(task in line for line in result.stdout.splitlines())
    # the Last error column is there, its words folded onto lines of their own maybe
    words = set(_words(result.stdout).split())
    assert {"TimeoutError:", "page", "did", "not", "load"} <= words


@pytest.mark.parametrize("width", [120, 80, 60, 40])
def test_fit_table_never_cuts_a_cell(width: int) -> None:
    long_id = "e5729558-59d7-47a5-b465-5152b6a180ab"
    account = "a-very-long-account-name-for-the-nightly-batch@example.com"
    t = table(
        "Jobs", "Job id", "Account", "Progress", "Error", fold=("Error",), optional=("Progress",)
    )
    t.add_row(long_id, account, bar(3, 5), LONG_ERROR)
    buf = io.StringIO()
    # as the CLI's consoles: a line wider than the terminal is written whole, not cropped
    Console(file=buf, width=width, color_system=None, soft_wrap=True).print(t)
    out = buf.getvalue()
    assert "…" not in out
    lines = out.splitlines()
    assert any(long_id in line for line in lines)
    assert any(account in line for line in lines)
    assert LONG_ERROR in _words(out)


def test_fit_table_keeps_the_box_and_the_bar_when_there_is_room() -> None:
    t = table(None, "Account", "Progress", optional=("Progress",))
    t.add_row("alice", bar(3, 5))
    buf = io.StringIO()
    Console(file=buf, width=100, color_system=None).print(t)
    assert "│ alice" in buf.getvalue() and "60%" in buf.getvalue()


# -- one time format ----------------------------------------------------------------------


def test_every_time_is_iso_utc(prepared: Prepared, pq: PreparedQueue) -> None:
    with prepared.state().taskset(BOB, "daily-set"):
        status = prepared.run("status")
    shown = CliRunner().invoke(cli, ["jobs", "show", "old-done", "--dir", str(pq.dir)])
    listed = prepared.run("list")
    pruned = CliRunner().invoke(
        cli, ["jobs", "prune", "--older-than", "7d", "--dry-run", "--dir", str(pq.dir)]
    )
    for result in (status, shown, listed, pruned):
        assert result.exit_code == 0, result.output
        assert ISO.search(result.stdout), result.stdout
        # the old spelling (space, or milliseconds) is gone
        assert not re.search(r"\d\d:\d\d:\d\d\.\d{3}Z|\d \d\d:\d\d:\d\dZ", result.stdout)
    assert re.search(rf"{prepared.today.isoformat()}T10:30:\d\dZ", listed.stdout)


# -- --plain --------------------------------------------------------------------------------


def _plain(result: Result) -> list[list[str]]:
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "│" not in result.stdout
    return [line.split("\t") for line in result.stdout.splitlines()]


def test_jobs_list_plain(pq: PreparedQueue) -> None:
    job_id = _uuid_failed_job(pq.queue)
    delayed = pq.queue.enqueue({"type": "echo"}, run_after=dt.timedelta(hours=1))
    lines = _plain(pq.run("list", "--plain"))
    assert lines[0] == [
        "job_id",
        "type",
        "status",
        "attempts",
        "max_attempts",
        "priority",
        "created",
        "started",
        "finished",
        "run_after",
        "worker",
        "error",
    ]
    by_id = {line[0]: dict(zip(lines[0], line, strict=True)) for line in lines[1:]}
    assert len(by_id) == 9
    failed = by_id[job_id]
    assert failed["status"] == "Failed" and failed["error"] == LONG_ERROR
    assert (failed["attempts"], failed["max_attempts"]) == ("1", "1")
    assert ISO.fullmatch(failed["finished"])
    assert by_id["q-high"]["priority"] == "5" and by_id["q-high"]["started"] == ""
    assert ISO.fullmatch(by_id[delayed]["run_after"])
    assert by_id["running"]["worker"] == pq.queue.worker_id
    queued = _plain(pq.run("list", "--plain", "--status", "Queued"))
    assert {line[0] for line in queued[1:]} == {"q-high", "q-low", delayed}


def test_plain_escapes_tabs_and_newlines(pq: PreparedQueue) -> None:
    job_id = pq.queue.enqueue({"type": "tabby"}, max_attempts=1)
    assert pq.queue.claim(types=["tabby"]) is not None
    pq.queue.fail(job_id, "line one\n\tline two \\ end")
    lines = _plain(pq.run("list", "--plain", "--status", "Failed"))
    row = next(line for line in lines if line[0] == job_id)
    assert len(row) == len(lines[0])
    assert row[-1] == "line one\\n\\tline two \\\\ end"


def test_json_and_plain_together_is_a_usage_error(pq: PreparedQueue) -> None:
    result = pq.run("list", "--plain", "--json")
    assert result.exit_code == 2 and "--json or --plain" in result.stderr


def test_jobs_counts_plain(pq: PreparedQueue) -> None:
    lines = _plain(pq.run("counts", "--plain"))
    assert lines[0] == ["status", "jobs"]
    assert ["Queued", "2"] in lines and ["Cancelled", "1"] in lines


def test_list_status_and_show_plain(prepared: Prepared) -> None:
    listed = _plain(prepared.run("list", "--plain"))
    assert listed[0] == ["account", "type", "date", "done", "total", "last_update", "file"]
    assert len(listed) == 7
    old = next(line for line in listed if line[2] == prepared.day(10))
    assert old[:5] == [ALICE, "daily-set", prepared.day(10), "1", "5"]
    assert old[6] == f"{ALICE}/daily-set-{prepared.day(10)}.json"

    with prepared.state().taskset(BOB, "daily-set"):
        status = _plain(prepared.run("status", "--plain"))
    assert status[0] == [
        "account",
        "type",
        "date",
        "done",
        "total",
        "failed",
        "last_update",
        "running_in",
    ]
    rows = {(line[0], line[1]): line for line in status[1:]}
    assert rows[(ALICE, "daily-set")][3:6] == ["3", "5", "1"]
    assert rows[(ALICE, "daily-set")][7] == ""
    assert f"pid {os.getpid()}" in rows[(BOB, "daily-set")][7]

    shown = _plain(prepared.run("show", ALICE, "--plain", "--type", "daily-set"))
    assert shown[0][3:7] == ["task", "status", "failed_attempts", "last_error"]
    tasks = {line[3]: line for line in shown[1:]}
    assert tasks["quiz-1"][4] == "done" and float(tasks["quiz-1"][9]) == 3.0
    assert tasks["quiz-2"][4:7] == ["failed", "2", "TimeoutError: page did not load"]
    assert tasks["search-desktop"][4] == "remaining"


def test_plain_with_nothing_prints_only_the_header(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["--dir", str(tmp_path / "empty"), "list", "--plain"])
    assert result.exit_code == 0
    assert result.stdout == "account\ttype\tdate\tdone\ttotal\tlast_update\tfile\n"


# -- Run after, singular and plural ---------------------------------------------------------


def test_jobs_list_shows_run_after_of_delayed_jobs(pq: PreparedQueue) -> None:
    plain = pq.run("list")
    assert "Run after" not in plain.stdout  # no job waits: no column
    result = pq.run("enqueue", "echo", "--id", "later", "--delay", "1h30m")
    assert result.exit_code == 0, result.output
    after = pq.queue.get("later")
    assert after is not None and after.run_after is not None
    listed = pq.run("list")
    assert "Run after" in listed.stdout
    row = next(line for line in listed.stdout.splitlines() if "│ later " in line)
    assert _render.short_time(after.run_after) in row


def test_counts_agree_with_their_nouns(
    prepared: Prepared, pq: PreparedQueue, tmp_path: Path
) -> None:
    pq.queue.cancel("q-low")
    one = pq.run("list", "--status", "Queued")
    assert "1 Queued job in" in one.stdout
    prepared.state().reset(BOB)
    prepared.state().reset(ALICE)
    prepared.state().taskset(ALICE, "daily-set", ["x"]).mark_done("x")
    assert "1 task set in" in prepared.run("list").stdout
    stats = prepared.run("stats", "--days", "1")
    assert "(1 day, 1 set)" in stats.stdout
    one_file = tmp_path / "one-file"
    one_file.mkdir()
    (one_file / "x.json").write_text("{}")
    du = CliRunner().invoke(cli, ["--dir", str(one_file), "du"])
    assert du.stdout.endswith("(1 file)\n"), du.stdout
