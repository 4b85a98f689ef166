"""``python -m bench``: every benchmark in one run (see ``bench/all.py`` for what is
measured and how).

Run from the project root, after ``pip install -e '.[bench]'``::

    python -m bench --quick     # a smoke run, small sizes, one round
    python -m bench             # the full run: 3 alternating rounds
    python -m bench --help      # every option

The code lives in ``bench/all.py`` (also ``python -m bench.all``) so that the worker
processes it starts with "spawn" can import their entry points; this file only calls it.
"""

from __future__ import annotations

import sys

from bench.all import main

if __name__ == "__main__":
    sys.exit(main())
