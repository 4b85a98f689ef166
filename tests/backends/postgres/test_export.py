"""`jobledger export` files -> PostgreSQL -> files, and `jobledger db migrate|status`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.backends.postgres._pg import require_psycopg

psycopg = require_psycopg()

from jobledger import JobQueue, JobState  # noqa: E402
from jobledger._export import export  # noqa: E402
from jobledger.backends.postgres._migrate import migrations  # noqa: E402
from tests.cli.conftest import build  # noqa: E402
from tests.cli.test_export import documents, run  # noqa: E402
from tests.cli.test_jobs_cli import build_queue  # noqa: E402


def test_round_trip_files_postgres_files_is_lossless(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "src").mkdir()
    prepared = build(tmp_path / "src")
    pq = build_queue(tmp_path / "src")
    try:
        r = run("export", "--from", str(prepared.dir), "--to", pg_url, "--what", "tasksets")
        assert r.exit_code == 0, r.output
        assert "exported 6 task sets, 0 jobs" in r.output
        r = run("export", "--from", str(pq.dir), "--to", pg_url, "--what", "jobs")
        assert r.exit_code == 0, r.output
        assert "exported 0 task sets, 7 jobs" in r.output
        back_state, back_queue = tmp_path / "back" / "state", tmp_path / "back" / "queue"
        r = run("export", "--from", pg_url, "--to", str(back_state), "--what", "tasksets")
        assert r.exit_code == 0, r.output
        r = run("export", "--from", pg_url, "--to", str(back_queue), "--what", "jobs")
        assert r.exit_code == 0, r.output

        assert documents(back_state) == documents(prepared.dir)
        assert documents(back_queue) == documents(pq.dir)
        assert len(documents(back_queue)) == 7
        # The rebuilt queue serves the copied jobs in the same order as the original.
        copy = JobQueue(back_queue, durability="flush")
        try:
            assert [r.job_id for r in copy.backend.live()] == [
                r.job_id for r in pq.queue.backend.live()
            ]
            assert copy.backend.counts() == pq.queue.backend.counts()
        finally:
            copy.close()
    finally:
        pq.queue.close()


def test_export_between_urls_and_enqueue_after_import(
    tmp_path: Path, pg_url: str, pg_database: Any
) -> None:
    (tmp_path / "src").mkdir()
    prepared = build(tmp_path / "src")
    pq = build_queue(tmp_path / "src")
    pq.queue.close()
    export(str(prepared.dir), pg_url, "tasksets")
    export(str(pq.dir), pg_url, "jobs")
    _, other = pg_database.new_schema()
    report = export(pg_url, other, "all")
    assert (report.tasksets, report.jobs) == (6, 7)
    queue = JobQueue(other, durability="flush")
    try:
        seqs = [r.seq for r in queue.backend.all_records()]
        new_id = queue.enqueue({"type": "echo"})
        new = queue.backend.get(new_id)
        assert new is not None and new.seq > max(seqs)
    finally:
        queue.close()
    assert sorted(JobState(url=other).backend.keys()) == sorted(JobState(url=pg_url).backend.keys())


def test_export_refuses_a_non_empty_target_unless_merge(tmp_path: Path, pg_url: str) -> None:
    pq = build_queue(tmp_path / "src")
    pq.queue.close()
    assert run("export", "--from", str(pq.dir), "--to", pg_url, "--what", "jobs").exit_code == 0
    r = run("export", "--from", str(pq.dir), "--to", pg_url, "--what", "jobs")
    assert r.exit_code == 1
    assert "already holds 7 jobs" in r.output and "--merge" in r.output
    r = run("export", "--from", str(pq.dir), "--to", pg_url, "--what", "jobs", "--merge")
    assert r.exit_code == 0, r.output
    assert "exported 0 task sets, 0 jobs" in r.output
    assert "kept (already in the target): 0 task sets, 7 jobs" in r.output


def test_db_migrate_twice_and_status(pg_url: str) -> None:
    everything = [m.version for m in migrations()]
    r = run("db", "status", "--url", pg_url)
    assert r.exit_code == 0, r.output
    assert f"{len(everything)} pending" in r.output
    r = run("db", "migrate", "--url", pg_url)
    assert r.exit_code == 0, r.output
    assert r.output.strip() == "applied: " + ", ".join(f"{v:04d}" for v in everything)
    r = run("db", "migrate", "--url", pg_url)
    assert r.exit_code == 0, r.output
    assert r.output.strip() == "up to date"
    r = run("db", "status", "--url", pg_url)
    assert r.exit_code == 0, r.output
    assert "pending" not in r.output and r.output.strip().endswith("up to date")
