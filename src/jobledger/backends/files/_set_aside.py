"""Moving a corrupt file out of the way, kept beside it under a name that says so."""

from __future__ import annotations

import datetime as dt
import os

from ..._errors import StorageError
from ._syncs import fsync_dir

__all__ = ["set_aside"]


def set_aside(path: str, now: dt.datetime) -> str:
    """Rename a corrupt file to ``<name>.corrupt-<timestamp>`` and return the new path."""
    stamp = now.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + (
        f"{now.microsecond // 1000:03d}Z"
    )
    target = f"{path}.corrupt-{stamp}"
    n = 1
    while os.path.exists(target):
        n += 1
        target = f"{path}.corrupt-{stamp}-{n}"
    try:
        os.replace(path, target)
        fsync_dir(os.path.dirname(path) or ".")
    except OSError as exc:
        raise StorageError("set aside the corrupt file", path, exc) from exc
    return target
