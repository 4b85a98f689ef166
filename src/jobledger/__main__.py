"""``python -m jobledger``: the ``jobledger`` command (needs the ``cli`` extra)."""

from ._cli_entry import main

main()
