"""Named queues' commands: ``jobledger queues list|limit|rate``.

Each opens a :class:`~jobledger.JobQueue` on ``--dir``/``--url`` (as the ``jobs``
commands do: ``_jobs.queue_dir_option``) and calls one of its limit methods
(``_queue_limits.py``); ``list`` only reads.
"""

from __future__ import annotations

import json

import click

from ._app import App, pass_app
from ._jobs import open_queue, queue_dir_option, queue_table
from ._render import table

__all__ = ["queues"]


@click.group("queues")
def queues() -> None:
    """Named queues: their jobs, their limits (most Running jobs at once, across every
    worker) and the job types' rate limits (most starts per key per window).

    Every command takes --dir DIR_OR_URL (a folder or a postgresql:// URL) or --url URL,
    or reads it from $JOBLEDGER_QUEUE_DIR, as the 'jobs' commands do.
    """


def _limit(text: str) -> int | None:
    if text.lower() == "none":
        return None
    if not text.isdigit():
        raise click.BadParameter(f"{text!r} is not a whole number of 0 or more, nor 'none'")
    return int(text)


@queues.command("list")
@queue_dir_option(must_exist=True)
@click.option("--json", "as_json", is_flag=True, help="Print the queues and limits as JSON.")
@pass_app
def list_(app: App, queue_dir: str, as_json: bool) -> None:
    """Each queue's jobs per status and its limit, then the job types' rate limits.
    Reads only."""
    with open_queue(queue_dir) as queue:
        per_queue = queue.counts_by_queue()
        limits = queue.limits()
    if as_json:
        doc = {"jobs": per_queue, **limits.to_json()}
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    if not per_queue and not limits.queues:
        app.out.print(f"No jobs and no queue limits in {queue.dir}.", markup=False)
    else:
        app.out.print(queue_table(f"Queues in {queue.dir}", per_queue, dict(limits.queues)))
    if limits.rates:
        t = table("Rate limits", "Job type", "Starts", "Per (s)", "Key field")
        for job_type, rate in sorted(limits.rates.items()):
            t.add_row(job_type, str(rate.n), f"{rate.per:g}", rate.key_field or "-")
        app.out.print(t)


@queues.command("limit")
@queue_dir_option(must_exist=True)
@click.argument("name")
@click.argument("n", metavar="N")
@pass_app
def limit(app: App, queue_dir: str, name: str, n: str) -> None:
    """Allow at most N jobs of queue NAME Running at once, across every worker on every
    machine ('none' removes the limit; 0 starts none). Jobs already Running above it run
    on."""
    value = _limit(n)
    with open_queue(queue_dir) as queue:
        queue.set_limit(name, value)
    what = "no limit" if value is None else f"at most {value} Running"
    app.out.print(f"Queue {name}: {what}.", markup=False)


@queues.command("rate")
@queue_dir_option(must_exist=True)
@click.argument("job_type", metavar="TYPE")
@click.argument("n", metavar="N")
@click.argument("per", metavar="PER", type=click.FloatRange(min=0, min_open=True))
@click.option(
    "--key",
    "key_field",
    metavar="FIELD",
    help="The payload field whose value is a job's rate key (a job's own rate_key wins); "
    "without it, the type's jobs share one key.",
)
@pass_app
def rate(
    app: App, queue_dir: str, job_type: str, n: str, per: float, key_field: str | None
) -> None:
    """Allow at most N starts of TYPE's jobs per rate key within any PER seconds ('none'
    removes the rate limit). A job over it waits, its attempt not counted."""
    value = _limit(n)
    with open_queue(queue_dir) as queue:
        queue.set_rate_limit(job_type, value, per, key_field=key_field)
    if value is None:
        app.out.print(f"Job type {job_type}: no rate limit.", markup=False)
    else:
        key = f" per value of {key_field}" if key_field else ""
        app.out.print(
            f"Job type {job_type}: at most {value} starts{key} per {per:g} s.", markup=False
        )
