"""The ``jobledger`` command group: global options, error handling, command registration.

Command groups are registered in :func:`_register`; the task-set ("state") commands come
from ``_state.py`` and ``_maint.py``, ``demo`` from ``_demo_cmd.py``. Later groups (``jobs``,
``worker``, ``db``, ``export``) are added there the same way.

Wherever a command takes a folder (the global ``--dir``, the queue commands' ``--dir`` and
``$JOBLEDGER_QUEUE_DIR``) it takes a ``postgresql://`` URL too (:func:`dir_or_url`), as does
the config's ``jobState.url``. A database that cannot be reached exits 2, like a bad
config, with the backend's message (host, port and database, never the password).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn
from urllib.parse import urlsplit

import click
from rich.console import Console

from .. import __version__
from .._config import JobStateConfig, read_config
from .._errors import ConfigError, InvalidNameError, JobLedgerError
from .._log import enable_verbose
from .._tasksets import JobState
from ..backends.postgres import DatabaseError, is_postgres_url
from ._render import make_console

__all__ = ["App", "cli", "dir_or_url", "main", "pass_app"]


def _url_problem(url: str) -> str | None:
    """Why ``url`` (a postgresql:// URL) cannot be used, or None. Never quotes the URL:
    it may carry a password."""
    try:
        _ = urlsplit(url).port  # reading it checks the host and the port
    except ValueError:
        return (
            "the PostgreSQL URL cannot be read: check its host and port "
            "(postgresql://user@host:5432/database)"
        )
    return None


def dir_or_url(*, exists: bool = False) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """The callback of an option that takes a folder or a ``postgresql://`` URL.

    A URL is passed on as is (once checked it can be read); a folder is checked as
    ``click.Path(file_okay=False, exists=exists)`` checks it.
    """
    path = click.Path(file_okay=False, exists=exists)

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        if not is_postgres_url(value):
            return path.convert(value, param, ctx)
        problem = _url_problem(value)
        if problem is not None:
            raise click.BadParameter(problem, ctx, param)
        return value

    return check


class App:
    """What the global options chose, shared by every command through ``ctx.obj``.

    The JobState is built on first use, so commands that need none (``demo``) never read
    the config, and a bad config fails only the commands that use it. ``dir`` is a folder
    or a PostgreSQL URL.
    """

    def __init__(self, config: str | None, dir: str | None) -> None:
        self.config = config
        self.dir = dir
        self.out: Console = make_console(sys.stdout)
        self.err: Console = make_console(sys.stderr)
        self._state: JobState | None = None

    @property
    def state(self) -> JobState:
        """The JobState of ``--config`` (default settings without it), at ``--dir`` (a
        folder or a URL) if given, else at the config's ``url`` or ``dir``.

        The CLI is a maintenance tool: it reads and repairs the state even when the
        application's config has ``"enabled": false``, and says so.
        """
        if self._state is None:
            cfg = read_config(self.config) if self.config else JobStateConfig()
            if not cfg.enabled:
                self.err.print(
                    f"note: jobState.enabled is false in {self.config}; the state is read "
                    "anyway, the application itself does not use it",
                    markup=False,
                )
            place: str = self.dir or cfg.dir
            url = None if self.dir else cfg.url
            if is_postgres_url(place):
                place, url = "", place
            if url is not None:
                problem = (
                    _url_problem(url)
                    if is_postgres_url(url)
                    else "jobState.url must be a postgresql:// URL (or null for the folder)"
                )
                if problem is not None:
                    raise ConfigError(problem)
            self._state = JobState(
                dir=place, timezone=cfg.timezone, durability=cfg.durability, url=url
            )
        return self._state

    @property
    def where(self) -> str:
        """Where the task sets are, for messages: the folder, or the URL without its
        password."""
        return self.state.backend.location

    @property
    def in_database(self) -> bool:
        """Whether the task sets are in a database rather than a folder."""
        return is_postgres_url(self.where)

    def close(self) -> None:
        """Give back the state's database connection, if one was opened."""
        if self._state is not None:
            self._state.close()  # its writer's and its read-only twin's connections


pass_app = click.make_pass_decorator(App)


def _fail(exc: BaseException, code: int) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    raise click.exceptions.Exit(code)


def _unreachable(exc: DatabaseError) -> bool:
    """Whether ``exc`` says the database could not be reached or connected to (or its
    URL read), rather than that the server refused a statement.

    libpq's connection failures (refused, timed out, unknown host, database or role, bad
    password, unreadable URL) carry no SQLSTATE; a connection lost later has class 08
    (connection exception) or 57P (shutdown). psycopg is imported only when one was raised.
    """
    psycopg = sys.modules.get("psycopg")
    cause = exc.__cause__
    if psycopg is None or not isinstance(cause, psycopg.Error):
        return False
    sqlstate = getattr(cause, "sqlstate", None)
    return sqlstate is None or str(sqlstate).startswith(("08", "57P"))


class _Group(click.Group):
    """A group that turns jobledger's own errors into ``error: ...`` and an exit code.

    Nested groups added later run inside this ``invoke``, so they get the same handling.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a ConfigError, an InvalidNameError or a database that cannot be
        reached exits 2, other errors 1."""
        try:
            return super().invoke(ctx)
        except (ConfigError, InvalidNameError) as exc:
            _fail(exc, 2)
        except DatabaseError as exc:
            _fail(exc, 2 if _unreachable(exc) else 1)
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
    metavar="DIR_OR_URL",
    callback=dir_or_url(),
    help="The state folder, or a postgresql:// URL (overrides jobState.dir and "
    "jobState.url; default sessions/job-state).",
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
    app = App(config, dir)
    ctx.obj = app
    ctx.call_on_close(app.close)


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
