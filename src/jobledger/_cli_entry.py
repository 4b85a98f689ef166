"""The ``jobledger`` console script, which must start even without the ``[cli]`` extra.

The command line needs click and rich; the library does not, so a plain
``pip install jobledger`` has neither. Importing :mod:`jobledger.cli` would then die with a
``ModuleNotFoundError`` traceback; this entry point says what to install instead.
"""

from __future__ import annotations

import sys

__all__ = ["MISSING_EXTRA", "main"]

#: What the command prints (to stderr, exit 1) when click or rich is missing.
MISSING_EXTRA = (
    "jobledger: the command line needs the [cli] extra: pip install -e '.[cli]' "
    "(from a clone of jobledger)"
)

_CLI_DEPENDENCIES = ("click", "rich")


def main() -> None:
    """Run the command line, or explain in one line which extra it needs."""
    try:
        from .cli import main as cli_main
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in _CLI_DEPENDENCIES:
            raise  # a broken installation of something else: its traceback helps
        print(MISSING_EXTRA, file=sys.stderr)
        sys.exit(1)
    cli_main()
