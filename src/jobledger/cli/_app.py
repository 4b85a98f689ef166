"""The ``jobledger`` command group: global options, error handling, command registration.

Command groups are registered in :func:`_register`; the task-set ("state") commands come
from ``_state.py`` and ``_maint.py``, ``demo`` from ``_demo_cmd.py``. Later groups (``jobs``,
``worker``, ``db``, ``export``) are added there the same way.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click
from rich.console import Console

from .. import __version__
from .._errors import ConfigError, InvalidNameError, JobLedgerError
from .._log import enable_verbose
from .._tasksets import JobState
from ._render import make_console

__all__ = ["App", "cli", "main", "pass_app"]


class App:
    """What the global options chose, shared by every command through ``ctx.obj``.

    The JobState is built on first use, so commands that need none (``demo``) never read
    the config, and a bad config fails only the commands that use it.
    """

    def __init__(self, config: str | None, dir: str | None) -> None:
        self.config = config
        self.dir = dir
        self.out: Console = make_console(sys.stdout)
        self.err: Console = make_console(sys.stderr)
        self._state: JobState | None = None

    @property
    def state(self) -> JobState:
        """The JobState of ``--config`` (default settings without it), at ``--dir`` if given.

        The CLI is a maintenance tool: it reads and repairs the folder even when the
        application's config has ``"enabled": false``, and says so.
        """
        if self._state is None:
            base = JobState.from_config(self.config) if self.config else JobState()
            if not base.enabled:
                self.err.print(
                    f"note: jobState.enabled is false in {self.config}; the folder is read "
                    "anyway, the application itself does not use it",
                    markup=False,
                )
            self._state = JobState(
                dir=self.dir if self.dir else base.dir,
                timezone=base.timezone,
                durability=base.durability,
            )
        return self._state


pass_app = click.make_pass_decorator(App)


def _fail(exc: BaseException, code: int) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    raise click.exceptions.Exit(code)


class _Group(click.Group):
    """A group that turns jobledger's own errors into ``error: ...`` and an exit code.

    Nested groups added later run inside this ``invoke``, so they get the same handling.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a ConfigError or InvalidNameError exits 2, others 1."""
        try:
            return super().invoke(ctx)
        except (ConfigError, InvalidNameError) as exc:
            _fail(exc, 2)
        except JobLedgerError as exc:
            _fail(exc, 1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    help='The application\'s JSON config; its {"jobState": {...}} block is read.',
)
@click.option(
    "--dir",
    "dir",
    type=click.Path(file_okay=False),
    help="The state folder (overrides jobState.dir; default sessions/job-state).",
)
@click.option("-v", "--verbose", is_flag=True, help="Print [INFO] lines of state operations.")
@click.version_option(__version__, prog_name="jobledger")
@click.pass_context
def cli(ctx: click.Context, config: str | None, dir: str | None, verbose: bool) -> None:
    """Inspect and maintain jobledger task-set state.

    Exit codes: 0 fine, 1 problems found or operation refused, 2 usage or config error.
    """
    if verbose:
        enable_verbose()
    ctx.obj = App(config, dir)


def _register() -> None:
    # Imported here: these modules import `pass_app` from this one.
    from ._db import db, export_command
    from ._demo_cmd import demo
    from ._jobs import jobs
    from ._maint import register as register_maintenance
    from ._state import register as register_state
    from ._worker import worker

    register_state(cli)
    register_maintenance(cli)
    cli.add_command(demo)
    cli.add_command(jobs)
    cli.add_command(worker)
    cli.add_command(db)
    cli.add_command(export_command)


_register()


def main(argv: list[str] | None = None) -> None:
    """The console script: ``jobledger [OPTIONS] COMMAND ...``."""
    cli.main(args=argv, prog_name="jobledger")
