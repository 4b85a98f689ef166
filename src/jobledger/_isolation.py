"""Where a job runs: in a child process of its own (``Worker(..., isolation="process")``).

Each attempt runs in a new process started by ``multiprocessing``'s fork server (spawn
where there is none): never a plain ``fork()`` of the worker, whose threads and database
connections a forked copy would inherit half-made. The fork server is a fresh process
that has imported jobledger once; each child forks from it, imports its handler by name
(``"module:qualname"``) and runs it.

Parent and child talk over one pipe, in JSON (nothing of the job is pickled):

- parent -> child: the start message (the handler's name, the job's fields, the seconds
  left before its deadline, which of the attempt's sinks exist), then one answer per
  checkpoint (stored, or refused with why);
- child -> parent: progress reports (not answered: fire and forget), checkpoints (the
  child waits for the answer: ``checkpoint()`` returns once the parent's sink has stored
  it), and last the outcome: the result, or what the handler raised (its type, message
  and traceback as text), or its snooze (the seconds of a :class:`Snooze` it raised or
  returned).

The parent stops a child with SIGTERM (its deadline passed, or its attempt's ``cancel``
was set), then SIGKILL once ``kill_grace`` seconds have passed; a child that dies of
anything else (a signal such as an out-of-memory kill, ``os._exit``) fails its attempt
with what killed it. Each child leads a process group of its own, so that the terminal's
Ctrl-C reaches the worker only (which then waits for its jobs, as with threads), and so
that the signals that stop a job reach the processes it started too. A child whose worker
dies sees its pipe close (a thread of its own reads it) and kills its group at once: a
job does not outlive its worker, whose jobs go back to the queue. (That thread needs the
child's interpreter: a handler inside native code that holds the GIL and never lets it go
would keep its process alive until it does. The fork server does not help here: it lives
for as long as any of its children.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for
from typing import Any

from ._errors import ForeignFailure, JobCancelled, JobLedgerError, JobTimeout
from ._job_attempt import Attempt
from ._job_fields import JobStatus
from ._job_transitions import json_ready
from ._job_types import decode_payload
from ._job_view import Job
from ._log import log
from ._snooze import Snooze

__all__ = [
    "Abandoned",
    "ProcessRunner",
    "ProcessTimeout",
    "handler_name",
    "resolve_handler",
]

#: How often (seconds) a running child's parent looks at its attempt's cancel event and
#: deadline when the child is silent: the longest a cancel waits for its SIGTERM.
POLL = 0.1
#: The signal that ends a process at once (Windows has none: there SIGTERM terminates).
_KILL: signal.Signals = getattr(signal, "SIGKILL", signal.SIGTERM)


class ProcessTimeout(JobTimeout):
    """A process attempt stopped at its deadline; ``how`` says with which signal."""

    def __init__(self, job_id: str, seconds: float, how: str) -> None:
        super().__init__(job_id, seconds)
        self.how = how


class Abandoned(JobLedgerError):
    """The worker is giving its running jobs back (its stop ran out of time, or was
    forced): the child was killed and its attempt is not to be recorded."""


# -- handlers by name ------------------------------------------------------------------


def resolve_handler(name: str) -> Callable[..., Any]:
    """The object ``"module:qualname"`` names (the module imported); JobLedgerError
    saying what is missing otherwise."""
    module_name, colon, qualname = name.partition(":")
    if not colon or not module_name.strip() or not qualname.strip():
        raise JobLedgerError(
            f"{name!r} is not a handler's name: write it as 'module:function', "
            "e.g. 'myhandlers:train'"
        )
    module_name, qualname = module_name.strip(), qualname.strip()
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise JobLedgerError(
            f"cannot import module {module_name!r} of handler {name!r} ({exc}); add the "
            "folder that holds it to PYTHONPATH"
        ) from exc
    for part in qualname.split("."):
        if not hasattr(target, part):
            raise JobLedgerError(
                f"handler {name!r}: module {module_name!r} has no {qualname!r}; define "
                "it at the top level of that module"
            )
        target = getattr(target, part)
    if not callable(target):
        raise JobLedgerError(
            f"handler {name!r} is a {type(target).__name__}, not a function taking the job"
        )
    return target  # type: ignore[no-any-return]


def handler_name(job_type: str, handler: object) -> str:
    """The ``"module:qualname"`` a child process imports ``handler`` by: a name given as
    such (checked by importing it now), or an importable function's. Anything a child
    cannot import by name (a lambda, a nested function, a ``functools.partial``, a bound
    method or callable object made at run time) raises JobLedgerError naming its type."""
    if isinstance(handler, str):
        resolve_handler(handler)  # fail now, not in every child
        return handler.strip()
    module = getattr(handler, "__module__", None)
    qualname = getattr(handler, "__qualname__", None)
    what = f"the handler of job type {job_type!r}"
    fix = (
        "a process-isolated Worker imports its handlers by name in each job's process: "
        "define the handler at the top level of a module and pass the function, or its "
        "name as 'module:function'"
    )
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise JobLedgerError(f"{what} is a {type(handler).__name__}, which has no name; {fix}")
    if "<lambda>" in qualname or "<locals>" in qualname:
        kind = "a lambda" if "<lambda>" in qualname else "a function defined inside another"
        raise JobLedgerError(f"{what} is {kind} ({module}.{qualname}); {fix}")
    if module == "__main__" and getattr(sys.modules.get("__main__"), "__file__", None) is None:
        raise JobLedgerError(
            f"{what}, {qualname}, is defined in an interactive session (or python -c), "
            f"which a job's process cannot import; {fix}"
        )
    name = f"{module}:{qualname}"
    try:
        found = resolve_handler(name)
    except JobLedgerError:
        found = None
    if found is not handler and found != handler:
        raise JobLedgerError(
            f"{what} is a {type(handler).__name__} that {name!r} does not name (it is made "
            f"at run time); {fix}"
        )
    return name


# -- the child's side ------------------------------------------------------------------


class _Terminated(BaseException):
    """Raised in a child's main thread by SIGTERM: unwinds the handler (its ``finally``
    blocks run), and the child then dies of SIGTERM."""


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, allow_nan=False, ensure_ascii=False).encode("utf-8")


class _ChildLink:
    """The child's end of the pipe: sends from any thread, and a reader thread that takes
    the parent's answers (and kills the child's process group if the parent goes)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._send_guard = threading.Lock()
        self._answers: dict[int, dict[str, Any]] = {}
        self._answered = threading.Condition()
        self._count = 0

    def start_reading(self) -> None:
        threading.Thread(target=self._read, name="jobledger-parent-link", daemon=True).start()

    def send(self, message: dict[str, Any]) -> None:
        data = _encode(message)
        with self._send_guard:
            self.conn.send_bytes(data)

    def _read(self) -> None:
        while True:
            try:
                answer = json.loads(self.conn.recv_bytes())
            except (EOFError, OSError):
                _orphaned()
                return
            with self._answered:
                self._answers[int(answer["n"])] = answer
                self._answered.notify_all()

    def checkpoint(self, data: Any) -> None:
        """Send a checkpoint and wait until the parent says it is stored (or refused)."""
        json_ready(data, "the checkpoint")
        with self._answered:
            self._count += 1
            n = self._count
        self.send({"checkpoint": data, "n": n})
        with self._answered:
            while n not in self._answers:
                self._answered.wait()
            answer = self._answers.pop(n)
        if "refused" in answer:
            raise JobLedgerError(str(answer["refused"]))


def _orphaned() -> None:
    """The worker went away: this job must not run on without it (its job goes back to
    the queue and may run elsewhere). Kill this process's group, this process included."""
    with contextlib.suppress(OSError, AttributeError):
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), _KILL)
    os._exit(70)


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def _child_main(conn: Connection) -> None:
    """A job's process: read the start message, run the handler, send the outcome."""
    if hasattr(os, "setpgid"):
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)  # its own group: the terminal's Ctrl-C is the worker's to handle
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    link = _ChildLink(conn)
    try:
        try:
            start = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            _orphaned()
            return
        link.start_reading()
        link.send(_run_in_child(start, link))
    except _Terminated:
        # Stopped by its parent: die of the signal, as asked, once the handler unwound.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _run_in_child(start: dict[str, Any], link: _ChildLink) -> dict[str, Any]:
    """Run the handler the start message names; the outcome message to send."""
    name = start["handler"]
    data = start["job"]
    try:
        handler = resolve_handler(name)
    except JobLedgerError as exc:
        return _raised(exc, f"cannot import the handler in the job's process: {exc}")
    remaining = start["remaining"]
    attempt = Attempt(
        data["job_id"],
        timeout=start["timeout"],
        deadline=None if remaining is None else time.time() + remaining,
        on_progress=(
            (lambda done, total, note: link.send({"progress": [done, total, note]}))
            if start["progress"]
            else None
        ),
        on_checkpoint=link.checkpoint if start["checkpoint"] else None,
    )
    try:
        job = _job_of(data).with_attempt(attempt)
        result = handler(job)
        if inspect.isawaitable(result):
            import asyncio  # here: a tenth of a second that no thread Worker should pay

            result = asyncio.run(_awaited(result))
    except (JobTimeout, JobCancelled) as exc:
        return {"stopped": "timeout" if isinstance(exc, JobTimeout) else "cancel"}
    except Snooze as snooze:
        return {"snooze": snooze.seconds}
    except Exception as exc:
        return _raised(exc)
    if isinstance(result, Snooze):
        return {"snooze": result.seconds}
    try:
        json_ready(result, "the handler's result")
    except TypeError as exc:
        return {"failed": str(exc), "trace": None}
    return {"result": result}


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _raised(exc: BaseException, text: str | None = None) -> dict[str, Any]:
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"failed": text or f"{type(exc).__name__}: {exc}", "trace": trace}


def _job_of(data: dict[str, Any]) -> Job:
    """The Job a child's handler gets, from the fields the parent sent: its payload made
    its registered type here, as the worker's queue would (the handler's module, imported
    first, registers it)."""
    fields = dict(data)
    fields["status"] = JobStatus(fields["status"])
    try:
        payload, known = decode_payload(fields["type"], dict(fields["raw"]), fields["job_id"])
    except (TypeError, ValueError):
        payload, known = dict(fields["raw"]), False
    fields.update(payload=payload, known_type=known)
    return Job(**fields)


def _job_data(job: Job) -> dict[str, Any]:
    """A job's fields as JSON values (its payload as the stored dict, ``raw``)."""
    data = {
        f.name: getattr(job, f.name)
        for f in dataclasses.fields(job)
        if f.name not in ("payload", "attempt")
    }
    data["status"] = job.status.value
    return data


# -- the parent's side -----------------------------------------------------------------

_preload_set = False


def _context() -> multiprocessing.context.BaseContext:
    """The fork server's context (spawn where there is none), its server preloading
    jobledger (importing it costs each child a tenth of a second or more otherwise) as
    well as what it preloads already (the main module by default, or what the program
    set)."""
    global _preload_set
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    if not _preload_set:
        _preload_set = True
        from multiprocessing import forkserver

        server = getattr(forkserver, "_forkserver", None)
        preload = list(getattr(server, "_preload_modules", None) or ["__main__"])
        if __name__ not in preload:
            ctx.set_forkserver_preload([*preload, __name__])
    return ctx


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the child and the processes of its group (it leads its own once
    started; until then, to the child alone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg") and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


# By name: not every platform has every signal.
_HINTS = {
    "SIGKILL": (
        "jobledger did not send it: the likely cause is the system's out-of-memory "
        "killer (see `dmesg` or the system journal), or a person or a supervisor"
    ),
    "SIGSEGV": "a crash in native code (a C extension, a driver)",
    "SIGBUS": "a crash in native code (a C extension, a driver, a truncated mapped file)",
    "SIGABRT": "an abort (os.abort(), or a failed check in native code)",
}


def death_text(exitcode: int | None) -> str:
    """Why a child that sent no outcome is gone, for its failed attempt's message."""
    if exitcode is not None and exitcode < 0:
        try:
            sig = signal.Signals(-exitcode)
        except ValueError:
            return f"the job's process was killed by signal {-exitcode}"
        hint = _HINTS.get(sig.name)
        return f"the job's process was killed by {sig.name} (signal {int(sig)})" + (
            f": {hint}" if hint else ""
        )
    return (
        f"the job's process exited with code {exitcode} before its handler returned "
        "(sys.exit or os._exit in the handler, or a library that exits)"
    )


class _Child:
    """One running child: its process, pipe and why its parent stopped it."""

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.abandoned = False


class ProcessRunner:
    """Runs attempts in child processes, one at a time per calling thread; see the module
    docstring. ``kill_grace`` is the seconds between a stopped child's SIGTERM and its
    SIGKILL; ``monotonic`` times that grace."""

    def __init__(
        self, kill_grace: float, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.kill_grace = kill_grace
        self.monotonic = monotonic
        self._ctx = _context()
        self._guard = threading.Lock()
        self._children: dict[str, _Child] = {}
        self._closed = False

    def open(self) -> None:
        """Accept attempts again (a Worker's new run)."""
        with self._guard:
            self._closed = False

    def abandon_all(self) -> None:
        """Kill every running child and its group now (the worker gives their jobs
        back); their runs raise :class:`Abandoned`, and no new one starts."""
        with self._guard:
            self._closed = True
            children = list(self._children.values())
            for child in children:
                child.abandoned = True
        for child in children:
            if child.process.pid is not None:
                _signal_group(child.process.pid, _KILL)

    def run(self, job: Job, handler: str, attempt: Attempt) -> Any:
        """Run ``job``'s attempt in a new child with the handler named ``handler``, and
        return its result (a :class:`Snooze` when the handler snoozed). Raises
        ForeignFailure (the handler raised, or the child died), JobTimeout (past the
        deadline), JobCancelled (``attempt.cancel`` was set) or Abandoned."""
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(  # type: ignore[attr-defined]
            target=_child_main, args=(child_end,), name=f"jobledger-job-{job.job_id}"
        )
        child = _Child(process, parent_end)
        with self._guard:
            if self._closed:
                raise Abandoned(f"job {job.job_id}: the worker is giving its jobs back")
            self._children[job.job_id] = child
        started = False
        try:
            try:
                process.start()
            except Exception as exc:
                raise ForeignFailure(
                    f"could not start the job's process: {type(exc).__name__}: {exc}"
                ) from exc
            started = True
            child_end.close()
            return self._supervise(child, job, handler, attempt)
        finally:
            with self._guard:
                self._children.pop(job.job_id, None)
            if started:
                if process.exitcode is None:
                    _signal_group(process.pid, _KILL)
                process.join()
                process.close()
            child_end.close()
            parent_end.close()

    def _supervise(self, child: _Child, job: Job, handler: str, attempt: Attempt) -> Any:
        """Start the child's handler and serve its messages until it is done; its outcome."""
        conn, process = child.conn, child.process
        remaining = None
        if attempt.deadline is not None:
            remaining = max(0.0, attempt.deadline - attempt.clock())
        with contextlib.suppress(OSError):  # a child already dead is reported below
            conn.send_bytes(
                _encode(
                    {
                        "handler": handler,
                        "job": _job_data(job),
                        "timeout": attempt.timeout,
                        "remaining": remaining,
                        "progress": attempt.on_progress is not None,
                        "checkpoint": attempt.on_checkpoint is not None,
                    }
                )
            )
        outcome: dict[str, Any] | None = None
        stop: str | None = None  # why the parent stopped it: "timeout" or "cancel"
        term_at = 0.0
        killed = False
        open_pipe = True
        while True:
            if child.abandoned and not killed:  # abandoned while it was being started
                killed = True
                _signal_group(process.pid, _KILL)
            wait = POLL
            if stop is not None:
                wait = min(wait, max(0.0, term_at + self.kill_grace - self.monotonic()))
            elif attempt.deadline is not None:
                wait = min(wait, max(0.0, attempt.deadline - attempt.clock()))
            ready = wait_for([conn, process.sentinel] if open_pipe else [process.sentinel], wait)
            if conn in ready:
                open_pipe, outcome = self._serve(conn, attempt, outcome)
            if process.sentinel in ready:
                while open_pipe and conn.poll():  # what it sent before it ended
                    open_pipe, outcome = self._serve(conn, attempt, outcome)
                break
            if outcome is not None and stop is None:
                # It answered and is exiting; it gets the grace to end, as after a SIGTERM.
                stop, term_at = "done", self.monotonic()
            if stop is None:
                if attempt.cancel.is_set():
                    stop = "cancel"
                elif attempt.timed_out():
                    stop = "timeout"
                if stop is not None:
                    term_at = self.monotonic()
                    _signal_group(process.pid, signal.SIGTERM)
            elif not killed and self.monotonic() - term_at >= self.kill_grace:
                killed = True
                if stop == "done":
                    log.warning(
                        "Job %s's process returned its outcome but did not exit within "
                        "%gs (a non-daemon thread?); killed",
                        job.job_id,
                        self.kill_grace,
                    )
                _signal_group(process.pid, _KILL)
        process.join()
        if child.abandoned:
            raise Abandoned(f"job {job.job_id}: the worker is giving its jobs back")
        if stop == "cancel":
            raise JobCancelled(job.job_id)
        if stop == "timeout":
            how = (
                f"its process did not end within {self.kill_grace:g} s of SIGTERM and was "
                "killed by SIGKILL"
                if killed
                else "its process was stopped by SIGTERM"
            )
            raise ProcessTimeout(job.job_id, attempt.timeout or 0.0, how)
        return self._outcome(job, attempt, outcome, process.exitcode)

    def _serve(
        self, conn: Connection, attempt: Attempt, outcome: dict[str, Any] | None
    ) -> tuple[bool, dict[str, Any] | None]:
        """Read one message: a progress report or checkpoint served, or the outcome kept.
        (whether the pipe is still open, the outcome so far)."""
        try:
            message = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return False, outcome
        if "progress" in message:
            if attempt.on_progress is not None:
                try:
                    attempt.on_progress(*message["progress"])
                except Exception as exc:  # a report is best effort: never the job's end
                    log.warning("job %s: a progress report was lost: %s", attempt.job_id, exc)
            return True, outcome
        if "checkpoint" in message:
            answer: dict[str, Any] = {"n": message["n"]}
            try:
                if attempt.on_checkpoint is None:
                    raise JobLedgerError(
                        f"job {attempt.job_id}: checkpoint() is only for a job whose "
                        "handler a Worker runs"
                    )
                attempt.on_checkpoint(message["checkpoint"])
            except Exception as exc:
                answer["refused"] = str(exc) or type(exc).__name__
            with contextlib.suppress(OSError):
                conn.send_bytes(_encode(answer))
            return True, outcome
        return True, message

    def _outcome(
        self, job: Job, attempt: Attempt, outcome: dict[str, Any] | None, exitcode: int | None
    ) -> Any:
        """The result the child sent, or the error it stands for."""
        if outcome is None:
            raise ForeignFailure(death_text(exitcode))
        if "result" in outcome:
            return outcome["result"]
        if "snooze" in outcome:  # the handler's Snooze, raised or returned: returned here
            return Snooze(float(outcome["snooze"]))
        if outcome.get("stopped") == "timeout":
            raise JobTimeout(job.job_id, attempt.timeout or 0.0)
        if outcome.get("stopped") == "cancel":
            raise JobCancelled(job.job_id)
        raise ForeignFailure(str(outcome.get("failed")), outcome.get("trace"))
