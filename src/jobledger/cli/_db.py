"""Database commands: ``jobledger db migrate|status --url URL`` and ``jobledger export``.

The db commands take the URL as ``--url`` or ``--dir``, after their name or before it
(``jobledger --url URL db status``); a folder is a usage error (exit 2).

Connection errors exit 2 through the app's error handling with a message that names the
host, the port and the database and never the password (``DatabaseError`` from the
backend); a statement the server refuses exits 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .._export import WHATS, export
from .._location import classify
from .._words import plural
from ..backends.postgres import DatabaseError
from ._app import location_options

if TYPE_CHECKING:
    import psycopg

__all__ = ["db", "export_command"]


def _session(url: str | None) -> psycopg.Connection[Any]:
    """An autocommit connection to ``url`` (DatabaseError without the password)."""
    if url is None:
        raise click.UsageError(
            "Missing option '--url': give the database as --url postgresql://user@host:5432/"
            "dbname (or --dir URL, before or after the command name)"
        )
    if not classify(url, "").is_url:
        raise click.UsageError(
            f"the db commands work on a database, not on the folder {url!r}: give --url "
            "postgresql://user@host:5432/dbname"
        )
    from ..backends.postgres import _require_psycopg

    _require_psycopg()
    from ..backends.postgres._db import Database

    return Database(url, connect_timeout=5).session("db command")


@click.group()
def db() -> None:
    """The PostgreSQL schema: apply pending migrations, show which are applied."""


@db.command("migrate")
@location_options("database")
def migrate_command(location: str | None) -> None:
    """Apply the pending migrations of the URL's schema; print the versions applied."""
    import psycopg

    from ..backends.postgres._migrate import migrate

    with _session(location) as conn:
        try:
            done = migrate(conn)
        except psycopg.Error as exc:
            raise DatabaseError(f"migration failed: {' '.join(str(exc).split())}") from exc
    if done:
        click.echo("applied: " + ", ".join(f"{v:04d}" for v in done))
    else:
        click.echo("up to date")


@db.command("status")
@location_options("database")
def status_command(location: str | None) -> None:
    """Show the applied and the pending migrations of the URL's schema."""
    from ..backends.postgres._migrate import applied_versions, migrations

    with _session(location) as conn:
        applied = applied_versions(conn)
    for m in migrations():
        state = "applied" if m.version in applied else "pending"
        click.echo(f"{m.version:04d} {m.name}: {state}")
    pending = [m for m in migrations() if m.version not in applied]
    click.echo(f"{len(pending)} pending" if pending else "up to date")


@click.command("export")
@click.option("--from", "source", required=True, metavar="DIR_OR_URL", help="Copy from here.")
@click.option("--to", "target", required=True, metavar="DIR_OR_URL", help="Copy into here.")
@click.option(
    "--what",
    type=click.Choice(WHATS),
    default="all",
    show_default=True,
    help="What to copy. A folder is a task-set state folder for 'tasksets' and a queue "
    "folder for 'jobs'; 'all' needs two URLs.",
)
@click.option("--merge", is_flag=True, help="Add to a non-empty target, keeping what it has.")
def export_command(source: str, target: str, what: str, merge: bool) -> None:
    """Copy task sets and jobs between folders and PostgreSQL, exactly as stored.

    Refuses a target that already holds task sets or jobs unless --merge is given; then
    what the target has is kept and reported.
    """
    report = export(source, target, what, merge=merge)
    click.echo(f"exported {plural(report.tasksets, 'task set')}, {plural(report.jobs, 'job')}")
    if report.kept_tasksets or report.kept_jobs:
        click.echo(
            f"kept (already in the target): {plural(len(report.kept_tasksets), 'task set')}, "
            f"{plural(len(report.kept_jobs), 'job')}"
        )
