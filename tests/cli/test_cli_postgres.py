"""Every task-set and queue command against a PostgreSQL URL, and unreachable databases.

Each test gets a fresh schema (``pg_url``). The URL goes where a folder goes: the global
``--dir`` (or the config's ``jobState.url``) for the task-set commands, the queue commands'
``--dir`` (or ``$JOBLEDGER_QUEUE_DIR``) for ``jobs`` and ``worker``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.backends.postgres._pg import require_psycopg

psycopg = require_psycopg()

import jobledger  # noqa: E402
from jobledger import JobQueue, JobStatus  # noqa: E402
from jobledger.cli import cli  # noqa: E402
from tests.cli.conftest import ALICE, BOB, TASKS, fill  # noqa: E402
from tests.cli.test_jobs_cli import PreparedQueue, build_queue_at  # noqa: E402
from tests.conftest import FakeClock  # noqa: E402

SECRET = "s3cr3t-pw"
UNREACHABLE = f"postgresql://alice:{SECRET}@127.0.0.1:1/ledgerdb"


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def rows(out: str, min_cells: int = 3) -> dict[str, str]:
    """Table rows (of at least ``min_cells`` cells) by their first cell."""
    return {
        line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > min_cells
    }


# -- task sets --------------------------------------------------------------------------------


@dataclass
class PgSets:
    """Task sets in a database schema, and the CLI run on its URL (``--dir URL``)."""

    url: str
    config: Path  # only the time zone: the URL comes from --dir
    today: dt.date
    clock: FakeClock
    opened: list[jobledger.JobState] = field(default_factory=list)

    def state(self) -> jobledger.JobState:
        state = jobledger.JobState(
            url=self.url, timezone="UTC", durability="flush", clock=self.clock
        )
        self.opened.append(state)
        return state

    def day(self, days_ago: int) -> str:
        return (self.today - dt.timedelta(days=days_ago)).isoformat()

    def run(self, *args: str, input: str | None = None) -> Result:
        argv = ["--config", str(self.config), "--dir", self.url, *args]
        return CliRunner().invoke(cli, argv, input=input)

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> None:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement, params)


@pytest.fixture
def sets(pg_url: str, tmp_path: Path) -> Iterator[PgSets]:
    """As tests/cli/conftest.py builds its folder: today alice 3/5 (quiz-2 failed twice) and
    a desktop-search at 12/30, bob 5/5; 3 days ago both complete; 10 days ago an old alice
    set. Six sets."""
    today = dt.datetime.now(dt.timezone.utc).date()
    clock = FakeClock(f"{today.isoformat()}T10:30:00+00:00")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"jobState": {"timezone": "UTC"}}))
    p = PgSets(pg_url, config, today, clock)
    fill(p.state(), clock, today)
    yield p
    for opened in p.opened:  # JobState has no close(): give back the connections now
        opened.backend.close()


def test_status_shows_todays_sets_and_names_the_database(sets: PgSets) -> None:
    result = sets.run("status")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Task sets for {sets.today.isoformat()} (postgresql://" in out
    alice = next(line for line in out.splitlines() if ALICE in line and "daily-set" in line)
    bob = next(line for line in out.splitlines() if BOB in line)
    assert "3/5" in alice and "60%" in alice
    assert re.search(r"│ 1\s+│", alice)  # quiz-2
    assert "5/5" in bob and "100%" in bob
    assert "desktop-search" in out
    assert sets.day(3) not in out


def test_status_names_the_live_lease_holder(sets: PgSets) -> None:
    with sets.state().taskset(BOB, "daily-set"):
        result = sets.run("status")
    assert result.exit_code == 0, result.output
    bob = next(line for line in result.stdout.splitlines() if BOB in line)
    assert f"pid {os.getpid()}" in bob


def test_show_tasks_and_json(sets: PgSets) -> None:
    result = sets.run("show", ALICE)
    assert result.exit_code == 0, result.output
    table = rows(result.stdout)
    assert "done" in table["quiz-1"] and "3.00s" in table["quiz-1"]
    assert "failed" in table["quiz-2"] and "TimeoutError: page did not load" in table["quiz-2"]
    assert re.search(r"│ 2\s+│", table["quiz-2"])
    assert "12/30" in table["search"]
    assert "3/5 done" in result.stdout

    docs = json.loads(sets.run("show", ALICE, "--json").stdout)
    assert [d["type"] for d in docs] == ["daily-set", "desktop-search"]
    assert docs[0]["completed"] == TASKS[:3]
    assert docs[0]["failures"]["quiz-2"]["attempts"] == 2

    nobody = sets.run("show", "nobody@example.com")
    assert nobody.exit_code == 0
    assert "No task sets for account 'nobody@example.com'" in nobody.stdout
    assert "in postgresql://" in nobody.stdout


def test_list_shows_every_set_without_a_file_column(sets: PgSets) -> None:
    result = sets.run("list")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"^6 task sets in postgresql://\S+$", out, re.M)
    assert "File" not in out and ".json" not in out
    old = next(line for line in out.splitlines() if sets.day(10) in line)
    assert ALICE in old and "1/5" in old
    assert sum(1 for line in out.splitlines() if "daily-set" in line) == 5


def test_stats_rates_and_the_failing_task(sets: PgSets) -> None:
    result = sets.run("stats")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "(7 days, 5 sets) in postgresql://" in lines[0]
    alice = next(line for line in lines if ALICE in line)
    assert "1/3" in alice and "8/11" in alice and "73%" in alice
    failing = next(line for line in lines if "quiz-2" in line and "TimeoutError" in line)
    assert re.search(r"│ 4\s+│", failing)
    assert "+50%" in result.stdout


def test_cleanup_dry_run_then_for_real(sets: PgSets) -> None:
    dry = sets.run("cleanup", "--older-than", "7d", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Would remove 1 task set" in dry.stdout and sets.day(10) in dry.stdout
    assert len(sets.state().keys()) == 6
    done = sets.run("cleanup", "--older-than", "7d")
    assert done.exit_code == 0, done.output
    assert "Removed 1 task set" in done.stdout and "from postgresql://" in done.stdout
    assert {k.date for k in sets.state().keys()} == {sets.day(3), sets.today.isoformat()}
    again = sets.run("cleanup", "--older-than", "1w")
    assert again.exit_code == 0 and "Nothing to remove" in again.stdout


def test_reset_an_account_and_refuse_a_running_set(sets: PgSets) -> None:
    result = sets.run("reset", "--account", ALICE, "--yes")
    assert result.exit_code == 0, result.output
    assert "Deleted 4 task sets" in result.stdout
    assert {k.account for k in sets.state().keys()} == {BOB}

    with sets.state().taskset(BOB, "daily-set"):
        refused = sets.run("reset", "--account", BOB, "--yes")
    assert refused.exit_code == 1
    assert "already running" in refused.stderr and f"pid {os.getpid()}" in refused.stderr
    assert (BOB, "daily-set", sets.today.isoformat()) in sets.state().keys()

    needs_yes = sets.run("reset", "--all")
    assert needs_yes.exit_code == 2 and "--yes" in needs_yes.stderr


def test_du_reports_the_databases_usage(sets: PgSets) -> None:
    result = sets.run("du")
    assert result.exit_code == 0, result.output
    line = result.stdout.rstrip("\n")
    assert re.fullmatch(r"Job state database: [\d.]+(B|KB) \(6 rows\) in postgresql://\S+", line)
    size, n = sets.state().usage()
    assert n == 6 and size > 0
    assert sets.run("reset", "--all", "--yes").exit_code == 0
    empty = sets.run("du")
    assert empty.stdout.startswith("Job state database: 0B (0 rows) in postgresql://")


def test_doctor_healthy_then_repairs_a_bad_row(sets: PgSets) -> None:
    healthy = sets.run("doctor")
    assert healthy.exit_code == 0, healthy.output
    assert re.search(r"^No problems found in postgresql://\S+\.$", healthy.stdout, re.M)

    today = sets.today.isoformat()
    sets.sql(
        "UPDATE jobledger_tasksets SET record = '{\"date\": 5}' "
        "WHERE account = %s AND type = 'desktop-search'",
        (ALICE,),
    )
    sets.sql(  # a lease row whose session is gone
        "INSERT INTO jobledger_leases (account, type, date, lock_key, backend_pid, pid, host,"
        " since) VALUES (%s, 'daily-set', %s, 1, 1, 1, 'gone', %s)",
        (BOB, sets.day(3), today),
    )
    kept = sets.run("doctor", "--no-repair")
    assert kept.exit_code == 1
    corrupt = rf"^corrupt: {re.escape(ALICE)}/desktop-search/{today}: .*\(NOT repaired\)$"
    assert re.search(corrupt, kept.stdout, re.M)
    stale = rf"^stale-lease: {re.escape(BOB)}/daily-set/{sets.day(3)}: .*\(NOT repaired\)$"
    assert re.search(stale, kept.stdout, re.M)
    assert "2 problems found in postgresql://" in kept.stdout
    assert "without --no-repair" in kept.stdout

    repaired = sets.run("doctor")
    assert repaired.exit_code == 1
    assert "2 problems found" in repaired.stdout and "2 repaired" in repaired.stdout

    # The row set aside waits for a person: doctor exits 1 and says what to do with it.
    again = sets.run("doctor")
    assert again.exit_code == 1, again.output
    assert "note: jobledger_set_aside" in again.stdout
    assert "inspect each, then delete it" in again.stdout
    sets.sql("DELETE FROM jobledger_set_aside")
    healed = sets.run("doctor")
    assert healed.exit_code == 0, healed.output
    assert "No problems found" in healed.stdout


def test_the_configs_url_and_dir_overriding_it(sets: PgSets, tmp_path: Path) -> None:
    config = tmp_path / "pg.json"
    config.write_text(json.dumps({"jobState": {"url": sets.url, "timezone": "UTC"}}))
    result = invoke("--config", str(config), "list")
    assert result.exit_code == 0, result.output
    assert "6 task sets in postgresql://" in result.stdout
    (tmp_path / "empty").mkdir()  # a --dir that does not exist is an error (issue 11)
    folder = invoke("--config", str(config), "--dir", str(tmp_path / "empty"), "list")
    assert folder.exit_code == 0, folder.output
    assert f"No task sets in {tmp_path / 'empty'}." in folder.stdout


def test_the_postgres_scheme_is_accepted_too(sets: PgSets) -> None:
    url = "postgres://" + sets.url.removeprefix("postgresql://")
    result = invoke("--dir", url, "list")
    assert result.exit_code == 0, result.output
    assert "6 task sets in postgres://" in result.stdout


# -- the queue --------------------------------------------------------------------------------


@pytest.fixture
def pq(pg_url: str) -> Iterator[PreparedQueue]:
    """test_jobs_cli.py's queue (jobs in every status; ``queue`` stays open, the live
    worker running job ``running``) in a database schema: ``pq.dir`` is its URL."""
    prepared = build_queue_at(pg_url)
    yield prepared
    prepared.queue.close()


def test_jobs_list_in_serving_order_with_counts(pq: PreparedQueue) -> None:
    result = pq.run("list")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"^7 jobs in postgresql://", out, re.M)
    table = rows(out)
    assert "Running" in table["running"] and "1/3" in table["running"]
    assert "Failed" in table["old-failed"] and "model download timed out" in table["old-failed"]
    order = [i for i in table if i != "Job id"]
    assert order[:3] == ["running", "q-high", "q-low"]
    assert order.index("old-done") < order.index("recent-done")
    assert "Counts: Queued 2, Running 1, Completed 2, Failed 1, Cancelled 1" in out

    queued = pq.run("list", "--status", "queued")
    assert queued.exit_code == 0
    assert "2 Queued jobs in postgresql://" in queued.stdout and "old-done" not in queued.stdout
    docs = json.loads(pq.run("list", "--json").stdout)
    assert {d["job_id"] for d in docs} >= {"running", "q-high", "old-failed"}


def test_jobs_dir_comes_from_the_environment(pq: PreparedQueue) -> None:
    result = invoke("jobs", "counts", "--json", env={"JOBLEDGER_QUEUE_DIR": str(pq.dir)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "Queued": 2,
        "Running": 1,
        "Completed": 2,
        "Failed": 1,
        "Cancelled": 1,
    }


def test_jobs_show_and_counts(pq: PreparedQueue) -> None:
    result = pq.run("show", "old-done")
    assert result.exit_code == 0, result.output
    assert re.search(r"Status\s+Completed", result.stdout)
    assert '"echoed": "old"' in result.stdout and '"text": "old"' in result.stdout
    running = pq.run("show", "running")
    assert running.exit_code == 0 and pq.queue.worker_id in running.stdout
    doc = json.loads(pq.run("show", "running", "--json").stdout)
    assert doc["status"] == "Running" and doc["model"] == "mistralai/Mistral-7B-v0.1"
    record = pq.queue.backend.get("running")
    assert record is not None and doc == record.to_json()  # the row's document as stored

    missing = pq.run("show", "nope")
    assert missing.exit_code == 1
    assert "no job 'nope' in the queue at postgresql://" in missing.stderr

    counts = pq.run("counts")
    assert counts.exit_code == 0, counts.output
    assert "Jobs in postgresql://" in counts.stdout
    table = rows(counts.stdout, min_cells=1)
    assert "2" in table["Queued"] and "7" in table["Total"]


def test_jobs_enqueue_stores_the_job(pq: PreparedQueue) -> None:
    result = pq.run(
        "enqueue", "echo", "--payload", '{"text": "hi"}', "--id", "new", "--priority", "3"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "new\n"
    job = pq.queue.get("new")
    assert job is not None and job.status is JobStatus.QUEUED
    assert job.priority == 3 and job.raw["text"] == "hi"

    again = pq.run("enqueue", "echo", "--id", "new")
    assert again.exit_code == 0
    assert "already exists (Queued) in postgresql://" in again.stderr


def test_jobs_retry_and_cancel(pq: PreparedQueue) -> None:
    retried = pq.run("retry", "old-failed")
    assert retried.exit_code == 0, retried.output
    assert "Job old-failed (flaky) is Queued again in postgresql://" in retried.stdout
    job = pq.queue.get("old-failed")
    assert job is not None and job.status is JobStatus.QUEUED and job.attempts == 0
    assert pq.run("retry", "q-low").exit_code == 1  # a live job
    assert pq.run("retry", "nope").exit_code == 1

    cancelled = pq.run("cancel", "q-low")
    assert cancelled.exit_code == 0, cancelled.output
    assert "Cancelled job q-low (echo) in postgresql://" in cancelled.stdout
    running = pq.run("cancel", "running")
    assert running.exit_code == 0, running.output
    assert f"Asked worker {pq.queue.worker_id} to stop job running (slow)" in running.stdout
    assert pq.run("cancel", "old-done").exit_code == 1  # finished


def test_jobs_prune_dry_run_then_for_real(pq: PreparedQueue) -> None:
    dry = pq.run("prune", "--older-than", "7d", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Would prune 2 jobs" in dry.stdout and "(Completed 1, Failed 1)" in dry.stdout
    assert sum(pq.queue.counts().values()) == 7
    done = pq.run("prune", "--older-than", "7d")
    assert done.exit_code == 0, done.output
    assert "Pruned 2 jobs" in done.stdout and "from postgresql://" in done.stdout
    assert pq.queue.get("old-done") is None and pq.queue.get("recent-done") is not None
    nothing = pq.run("prune", "--older-than", "7d")
    assert "Nothing to prune" in nothing.stdout


def test_jobs_clear_refused_while_a_worker_lives_then_clears(pq: PreparedQueue) -> None:
    refused = pq.run("clear", "--yes")
    assert refused.exit_code == 1
    assert "refusing to clear the queue in postgresql://" in refused.stderr
    assert pq.queue.worker_id in refused.stderr
    pq.queue.close()  # the worker goes away
    needs_yes = pq.run("clear")
    assert needs_yes.exit_code == 2 and "pass --yes" in needs_yes.stderr
    done = pq.run("clear", "--yes")
    assert done.exit_code == 0, done.output
    assert re.search(r"^Cleared the queue in postgresql://\S+: deleted 7 jobs\.$", done.stdout)
    assert "queue.json" not in done.stdout
    empty = pq.run("clear", "--yes")
    assert empty.exit_code == 0 and "already empty" in empty.stdout


def _echo(job: jobledger.Job) -> dict[str, object]:
    return {"echoed": job.raw.get("text")}


#: The worker's handlers: ``--handlers tests.cli.test_cli_postgres:HANDLERS``.
HANDLERS = {"echo": _echo}
HANDLERS_SPEC = f"{__name__}:HANDLERS"


def test_worker_drains_a_database_queue(pg_url: str) -> None:
    with JobQueue(pg_url, durability="flush") as q:
        ids = [q.enqueue({"type": "echo", "text": f"t{i}"}) for i in range(3)]
    result = invoke(
        "worker",
        "--dir",
        pg_url,
        "--handlers",
        HANDLERS_SPEC,
        "--until-empty",
        "--concurrency",
        "2",
    )
    assert result.exit_code == 0, result.output
    assert "serving echo from postgresql://" in result.stderr
    assert "stopped after 3 completed jobs" in result.stderr
    assert "Queued 0, Running 0, Completed 3" in result.stderr
    with JobQueue(pg_url) as q:
        for i, job_id in enumerate(ids):
            job = q.get(job_id)
            assert job is not None and job.status is JobStatus.COMPLETED
            assert job.result == {"echoed": f"t{i}"}
        assert q.live_workers() == []


# -- connection errors ------------------------------------------------------------------------

STATE_COMMANDS = [
    ["status"],
    ["show", ALICE],
    ["list"],
    ["stats"],
    ["cleanup", "--older-than", "7d"],
    ["reset", "--all", "--yes"],
    ["du"],
    ["doctor"],
]
QUEUE_COMMANDS = [
    ["jobs", "list"],
    ["jobs", "show", "x"],
    ["jobs", "counts"],
    ["jobs", "enqueue", "echo"],
    ["jobs", "retry", "x"],
    ["jobs", "cancel", "x"],
    ["jobs", "prune", "--older-than", "7d"],
    ["jobs", "clear", "--yes"],
    ["worker", "--handlers", HANDLERS_SPEC, "--until-empty"],
]


def assert_connection_error(result: Result) -> None:
    """One line on stderr naming host, port and database, never the password; exit 2."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert SECRET not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: could not connect to PostgreSQL")
    assert "database ledgerdb on 127.0.0.1:1" in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("args", STATE_COMMANDS, ids=" ".join)
def test_task_set_commands_on_an_unreachable_url(args: list[str]) -> None:
    assert_connection_error(invoke("--dir", UNREACHABLE, *args))


@pytest.mark.parametrize("args", QUEUE_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_queue_commands_on_an_unreachable_url(args: list[str]) -> None:
    assert_connection_error(invoke(*args, "--dir", UNREACHABLE))


def test_unreachable_url_from_the_config_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"jobState": {"url": UNREACHABLE}}))
    assert_connection_error(invoke("--config", str(config), "status"))
    assert_connection_error(invoke("jobs", "counts", env={"JOBLEDGER_QUEUE_DIR": UNREACHABLE}))


@pytest.mark.parametrize("args", [["--dir", "{url}", "list"], ["jobs", "list", "--dir", "{url}"]])
def test_an_unreadable_url_is_a_usage_error(args: list[str]) -> None:
    url = f"postgresql://alice:{SECRET}@127.0.0.1:notaport/ledgerdb"
    result = invoke(*(a.format(url=url) for a in args))
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert "check its host and port" in result.stderr
    assert SECRET not in result.output


def test_a_config_url_that_is_not_postgresql_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"jobState": {"url": f"mysql://alice:{SECRET}@h/db"}}))
    result = invoke("--config", str(config), "list")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: jobState.url must be a postgresql:// URL")
    assert SECRET not in result.output


def test_help_says_dir_takes_a_url() -> None:
    assert re.search(r"postgresql://\s+URL", invoke("--help").stdout)
    assert "DIR_OR_URL" in invoke("jobs", "list", "--help").stdout
