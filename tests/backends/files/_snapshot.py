"""What a folder holds, to prove that a read left it as it was."""

from __future__ import annotations

import os
from pathlib import Path


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, hidden ones included."""
    out = {}
    for folder, _dirs, names in os.walk(root):
        for n in names:
            p = os.path.join(folder, n)
            out[os.path.relpath(p, root)] = Path(p).read_bytes()
    return out
