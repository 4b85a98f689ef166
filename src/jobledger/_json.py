"""The JSON encoders every stored document goes through, made once and kept fast.

``dumps_indented`` writes a task-set file (``indent=2``, byte for byte as ``json.dumps``),
``dumps_lines`` a job file (one top-level key per line), ``encode_str`` and
``encode_compact`` the short values of the queue index, its journal and PostgreSQL's jsonb.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

__all__ = ["dumps_indented", "dumps_lines", "encode_compact", "encode_str"]


def dumps_indented(doc: dict[str, Any]) -> bytes:
    """``json.dumps(doc, indent=2, ensure_ascii=False)`` + newline, byte for byte, faster.

    ``indent`` makes the json module fall back to its pure-Python encoder; a task list of
    thousands of names then costs more than the fsync. Lists of strings (the task lists)
    are laid out here with the C string encoder; everything else goes through json.
    """
    parts = []
    for key, value in doc.items():
        text = None
        if type(value) is list and value:
            # The C encoder raises TypeError for anything but a string: no need to check
            # every element first (that check alone cost more than the encoding).
            with contextlib.suppress(TypeError):
                text = "[\n    " + ",\n    ".join(map(encode_str, value)) + "\n  ]"
        if text is None:
            text = _encode_indented(value).replace("\n", "\n  ")
        parts.append(f"  {encode_str(key)}: {text}")
    body = ",\n".join(parts)
    return (f"{{\n{body}\n}}\n" if parts else "{}\n").encode()


def dumps_lines(doc: dict[str, Any]) -> bytes:
    """A JSON object with one top-level key per line, each value compact (C encoder).

    For job files: as readable as the job file format's example at a glance, and several times
    cheaper to write than ``indent=2``, which falls back to the pure-Python encoder."""
    if not doc:
        return b"{}\n"
    enc_str, enc = encode_str, _encode
    # Most values are strings or null: encoded here directly, the same text as the
    # encoder's (its generic dispatch cost more than the encoding of a short value).
    body = ",\n  ".join(
        [
            f"{enc_str(key)}: "
            + (enc_str(value) if type(value) is str else "null" if value is None else enc(value))
            for key, value in doc.items()
        ]
    )
    return f"{{\n  {body}\n}}\n".encode()


#: A string as JSON text, non-ASCII kept (the json module's own C function).
encode_str: Any = getattr(json.encoder, "c_encode_basestring", None) or (
    json.encoder.py_encode_basestring
)
# Encoders made once: json.dumps with any non-default option builds a new encoder on every
# call, which cost more than the encoding of a job file's short values. (Thread-safe: an
# encode keeps its state in locals.)
_encode = json.JSONEncoder(ensure_ascii=False).encode
_encode_indented = json.JSONEncoder(ensure_ascii=False, indent=2).encode
#: Compact JSON, non-ASCII kept: ``json.dumps(value, ensure_ascii=False,
#: separators=(",", ":"))``, made once.
encode_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
