"""``jobledger jobs enqueue``: a job from the command line (its payload as a JSON
argument or file, checked before anything is stored). A command of the ``jobs`` group
(``_jobs.py``), registered by ``_app._register``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from .._inputs import MAX_JSON_DEPTH
from .._job_record import new_job_id
from ._app import App, pass_app
from ._jobs import jobs, open_queue, queue_dir_option
from ._options import DURATION

__all__ = ["enqueue"]


def _payload(payload: str | None, payload_file: str | None) -> dict[str, Any]:
    if payload is not None and payload_file is not None:
        raise click.UsageError("pass --payload or --payload-file, not both")
    if payload is None and payload_file is None:
        return {}
    if payload_file is not None:
        hint, source = "'--payload-file'", payload_file
        try:
            with click.open_file(payload_file, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {payload_file}: {exc.strerror or exc}", param_hint=hint
            ) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise click.BadParameter(
                f"{source} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                f"{exc.start}); save it as UTF-8",
                param_hint=hint,
            ) from None
    else:
        hint, text, source = "'--payload'", payload or "", "the --payload value"
        _check_argument_text(text, source, hint)
    try:
        data = json.loads(text)
    except RecursionError:
        # The json module's reader recurses per level: far deeper than jobledger stores.
        raise click.BadParameter(
            f"{source} is nested too deeply to read; a payload may have at most "
            f"{MAX_JSON_DEPTH} levels of objects and arrays",
            param_hint=hint,
        ) from None
    except ValueError as exc:
        raise click.BadParameter(
            f"{source} is not valid JSON ({exc}); write an object such as "
            '\'{"model": "mistralai/Mistral-7B-v0.1"}\'',
            param_hint=hint,
        ) from None
    if not isinstance(data, dict):
        raise click.BadParameter(
            f"{source} is a JSON {type(data).__name__}, not an object; the payload must be an "
            'object such as \'{"model": "mistralai/Mistral-7B-v0.1"}\'',
            param_hint=hint,
        )
    return data


def _check_argument_text(text: str, source: str, hint: str) -> None:
    """BadParameter if ``text`` (from the command line) was not UTF-8: Python hands such
    bytes over as lone surrogates (U+DC80..U+DCFF), which no backend can store."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = ord(text[exc.start])
        what = f"byte 0x{char - 0xDC00:02x}" if 0xDC80 <= char <= 0xDCFF else f"{char:#x}"
        raise click.BadParameter(
            f"{source} is not UTF-8 text ({what} at character {exc.start}); pass UTF-8 "
            "(check the terminal's or the script's encoding)",
            param_hint=hint,
        ) from None


@jobs.command()
@queue_dir_option(creatable=True)
@click.argument("job_type", metavar="TYPE")
@click.option("--payload", metavar="JSON", help="The job's fields as a JSON object.")
@click.option(
    "--payload-file",
    metavar="FILE",
    help="Read the JSON object of the job's fields from FILE ('-' for stdin).",
)
@click.option("--id", "job_id", metavar="ID", help="The job id (default: a new UUID).")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Attempts before the job is Failed for good.",
)
@click.option(
    "--delay",
    type=DURATION,
    metavar="DURATION",
    help="Do not run the job before DURATION from now: 30s, 15m, 1h, 7d, 2w, 1h30m, or a "
    "bare number of seconds.",
)
@click.option(
    "--unique-key",
    metavar="KEY",
    help="Make the job unique: while a job with KEY is Queued or Running, nothing is "
    "stored and that job's id is printed.",
)
@click.option(
    "--unique-for",
    type=DURATION,
    metavar="DURATION",
    help="With --unique-key: a job with KEY that finished less than DURATION ago counts too.",
)
@click.option("--queue", "queue_name", default="default", metavar="NAME", help="The named queue.")
@click.option("--rate-key", metavar="KEY", help="The key its type's rate limit counts it under.")
@pass_app
def enqueue(
    app: App,
    queue_dir: str,
    job_type: str,
    payload: str | None,
    payload_file: str | None,
    job_id: str | None,
    priority: int,
    max_attempts: int,
    delay: dt.timedelta | None,
    unique_key: str | None,
    unique_for: dt.timedelta | None,
    queue_name: str,
    rate_key: str | None,
) -> None:
    """Store a job of type TYPE and print its id (durable when this returns).

    The queue folder must exist unless --create is given. Enqueueing an id that already
    exists stores nothing and prints that id; so does a --unique-key that a live job
    holds (or, with --unique-for, one that finished less than that long ago).
    """
    if unique_for is not None and unique_key is None:
        raise click.UsageError("--unique-for needs --unique-key")
    fields = _payload(payload, payload_file)
    if "type" in fields and fields["type"] != job_type:
        raise click.UsageError(
            f"the payload's 'type' is {fields['type']!r} but TYPE is {job_type!r}; "
            "drop 'type' from the payload (TYPE sets it)"
        )
    job = {**fields, "type": job_type}
    wanted = job_id if job_id is not None else fields.get("job_id")
    # With a key, the id is made here when none is given, so that a held key (another
    # job's id coming back) is told apart from a new job.
    asked = wanted if isinstance(wanted, str) else None
    if asked is None and unique_key is not None:
        job_id = asked = new_job_id()
    with open_queue(queue_dir) as queue:
        existing = queue.get(wanted) if isinstance(wanted, str) and wanted else None
        try:
            new_id = queue.enqueue(
                job,
                job_id=job_id,
                priority=priority,
                run_after=delay,
                max_attempts=max_attempts,
                unique_key=unique_key,
                unique_for=unique_for,
                queue=queue_name,
                rate_key=rate_key,
            )
        except TypeError as exc:
            raise click.UsageError(str(exc)) from None
        # A key already held returns its holder: an id other than the one asked for.
        held = unique_key is not None and existing is None and new_id != asked
        holder = queue.get(new_id) if held else None
    if existing is not None:
        app.err.print(
            f"note: job {new_id} already exists ({existing.status.value}) in {queue.dir}; "
            "nothing was enqueued",
            markup=False,
        )
    elif holder is not None:
        app.err.print(
            f"note: job {new_id} ({holder.status.value}) holds the unique key "
            f"{unique_key!r} in {queue.dir}; nothing was enqueued",
            markup=False,
        )
    click.echo(new_id)
