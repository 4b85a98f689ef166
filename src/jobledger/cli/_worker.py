"""``jobledger worker``: serve a job queue with handlers imported from a module.

``jobledger worker --dir D --handlers myhandlers:HANDLERS`` (``D`` an existing queue
folder or a ``postgresql://`` URL; ``--url`` and the global ``--dir`` work too) imports
``myhandlers`` (the current directory comes first on ``sys.path``, as with ``python -m``),
takes its ``HANDLERS`` mapping (job type -> ``handler(job)``) and runs a
:class:`~jobledger.Worker` until SIGINT or SIGTERM, which stop it gracefully (exit 0), or
with ``--until-empty`` until the queue has nothing left for it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from types import FrameType
from typing import Any

import click

from .._worker import Handler, Worker, stop_signals_to
from ._app import App, pass_app
from ._jobs import open_queue, queue_dir_option, require_queue_folder

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


def load_handlers(spec: str) -> dict[str, Handler]:
    """Import ``module:attribute`` and check it is a mapping of job type -> callable.

    Raises :class:`click.BadParameter` (a usage error, exit 2) saying what is wrong.
    """
    module_name, colon, attribute = spec.partition(":")
    module_name, attribute = module_name.strip(), attribute.strip()
    if not colon or not module_name or not attribute:
        raise click.BadParameter(
            f"{spec!r} is not MODULE:MAPPING; {_EXAMPLE}", param_hint="'--handlers'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(
            f"cannot import module {module_name!r} ({exc}); run from the folder that holds "
            "it or add that folder to PYTHONPATH",
            param_hint="'--handlers'",
        ) from None
    except Exception as exc:
        raise click.BadParameter(
            f"importing module {module_name!r} raised {type(exc).__name__}: {exc}; fix the module",
            param_hint="'--handlers'",
        ) from None
    if not hasattr(module, attribute):
        raise click.BadParameter(
            f"module {module_name!r} ({getattr(module, '__file__', None) or '?'}) has no "
            f"attribute {attribute!r}; define {attribute} = {{'JobType': handler, ...}} there",
            param_hint="'--handlers'",
        )
    mapping: Any = getattr(module, attribute)
    where = f"{module_name}:{attribute}"
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
        stop()

    with stop_signals_to(on_signal):
        yield


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
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Jobs run side by side (threads).",
)
@click.option(
    "--until-empty",
    is_flag=True,
    help="Exit 0 once no job of a handled type is queued or running here.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGINT/SIGTERM, how long running jobs may take to finish before they are "
    "given back to the queue.",
)
@click.option(
    "--durability",
    type=click.Choice(["fsync", "flush"]),
    default="fsync",
    show_default=True,
    help="fsync: results survive a power loss; flush: only a process crash.",
)
@pass_app
def worker(
    app: App,
    queue_dir: str,
    handlers_spec: str,
    concurrency: int,
    until_empty: bool,
    grace: float,
    durability: str,
) -> None:
    """Run the queue's jobs with handlers until SIGINT/SIGTERM (or --until-empty).

    A signal stops claiming, lets running jobs finish within --grace seconds, gives the
    others back to the queue (served first, the interrupted attempt not counted) and
    exits 0. A second signal stops waiting at once.
    """
    with _cwd_on_path():
        handlers = load_handlers(handlers_spec)
        require_queue_folder(queue_dir)  # a worker never makes a new, empty queue
        with open_queue(queue_dir, durability) as queue:
            w = Worker(queue, handlers, concurrency=concurrency, grace_period=grace)
            with _stop_on_signals(w.stop):
                app.err.print(
                    f"Worker {queue.worker_id} serving {', '.join(sorted(handlers))} from "
                    f"{queue.dir} with {concurrency} thread(s); "
                    + (
                        "exits when the queue is empty."
                        if until_empty
                        else "Ctrl-C or SIGTERM stops it."
                    ),
                    markup=False,
                )
                w.run(until_empty=until_empty)
            counts = queue.counts()
            app.err.print(
                f"Worker {queue.worker_id} stopped after {w.processed} completed job(s). "
                f"Queue now: {', '.join(f'{k} {v}' for k, v in counts.items())}.",
                markup=False,
            )
