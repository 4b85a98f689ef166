"""The ``jobledger`` command line: inspect and maintain task-set state.

``main()`` is the console script; ``cli`` is the click group, to which later issues add
command groups (``jobs``, ``worker``, ``db``, ``export``).
"""

from ._app import cli, main

__all__ = ["cli", "main"]
