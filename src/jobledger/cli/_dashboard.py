"""``jobledger dashboard``: the web dashboard (``jobledger.web``), served by uvicorn.

The ``[web]`` extra is imported only when the command runs, so the rest of the CLI works
without it; missing, it is named: ``pip install -e '.[web]'``.

Safe by default: it binds 127.0.0.1. Any other host needs a token on every request
(``--token``, or ``$JOBLEDGER_DASHBOARD_TOKEN``, else one generated and printed at the
start) unless ``--no-auth`` is given explicitly. uvicorn's access log is off: the first
address opened carries the token in its query.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import click

from .._errors import ConfigError
from .._location import classify
from ._app import App, dir_or_url, pass_app, require_folder
from ._jobs import queue_dir_option

__all__ = ["TOKEN_ENV", "dashboard", "is_loopback"]

TOKEN_ENV = "JOBLEDGER_DASHBOARD_TOKEN"
_WEB_EXTRA = "pip install -e '.[web]'"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _web() -> Any:
    try:
        import uvicorn

        from .. import web
    except ImportError as exc:
        raise click.ClickException(
            f"the dashboard needs the [web] extra ({exc.name} is missing): {_WEB_EXTRA}"
        ) from None
    return uvicorn, web


@click.command("dashboard")
@queue_dir_option()
@click.option(
    "--state",
    "state_location",
    metavar="DIR_OR_URL",
    callback=dir_or_url(),
    help="The task sets to show: a state folder or a postgresql:// URL (default: the "
    "queue's database when --dir is a URL; none for a folder).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    show_envvar=True,
    help="The access token every request must carry (default: one is generated when the "
    "host is not a loopback address).",
)
@click.option(
    "--no-auth",
    is_flag=True,
    help="Serve a non-loopback host without a token (anyone who can reach it can act).",
)
@click.option("--read-only", is_flag=True, help="No actions: every page only reads.")
@pass_app
def dashboard(
    app: App,
    queue_dir: str,
    state_location: str | None,
    host: str,
    port: int,
    token: str | None,
    no_auth: bool,
    read_only: bool,
) -> None:
    """Serve the web dashboard: overview, task sets, queue, job pages, /metrics."""
    uvicorn, web = _web()
    if state_location is None and classify(queue_dir, "").is_url:
        state_location = queue_dir
    if state_location is not None and not classify(state_location, "").is_url:
        require_folder(
            state_location, "the state folder (--state)", "check the path given with --state"
        )
    if token is not None and not token.strip():
        raise ConfigError(f"the dashboard's token (--token or ${TOKEN_ENV}) is empty")
    generated = False
    if no_auth:
        if token is not None:
            raise click.UsageError("give --token or --no-auth, not both")
    elif token is None and not is_loopback(host):
        token = web.new_token()
        generated = True
    application = web.create_app(queue_dir, state_location, read_only=read_only, token=token)
    board = application.state.dashboard
    shown_host = f"[{host}]" if ":" in host else host
    address = f"http://{shown_host}:{port}/"
    out = app.out
    out.print(f"jobledger dashboard at {address}", markup=False, highlight=False)
    if board.queue is not None:
        out.print(f"  queue: {board.queue.dir}", markup=False, highlight=False)
    if board.state is not None:
        out.print(f"  task sets: {board.state.backend.location}", markup=False, highlight=False)
    if read_only:
        out.print("  read-only: no actions", markup=False, highlight=False)
    if token is not None:
        if generated:
            out.print(f"  open {address}?token={token}", markup=False, highlight=False)
            out.print(
                f"  (a generated token: every request needs it; set --token or ${TOKEN_ENV} "
                "to choose it)",
                markup=False,
                highlight=False,
            )
        else:
            out.print("  every request needs the token given (--token)", markup=False)
    elif not is_loopback(host):
        out.print(
            f"  WARNING: --no-auth on {host}: anyone who can reach it can see and act",
            markup=False,
            highlight=False,
        )
    uvicorn.run(application, host=host, port=port, access_log=False, log_level="warning")
