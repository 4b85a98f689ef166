"""`jobledger worker`: handlers from a module, draining a queue, and graceful signals.

The signal tests run the worker as a real process and synchronise on what it prints
(a handler's line, the worker's log lines), never on sleeping.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jobledger import JobQueue, JobStatus
from jobledger.cli import cli

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
    assert "stopped after 5 completed job(s)" in result.stderr
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
    assert "stopped after 0 completed job(s)" in result.stderr


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


class WorkerProcess:
    """``python -m jobledger -v worker ...`` with stdout and stderr merged into one pipe."""

    def __init__(self, qdir: Path, module: str, *extra: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
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
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
        self.lines: list[str] = []
        # A safety net against a hung test run, not a synchronisation: nothing waits on it.
        self._watchdog = threading.Timer(120, self.proc.kill)
        self._watchdog.start()

    def wait_for(self, text: str) -> str:
        """Read output lines until one contains ``text``; fail if the process ends first."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"the worker ended before printing {text!r}:\n{self.output}")

    def finish(self) -> int:
        """Wait for the exit; the exit code."""
        assert self.proc.stdout is not None
        self.lines.extend(self.proc.stdout)
        code = self.proc.wait()
        self._watchdog.cancel()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


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
    assert "stopped after 1 completed job(s)" in w.output
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
