"""``jobledger demo``: an interrupted daily run, for real (see ``_demo``)."""

from __future__ import annotations

import click

from .._demo import run_demo
from ._app import App, pass_app

__all__ = ["demo"]


@click.command()
@click.option("--keep", is_flag=True, help="Keep the temporary folder to look at the files.")
@pass_app
def demo(app: App, keep: bool) -> None:
    """Crash a daily run with SIGKILL, restart it, and show that it resumes.

    Runs in a temporary folder (removed afterwards unless --keep); exit 1 if the restart
    did not skip what was done and finish the rest exactly once.
    """
    encoding = (app.out.encoding or "").lower().replace("-", "")
    code = run_demo(
        lambda line: app.out.print(line, markup=False, highlight=False),
        keep=keep,
        unicode=encoding.startswith("utf"),
    )
    if code:
        raise click.exceptions.Exit(code)
