"""`jobledger schedules [list|remove]`, the unique key in `jobs show` and `jobs enqueue
--unique-key`, and `worker --schedules`, on every backend (a folder, or a PostgreSQL
schema's URL given to ``--dir``)."""

from __future__ import annotations

import datetime as dt
import json
import sys
import textwrap

from click.testing import CliRunner, Result

from jobledger import JobQueue
from jobledger.cli import cli
from tests.backends.files._snapshot import snapshot


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _queue_with_schedules(make_queue) -> JobQueue:
    q = make_queue()
    q.schedule(
        "daily-report",
        "0 7 * * *",
        timezone="Europe/Paris",
        job={"type": "Report", "account": "acct-1"},
    )
    q.schedule("hourly", "0 * * * *", job={"type": "Tick"}, catch_up="all")
    q.enqueue_due()
    return q


def test_schedules_lists_each_with_its_next_run_local_and_utc(make_queue):
    _queue_with_schedules(make_queue)
    where = str(make_queue.location)
    result = run("schedules", "list", "--dir", where)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "2 schedules in" in out
    for text in ("daily-report", "0 7 * * *", "Europe/Paris", "Report", "hourly", "Tick"):
        assert text in out
    # The next 07:00 in Paris, in its zone (CET or CEST) and in UTC.
    now = dt.datetime.now(dt.timezone.utc)
    [stored] = [s for s in make_queue().schedules() if s.name == "daily-report"]
    nxt = stored.next_run(now)
    assert nxt.strftime("%Y-%m-%dT%H:%M:%SZ") in out
    assert " 07:00 CE" in out
    # `jobledger schedules` alone, with the global --dir, lists too.
    alone = run("--dir", where, "schedules")
    assert alone.exit_code == 0, alone.output
    assert "daily-report" in alone.output and "2 schedules in" in alone.output


def test_schedules_list_json_and_plain(make_queue):
    _queue_with_schedules(make_queue)
    where = str(make_queue.location)
    docs = json.loads(run("schedules", "list", "--json", "--dir", where).output)
    assert [d["name"] for d in docs] == ["daily-report", "hourly"]
    assert docs[0]["job"] == {
        "type": "Report",
        "payload": {"account": "acct-1"},
        "priority": 0,
        "max_attempts": 3,
        "timeout": None,
    }
    assert docs[0]["next_run"].endswith("Z")
    assert docs[1]["catch_up"] == "all" and "last" in docs[1]
    plain = run("schedules", "list", "--plain", "--dir", where).output.splitlines()
    assert plain[0].split("\t") == [
        "name",
        "cron",
        "timezone",
        "job_type",
        "catch_up",
        "next_run_local",
        "next_run_utc",
        "last",
    ]
    assert plain[1].split("\t")[:5] == [
        "daily-report",
        "0 7 * * *",
        "Europe/Paris",
        "Report",
        "latest",
    ]
    assert len(plain) == 3


def test_no_schedules(make_queue):
    make_queue().enqueue({"type": "T"})
    result = run("schedules", "list", "--dir", str(make_queue.location))
    assert result.exit_code == 0
    assert "No schedules in" in result.output


def test_schedules_remove(make_queue):
    _queue_with_schedules(make_queue)
    where = str(make_queue.location)
    result = run("schedules", "remove", "hourly", "--dir", where)
    assert result.exit_code == 0, result.output
    assert "Removed schedule hourly from" in result.output
    assert [s.name for s in make_queue().schedules()] == ["daily-report"]
    again = run("schedules", "remove", "hourly", "--dir", where)
    assert again.exit_code == 1
    assert "no schedule 'hourly' in" in again.output


def test_listing_schedules_writes_nothing(tmp_path, clock):
    q = JobQueue(tmp_path / "q", clock=clock, durability="flush")
    q.schedule("s", "0 7 * * *", job={"type": "T"})
    q.close()
    before = snapshot(tmp_path / "q")
    assert run("schedules", "--dir", str(tmp_path / "q")).exit_code == 0
    assert snapshot(tmp_path / "q") == before


def test_a_damaged_schedules_file_is_reported_by_list_and_left_in_place(tmp_path, clock, caplog):
    q = JobQueue(tmp_path / "q", clock=clock, durability="flush")
    q.enqueue({"type": "T"})
    q.close()
    (tmp_path / "q" / "schedules.json").write_text("{not json")
    result = run("schedules", "--dir", str(tmp_path / "q"))
    assert result.exit_code == 0, result.output
    assert "No schedules in" in result.output
    assert "is corrupt" in caplog.text and "Nothing was changed" in caplog.text
    assert (tmp_path / "q" / "schedules.json").read_text() == "{not json"


def test_a_missing_folder_is_a_usage_error(tmp_path):
    result = run("schedules", "--dir", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_jobs_show_and_enqueue_with_a_unique_key(make_queue):
    make_queue().recover()
    where = str(make_queue.location)
    first = CliRunner().invoke(
        cli, ["jobs", "enqueue", "Report", "--unique-key", "acct-1:2025-01-20", "--dir", where]
    )
    assert first.exit_code == 0, first.output
    job_id = first.stdout.strip()
    again = CliRunner().invoke(
        cli,
        [
            "jobs",
            "enqueue",
            "Report",
            "--unique-key",
            "acct-1:2025-01-20",
            "--unique-for",
            "1h",
            "--dir",
            where,
        ],
    )
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == job_id
    assert f"job {job_id} (Queued) holds the unique key 'acct-1:2025-01-20'" in again.stderr
    shown = run("jobs", "show", job_id, "--dir", where)
    assert "Unique key" in shown.output and "acct-1:2025-01-20" in shown.output
    doc = json.loads(run("jobs", "show", job_id, "--json", "--dir", where).output)
    assert doc["_jobledger"]["unique_key"] == "acct-1:2025-01-20"
    plain = run("jobs", "show", make_queue().enqueue({"type": "T"}), "--dir", where)
    assert "Unique key" not in plain.output
    lone = run("jobs", "enqueue", "T", "--unique-for", "1h", "--dir", where)
    assert lone.exit_code == 2 and "--unique-for needs --unique-key" in lone.output


def test_worker_stores_the_schedules_of_its_module_and_runs_what_is_due(
    make_queue, tmp_path, monkeypatch
):
    make_queue().recover()
    module = tmp_path / "mysched.py"
    module.write_text(
        textwrap.dedent(
            """
            import jobledger

            def report(job):
                return {"account": job.raw["account"]}

            HANDLERS = {"Report": report}
            # Stored when the worker starts; its first occurrence is the next minute's,
            # which --until-empty does not wait for.
            SCHEDULES = [jobledger.Schedule("every-minute", "* * * * *",
                                            job={"type": "Report", "account": "a"})]
            NOT_SCHEDULES = {"a": 1}
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    where = str(make_queue.location)
    result = run(
        "worker",
        "--handlers",
        "mysched:HANDLERS",
        "--schedules",
        "mysched:SCHEDULES",
        "--until-empty",
        "--dir",
        where,
    )
    assert result.exit_code == 0, result.output
    [stored] = make_queue().schedules()
    assert (stored.name, stored.cron, stored.payload) == (
        "every-minute",
        "* * * * *",
        {"account": "a"},
    )
    bad = run(
        "worker",
        "--handlers",
        "mysched:HANDLERS",
        "--schedules",
        "mysched:NOT_SCHEDULES",
        "--until-empty",
        "--dir",
        where,
    )
    assert bad.exit_code == 2
    assert "mysched:NOT_SCHEDULES is of type dict, not a list of jobledger.Schedule" in bad.output
