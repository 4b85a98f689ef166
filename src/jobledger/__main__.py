"""``python -m jobledger``: the ``jobledger`` command (needs the ``cli`` extra)."""

from .cli import main

main()
