"""Process isolation: each attempt in a child process of its own (real processes, from
the fork server), its handler imported by name from ``tests/_handlers.py``.

A child that dies (SIGKILL, ``os._exit``, ``os.abort``) fails only its attempt, named in
the failure, and the worker serves on; results, progress and checkpoints cross the pipe
as JSON; a cancel or a stop of the worker kills the child and the processes it started.
The Worker tests run on each backend (``make_queue``).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import jobledger
from jobledger import JobCancelled, JobLedgerError, JobStatus, Worker
from jobledger._errors import ForeignFailure
from jobledger._isolation import ProcessRunner, death_text, handler_name
from jobledger._job_attempt import Attempt
from jobledger._job_view import Job
from tests import _handlers
from tests._child import Spawned

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and process groups: POSIX")

WAIT = 60  # seconds: only a bound on a hang, never a synchronisation


def _failures(q: jobledger.JobQueue) -> list[tuple[str, str]]:
    """Every failure recorded through ``q``: (job id, message as stored)."""
    seen: list[tuple[str, str]] = []
    original = q.fail

    def fail(job_id: str, error: BaseException | str) -> Job:
        failed = original(job_id, error)
        seen.append((job_id, failed.error_message or ""))
        return failed

    q.fail = fail  # type: ignore[method-assign]
    return seen


def _worker(q: jobledger.JobQueue, handlers: dict[str, Any], **kwargs: Any) -> Worker:
    return Worker(q, handlers, isolation="process", handle_signals=False, **kwargs)


# -- a child's death fails only its attempt ----------------------------------------------


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (
            "kill_self",
            "the job's process was killed by SIGKILL (signal 9): jobledger did not send it: "
            "the likely cause is the system's out-of-memory killer",
        ),
        ("exit_3", "the job's process exited with code 3 before its handler returned"),
        (
            "segfault",
            "the job's process was killed by SIGSEGV (signal 11): a crash in native code",
        ),
    ],
)
def test_a_child_that_dies_fails_its_attempt_naming_how_and_is_retried(
    make_queue, handler, message
):
    q = make_queue(retry_delay=0)
    dying = q.enqueue({"type": "Dies"}, max_attempts=2, priority=1)
    after = q.enqueue({"type": "Echo", "n": 1})
    failures = _failures(q)
    _worker(q, {"Dies": f"tests._handlers:{handler}", "Echo": _handlers.echo}).run(
        until_empty=True, wait_delayed=True
    )
    assert len(failures) == 1 and failures[0][0] == dying
    assert failures[0][1].startswith(message), failures[0][1]
    job = q.get(dying)
    assert job.status is JobStatus.COMPLETED and job.attempts == 2  # the retry succeeded
    served = q.get(after)  # the worker served on, in a process of its own
    assert served.status is JobStatus.COMPLETED
    assert served.result["payload"] == {"n": 1} and served.result["pid"] != os.getpid()


def test_an_abort_fails_every_attempt_and_then_the_job_naming_sigabrt(make_queue):
    q = make_queue(retry_delay=0)
    job_id = q.enqueue({"type": "Abort"}, max_attempts=2)
    failures = _failures(q)
    _worker(q, {"Abort": _handlers.abort}).run(until_empty=True, wait_delayed=True)
    expected = (
        "the job's process was killed by SIGABRT (signal 6): an abort (os.abort(), or a "
        "failed check in native code)"
    )
    assert failures == [(job_id, expected), (job_id, expected)]
    job = q.get(job_id)
    assert job.status is JobStatus.FAILED and job.attempts == 2
    assert job.error_message == expected and job.traceback is None


def test_a_handler_s_exception_keeps_its_message_and_the_child_s_traceback(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "Boom", "n": 7}, max_attempts=1)
    _worker(q, {"Boom": "tests._handlers:boom"}).run(until_empty=True)
    job = q.get(job_id)
    assert job.status is JobStatus.FAILED
    assert job.error_message == "ValueError: bad input 7"
    assert job.traceback is not None
    assert 'tests/_handlers.py", line' in job.traceback and "in boom" in job.traceback
    assert job.traceback.rstrip().endswith("ValueError: bad input 7")


def test_a_result_json_cannot_hold_fails_as_with_threads(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "U"}, max_attempts=1)
    _worker(q, {"U": "tests._handlers:unstorable"}).run(until_empty=True)
    job = q.get(job_id)
    assert job.status is JobStatus.FAILED
    assert "the handler's result is not JSON-serialisable" in job.error_message


# -- what crosses the pipe ---------------------------------------------------------------


class Recording(Worker):
    """A process Worker whose attempts store progress and checkpoints in lists (the sinks
    the queue's storage would fill)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, isolation="process", handle_signals=False, **kwargs)
        self.progress: list[tuple[float, float | None, str | None]] = []
        self.checkpoints: list[Any] = []

    def _prepare_attempt(self, job: Job, attempt: Attempt) -> None:
        attempt.on_progress = lambda done, total, note: self.progress.append((done, total, note))
        attempt.on_checkpoint = self.checkpoints.append


def test_a_typed_job_s_result_progress_and_checkpoints_round_trip(make_queue):
    q = make_queue()
    job_id = q.enqueue(_handlers.Train(model="m-7b", epochs=3))
    worker = Recording(q, {"Train": _handlers.train})
    worker.run(until_empty=True)
    job = q.get(job_id)
    assert job.status is JobStatus.COMPLETED
    assert job.result["model"] == "m-7b" and job.result["from"] == 0
    assert job.result["pid"] != os.getpid()
    assert worker.checkpoints == [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}]
    assert worker.progress == [(1, 3, "epoch 1"), (2, 3, "epoch 2"), (3, 3, "epoch 3")]


def test_a_coroutine_handler_runs_to_its_end_in_its_process(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "Async", "n": 3})
    _worker(q, {"Async": _handlers.async_echo}).run(until_empty=True)
    job = q.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.result["payload"] == {"n": 3}


def _job(**fields: Any) -> Job:
    base: dict[str, Any] = dict(
        job_id="j1", type="Train", status=JobStatus.RUNNING, payload={}, attempts=2,
        max_attempts=3, priority=0, error_message=None, result=None, worker="w",
        created=None, started=None, finished=None, run_after=None, raw={},
    )  # fmt: skip
    base.update(fields)
    return Job(**base)


def test_the_last_checkpoint_reaches_the_child_and_a_refused_one_raises_there():
    stored: list[Any] = []

    def store(data: Any) -> None:
        if data == {"epoch": 4}:
            raise JobLedgerError("disk full at /q/jobs/j1.json")
        stored.append(data)

    attempt = Attempt("j1", on_progress=lambda *a: None, on_checkpoint=store)
    job = _job(raw={"model": "m", "epochs": 5}, checkpoint_data={"epoch": 2})
    with pytest.raises(ForeignFailure) as info:
        ProcessRunner(kill_grace=WAIT).run(job, "tests._handlers:train", attempt)
    assert stored == [{"epoch": 3}]  # resumed after 2; the one after 3 refused
    assert info.value.text == "JobLedgerError: disk full at /q/jobs/j1.json"
    assert "in train" in (info.value.trace or "")


def test_a_job_without_sinks_is_told_so_in_its_process():
    attempt = Attempt("j1")  # no progress, no checkpoint storage
    job = _job(raw={"model": "m", "epochs": 1})
    with pytest.raises(ForeignFailure, match=r"j1: progress\(\) is only for a job"):
        ProcessRunner(kill_grace=WAIT).run(job, "tests._handlers:train", attempt)


# -- cancel and stop ---------------------------------------------------------------------


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie, not yet reaped, counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _until_gone(pid: int) -> bool:
    """Wait (bounded) for ``pid`` to end: the kernel delivers a SIGKILL asynchronously."""
    deadline = threading.Event()
    for _ in range(WAIT * 20):
        if _gone(pid):
            return True
        deadline.wait(0.05)
    return False


def test_a_cancel_stops_the_child_with_sigterm_and_raises_job_cancelled(tmp_path: Path):
    mark = tmp_path / "unwound"
    attempt = Attempt("j1")
    attempt.on_progress = lambda done, total, note: attempt.cancel.set()  # on "ready"
    job = _job(type="Wait", raw={"mark": str(mark)})
    with pytest.raises(JobCancelled, match="job j1 was cancelled"):
        ProcessRunner(kill_grace=WAIT).run(job, "tests._handlers:ready_then_wait", attempt)
    assert mark.read_text() == "unwound"  # SIGTERM unwound the handler


def test_a_cancel_kills_the_processes_the_job_started(tmp_path: Path):
    pidfile = tmp_path / "grandchild"
    attempt = Attempt("j1")
    attempt.on_progress = lambda done, total, note: attempt.cancel.set()
    job = _job(type="Spawn", raw={"pidfile": str(pidfile)})
    with pytest.raises(JobCancelled):
        ProcessRunner(kill_grace=0.5).run(
            job, "tests._handlers:spawn_grandchild_then_wait", attempt
        )
    assert _until_gone(int(pidfile.read_text()))  # its `sleep 600` went with it


def test_a_stop_past_the_grace_kills_the_child_and_gives_the_job_back_uncounted(
    make_queue, tmp_path
):
    q = make_queue()
    pidfile = tmp_path / "grandchild"
    job_id = q.enqueue({"type": "Spawn", "pidfile": str(pidfile)})
    ready = threading.Event()

    class Stopping(Worker):
        def _prepare_attempt(self, job: Job, attempt: Attempt) -> None:
            attempt.on_progress = lambda done, total, note: ready.set()

    worker = Stopping(
        q,
        {"Spawn": "tests._handlers:spawn_grandchild_then_wait"},
        isolation="process",
        handle_signals=False,
        grace_period=0,
    )
    runner = threading.Thread(target=worker.run)
    runner.start()
    assert ready.wait(WAIT)
    worker.stop()
    runner.join(WAIT)
    assert not runner.is_alive()
    job = q.get(job_id)
    assert job.status is JobStatus.QUEUED and job.attempts == 0 and job.worker is None
    assert _until_gone(int(pidfile.read_text()))


WORKER = """
import sys
from jobledger import JobQueue, Worker

if __name__ == "__main__":
    with JobQueue(sys.argv[1], durability="flush") as q:
        Worker(q, {"Wait": "tests._handlers:say_pid_then_wait"}, isolation="process").run()
"""


def test_a_job_s_process_dies_with_its_worker(tmp_path: Path):
    folder = tmp_path / "queue"
    with jobledger.JobQueue(folder, durability="flush") as q:
        job_id = q.enqueue({"type": "Wait"})
    (tmp_path / "worker.py").write_text(WORKER, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = Spawned(
        [sys.executable, str(tmp_path / "worker.py"), str(folder)],
        cwd=Path(__file__).parent.parent,
        env=env,
        merge_stderr=True,
    )
    line = worker.wait_for(f"job {job_id} in ")
    pid = int(line.rsplit(" ", 1)[1])
    assert not _gone(pid)
    worker.proc.kill()  # SIGKILL: no stop, no cleanup in the worker
    worker.finish()
    assert _until_gone(pid), f"the job's process {pid} outlived its worker"
    with jobledger.JobQueue(folder, durability="flush") as q:  # another worker recovers it
        [job] = q.recover()
        assert job.job_id == job_id
        assert job.status is JobStatus.QUEUED and job.attempts == 1  # its attempt counted


# -- which handlers a child can import ---------------------------------------------------


def _nested() -> Any:
    def inner(job: Job) -> None:
        return None

    return inner


@pytest.mark.parametrize(
    ("handler", "refusal"),
    [
        (lambda job: None, "is a lambda (tests.test_isolation.<lambda>)"),
        (_nested(), "is a function defined inside another (tests.test_isolation._nested."),
        (functools.partial(_handlers.echo), "is a partial, which has no name"),
        ("tests._handlers:nosuch", "module 'tests._handlers' has no 'nosuch'"),
        ("tests._nosuch:echo", "cannot import module 'tests._nosuch'"),
        ("echo", "'echo' is not a handler's name: write it as 'module:function'"),
        ("tests._handlers:HANDLERS", "is a dict, not a function taking the job"),
    ],
)
def test_a_handler_a_child_cannot_import_is_refused_when_the_worker_is_made(
    make_queue, handler, refusal
):
    with pytest.raises(JobLedgerError) as info:
        _worker(make_queue(), {"T": handler})
    assert refusal in str(info.value)
    if not isinstance(handler, str):
        assert str(info.value).startswith("the handler of job type 'T' is a")
        assert "imports its handlers by name in each job's process" in str(info.value)


def test_importable_handlers_are_named_as_a_child_imports_them():
    assert handler_name("T", _handlers.echo) == "tests._handlers:echo"
    assert handler_name("T", " tests._handlers:echo ") == "tests._handlers:echo"


def test_a_thread_worker_takes_a_handler_s_name_too(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "Echo", "n": 2})
    Worker(q, {"Echo": "tests._handlers:echo"}, handle_signals=False).run(until_empty=True)
    result = q.get(job_id).result
    assert result["payload"] == {"n": 2} and result["pid"] == os.getpid()


def test_an_unknown_isolation_is_refused(make_queue):
    with pytest.raises(JobLedgerError, match="isolation must be 'thread' or 'process'"):
        Worker(make_queue(), {"T": _handlers.echo}, isolation="container")


def test_death_texts_name_the_signal_or_the_exit_code():
    assert death_text(-11).startswith("the job's process was killed by SIGSEGV (signal 11)")
    assert death_text(0).startswith("the job's process exited with code 0 before")
