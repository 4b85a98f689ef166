"""User input (accounts, types, job ids) turned into file names that stay inside their folder.

A name that is already a valid file name on Linux, macOS and Windows is used as it is, so
``user@email.com`` stays readable. Anything else is percent-encoded, reversibly:

- ``%`` itself is always encoded (``%25``), so decoding is unambiguous;
- path separators, NUL and control characters, and the characters Windows forbids
  (``<>:"/\\|?*``) are encoded;
- a leading ``.`` is encoded (``..`` can never be a path step, and dot-names stay ours for
  temp and lock files), as is a trailing ``.`` or space (Windows strips those);
- Windows' reserved device names (``CON``, ``NUL``, ``COM1``, ``LPT1``..., also with an
  extension such as ``con.txt``) get their first letter encoded.

The result is a single path component; ``encode`` refuses empty names, non-strings and
names too long for a file name, with a clear :class:`InvalidNameError`.
"""

from __future__ import annotations

import os
import re

from ..._errors import InvalidNameError
from ..._inputs import check_name

__all__ = ["MAX_NAME_BYTES", "decode", "encode", "inside"]

#: Leaves room for ``-YYYY-MM-DD.json.corrupt-<stamp>`` under the usual 255-byte limit.
MAX_NAME_BYTES = 180

_FORBIDDEN = set('<>:"/\\|?*%') | {chr(c) for c in range(32)} | {"\x7f"}
_RESERVED = re.compile(r"^(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])(\..*)?$", re.IGNORECASE)


def _quote(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8"))


# Names that encode to themselves (letters, digits, "_" and "-", dots only inside): checked
# in one match, since every enqueue names a new file (a UUID) and the general path below
# looks at each character.
_PLAIN = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


def encode(name: object, what: str = "name") -> str:
    """The file-name form of ``name``; ``what`` (e.g. ``"account"``) goes into errors."""
    if (
        type(name) is str
        and len(name) <= MAX_NAME_BYTES
        and _PLAIN.fullmatch(name)
        and not _RESERVED.match(name)
    ):
        return name
    if not isinstance(name, str):
        raise InvalidNameError(f"{what} must be a string, got {type(name).__name__}: {name!r}")
    if name == "":
        raise InvalidNameError(f"{what} must not be empty")
    if not name.isascii() and "\x00" not in name:
        check_name(name, what)  # a lone surrogate: refused as the policy layer words it
    out = [_quote(ch) if ch in _FORBIDDEN else ch for ch in name]
    if out[0] == ".":
        out[0] = "%2E"
    if out[-1] in (".", " "):
        out[-1] = _quote(out[-1])
    if _RESERVED.match(name):
        out[0] = _quote(out[0])
    encoded = "".join(out)
    if len(encoded.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidNameError(
            f"{what} {name[:40]!r}... is too long to be a file name "
            f"({len(encoded.encode('utf-8'))} bytes encoded, at most {MAX_NAME_BYTES}); "
            "use a shorter name"
        )
    return encoded


_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


def decode(encoded: str) -> str:
    """The name that :func:`encode` turned into ``encoded``."""
    if "%" not in encoded:
        return encoded
    raw = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), encoded.encode("utf-8"))
    return raw.decode("utf-8", errors="surrogateescape")


def inside(root: str, *parts: str) -> str:
    """Join ``parts`` under ``root`` and check that the result is really inside it."""
    path = os.path.join(root, *parts)
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise InvalidNameError(f"refusing the path {path!r}: it would leave the folder {root!r}")
    return path
