"""The web dashboard: an ASGI application (Starlette) over a queue and task sets.

``pip install -e '.[web]'``, then ``jobledger dashboard --dir DIR_OR_URL``, or mount
:func:`create_app` in an ASGI application of your own::

    from jobledger.web import create_app
    app = create_app(queue="sessions/queue", state="sessions/job-state")

Pages read through the public API's read-only reads (a page never writes); actions are
POSTs carrying a CSRF token, and ``read_only=True`` removes every one of them.
"""

from ._app import create_app
from ._context import Dashboard
from ._security import new_token

__all__ = ["Dashboard", "create_app", "new_token"]
