"""The ``jobledger`` command group: global options, error handling, command registration.

Command groups are registered in :func:`_register`; the task-set ("state") commands come
from ``_tasksets.py`` and ``_maint.py``, ``demo`` from ``_demo_cmd.py``, ``jobs`` from
``_jobs.py`` (``jobs top`` from ``_top.py``), ``worker`` from ``_worker.py``,
``schedules`` from ``_schedules.py``, ``db`` and ``export`` from ``_db.py``, ``dashboard``
from ``_dashboard.py``.

Where a command works is given the same way on every command: ``--dir DIR_OR_URL`` (a
folder or a ``postgresql://`` URL) or ``--url URL`` (a URL only), either before the
command's name (the global options) or after it (each command's own, which win). The
location is the state folder for the task-set commands, the queue folder for ``jobs`` and
``worker`` (which also read ``$JOBLEDGER_QUEUE_DIR`` when neither is given) and the database
for ``db``. Every value is classified by :func:`jobledger._location.classify`: a look-alike
URL (``mysql://...``, ``postgresql:/host/db``) or a URL without a database is a usage
error (exit 2). A folder that does not exist is an error (exit 2) for every command but
``jobs enqueue --create``: a mistyped path never becomes a new empty queue or an empty
report. A database that cannot be reached exits 2, like a bad config, with the backend's
message (host, port and database, never the password).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, Literal, NoReturn, TypeVar, cast

import click
from click.core import ParameterSource
from rich.console import Console

from .. import __version__
from .._config import DEFAULT_DIR, JobStateConfig, read_config
from .._errors import ConfigError, InvalidNameError, JobLedgerError
from .._job_state import JobState
from .._location import classify, is_postgres_url
from .._log import enable_verbose
from .._redact import redact_text
from ..backends.postgres import DatabaseError
from ._render import make_console

__all__ = [
    "App",
    "cli",
    "dir_or_url",
    "location_options",
    "main",
    "pass_app",
    "require_folder",
    "resolve_location",
    "state_options",
]

F = TypeVar("F", bound=Callable[..., Any])

#: What a command's location is: a task-set state folder, a queue folder, or a database.
Kind = Literal["state", "queue", "database"]


def dir_or_url(*, url_only: bool = False) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """The callback of an option that takes a folder or a ``postgresql://`` URL (with
    ``url_only``, a URL only): a look-alike URL or a URL without a database is a usage
    error (exit 2) naming the accepted forms. Whether a folder exists is checked once the
    command knows which location wins (:func:`resolve_location`)."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            where = classify(value, "")
        except ConfigError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None
        if url_only and not where.is_url:
            raise click.BadParameter(
                f"{value!r} is not a PostgreSQL URL; --url takes postgresql://user@host:5432/"
                "dbname (give a folder with --dir instead)",
                ctx,
                param,
            )
        return value

    return check


def _option_pair(kind: Kind, *, envvar: str | None = None) -> Callable[[F], F]:
    """A command's own ``--dir`` and ``--url`` (stored as ``where_dir``/``where_url``)."""
    what = {
        "state": "The task-set state folder",
        "queue": "The queue folder (jobs/<job_id>.json and queue.json)",
        "database": "The database",
    }[kind]
    dir_help = f"{what}, or a postgresql:// URL (also accepted before the command name)."
    if kind == "database":
        dir_help = "The same as --url (a postgresql:// URL)."

    def decorate(f: F) -> F:
        f = click.option(
            "--url",
            "where_url",
            metavar="URL",
            callback=dir_or_url(url_only=True),
            help="A postgresql://user@host:5432/dbname URL (instead of --dir).",
        )(f)
        return click.option(
            "--dir",
            "where_dir",
            metavar="DIR_OR_URL",
            envvar=envvar,
            show_envvar=envvar is not None,
            callback=dir_or_url(url_only=kind == "database"),
            help=dir_help,
        )(f)

    return decorate


def _explicit(ctx: click.Context, where_dir: str | None, where_url: str | None) -> str | None:
    """The location given on the command line as ``--dir`` or ``--url`` (not both)."""
    given = ctx.get_parameter_source("where_dir") == ParameterSource.COMMANDLINE
    given_dir = where_dir if given else None
    if given_dir is not None and where_url is not None:
        raise click.UsageError("give --dir or --url, not both", ctx)
    return given_dir if given_dir is not None else where_url


def resolve_location(
    ctx: click.Context, where_dir: str | None, where_url: str | None
) -> str | None:
    """The location a command works on: its own ``--dir``/``--url``, else the global one
    (before the command name), else its ``--dir``'s environment variable, else None."""
    own = _explicit(ctx, where_dir, where_url)
    if own is not None:
        return own
    app = ctx.find_object(App)
    if app is not None and app.location is not None:
        return app.location
    return where_dir  # from the environment variable, or None


def location_options(kind: Kind, *, envvar: str | None = None) -> Callable[[F], F]:
    """Give a command its own ``--dir`` and ``--url``; the chosen location (see
    :func:`resolve_location`) is passed on as ``location`` (str or None)."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def run(*args: Any, where_dir: str | None, where_url: str | None, **kwargs: Any) -> Any:
            ctx = click.get_current_context()
            location = resolve_location(ctx, where_dir, where_url)
            return f(*args, location=location, **kwargs)

        return _option_pair(kind, envvar=envvar)(cast(F, run))

    return decorate


def state_options(f: F) -> F:
    """A task-set command's own ``--dir``/``--url``: the state folder or database, which
    wins over the global option and the config."""

    @functools.wraps(f)
    def run(*args: Any, where_dir: str | None, where_url: str | None, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        location = _explicit(ctx, where_dir, where_url)
        if location is not None:
            ctx.find_object(App).location = location  # type: ignore[union-attr]
        return f(*args, **kwargs)

    return _option_pair("state")(cast(F, run))


class App:
    """What the global options chose, shared by every command through ``ctx.obj``.

    The JobState is built on first use, so commands that need none (``demo``) never read
    the config, and a bad config fails only the commands that use it. ``dir`` is a folder
    or a PostgreSQL URL.
    """

    def __init__(self, config: str | None, location: str | None) -> None:
        self.config = config
        #: The global --dir/--url, replaced by a task-set command's own: a folder, a URL,
        #: or None (the config's place, else sessions/job-state).
        self.location = location
        self.out: Console = make_console(sys.stdout)
        self.err: Console = make_console(sys.stderr)
        self._state: JobState | None = None

    @property
    def state(self) -> JobState:
        """The JobState of ``--config`` (default settings without it), at ``--dir`` or
        ``--url`` if given, else at the config's ``url`` or ``dir``.

        A state folder that does not exist is a ConfigError (exit 2): every task-set
        command reads or tidies existing state, and a mistyped path must not look like
        an empty one. The CLI is a maintenance tool: it reads and repairs the state even
        when the application's config has ``"enabled": false``, and says so.
        """
        if self._state is None:
            cfg = JobStateConfig()
            if self.config:
                cfg = read_config(self.config, warn=self._warn)
            if not cfg.enabled:
                self.err.print(
                    f"note: jobState.enabled is false in {self.config}; the state is read "
                    "anyway, the application itself does not use it",
                    markup=False,
                )
            if self.location is not None:
                place, origin = self.location, "given with --dir"
            elif cfg.url is not None:
                place, origin = cfg.url, f"jobState.url in {self.config}"
            elif cfg.dir:
                place, origin = cfg.dir, f"jobState.dir in {self.config}"
            else:
                place, origin = DEFAULT_DIR, "the default, under the current folder"
            if not classify(place, "").is_url:  # a usage error, before anything opens
                require_folder(place, f"the state folder ({origin})", _STATE_HINT)
            # A URL given as dir is taken as the url: JobState opens the backend.
            self._state = JobState(place, timezone=cfg.timezone, durability=cfg.durability)
        return self._state

    def _warn(self, message: str) -> None:
        self.err.print(f"warning: {message}", markup=False)

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

_STATE_HINT = (
    "check the path, or give the state folder with --dir (before or after the command "
    "name) or jobState.dir in --config; task sets are written there by the application on "
    "its first write, and no jobledger command creates it"
)


def require_folder(path: str, what: str, hint: str) -> None:
    """ConfigError (exit 2) naming ``path`` unless it is an existing folder."""
    full = os.path.abspath(path)
    if not os.path.isdir(full):
        problem = "is not a folder" if os.path.exists(full) else "does not exist"
        raise ConfigError(f"{what} {full} {problem}; {hint}")


def _fail(exc: BaseException, code: int) -> NoReturn:
    # Redacted once more: a message built from a URL anywhere must not show its password.
    click.echo(f"error: {redact_text(str(exc))}", err=True)
    raise click.exceptions.Exit(code)


def _unreachable(exc: DatabaseError) -> bool:
    """Whether ``exc`` says the database could not be reached or connected to (or its
    URL read), rather than that the server refused a statement. (A URL that cannot be
    read at all is a ConfigError before any connection: exit 2 too.)

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
    help="Where the command works: the state folder (task-set commands; overrides "
    "jobState.dir and jobState.url), the queue folder (jobs, worker), or a postgresql:// "
    "URL. Each command also takes --dir after its name, which wins.",
)
@click.option(
    "--url",
    "url",
    metavar="URL",
    callback=dir_or_url(url_only=True),
    help="A postgresql://user@host:5432/dbname URL, instead of --dir.",
)
@click.option("-v", "--verbose", is_flag=True, help="Print [INFO] lines of state operations.")
@click.version_option(__version__, prog_name="jobledger")
@click.pass_context
def cli(
    ctx: click.Context, config: str | None, dir: str | None, url: str | None, verbose: bool
) -> None:
    """Inspect and maintain jobledger task-set state.

    Exit codes: 0 fine, 1 problems found or operation refused, 2 usage or config error
    (including a --dir folder that does not exist).
    """
    if verbose:
        enable_verbose()
    if dir is not None and url is not None:
        raise click.UsageError("give --dir or --url, not both", ctx)
    app = App(config, dir if dir is not None else url)
    ctx.obj = app
    ctx.call_on_close(app.close)


def _register() -> None:
    # Imported here: these modules import `pass_app` from this one.
    from ._dashboard import dashboard
    from ._db import db, export_command
    from ._demo_cmd import demo
    from ._jobs import jobs
    from ._jobs_enqueue import enqueue  # noqa: F401  (a command of `jobs`)
    from ._maint import register as register_maintenance
    from ._queues import queues
    from ._schedules import schedules
    from ._tasksets import register as register_tasksets
    from ._top import top
    from ._worker import worker

    register_tasksets(cli)
    register_maintenance(cli)
    cli.add_command(demo)
    jobs.add_command(top)  # jobs top: cli/_top.py, beside the jobs group's module
    cli.add_command(jobs)
    cli.add_command(worker)
    cli.add_command(schedules)
    cli.add_command(queues)
    cli.add_command(db)
    cli.add_command(export_command)
    cli.add_command(dashboard)


_register()


def main(argv: list[str] | None = None) -> None:
    """The console script: ``jobledger [OPTIONS] COMMAND ...``."""
    cli.main(args=argv, prog_name="jobledger")
