"""Issue 11, point 6: wrong targets are refused, and --dir/--url go in the same places.

A missing folder is an error (exit 2) naming it for every command but ``jobs enqueue
--create``; a look-alike URL or a URL without a database is a usage error naming the
accepted forms (never the password); ``--dir`` and ``--url`` are accepted before the
command name and after it, the command's own winning.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jobledger import JobQueue
from jobledger.cli import cli
from tests.cli.conftest import ALICE, Prepared

SECRET = "s3cr3t-pw"
ACCEPTED = "postgresql://user@host:5432/dbname"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the current folder, so that a folder made by mistake shows up in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JOBLEDGER_QUEUE_DIR", raising=False)
    return tmp_path


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    """A queue folder holding one Queued job, 'first' (type ping)."""
    qdir = tmp_path / "queue"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "ping"}, job_id="first")
    return qdir


# -- a folder that does not exist ---------------------------------------------------------


def test_enqueue_into_a_missing_folder_is_refused_without_create(in_tmp: Path) -> None:
    result = run("jobs", "enqueue", "--dir", "typo-queue", "ping")
    assert result.exit_code == 2, result.output
    assert str(in_tmp / "typo-queue") in result.stderr
    assert "add --create to make a new queue" in result.stderr
    assert not (in_tmp / "typo-queue").exists()


def test_enqueue_create_makes_a_new_queue(in_tmp: Path) -> None:
    result = run("jobs", "enqueue", "--dir", "new-queue", "--create", "ping", "--id", "j1")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "j1"
    job = JobQueue(in_tmp / "new-queue").get("j1")
    assert job is not None and job.type == "ping"


def test_worker_on_a_missing_folder_is_refused(in_tmp: Path) -> None:
    (in_tmp / "handlers_for_targets.py").write_text("HANDLERS = {'ping': lambda job: None}\n")
    # --until-empty: the old code served the new empty queue; this way it exited instead.
    result = run(
        "worker",
        "--dir",
        "typo-queue",
        "--handlers",
        "handlers_for_targets:HANDLERS",
        "--until-empty",
    )
    assert result.exit_code == 2, result.output
    assert str(in_tmp / "typo-queue") in result.stderr
    assert "enqueue --create" in result.stderr
    assert not (in_tmp / "typo-queue").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["show", ALICE],
        ["list"],
        ["stats"],
        ["du"],
        ["doctor"],
        ["doctor", "--repair"],
        ["cleanup", "--older-than", "7d"],
        ["reset", "--all", "--yes"],
    ],
)
@pytest.mark.parametrize("placement", ["before", "after"])
def test_task_set_commands_on_a_missing_folder_are_refused(
    in_tmp: Path, command: list[str], placement: str
) -> None:
    where = ["--dir", "typo-state"]
    args = [*where, *command] if placement == "before" else [*command, *where]
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert f"{in_tmp / 'typo-state'} does not exist" in result.stderr
    assert "No problems found" not in result.output
    assert not (in_tmp / "typo-state").exists()


def test_the_default_state_folder_missing_is_refused_too(in_tmp: Path) -> None:
    result = run("doctor")
    assert result.exit_code == 2, result.output
    assert str(in_tmp / "sessions" / "job-state") in result.stderr
    assert os.listdir(in_tmp) == []


def test_a_config_dir_that_does_not_exist_names_the_config(in_tmp: Path) -> None:
    config = in_tmp / "app.json"
    config.write_text(json.dumps({"jobState": {"dir": str(in_tmp / "gone")}}))
    result = run("--config", str(config), "status")
    assert result.exit_code == 2, result.output
    assert str(in_tmp / "gone") in result.stderr and str(config) in result.stderr


@pytest.mark.parametrize("command", [["list"], ["counts"], ["show", "x"], ["retry", "x"]])
def test_queue_commands_on_a_missing_folder_are_refused(in_tmp: Path, command: list[str]) -> None:
    result = run("--dir", "typo-queue", "jobs", *command)
    assert result.exit_code == 2, result.output
    assert str(in_tmp / "typo-queue") in result.stderr
    assert not (in_tmp / "typo-queue").exists()


# -- look-alike URLs and URLs without a database -----------------------------------------

LOOK_ALIKES = [
    f"mysql://alice:{SECRET}@db.example.com/ledger",
    "postgresql:/db.example.com/ledger",
    "postgres:db.example.com/ledger",
    "http://example.com/ledger",
]
PLACES = [
    ("--dir", "{v}", "list"),
    ("list", "--dir", "{v}"),
    ("doctor", "--dir", "{v}"),
    ("jobs", "list", "--dir", "{v}"),
    ("--dir", "{v}", "jobs", "counts"),
    ("jobs", "enqueue", "--create", "--dir", "{v}", "ping"),
    ("worker", "--dir", "{v}", "--handlers", "m:H"),
    ("--dir", "{v}", "worker", "--handlers", "m:H"),
]


@pytest.mark.parametrize("value", LOOK_ALIKES)
@pytest.mark.parametrize("place", PLACES, ids=lambda p: " ".join(p))
def test_a_look_alike_url_is_a_usage_error(
    in_tmp: Path, value: str, place: tuple[str, ...]
) -> None:
    result = run(*(a.format(v=value) for a in place))
    assert result.exit_code == 2, result.output
    assert ACCEPTED in result.stderr
    assert "./" in result.stderr  # how to write a folder with a colon
    assert SECRET not in result.output
    assert os.listdir(in_tmp) == []  # no folder named after the URL


def test_a_look_alike_url_in_the_queue_env_var_is_a_usage_error(in_tmp: Path) -> None:
    result = run("jobs", "list", env={"JOBLEDGER_QUEUE_DIR": f"mysql://a:{SECRET}@h/db"})
    assert result.exit_code == 2, result.output
    assert ACCEPTED in result.stderr and SECRET not in result.output


@pytest.mark.parametrize(
    "place",
    [("--dir", "{v}", "status"), ("jobs", "list", "--url", "{v}"), ("--url", "{v}", "du")],
)
@pytest.mark.parametrize(
    "url",
    [f"postgresql://alice:{SECRET}@127.0.0.1:5432", f"postgres://alice:{SECRET}@127.0.0.1/"],
)
def test_a_url_without_a_database_is_refused(
    in_tmp: Path, place: tuple[str, ...], url: str
) -> None:
    result = run(*(a.format(v=url) for a in place))
    assert result.exit_code == 2, result.output
    assert "names no database" in result.stderr
    assert SECRET not in result.output


def test_a_drive_letter_and_a_dotted_colon_name_are_folders(in_tmp: Path) -> None:
    for name in ("C:queue", "./mysql:queue"):
        result = run("jobs", "enqueue", "--create", "--dir", name, "ping", "--id", "j")
        assert result.exit_code == 0, result.output
        assert JobQueue(in_tmp / name).get("j") is not None


def test_url_takes_only_a_postgresql_url(in_tmp: Path, queue: Path) -> None:
    for args in (("jobs", "list", "--url", str(queue)), ("--url", str(queue), "jobs", "list")):
        result = run(*args)
        assert result.exit_code == 2, result.output
        assert "--url" in result.stderr and "postgresql://" in result.stderr


def test_dir_and_url_together_are_a_usage_error(queue: Path) -> None:
    url = "postgresql://u@127.0.0.1:1/db"
    for args in (
        ("jobs", "list", "--dir", str(queue), "--url", url),
        ("--dir", str(queue), "--url", url, "jobs", "list"),
    ):
        result = run(*args)
        assert result.exit_code == 2, result.output
        assert "not both" in result.stderr


def test_export_to_a_look_alike_url_is_refused(in_tmp: Path, queue: Path) -> None:
    target = f"mysql://a:{SECRET}@h/db"
    result = run("export", "--from", str(queue), "--to", target, "--what", "jobs")
    assert result.exit_code == 2, result.output
    assert ACCEPTED in result.stderr and SECRET not in result.output
    assert sorted(os.listdir(in_tmp)) == ["queue"]


def test_db_commands_refuse_a_folder(in_tmp: Path) -> None:
    for args in (("db", "status", "--dir", "somewhere"), ("--dir", "somewhere", "db", "status")):
        result = run(*args)
        assert result.exit_code == 2, result.output
        assert "postgresql://" in result.stderr
    result = run("db", "migrate")
    assert result.exit_code == 2 and "--url" in result.stderr


# -- the same option in the same places ---------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("--dir", "{q}", "jobs", "list"),
        ("jobs", "list", "--dir", "{q}"),
        ("--dir", "{other}", "jobs", "list", "--dir", "{q}"),  # the command's own wins
    ],
)
def test_the_queue_location_before_or_after_the_command(
    tmp_path: Path, queue: Path, args: tuple[str, ...]
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    result = run(*(a.format(q=queue, other=other) for a in args))
    assert result.exit_code == 0, result.output
    assert "first" in result.stdout and str(queue) in result.stdout


def test_the_global_dir_wins_over_the_env_var_and_the_env_var_still_works(
    tmp_path: Path, queue: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"JOBLEDGER_QUEUE_DIR": str(empty)}
    result = run("--dir", str(queue), "jobs", "list", env=env)
    assert result.exit_code == 0, result.output
    assert "first" in result.stdout
    result = run("jobs", "list", env={"JOBLEDGER_QUEUE_DIR": str(queue)})
    assert result.exit_code == 0, result.output
    assert "first" in result.stdout


def test_the_worker_takes_the_global_dir(
    tmp_path: Path, queue: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "handlers_for_targets_ok.py").write_text(
        "HANDLERS = {'ping': lambda job: {'pong': True}}\n"
    )
    result = run(
        "--dir",
        str(queue),
        "worker",
        "--handlers",
        "handlers_for_targets_ok:HANDLERS",
        "--until-empty",
    )
    assert result.exit_code == 0, result.output
    job = JobQueue(queue).get("first")
    assert job is not None and job.result == {"pong": True}


@pytest.mark.parametrize(
    "args",
    [
        ("--dir", "{s}", "list"),
        ("list", "--dir", "{s}"),
        ("--dir", "{other}", "list", "--dir", "{s}"),  # the command's own wins
        ("--config", "{cfg}", "list", "--dir", "{s}"),  # over the config too
    ],
)
def test_the_state_location_before_or_after_the_command(
    prepared: Prepared, tmp_path: Path, args: tuple[str, ...]
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    cfg = tmp_path / "other.json"
    cfg.write_text(json.dumps({"jobState": {"dir": str(other)}}))
    values = {"s": str(prepared.dir), "other": str(other), "cfg": str(cfg)}
    result = run(*(a.format(**values) for a in args))
    assert result.exit_code == 0, result.output
    assert "6 task sets" in result.stdout


def test_a_config_without_a_job_state_block_warns_naming_the_file(prepared: Prepared) -> None:
    config = prepared.dir.parent / "app.json"
    config.write_text(json.dumps({"jobstate": {"dir": str(prepared.dir)}}))
    result = run("--config", str(config), "--dir", str(prepared.dir), "list")
    assert result.exit_code == 0, result.output
    assert str(config) in result.stderr and "no 'jobState' block" in result.stderr


def test_db_commands_take_the_url_before_or_after_the_name(pg_url: str) -> None:
    for args in (
        ("--url", pg_url, "db", "status"),
        ("--dir", pg_url, "db", "status"),
        ("db", "status", "--dir", pg_url),
        ("db", "status", "--url", pg_url),
    ):
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert "pending" in result.output
