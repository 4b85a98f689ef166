"""A worker process and two signals: the first is announced at once and waits, the
second gives the running job back and exits at once with 128 + the signal's number.

Real child processes (``jobledger worker`` and a plain Python program using ``Worker``),
no ``-v`` and no logging set up: what they print by default is what is tested. The test
synchronises on their stderr lines; the handler blocks on a pipe that never gets a byte.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from jobledger import JobQueue, JobStatus
from tests._child import Spawned

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals to a child are POSIX")

HANDLERS = """
import os
import sys


def block(job):
    # Say we run, then wait for a byte on stdin, which the test never sends.
    sys.stderr.write("started " + job.job_id + "\\n")
    sys.stderr.flush()
    os.read(0, 1)
    return "released"


def echo(job):
    return job.payload.get("text")


HANDLERS = {"block": block, "echo": echo}
"""

# A program using the Python API, with no logging configuration at all.
PROGRAM = """
import sys
from jobledger import JobQueue, Worker
from signal_handlers import HANDLERS

with JobQueue(sys.argv[1], durability="flush") as q:
    w = Worker(q, HANDLERS, grace_period=3600)
    w.run()
    sys.stderr.write(f"run returned: forced_by={w.forced_by and w.forced_by.name}\\n")
    sys.stderr.flush()
sys.exit(128 + int(w.forced_by) if w.forced_by else 0)
"""


class Proc(Spawned):
    """A child with stderr on a pipe (stdout discarded), read line by line."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join([str(cwd), *sys.path])
        env.pop("JOBLEDGER_VERBOSE", None)
        super().__init__(args, cwd=cwd, env=env, merge_stderr=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "signal_handlers.py").write_text(textwrap.dedent(HANDLERS), encoding="utf-8")
    (tmp_path / "program.py").write_text(textwrap.dedent(PROGRAM), encoding="utf-8")
    with JobQueue(tmp_path / "queue", durability="flush") as q:
        q.enqueue({"type": "block"}, job_id="long")
        q.enqueue({"type": "echo", "text": "next"}, job_id="next", priority=-1)
    return tmp_path


def _cli(folder: Path) -> Proc:
    return Proc(
        [
            sys.executable,
            "-m",
            "jobledger",
            "worker",
            "--dir",
            str(folder / "queue"),
            "--handlers",
            "signal_handlers:HANDLERS",
            "--durability",
            "flush",
            "--grace",
            "3600",
        ],
        folder,
    )


def _status(folder: Path, job_id: str) -> tuple[JobStatus, int]:
    with JobQueue(folder / "queue") as q:
        job = q.get(job_id)
        assert job is not None
        return job.status, job.attempts


def _two_signals(p: Proc, folder: Path, sig: signal.Signals, again: str) -> int:
    p.wait_for("started long")
    p.proc.send_signal(sig)
    line = p.wait_for(f"Received {sig.name}: stopping")
    assert "waiting up to 3600s for 1 running job to finish" in line, line
    assert f"{again} to requeue it now" in line, line
    # It waits: still alive, the job still Running under it.
    assert p.proc.poll() is None, p.output
    assert _status(folder, "long") == (JobStatus.RUNNING, 1)
    p.proc.send_signal(sig)
    p.wait_for(f"Received {sig.name} again: requeueing 1 running job and stopping now")
    return p.finish()  # the watchdog kills a worker that waits the grace out: code -9


def _given_back(folder: Path, p: Proc) -> None:
    with JobQueue(folder / "queue") as q:
        job = q.get("long")
        assert job is not None and job.status is JobStatus.QUEUED, p.output
        assert job.attempts == 0 and job.worker is None  # the attempt is not counted
        nxt = q.get("next")  # nothing else was claimed after the first signal
        assert nxt is not None and nxt.status is JobStatus.QUEUED
        assert [j.job_id for j in q.list(JobStatus.QUEUED)] == ["long", "next"]


def test_cli_second_sigint_requeues_the_running_job_and_exits_130(folder: Path) -> None:
    p = _cli(folder)
    code = _two_signals(p, folder, signal.SIGINT, "press Ctrl-C again")
    assert code == 130, p.output
    assert "requeued: the stop was forced" in p.output
    assert "(stop forced by SIGINT)" in p.output
    _given_back(folder, p)


def test_cli_second_sigterm_exits_143(folder: Path) -> None:
    p = _cli(folder)
    code = _two_signals(p, folder, signal.SIGTERM, "send SIGTERM again (or press Ctrl-C)")
    assert code == 143, p.output
    _given_back(folder, p)


def test_cli_one_signal_and_a_finished_job_exits_0(folder: Path) -> None:
    p = _cli(folder)
    p.wait_for("started long")
    p.proc.send_signal(signal.SIGINT)
    p.wait_for("Received SIGINT: stopping; waiting up to 3600s")
    assert p.proc.stdin is not None
    p.proc.stdin.write("x")  # let the handler return within the grace
    p.proc.stdin.flush()
    assert p.finish() == 0, p.output
    assert " done long block in " in p.output
    assert _status(folder, "long") == (JobStatus.COMPLETED, 1)


def test_python_api_announces_the_first_signal_without_any_logging_set_up(
    folder: Path,
) -> None:
    p = Proc([sys.executable, "program.py", str(folder / "queue")], folder)
    code = _two_signals(p, folder, signal.SIGINT, "press Ctrl-C again")
    assert "run returned: forced_by=SIGINT" in p.output
    assert code == 130, p.output
    _given_back(folder, p)
