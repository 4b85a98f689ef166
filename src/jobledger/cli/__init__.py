"""The ``jobledger`` command line: inspect and maintain task-set state (``status``,
``show``, ``list``, ``stats``, ``cleanup``, ...), the job queue (``jobs``, ``worker``),
a PostgreSQL database (``db``) and both as JSON (``export``).

``main()`` is the console script; ``cli`` is the click group.
"""

from ._app import cli, main

__all__ = ["cli", "main"]
