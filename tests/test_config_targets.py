"""Issue 11, point 6, from Python: JobQueue and JobState refuse look-alike URLs, URLs
without a database and a dir given together with a url; config errors name the file."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
from pathlib import Path

import pytest

import jobledger
from jobledger import ConfigError, JobQueue, JobState
from jobledger._location import classify
from jobledger.backends import postgres

SECRET = "s3cr3t-pw"
ACCEPTED = "postgresql://user@host:5432/dbname"
LOOK_ALIKES = [
    f"mysql://alice:{SECRET}@db.example.com/ledger",
    f"postgresql:/alice:{SECRET}@db.example.com/ledger",
    "postgres:db.example.com/ledger",
    "http://example.com/ledger",
    "POSTGRESQL://db.example.com/ledger",
]
NO_DATABASE = [
    f"postgresql://alice:{SECRET}@db.example.com:5432",
    f"postgresql://alice:{SECRET}@db.example.com/",
    "postgres://db.example.com",
]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("value", LOOK_ALIKES)
def test_job_queue_refuses_a_look_alike_url(in_tmp: Path, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        JobQueue(value)
    assert ACCEPTED in str(info.value) and SECRET not in str(info.value)
    assert os.listdir(in_tmp) == []


@pytest.mark.parametrize("value", LOOK_ALIKES)
def test_job_state_refuses_a_look_alike_url_as_url_or_dir(in_tmp: Path, value: str) -> None:
    for kwargs in ({"url": value}, {"dir": value}):
        with pytest.raises(ConfigError) as info:
            JobState(**kwargs)
        assert "postgresql://" in str(info.value) and SECRET not in str(info.value)
    assert os.listdir(in_tmp) == []


@pytest.mark.parametrize("value", NO_DATABASE)
def test_a_url_without_a_database_is_refused(value: str) -> None:
    for make in (lambda: JobQueue(value), lambda: JobState(url=value)):
        with pytest.raises(ConfigError, match="names no database") as info:
            make()
        assert SECRET not in str(info.value)


def test_a_url_naming_its_database_in_the_query_is_accepted() -> None:
    assert classify("postgresql://u@h/?dbname=ledger").is_url
    assert classify("postgresql:///ledger").is_url  # the local socket


def test_job_state_with_both_dir_and_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        JobState(dir=tmp_path / "s", url="postgresql://u@h/db")
    with pytest.raises(ConfigError, match="not both"):
        JobState(dir="", url="postgresql://u@h/db")


def test_job_state_url_must_be_a_postgresql_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dir=") as info:
        JobState(url=str(tmp_path / "folder"))
    assert ACCEPTED in str(info.value)


def test_job_state_dir_defaults_and_empty_still_mean_sessions_job_state(in_tmp: Path) -> None:
    default = str(in_tmp / "sessions" / "job-state")
    assert JobState().dir == default and JobState(dir="").dir == default
    assert JobState(dir=str(in_tmp / "x")).dir == str(in_tmp / "x")


def test_a_postgresql_url_as_dir_is_the_database() -> None:
    state = JobState(dir="postgresql://u@127.0.0.1:1/ledger")
    assert state.backend.location == "postgresql://u@127.0.0.1:1/ledger"


@pytest.mark.parametrize("name", ["C:state", "C:\\state", "./mysql:state", "a/b:c"])
def test_drive_letters_and_dotted_colon_names_are_folders(name: str) -> None:
    assert not classify(name).is_url
    assert JobQueue(name).dir == os.path.abspath(name)


def test_a_path_object_is_a_folder() -> None:
    assert classify(Path("mysql:x")).kind == "folder"


# -- config files ---------------------------------------------------------------------------


def _config(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "app.json"
    path.write_text(json.dumps(data))
    return path


def test_a_config_file_without_a_job_state_block_warns_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _config(tmp_path, {"jobstate": {"dir": "x"}})
    with caplog.at_level(logging.WARNING, logger="jobledger"):
        state = JobState.from_config(path)
    assert state.dir == str(tmp_path / "sessions" / "job-state")
    assert [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jobledger"):
        JobState.from_config(_config(tmp_path, {"jobState": {}}))
        JobState.from_config({"other": 1})  # a mapping is not a file: nothing to name
    assert not [r for r in caplog.records if "jobState" in r.getMessage()]


@pytest.mark.parametrize(
    ("block", "match"),
    [
        ({"dir": "s", "url": "postgresql://u@h/db"}, "both set"),
        ({"url": f"mysql://u:{SECRET}@h/db"}, "postgresql://"),
        ({"url": f"postgresql://u:{SECRET}@h"}, "names no database"),
        ({"dir": "postgres:h/db"}, "starts like a URL"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_every_config_error_names_the_file(tmp_path: Path, block: object, match: str) -> None:
    path = _config(tmp_path, {"jobState": block})
    with pytest.raises(ConfigError, match=match) as info:
        JobState.from_config(path)
    assert str(path) in str(info.value) and SECRET not in str(info.value)


def test_a_config_url_alone_is_used(tmp_path: Path) -> None:
    path = _config(tmp_path, {"jobState": {"dir": "", "url": "postgresql://u@127.0.0.1:1/db"}})
    assert JobState.from_config(path).backend.location == "postgresql://u@127.0.0.1:1/db"


# -- install lines --------------------------------------------------------------------------


def test_the_missing_psycopg_message_says_what_works_from_a_clone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a)
    )
    with pytest.raises(ConfigError) as info:
        JobQueue("postgresql://u@h/db")
    assert "pip install -e '.[postgres]'" in str(info.value)


def test_no_install_line_names_the_unpublished_package() -> None:
    root = Path(jobledger.__file__).parent
    bad = [
        f"{path.relative_to(root)}: {line.strip()}"
        for path in root.rglob("*.py")
        for line in path.read_text(encoding="utf-8").splitlines()
        if re.search(r"pip install\s+['\"]?jobledger\[", line) or "``jobledger[postgres]``" in line
    ]
    assert bad == []
    assert postgres.__doc__ is not None and "pip install -e '.[postgres]'" in postgres.__doc__
