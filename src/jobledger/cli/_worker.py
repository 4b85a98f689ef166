"""``jobledger worker``: serve a job queue with handlers imported from a module.

``jobledger worker --dir D --handlers myhandlers:HANDLERS`` (``D`` an existing queue
folder or a ``postgresql://`` URL; ``--url`` and the global ``--dir`` work too) imports
``myhandlers`` (the current directory comes first on ``sys.path``, as with ``python -m``),
takes its ``HANDLERS`` mapping (job type -> ``handler(job)``) and runs a
:class:`~jobledger.Worker` until SIGINT or SIGTERM, which stop it gracefully (exit 0; a
second signal forces the stop: exit 130 after SIGINT, 143 after SIGTERM), or with
``--until-empty`` until the queue has nothing due for it.

``--isolation process`` runs each job in a process of its own (the handlers must then be
top-level functions of an importable module); ``--timeout`` bounds the attempts of jobs
that give no timeout of their own (nor their type), and ``--kill-grace`` is how long a
stopped job's process has between SIGTERM and SIGKILL. See :class:`~jobledger.Worker`.

The worker's own lines (``jobledger.worker``) are shown on stderr without ``-v``, one per
finished job, as ``HH:MM:SS done <job id> <type> in 0.52s``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from types import FrameType
from typing import Any

import click

from .._errors import JobLedgerError
from .._schedules import Schedule
from .._words import plural
from .._worker import ISOLATIONS, Handler, Worker, stop_signals_to
from .._worker_report import worker_log
from ._app import App, pass_app
from ._jobs import open_queue, queue_dir_option, require_queue_folder
from ._options import DURATION

__all__ = ["load_handlers", "worker"]

_EXAMPLE = "e.g. --handlers myhandlers:HANDLERS where myhandlers.py has HANDLERS = {...}"


@contextlib.contextmanager
def _cwd_on_path() -> Iterator[None]:
    """The current directory first on sys.path (as ``python -m`` does) while inside."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(cwd)


def _attribute(spec: str, option: str, form: str, example: str, define: str) -> tuple[Any, str]:
    """Import ``module:attribute`` for ``option``; (its value, ``module:attribute``).

    Raises :class:`click.BadParameter` (a usage error, exit 2) saying what is wrong.
    """
    hint = f"'{option}'"
    module_name, colon, attribute = spec.partition(":")
    module_name, attribute = module_name.strip(), attribute.strip()
    if not colon or not module_name or not attribute:
        raise click.BadParameter(f"{spec!r} is not {form}; {example}", param_hint=hint)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(
            f"cannot import module {module_name!r} ({exc}); run from the folder that holds "
            "it or add that folder to PYTHONPATH",
            param_hint=hint,
        ) from None
    except Exception as exc:
        raise click.BadParameter(
            f"importing module {module_name!r} raised {type(exc).__name__}: {exc}; fix the module",
            param_hint=hint,
        ) from None
    if not hasattr(module, attribute):
        raise click.BadParameter(
            f"module {module_name!r} ({getattr(module, '__file__', None) or '?'}) has no "
            f"attribute {attribute!r}; define {attribute} = {define} there",
            param_hint=hint,
        )
    return getattr(module, attribute), f"{module_name}:{attribute}"


def load_schedules(spec: str) -> list[Schedule]:
    """Import ``module:attribute`` and check it is a list of :class:`~jobledger.Schedule`.

    Raises :class:`click.BadParameter` (a usage error, exit 2) saying what is wrong.
    """
    value, where = _attribute(
        spec,
        "--schedules",
        "MODULE:LIST",
        "e.g. --schedules myhandlers:SCHEDULES where myhandlers.py has SCHEDULES = [...]",
        "[jobledger.Schedule(...), ...]",
    )
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise click.BadParameter(
            f"{where} is of type {type(value).__name__}, not a list of jobledger.Schedule",
            param_hint="'--schedules'",
        )
    bad = [repr(v) for v in value if not isinstance(v, Schedule)]
    if bad:
        raise click.BadParameter(
            f"{where} holds {', '.join(bad[:3])}, which {'is' if len(bad) == 1 else 'are'} "
            "not jobledger.Schedule objects",
            param_hint="'--schedules'",
        )
    return list(value)


def load_handlers(spec: str) -> dict[str, Handler]:
    """Import ``module:attribute`` and check it is a mapping of job type -> callable.

    Raises :class:`click.BadParameter` (a usage error, exit 2) saying what is wrong.
    """
    mapping: Any
    mapping, where = _attribute(
        spec, "--handlers", "MODULE:MAPPING", _EXAMPLE, "{'JobType': handler, ...}"
    )
    if not isinstance(mapping, Mapping):
        raise click.BadParameter(
            f"{where} is of type {type(mapping).__name__}, not a mapping of job type -> "
            "handler function",
            param_hint="'--handlers'",
        )
    if not mapping:
        raise click.BadParameter(
            f"{where} is empty; it needs at least one job type -> handler function",
            param_hint="'--handlers'",
        )
    bad = [
        repr(k) for k, v in mapping.items() if not isinstance(k, str) or not k or not callable(v)
    ]
    if bad:
        raise click.BadParameter(
            f"{where} maps {', '.join(bad)} to something that is not a handler; keys must be "
            "job type names (strings) and values functions taking the job",
            param_hint="'--handlers'",
        )
    return dict(mapping)


@contextlib.contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Until the Worker installs its own handlers, SIGINT/SIGTERM ask it to stop (a
    signal during start-up is then a graceful stop, not a kill)."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        worker_log.warning("Received %s: stopping", signal.Signals(signum).name)
        stop()

    with stop_signals_to(on_signal):
        yield


@contextlib.contextmanager
def _worker_lines() -> Iterator[None]:
    """Show the worker's INFO lines on stderr (the current one: click's test runner swaps
    it), tersely, whatever -v says; not passed on to the ``jobledger`` logger, whose -v
    handler would print them twice."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    level, propagate = worker_log.level, worker_log.propagate
    worker_log.addHandler(handler)
    worker_log.setLevel(logging.INFO)
    worker_log.propagate = False
    try:
        yield
    finally:
        worker_log.removeHandler(handler)
        worker_log.setLevel(level)
        worker_log.propagate = propagate


@click.command()
@queue_dir_option(must_exist=False)  # checked once --handlers is known good, below
@click.option(
    "--handlers",
    "handlers_spec",
    required=True,
    metavar="MODULE:MAPPING",
    help="A module's mapping of job type -> handler(job), e.g. myhandlers:HANDLERS.",
)
@click.option(
    "--schedules",
    "schedules_spec",
    metavar="MODULE:LIST",
    help="A module's list of jobledger.Schedule objects, stored in the queue when the "
    "worker starts, e.g. myhandlers:SCHEDULES. Without it the worker still fires the "
    "schedules the queue holds.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Jobs run side by side (threads).",
)
@click.option(
    "--queue",
    "queue_specs",
    multiple=True,
    metavar="NAME[:SLOTS]",
    help="Serve only this named queue (repeatable); with :SLOTS, that many threads for it "
    "(then --concurrency is the sum of the slots). Default: every queue.",
)
@click.option(
    "--until-empty",
    is_flag=True,
    help="Exit 0 once no job of a handled type is due or running here; delayed jobs "
    "(a later run_after, a retry's backoff) are named and left for later.",
)
@click.option(
    "--wait-delayed",
    is_flag=True,
    help="With --until-empty: wait for the delayed jobs too, and exit once none is left.",
)
@click.option(
    "--grace",
    type=DURATION,
    default="30s",
    show_default=True,
    metavar="DURATION",
    help="On SIGINT/SIGTERM, how long running jobs may take to finish before they are "
    "given back to the queue: 30s, 15m, 1h, 1h30m, or a bare number of seconds.",
)
@click.option(
    "--durability",
    type=click.Choice(["fsync", "flush"]),
    default="fsync",
    show_default=True,
    help="fsync: results survive a power loss; flush: only a process crash.",
)
@click.option(
    "--isolation",
    type=click.Choice(ISOLATIONS),
    default="thread",
    show_default=True,
    help="Where each job runs: in the worker's threads, or in a process of its own (a "
    "crash or out-of-memory kill fails only that attempt; timeouts are enforced).",
)
@click.option(
    "--timeout",
    type=DURATION,
    default=None,
    metavar="DURATION",
    help="Bound each attempt of a job that gives no timeout of its own or of its type: "
    "a process is stopped past it, a thread handler is told (job.check()).",
)
@click.option(
    "--kill-grace",
    type=DURATION,
    default="10s",
    show_default=True,
    metavar="DURATION",
    help="With --isolation process: how long a stopped job's process has between SIGTERM "
    "and SIGKILL.",
)
@pass_app
def worker(
    app: App,
    queue_dir: str,
    handlers_spec: str,
    schedules_spec: str | None,
    concurrency: int,
    queue_specs: tuple[str, ...],
    until_empty: bool,
    wait_delayed: bool,
    grace: dt.timedelta,
    durability: str,
    isolation: str,
    timeout: dt.timedelta | None,
    kill_grace: dt.timedelta,
) -> None:
    """Run the queue's jobs with handlers until SIGINT/SIGTERM (or --until-empty).

    It prints a line per finished job (a summary every 5 s when more than 20 finish within
    a second) and warns about queued job types no handler serves. It enqueues the due
    occurrences of the queue's schedules (those of --schedules are stored first).

    \b
    A first SIGINT/SIGTERM stops claiming, lets running jobs finish within --grace, gives
    the others back to the queue (served first, the interrupted attempt not counted) and
    exits 0. A second one gives the running jobs back at once and exits
    130 after SIGINT, 143 after SIGTERM (128 + the signal's number).
    """
    if wait_delayed and not until_empty:
        raise click.UsageError("--wait-delayed only applies with --until-empty")
    queues = _queues(queue_specs, concurrency)
    with _cwd_on_path():
        handlers = load_handlers(handlers_spec)
        declared = load_schedules(schedules_spec) if schedules_spec else []
        require_queue_folder(queue_dir)  # a worker never makes a new, empty queue
        with open_queue(queue_dir, durability) as queue, _worker_lines():
            try:
                w = Worker(
                    queue,
                    handlers,
                    concurrency=concurrency,
                    grace_period=grace.total_seconds(),
                    isolation=isolation,
                    timeout=timeout,
                    kill_grace=kill_grace,
                    schedules=declared,
                    queues=queues,
                )
            except JobLedgerError as exc:  # a handler a job's process cannot import, a 0 timeout
                raise click.UsageError(str(exc)) from None
            w._wait_hint = "use --wait-delayed"
            with _stop_on_signals(w.stop):
                w.run(until_empty=until_empty, wait_delayed=wait_delayed)
            counts = queue.counts()
            app.err.print(
                f"Worker {queue.worker_id} stopped after {plural(w.processed, 'completed job')}"
                + (f" (stop forced by {w.forced_by.name})" if w.forced_by else "")
                + f". Queue now: {', '.join(f'{k} {v}' for k, v in counts.items())}.",
                markup=False,
            )
    if w.forced_by is not None:
        sys.exit(128 + int(w.forced_by))


def _queues(specs: tuple[str, ...], concurrency: int) -> list[str] | dict[str, int] | None:
    """The Worker's ``queues=`` of the --queue options: names, or names -> slots when any
    gives SLOTS (a name without gets 1)."""
    if not specs:
        return None
    slots: dict[str, int | None] = {}
    for spec in specs:
        name, sep, count = spec.rpartition(":") if ":" in spec else (spec, "", "")
        if not name:
            raise click.BadParameter(f"{spec!r} names no queue", param_hint="'--queue'")
        if sep:
            if not count.isdigit() or int(count) < 1:
                raise click.BadParameter(
                    f"{spec!r}: SLOTS must be a whole number of 1 or more",
                    param_hint="'--queue'",
                )
            slots[name] = int(count)
        else:
            slots.setdefault(name, None)
    if all(n is None for n in slots.values()):
        return list(slots)
    if concurrency != 1:
        raise click.UsageError(
            "--concurrency and --queue NAME:SLOTS both set the threads: give one of them"
        )
    return {name: n or 1 for name, n in slots.items()}
