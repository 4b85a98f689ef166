"""`jobledger export` between folders, its refusals, and errors that never show a password."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jobledger import JobQueue
from jobledger.cli import cli
from tests.cli.conftest import build
from tests.cli.test_jobs_cli import build_queue

SECRET = "s3cr3t-pw"
UNREACHABLE = f"postgresql://alice:{SECRET}@127.0.0.1:1/ledgerdb"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def documents(root: Path) -> dict[str, Any]:
    """Every ``*.json`` file under ``root`` (not queue.json), parsed, by relative path."""
    return {
        str(p.relative_to(root)): json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(root.rglob("*.json"))
        if p.name != "queue.json"
    }


def test_tasksets_folder_to_folder(tmp_path: Path) -> None:
    prepared = build(tmp_path)
    r = run(
        "export", "--from", str(prepared.dir), "--to", str(tmp_path / "copy"), "--what", "tasksets"
    )
    assert r.exit_code == 0, r.output
    assert "exported 6 task sets, 0 jobs" in r.output
    assert documents(tmp_path / "copy") == documents(prepared.dir)


def test_jobs_folder_to_folder_rebuilds_the_index(tmp_path: Path) -> None:
    pq = build_queue(tmp_path)
    pq.queue.close()
    target = tmp_path / "copy"
    r = run("export", "--from", str(pq.dir), "--to", str(target), "--what", "jobs")
    assert r.exit_code == 0, r.output
    assert "exported 0 task sets, 7 jobs" in r.output
    assert documents(target) == documents(pq.dir)
    assert (target / "queue.json").exists()
    original, copy = JobQueue(pq.dir), JobQueue(target)
    try:
        assert [r.job_id for r in copy.backend.live()] == [
            r.job_id for r in original.backend.live()
        ]
        assert copy.backend.counts() == original.backend.counts()
    finally:
        original.close()
        copy.close()


def test_non_empty_target_is_refused_unless_merge(tmp_path: Path) -> None:
    pq = build_queue(tmp_path)
    pq.queue.close()
    target = tmp_path / "copy"
    target_queue = JobQueue(target)
    target_queue.enqueue({"type": "echo", "text": "mine"}, job_id="q-low")
    target_queue.close()
    r = run("export", "--from", str(pq.dir), "--to", str(target), "--what", "jobs")
    assert r.exit_code == 1
    assert "already holds 1 job" in r.output and "--merge" in r.output
    assert sorted(documents(target)) == ["jobs/q-low.json"]

    r = run("export", "--from", str(pq.dir), "--to", str(target), "--what", "jobs", "--merge")
    assert r.exit_code == 0, r.output
    assert "exported 0 task sets, 6 jobs" in r.output
    assert "kept (already in the target): 0 task sets, 1 job" in r.output
    assert documents(target)["jobs/q-low.json"]["text"] == "mine"


def test_all_with_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    r = run("export", "--from", str(tmp_path / "a"), "--to", str(tmp_path / "b"))
    assert r.exit_code == 2
    assert "--what tasksets or --what jobs" in r.output


def test_same_place_is_a_usage_error(tmp_path: Path) -> None:
    r = run("export", "--from", str(tmp_path), "--to", str(tmp_path), "--what", "jobs")
    assert r.exit_code == 2
    assert "the same place" in r.output


@pytest.mark.parametrize(
    "args",
    [
        ("db", "migrate", "--url", UNREACHABLE),
        ("db", "status", "--url", UNREACHABLE),
        ("export", "--from", UNREACHABLE, "--to", "DIR", "--what", "jobs"),
        ("export", "--from", "DIR", "--to", UNREACHABLE, "--what", "tasksets"),
    ],
)
def test_connection_errors_name_the_place_never_the_password(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    pytest.importorskip("psycopg")
    (tmp_path / "dir").mkdir()
    r = run(*(str(tmp_path / "dir") if a == "DIR" else a for a in args))
    assert r.exit_code == 2, r.output
    assert SECRET not in r.output
    assert "ledgerdb" in r.output and "127.0.0.1" in r.output
    assert r.output.startswith("error: ")


def test_db_url_must_be_a_postgres_url() -> None:
    r = run("db", "migrate", "--url", "/some/folder")
    assert r.exit_code == 2
    assert "postgresql://" in r.output


def test_missing_source_folder_is_a_usage_error(tmp_path: Path) -> None:
    r = run(
        "export", "--from", str(tmp_path / "nope"), "--to", str(tmp_path / "b"), "--what", "jobs"
    )
    assert r.exit_code == 2
    assert "does not exist" in r.output
    assert not (tmp_path / "b").exists()
