"""Who a process is, the same on every backend: its host name and its worker ids.

A worker id names one worker for as long as its process lives. The policy
(:class:`~jobledger.JobQueue`) makes it; each backend only records it: the files backend as
the name of the worker's OS lock (``workers/<worker>.lock``), PostgreSQL as the key of the
worker's row (``jobledger_workers``). Both record :data:`HOST` beside a lease holder's pid,
so that the same host is told apart from another one in the same way.
"""

from __future__ import annotations

import os
import socket

__all__ = ["HOST", "new_worker_id"]

#: This machine's host name, as lease holders and worker ids record it.
HOST = socket.gethostname()


def new_worker_id(pid: int) -> str:
    """A unique worker id: host, pid and a random part (pids are reused)."""
    return f"{HOST}-{pid}-{os.urandom(4).hex()}"
