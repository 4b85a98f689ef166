"""`jobledger queues list|limit|rate`, `jobs enqueue --queue`, `jobs list --queue`,
`jobs counts --by-queue` and `worker --queue NAME[:SLOTS]`, on every backend (a folder,
or a PostgreSQL schema's URL given to ``--dir``)."""

from __future__ import annotations

import json
import sys
import textwrap

from click.testing import CliRunner, Result

from jobledger import JobStatus, RateLimit
from jobledger.cli import cli


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_limits_are_stored_listed_and_removed(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="g1", queue="gpu")
    where = str(make_queue.location)
    assert run("queues", "limit", "gpu", "2", "--dir", where).exit_code == 0
    rated = run("queues", "rate", "Call", "5", "60", "--key", "account", "--dir", where)
    assert rated.exit_code == 0, rated.output
    assert "at most 5 starts per value of account per 60 s" in rated.output
    limits = make_queue().limits()
    assert limits.queues == {"gpu": 2}
    assert limits.rates == {"Call": RateLimit(5, 60.0, "account")}
    listed = run("queues", "list", "--dir", where)
    assert listed.exit_code == 0, listed.output
    assert "gpu" in listed.output and "account" in listed.output
    doc = json.loads(run("queues", "list", "--json", "--dir", where).output)
    assert doc["queues"] == {"gpu": 2}
    assert doc["jobs"]["gpu"]["Queued"] == 1
    assert doc["rates"] == {"Call": {"n": 5, "per": 60.0, "key_field": "account"}}
    assert run("queues", "limit", "gpu", "none", "--dir", where).exit_code == 0
    assert run("queues", "rate", "Call", "none", "1", "--dir", where).exit_code == 0
    assert make_queue().limits().queues == {} and make_queue().limits().rates == {}
    bad = run("queues", "limit", "gpu", "-3", "--dir", where)
    assert bad.exit_code == 2


def test_jobs_enqueue_list_and_counts_by_queue(make_queue):
    make_queue().recover()  # the storage exists
    where = str(make_queue.location)
    made = run("jobs", "enqueue", "T", "--queue", "gpu", "--rate-key", "acct", "--dir", where)
    assert made.exit_code == 0, made.output
    job_id = made.output.strip()
    assert run("jobs", "enqueue", "T", "--dir", where).exit_code == 0
    job = make_queue().get(job_id)
    assert (job.queue, job.rate_key) == ("gpu", "acct")
    shown = run("jobs", "show", job_id, "--dir", where)
    assert "Queue" in shown.output and "gpu" in shown.output and "acct" in shown.output
    listed = run("jobs", "list", "--queue", "gpu", "--dir", where)
    assert listed.exit_code == 0, listed.output
    assert job_id in listed.output and "1 job" in listed.output
    per_queue = json.loads(run("jobs", "counts", "--by-queue", "--json", "--dir", where).output)
    assert per_queue["gpu"]["Queued"] == 1 and per_queue["default"]["Queued"] == 1
    total = json.loads(run("jobs", "counts", "--json", "--dir", where).output)
    assert total["Queued"] == 2  # without --by-queue: as before
    table = run("jobs", "counts", "--dir", where)
    assert "Jobs per queue" in table.output and "gpu" in table.output


def test_worker_serves_only_the_queues_it_is_given(make_queue, tmp_path, monkeypatch):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 2, queue="gpu", job_ids=["g1", "g2"])
    q.enqueue({"type": "T"}, job_id="other", queue="other")
    (tmp_path / "qhandlers.py").write_text(
        textwrap.dedent(
            """
            def run(job):
                return job.queue

            HANDLERS = {"T": run}
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    where = str(make_queue.location)
    args = ("worker", "--handlers", "qhandlers:HANDLERS", "--until-empty", "--dir", where)
    result = run(*args, "--queue", "gpu:2")
    assert result.exit_code == 0, result.output
    check = make_queue()
    assert check.get("g1").status is JobStatus.COMPLETED
    assert check.get("g2").status is JobStatus.COMPLETED
    assert check.get("other").status is JobStatus.QUEUED
    both = run(*args, "--queue", "gpu:2", "--concurrency", "2")
    assert both.exit_code == 2
    bad = run(*args, "--queue", "gpu:0")
    assert bad.exit_code == 2 and "SLOTS" in bad.output
