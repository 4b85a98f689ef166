"""Handlers that process-isolated Workers import by name in their jobs' processes
(``Worker(..., isolation="process")``): each is a top-level function of this module.

Each reports what it did through its return value, its checkpoints and progress, or the
way its process ends; none sleeps to synchronise (a handler that must wait blocks on
its own signals, or on ``signal.pause``, until its parent stops it).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from typing import Any

import jobledger


@jobledger.job_type("Train")
@dataclasses.dataclass
class Train:
    """A typed job: the child makes its payload this class again."""

    model: str
    epochs: int


def echo(job: jobledger.Job) -> Any:
    """Return what the child saw of the job: its payload, attempt and process."""
    return {"payload": job.raw, "attempts": job.attempts, "pid": os.getpid()}


async def async_echo(job: jobledger.Job) -> Any:
    """A coroutine function: the child runs it to its end (``asyncio.run``)."""
    return {"payload": job.raw, "pid": os.getpid()}


def noop(job: jobledger.Job) -> None:
    """Nothing: the cost of a process per job."""


def train(job: jobledger.Job) -> Any:
    """Typed payload, progress and checkpoints: resumes from the last checkpoint."""
    payload = job.payload
    assert isinstance(payload, Train), type(payload)
    start = (job.checkpoint_data or {}).get("epoch", 0)
    for epoch in range(start + 1, payload.epochs + 1):
        job.progress(epoch, payload.epochs, f"epoch {epoch}")
        job.checkpoint({"epoch": epoch})
    return {"model": payload.model, "from": start, "pid": os.getpid()}


def kill_self(job: jobledger.Job) -> None:
    """Die of SIGKILL on the first attempt (as an out-of-memory kill would), then succeed."""
    if job.attempts == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return None


def exit_3(job: jobledger.Job) -> str:
    """``os._exit(3)`` on the first attempt, then succeed."""
    if job.attempts == 1:
        os._exit(3)
    return "second"


def segfault(job: jobledger.Job) -> str:
    """Crash in native code (a read of address 0: SIGSEGV) on the first attempt."""
    if job.attempts == 1:
        import ctypes

        ctypes.string_at(0)
    return "second"


def abort(job: jobledger.Job) -> None:
    """``os.abort()`` (SIGABRT) on every attempt."""
    os.abort()


def boom(job: jobledger.Job) -> None:
    """Raise, as a handler's bug would."""
    raise ValueError(f"bad input {job.raw.get('n')}")


def unstorable(job: jobledger.Job) -> Any:
    """Return a value JSON cannot hold."""
    return {"when": object()}


def _wait_forever() -> None:
    while True:
        signal.pause()


def ready_then_wait(job: jobledger.Job) -> None:
    """Tell the parent it runs (a progress report), then wait until stopped; a SIGTERM
    unwinds it, and its ``finally`` leaves a mark (the file named in the payload)."""
    try:
        job.progress(0, None, "ready")
        _wait_forever()
    finally:
        mark = job.raw.get("mark")
        if mark:
            with open(mark, "w") as f:
                f.write("unwound")


def wait(job: jobledger.Job) -> None:
    """Wait until stopped."""
    _wait_forever()


def say_pid_then_wait(job: jobledger.Job) -> None:
    """Print which process runs the job (on stderr, the worker's), then wait."""
    import sys

    sys.stderr.write(f"job {job.job_id} in {os.getpid()}\n")
    sys.stderr.flush()
    _wait_forever()


def ignore_sigterm(job: jobledger.Job) -> None:
    """Ignore SIGTERM, tell the parent it runs, and wait: only SIGKILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    job.progress(0, None, "ready")
    _wait_forever()


def check_deadline(job: jobledger.Job) -> str:
    """Cooperative: a deadline is set in the child; ``check()`` passes before it."""
    assert job.deadline is not None
    job.check()
    return "checked"


def slow_checker(job: jobledger.Job) -> None:
    """Check cooperatively until the child's own deadline passes (JobTimeout)."""
    while True:
        job.check()
        time.sleep(0.01)


def spawn_grandchild_then_wait(job: jobledger.Job) -> None:
    """Start a grandchild process that writes its pid to the payload's file, then wait."""
    import subprocess

    child = subprocess.Popen(["sleep", "600"])
    with open(job.raw["pidfile"], "w") as f:
        f.write(str(child.pid))
    job.progress(0, None, "ready")
    _wait_forever()


def snooze_until_counted(job: jobledger.Job) -> Any:
    """Snooze for ``seconds`` of the payload until it has snoozed ``times`` times, counting
    in its checkpoint (which a snooze keeps); raised, or returned when ``how`` says so."""
    snoozes = (job.checkpoint_data or {}).get("snoozes", 0)
    if snoozes >= job.raw["times"]:
        return {"snoozes": snoozes, "attempts": job.attempts, "pid": os.getpid()}
    job.checkpoint({"snoozes": snoozes + 1})
    if job.raw.get("how") == "return":
        return jobledger.Snooze(job.raw["seconds"])
    raise jobledger.Snooze(job.raw["seconds"])


HANDLERS = {"Echo": echo, "Train": train, "Noop": noop}
