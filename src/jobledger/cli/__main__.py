"""``python -m jobledger.cli``: the ``jobledger`` command."""

from . import main

main()
