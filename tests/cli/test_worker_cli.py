"""`jobledger worker`: handlers from a module, draining a queue, and graceful signals.

The signal tests run the worker as a real process and synchronise on what it prints
(a handler's line, the worker's log lines), never on sleeping.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jobledger import JobQueue, JobStatus
from jobledger.cli import cli
from tests._child import Spawned

HANDLERS_SOURCE = """
import os
import sys


def echo(job):
    return {"echoed": job.payload.get("text")}


def boom(job):
    raise ValueError("no such model: " + str(job.payload.get("model")))


def block(job):
    # Tell the test we are running, then wait for a byte on stdin (the test's release).
    print("started " + job.job_id, flush=True)
    os.read(0, 1)
    return {"released": True}


HANDLERS = {"echo": echo, "boom": boom, "block": block}
NOT_A_MAPPING = [echo]
EMPTY = {}
BAD_VALUE = {"echo": "not a function"}
"""

_names = itertools.count()


@pytest.fixture
def handlers_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A handlers module written to tmp_path (the current directory), under a fresh name."""
    name = f"cli_worker_handlers_{os.getpid()}_{next(_names)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(HANDLERS_SOURCE), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def worker_cli(*args: str) -> Result:
    return CliRunner().invoke(cli, ["worker", *args])


# -- in process: --until-empty and bad --handlers --------------------------------------------


def test_until_empty_drains_the_queue_and_stores_results(
    tmp_path: Path, handlers_module: str
) -> None:
    qdir = tmp_path / "queue"
    with JobQueue(qdir, durability="flush") as q:
        ids = [q.enqueue({"type": "echo", "text": f"t{i}"}) for i in range(5)]
        q.enqueue({"type": "boom", "model": "m-1"}, job_id="bad", max_attempts=1)
    path_before = list(sys.path)
    result = worker_cli(
        "--dir",
        str(qdir),
        "--handlers",
        f"{handlers_module}:HANDLERS",
        "--until-empty",
        "--concurrency",
        "2",
        "--durability",
        "flush",
    )
    assert result.exit_code == 0, result.output
    assert "exits when the queue is empty" in result.stderr
    assert "stopped after 5 completed jobs" in result.stderr
    assert "Queued 0, Running 0, Completed 5, Failed 1" in result.stderr
    assert sys.path == path_before  # the current directory was on sys.path only meanwhile
    with JobQueue(qdir) as q:
        for i, job_id in enumerate(ids):
            job = q.get(job_id)
            assert job is not None and job.status is JobStatus.COMPLETED
            assert job.result == {"echoed": f"t{i}"}
        bad = q.get("bad")
        assert bad is not None and bad.status is JobStatus.FAILED
        assert bad.error_message == "ValueError: no such model: m-1"
        assert q.live_workers() == []  # the worker's lock was released


def test_until_empty_on_an_empty_queue_exits_at_once(tmp_path: Path, handlers_module: str) -> None:
    (tmp_path / "q").mkdir()  # the worker needs an existing queue folder (issue 11)
    result = worker_cli(
        "--dir", str(tmp_path / "q"), "--handlers", f"{handlers_module}:HANDLERS", "--until-empty"
    )
    assert result.exit_code == 0, result.output
    assert "stopped after 0 completed jobs" in result.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{mod}", "is not MODULE:MAPPING"),
        ("{mod}:", "is not MODULE:MAPPING"),
        (":HANDLERS", "is not MODULE:MAPPING"),
        ("no_such_module_for_jobledger:HANDLERS", "cannot import module"),
        ("{mod}:MISSING", "has no attribute 'MISSING'"),
        ("{mod}:NOT_A_MAPPING", "is of type list, not a mapping"),
        ("{mod}:EMPTY", "is empty"),
        ("{mod}:BAD_VALUE", "maps 'echo' to something that is not a handler"),
    ],
)
def test_bad_handlers_is_a_usage_error(
    tmp_path: Path, handlers_module: str, spec: str, message: str
) -> None:
    result = worker_cli(
        "--dir", str(tmp_path / "q"), "--handlers", spec.format(mod=handlers_module)
    )
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--handlers'" in result.stderr
    assert message in result.stderr
    assert not (tmp_path / "q").exists()  # nothing was started


def test_a_module_that_fails_to_import_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"cli_worker_broken_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text("raise RuntimeError('missing API key')\n")
    monkeypatch.chdir(tmp_path)
    try:
        result = worker_cli("--dir", str(tmp_path / "q"), "--handlers", f"{name}:HANDLERS")
    finally:
        sys.modules.pop(name, None)
    assert result.exit_code == 2
    assert "raised RuntimeError: missing API key" in result.stderr


# -- a real process and SIGTERM --------------------------------------------------------------


class WorkerProcess(Spawned):
    """``python -m jobledger -v worker ...`` with stdout and stderr merged into one pipe."""

    def __init__(self, qdir: Path, module: str, *extra: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        super().__init__(
            [
                sys.executable,
                "-m",
                "jobledger",
                "-v",
                "worker",
                "--dir",
                str(qdir),
                "--handlers",
                f"{module}:HANDLERS",
                "--durability",
                "flush",
                *extra,
            ],
            cwd=None,
            env=env,
            merge_stderr=True,
        )


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM to a child is POSIX")
def test_sigterm_while_idle_exits_0(tmp_path: Path, handlers_module: str) -> None:
    qdir = tmp_path / "queue"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "echo", "text": "warm-up"}, job_id="warm-up")
    w = WorkerProcess(qdir, handlers_module)
    w.wait_for("Completed job warm-up")  # it is serving, its signal handlers are in place
    w.proc.send_signal(signal.SIGTERM)
    code = w.finish()
    assert code == 0, w.output
    assert "Received SIGTERM" in w.output
    assert "stopped after 1 completed job" in w.output
    with JobQueue(qdir) as q:
        assert q.counts() == {
            "Queued": 0,
            "Running": 0,
            "Completed": 1,
            "Failed": 0,
            "Cancelled": 0,
        }
        assert q.live_workers() == []


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM to a child is POSIX")
def test_sigterm_mid_job_requeues_it_when_the_grace_runs_out(
    tmp_path: Path, handlers_module: str
) -> None:
    qdir = tmp_path / "queue"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "block"}, job_id="long")
        q.enqueue({"type": "echo", "text": "next"}, job_id="next")
    w = WorkerProcess(qdir, handlers_module, "--grace", "0")
    w.wait_for("started long")
    w.proc.send_signal(signal.SIGTERM)
    code = w.finish()  # the handler is still blocked on stdin: it never finished
    assert code == 0, w.output
    assert "did not finish within the grace period; requeued" in w.output
    with JobQueue(qdir) as q:
        job = q.get("long")
        assert job is not None and job.status is JobStatus.QUEUED, w.output
        assert job.attempts == 0  # the interrupted attempt is not counted
        assert job.worker is None and job.result is None
        untouched = q.get("next")
        assert untouched is not None and untouched.status is JobStatus.QUEUED
        # the requeued job is served first next time
        assert [j.job_id for j in q.list(JobStatus.QUEUED)] == ["long", "next"]


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM to a child is POSIX")
def test_sigterm_mid_job_lets_it_finish_within_the_grace(
    tmp_path: Path, handlers_module: str
) -> None:
    qdir = tmp_path / "queue"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "block"}, job_id="long")
        q.enqueue({"type": "echo", "text": "next"}, job_id="next")
    w = WorkerProcess(qdir, handlers_module)
    w.wait_for("started long")
    w.proc.send_signal(signal.SIGTERM)
    w.wait_for("Received SIGTERM")  # it stopped claiming; now let the handler return
    assert w.proc.stdin is not None
    w.proc.stdin.write("x")
    w.proc.stdin.flush()
    code = w.finish()
    assert code == 0, w.output
    with JobQueue(qdir) as q:
        job = q.get("long")
        assert job is not None and job.status is JobStatus.COMPLETED, w.output
        assert job.result == {"released": True}
        untouched = q.get("next")  # no new job was claimed after the signal
        assert untouched is not None and untouched.status is JobStatus.QUEUED


# -- what the worker says by default (no -v) -------------------------------------------------


def test_the_worker_prints_a_start_line_and_a_line_per_finished_job_without_v(
    tmp_path: Path, handlers_module: str
) -> None:
    qdir = tmp_path / "queue"
    with JobQueue(qdir, durability="flush") as q:
        ok = q.enqueue({"type": "echo", "text": "hi"})
        q.enqueue({"type": "boom", "model": "m-1"}, job_id="bad", max_attempts=2)
    result = worker_cli(
        "--dir", str(qdir), "--handlers", f"{handlers_module}:HANDLERS", "--until-empty"
    )
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert any(
        re.fullmatch(
            r"\d\d:\d\d:\d\d worker \S+ serving block, boom, echo from "
            + re.escape(str(qdir))
            + "; concurrency 1; exits when the queue is empty of due jobs",
            line,
        )
        for line in lines
    ), lines
    assert any(re.fullmatch(rf"\d\d:\d\d:\d\d done {ok} echo in \d+\.\d\ds", x) for x in lines)
    failed = [x for x in lines if re.match(r"\d\d:\d\d:\d\d failed bad boom in ", x)]
    assert len(failed) == 1, lines
    assert "(attempt 1 of 2, retry at " in failed[0]
    assert failed[0].endswith("): ValueError: no such model: m-1")
    # the retry is delayed (backoff): --until-empty says so and does not wait for it
    with JobQueue(qdir) as q:
        due = q.get("bad").run_after  # type: ignore[union-attr]
    assert (
        f"1 job is delayed, the next due at {due}; not waiting (use --wait-delayed)"
        in result.stderr
    )


def test_wait_delayed_needs_until_empty(tmp_path: Path, handlers_module: str) -> None:
    result = worker_cli(
        "--dir", str(tmp_path / "q"), "--handlers", f"{handlers_module}:HANDLERS", "--wait-delayed"
    )
    assert result.exit_code == 2
    assert "--wait-delayed only applies with --until-empty" in result.stderr


def test_queued_jobs_no_handler_serves_are_named(tmp_path: Path, handlers_module: str) -> None:
    qdir = tmp_path / "queue"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "TextJob"})
        q.enqueue({"type": "echo", "text": "x"})
    result = worker_cli(
        "--dir", str(qdir), "--handlers", f"{handlers_module}:HANDLERS", "--until-empty"
    )
    assert result.exit_code == 0, result.output
    assert (
        "1 queued job of type TextJob waits for a handler: this worker serves only "
        "block, boom, echo"
    ) in result.stderr
    assert result.stderr.count("of type TextJob waits for a handler") == 1


def test_help_documents_the_exit_codes_and_wait_delayed() -> None:
    result = CliRunner().invoke(cli, ["worker", "--help"])
    assert result.exit_code == 0
    assert "130 after SIGINT, 143 after SIGTERM" in result.output
    assert "--wait-delayed" in result.output


def test_a_failures_traceback_is_printed_without_v_and_shown_by_jobs_show(
    tmp_path: Path, handlers_module: str
) -> None:
    qdir = tmp_path / "queue"
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "boom", "model": "m-9"}, job_id="bad", max_attempts=1)
    # A real process: no logging set up but the CLI's own, as a user runs it.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    env.pop("JOBLEDGER_VERBOSE", None)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobledger",
            "worker",
            "--dir",
            str(qdir),
            "--handlers",
            f"{handlers_module}:HANDLERS",
            "--until-empty",
            "--durability",
            "flush",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "Job bad failed for good after 1 attempts: ValueError: no such model: m-9" in run.stderr
    assert "Traceback (most recent call last):" in run.stderr
    assert 'in boom\n    raise ValueError("no such model: " + str(job.payload.get("model")))' in (
        run.stderr
    )
    shown = CliRunner().invoke(cli, ["jobs", "show", "bad", "--dir", str(qdir)])
    assert shown.exit_code == 0, shown.output
    assert "Traceback of the last failed attempt:" in shown.stdout
    assert "Traceback (most recent call last):" in shown.stdout
    assert "ValueError: no such model: m-9" in shown.stdout.split("Traceback of")[1]
    as_json = CliRunner().invoke(cli, ["jobs", "show", "bad", "--dir", str(qdir), "--json"])
    doc = json.loads(as_json.stdout)
    assert doc["_jobledger"]["traceback"].startswith("Traceback (most recent call last):")
    assert doc["_jobledger"]["traceback"].rstrip().endswith("ValueError: no such model: m-9")
