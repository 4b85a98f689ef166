"""Maintenance commands: ``cleanup``, ``reset``, ``du``, ``doctor``.

Each delegates to one JobState method (``cleanup``, ``reset``, ``usage``, ``doctor``) and
only decides what to print and which exit code to give. They work the same on a folder and
on a PostgreSQL URL (``du`` then measures the stored records: the backend's ``usage()``).
"""

from __future__ import annotations

import datetime as dt
import sys

import click

from .._errors import AlreadyRunning
from .._taskset_record import TaskSetKey
from .._words import plural
from ._app import App, pass_app, state_options
from ._options import AGE
from ._render import human_size, table

__all__ = ["register", "stdin_is_tty"]

#: Kinds of doctor findings that no repair resolves: a corrupt file (or database row) set
#: aside, kept for a person to inspect. They keep doctor's exit code at 1 until removed.
#: Any other kind, including one a future backend adds, is a problem doctor may repair.
INFO_KINDS = frozenset({"note"})


def _sets(n: int) -> str:
    return plural(n, "task set")


def stdin_is_tty() -> bool:
    """Whether a person can answer a question on stdin (tests replace this)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _print_keys(app: App, keys: list[TaskSetKey]) -> None:
    t = table(None, "Account", "Type", "Date")
    for key in keys:
        t.add_row(key.account, key.type, key.date)
    app.out.print(t)


@click.command()
@state_options
@click.option(
    "--older-than",
    "age",
    required=True,
    type=AGE,
    metavar="AGE",
    help="Remove sets dated more than AGE before today: 7d, 2w, 36h, 15m, 30s or 1h30m. "
    "The unit is required (a bare number used to mean days here).",
)
@click.option("--dry-run", is_flag=True, help="Only print what would be removed.")
@pass_app
def cleanup(app: App, age: dt.timedelta, dry_run: bool) -> None:
    """Remove task sets older than an age (today's and recent ones are kept)."""
    state = app.state
    removed = state.cleanup(age, dry_run=dry_run)
    cutoff = state.today() - age
    if not removed:
        app.out.print(
            f"Nothing to remove: no task set dated before {cutoff} in {app.where}.", markup=False
        )
        return
    verb = "Would remove" if dry_run else "Removed"
    app.out.print(
        f"{verb} {_sets(len(removed))} dated before {cutoff} from {app.where}:", markup=False
    )
    _print_keys(app, removed)
    if dry_run:
        app.out.print("Nothing was removed (--dry-run).")


@click.command()
@state_options
@click.option("--account", metavar="ACCOUNT", help="Delete every task set of this account.")
@click.option("--all", "all_", is_flag=True, help="Delete every task set of every account.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def reset(app: App, account: str | None, all_: bool, yes: bool) -> None:
    """Delete task sets so they start fresh: one account's, or all of them."""
    if (account is None) == (not all_):
        raise click.UsageError("pass exactly one of --account ACCOUNT or --all")
    state = app.state
    keys = state.keys(account)
    whose = f"account {account!r}" if account is not None else "every account"
    if not keys:
        app.out.print(f"No task sets of {whose} in {app.where}; nothing to reset.", markup=False)
        return
    if not yes:
        if not stdin_is_tty():
            raise click.UsageError(
                f"reset would delete {_sets(len(keys))} of {whose} in {app.where}; "
                "stdin is not a terminal to confirm it, so pass --yes to go ahead"
            )
        click.confirm(f"Delete {_sets(len(keys))} of {whose} in {app.where}?", abort=True, err=True)
    try:
        deleted = state.reset(account)
    except AlreadyRunning as exc:
        left = set(state.keys(account))
        done = [k for k in keys if k not in left]
        if done:
            app.out.print(f"Deleted {_sets(len(done))} before stopping:", markup=False)
            _print_keys(app, done)
        click.echo(
            f"error: reset stopped: {exc} The remaining sets were kept; run reset again "
            "once that run has finished.",
            err=True,
        )
        raise click.exceptions.Exit(1) from None
    app.out.print(f"Deleted {_sets(len(deleted))} of {whose}:", markup=False)
    _print_keys(app, deleted)


@click.command()
@state_options
@pass_app
def du(app: App) -> None:
    """Disk usage of the state folder: size and number of files.

    Prints one line, e.g. ``Job state directory: 2.3GB (1,247 files)``. For a database,
    the size of the stored task-set records and their number of rows, e.g.
    ``Job state database: 12.5KB (6 rows) in postgresql://user@host/db``.
    """
    size, items = app.state.usage()
    if app.in_database:
        click.echo(
            f"Job state database: {human_size(size)} ({plural(items, 'row')}) in {app.where}"
        )
    else:
        click.echo(f"Job state directory: {human_size(size)} ({plural(items, 'file')})")


@click.command()
@state_options
@click.option(
    "--repair/--no-repair",
    default=True,
    show_default=True,
    help="Repair what can be repaired (corrupt files, stray temp files, stale leases).",
)
@pass_app
def doctor(app: App, repair: bool) -> None:
    """Check every state file (or database row) and repair what can be repaired; exit 1
    while a problem remains (one not repaired, or a corrupt file set aside that a person
    must inspect, then delete or restore), 0 when none does."""
    state = app.state
    findings = state.doctor(repair=repair)
    for f in findings:
        if f.kind in INFO_KINDS:
            app.out.print(f"{f.kind}: {f.where}: {f.detail}", markup=False)
            continue
        outcome = "repaired" if f.repaired else "NOT repaired"
        app.out.print(f"{f.kind}: {f.where}: {f.detail} ({outcome})", markup=False)
    if not findings:
        app.out.print(f"No problems found in {app.where}.", markup=False)
        return
    problems = [f for f in findings if f.kind not in INFO_KINDS]
    unrepaired = [f for f in problems if not f.repaired]
    # A corrupt file set aside is kept for a person to look at: it stays a problem
    # (exit 1) until they delete it or restore it by hand.
    set_aside = [f for f in findings if f.kind in INFO_KINDS]
    if problems:
        noun = "problem" if len(problems) == 1 else "problems"
        fixed = len(problems) - len(unrepaired)
        app.out.print(
            f"{len(problems)} {noun} found in {app.where}, {fixed} repaired.", markup=False
        )
    if unrepaired:
        app.out.print(
            "Run `jobledger doctor` without --no-repair to repair them."
            if not repair
            else f"{len(unrepaired)} could not be repaired; see above.",
            markup=False,
        )
    if set_aside:
        n = len(set_aside)
        app.out.print(
            f"{n} corrupt {'copy is' if n == 1 else 'copies are'} kept aside in "
            f"{app.where}: inspect each, then delete it, or restore it by hand if it holds "
            "what its set lacks. doctor exits 1 until none is left.",
            markup=False,
        )
    if unrepaired or set_aside:
        raise click.exceptions.Exit(1)
    app.out.print(f"Nothing left to repair in {app.where}.", markup=False)


def register(group: click.Group) -> None:
    """Add the maintenance commands to ``group``."""
    for command in (cleanup, reset, du, doctor):
        group.add_command(command)
