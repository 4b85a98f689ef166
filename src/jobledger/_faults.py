"""Named fault points: places where a write or rename happens, which a test can arm to die at.

Every commit boundary in jobledger calls ``point("<name>")``. Unarmed, that is one global
lookup and a falsy test. A test arms a point in a child process (``arm("files.replaced")``,
or the environment variable ``JOBLEDGER_FAULT=files.replaced`` or ``files.replaced:3`` for
the third pass) and the process SIGKILLs itself there, exactly as a power-less crash would
leave it: no ``finally`` blocks, no buffered writes flushed.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["POINTS", "arm", "disarm", "point"]

#: Every named point. Tests sweep over this list.
#:
#: ``files.*`` come in the order a single save (``write_atomic``) passes them. A save passes
#: ``files.temp_fsynced`` (sync, then rename) or ``files.replaced_fsynced`` (rename, then
#: sync: a durable replace where the file system orders renames after data; see
#: ``SyncPlan.SYNC_AFTER_RENAME`` in ``backends/files/_sync_plan.py``), never both.
#:
#: ``queue.*`` are the files queue's index (``backends/files/_queue_index.py``): its journal
#: append and its ``queue.json`` snapshot, whose own write passes the ``files.*`` points
#: first. ``pg.*`` are PostgreSQL's commit (``backends/postgres/_db.py``).
POINTS: tuple[str, ...] = (
    "files.temp_written",
    "files.temp_fsynced",
    "files.backup_linked",
    "files.replaced",
    "files.replaced_fsynced",
    "files.dir_fsynced",
    # QueueIndex.log: the change's lines are appended to .queue.journal (before any
    # snapshot that append may trigger).
    "queue.journal_appended",
    # QueueIndex.save: queue.json replaced (after its write_atomic), before the
    # journal it now holds is rotated away.
    "queue.snapshot_written",
    # QueueIndex.save: the journal replaced by an empty one (the snapshot is done).
    "queue.journal_rotated",
    # _queue_history.prune: one finished job's file deleted (between the journal's
    # "pruning" mark and the line that lowers the finished counts).
    "queue.pruned_file",
    # Database.transaction, outermost level only (a savepoint is no commit): just before
    # COMMIT is sent, and just after the server confirmed it.
    "pg.before_commit",
    "pg.after_commit",
)

_armed: dict[str, int] = {}
#: Points armed for one thread only: name -> that thread's ident.
_only_in: dict[str, int] = {}


def arm(name: str, countdown: int = 1, *, this_thread: bool = False) -> None:
    """Make the ``countdown``-th pass through point ``name`` kill this process; with
    ``this_thread``, only passes in the calling thread count. A test that means "this
    job's record" needs that: a worker's other threads (its lease's heartbeat) commit
    too, and on a loaded machine one of theirs can come first."""
    _armed[name] = countdown
    if this_thread:
        _only_in[name] = threading.get_ident()
    else:
        _only_in.pop(name, None)


def disarm() -> None:
    """Disarm every point."""
    _armed.clear()
    _only_in.clear()


def point(name: str) -> None:
    """A commit boundary. Dies here with SIGKILL when armed; otherwise does nothing."""
    if _armed and name in _armed:
        only = _only_in.get(name)
        if only is not None and only != threading.get_ident():
            return
        _armed[name] -= 1
        if _armed[name] <= 0:
            os.kill(os.getpid(), signal.SIGKILL)


def _arm_from_env() -> None:
    spec = os.environ.get("JOBLEDGER_FAULT", "")
    if spec:
        name, _, count = spec.partition(":")
        arm(name, int(count) if count else 1)


_arm_from_env()
