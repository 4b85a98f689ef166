"""``jobledger demo``: an interrupted daily run, for real (see ``_demo``); with
``--daily``, a daily run across accounts with a worker killed mid-account (``_demo_daily``)."""

from __future__ import annotations

import click

from .._demo import run_demo
from .._demo_daily import run_daily_demo
from ._app import App, pass_app

__all__ = ["demo"]


@click.command()
@click.option("--keep", is_flag=True, help="Keep the temporary folder to look at the files.")
@click.option(
    "--daily",
    is_flag=True,
    help="Show a daily run across accounts instead: 3 accounts, 2 worker processes, one "
    "killed (SIGKILL) mid-account and resumed by the other.",
)
@pass_app
def demo(app: App, keep: bool, daily: bool) -> None:
    """Crash a daily run with SIGKILL, restart it, and show that it resumes.

    Runs in a temporary folder (removed afterwards unless --keep); exit 1 if the restart
    did not skip what was done and finish the rest exactly once. With --daily: the day's
    jobs of 3 accounts run by 2 worker processes, one killed in the middle of an account;
    exit 1 unless every task ran exactly once.
    """
    encoding = (app.out.encoding or "").lower().replace("-", "")
    code = (run_daily_demo if daily else run_demo)(
        lambda line: app.out.print(line, markup=False, highlight=False),
        keep=keep,
        unicode=encoding.startswith("utf"),
    )
    if code:
        raise click.exceptions.Exit(code)
