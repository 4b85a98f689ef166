"""The ``jobledger`` logger, and verbose output on request (env ``JOBLEDGER_VERBOSE=1``)."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["enable_verbose", "log", "verbose_from_env"]

log = logging.getLogger("jobledger")


def enable_verbose() -> None:
    """Print jobledger's INFO lines to stderr as ``[INFO] message``.

    Does nothing if the application already gave the logger a handler of its own.
    """
    log.setLevel(logging.INFO)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
        log.addHandler(handler)


def verbose_from_env() -> None:
    """Turn verbose output on if ``JOBLEDGER_VERBOSE`` is set to a true value."""
    if os.environ.get("JOBLEDGER_VERBOSE", "").strip().lower() in ("1", "true", "yes", "on"):
        enable_verbose()
