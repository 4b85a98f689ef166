"""`jobledger worker --isolation process`: each job in a process of its own, from the
command line; a timeout from --timeout; Ctrl-C from a terminal.

The signal tests run the worker as a real process in a session of its own and send
SIGINT to its whole process group, as a terminal's Ctrl-C does: the job's process, in a
group of its own, is not hit, and the worker waits for it (or, at a second Ctrl-C, kills
it and gives the job back). They synchronise on the lines printed, and the handler waits
on a FIFO that the test writes to (or never does).
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jobledger import JobQueue, JobStatus
from jobledger.cli import cli
from tests import _handlers
from tests._child import Spawned

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups and FIFOs: POSIX")


def worker_cli(*args: str) -> Result:
    return CliRunner().invoke(cli, ["worker", *args])


def test_isolation_process_runs_each_job_in_a_process_of_its_own(make_queue) -> None:
    q = make_queue()
    ids = [q.enqueue({"type": "Echo", "n": n}) for n in range(3)]
    result = worker_cli(
        "--dir",
        str(make_queue.location),
        "--handlers",
        "tests._handlers:HANDLERS",
        "--isolation",
        "process",
        "--until-empty",
        "--durability",
        "flush",
    )
    assert result.exit_code == 0, result.output
    assert "stopped after 3 completed jobs" in result.stderr
    jobs = [make_queue().get(job_id) for job_id in ids]
    assert [j.status for j in jobs] == [JobStatus.COMPLETED] * 3
    assert [j.result["payload"] for j in jobs] == [{"n": 0}, {"n": 1}, {"n": 2}]
    pids = {j.result["pid"] for j in jobs}
    assert len(pids) == 3 and os.getpid() not in pids


def test_timeout_bounds_the_attempts_of_jobs_that_give_none(make_queue) -> None:
    q = make_queue()
    job_id = q.enqueue({"type": "Wait"}, max_attempts=1)
    result = worker_cli(
        "--dir",
        str(make_queue.location),
        "--handlers",
        "tests.cli.test_worker_isolation:WAITERS",
        "--isolation",
        "process",
        "--timeout",
        "0.3",
        "--until-empty",
    )
    assert result.exit_code == 0, result.output
    job = make_queue().get(job_id)
    assert job.status is JobStatus.FAILED
    assert job.error_message == (
        "timed out after 0.3 s (the Worker's timeout; its process was stopped by SIGTERM)"
    )


#: Handler mappings for --handlers: an importable function, and a lambda.
WAITERS = {"Wait": _handlers.wait}
LAMBDAS = {"T": lambda job: None}


def test_a_handler_a_job_s_process_cannot_import_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "q").mkdir()
    result = worker_cli(
        "--dir",
        str(tmp_path / "q"),
        "--handlers",
        "tests.cli.test_worker_isolation:LAMBDAS",
        "--isolation",
        "process",
    )
    assert result.exit_code == 2, result.output
    assert "the handler of job type 'T' is a lambda" in result.stderr
    assert "define the handler at the top level of a module" in result.stderr


def test_help_names_the_isolations_and_the_timeout_options() -> None:
    result = worker_cli("--help")
    assert result.exit_code == 0
    for text in ("--isolation [thread|process]", "--timeout DURATION", "--kill-grace DURATION"):
        assert text in result.output


# -- Ctrl-C from a terminal --------------------------------------------------------------

HANDLERS = """
import os
import sys


def block(job):
    # Say we run, in which process; then wait for a byte on the FIFO (the test's release).
    sys.stderr.write(f"started {job.job_id} in {os.getpid()}\\n")
    sys.stderr.flush()
    with open(job.raw["fifo"], "rb") as f:
        f.read(1)
    return "released"


HANDLERS = {"block": block}
"""


class Proc(Spawned):
    """The worker, in a session of its own, stderr on a pipe."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join([str(cwd), *sys.path])
        env.pop("JOBLEDGER_VERBOSE", None)
        super().__init__(args, cwd=cwd, env=env, merge_stderr=False, new_session=True)

    def ctrl_c(self) -> None:
        """What a terminal's Ctrl-C does: SIGINT to the foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "iso_handlers.py").write_text(textwrap.dedent(HANDLERS), encoding="utf-8")
    os.mkfifo(tmp_path / "release")
    with JobQueue(tmp_path / "queue", durability="flush") as q:
        q.enqueue({"type": "block", "fifo": str(tmp_path / "release")}, job_id="long")
    return tmp_path


def _worker(folder: Path) -> Proc:
    return Proc(
        [
            sys.executable,
            "-m",
            "jobledger",
            "worker",
            "--dir",
            str(folder / "queue"),
            "--handlers",
            "iso_handlers:HANDLERS",
            "--isolation",
            "process",
            "--durability",
            "flush",
            "--grace",
            "3600",
        ],
        folder,
    )


def _job_pid(p: Proc) -> int:
    line = p.wait_for("started long in ")
    return int(line.rsplit(" ", 1)[1])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _job(folder: Path) -> tuple[JobStatus, int]:
    with JobQueue(folder / "queue") as q:
        job = q.get("long")
        assert job is not None
        return job.status, job.attempts


def test_ctrl_c_waits_for_the_job_s_process_which_it_does_not_reach(folder: Path) -> None:
    p = _worker(folder)
    pid = _job_pid(p)
    p.ctrl_c()
    line = p.wait_for("Received SIGINT: stopping")
    assert "waiting up to 3600s for 1 running job to finish" in line, line
    assert _alive(pid) and p.proc.poll() is None  # the job's process did not get it
    with open(folder / "release", "wb") as f:  # let the job finish within the grace
        f.write(b"x")
    assert p.finish() == 0, p.output
    assert " done long block in " in p.output
    assert _job(folder) == (JobStatus.COMPLETED, 1)


def test_a_second_ctrl_c_kills_the_job_s_process_and_gives_the_job_back(folder: Path) -> None:
    p = _worker(folder)
    pid = _job_pid(p)
    p.ctrl_c()
    p.wait_for("Received SIGINT: stopping")
    p.ctrl_c()
    p.wait_for("Received SIGINT again: requeueing 1 running job and stopping now")
    assert p.finish() == 130, p.output
    gone = threading.Event()
    for _ in range(1200):  # bounded: the kernel ends a SIGKILLed process asynchronously
        if not _alive(pid):
            gone.set()
            break
        threading.Event().wait(0.05)
    assert gone.is_set(), f"the job's process {pid} outlived its worker"
    assert _job(folder) == (JobStatus.QUEUED, 0)  # given back, the attempt not counted
