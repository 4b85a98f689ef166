"""Checks on what callers hand in, made once in the policy layer before anything is written.

Both backends then refuse the same inputs with the same message (PostgreSQL would
otherwise refuse some of them only at the database, the files backend others only while
writing):

- a job's result: at most :data:`MAX_RESULT_BYTES` bytes of JSON (:func:`check_result_size`).
- JSON values (payloads, results): at most :data:`MAX_JSON_DEPTH` nested levels, checked
  iteratively (a deeper value would exhaust the interpreter's recursion while encoding);
  every string and key valid Unicode (no lone surrogate such as ``"\\ud800"``, which UTF-8
  cannot encode) and without NUL characters (PostgreSQL's JSON cannot hold ``\\u0000``);
  floats finite (JSON has no NaN or Infinity). A problem raises :class:`InvalidPayload`
  naming where in the value it is.
- names (job types, job ids, accounts, set types, tasks): :func:`check_name` raises
  :class:`InvalidNameError`.
- free text that must be recorded anyway (an error message, a traceback):
  :func:`storable_text` escapes what cannot be stored instead of refusing the failure.
"""

from __future__ import annotations

import math
from itertools import repeat
from typing import Any

from ._errors import InvalidNameError, InvalidPayload
from ._json import encode_compact

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_RESULT_BYTES",
    "check_name",
    "check_result_size",
    "check_value",
    "storable_text",
]

#: How many levels of nested objects and arrays a payload or result may have (the value
#: itself is level 1). Real payloads use a handful; the interpreter's recursion limit (1000
#: by default) is what a deeper value would exhaust while being encoded or decoded.
MAX_JSON_DEPTH = 200

#: The most bytes a job's result may take, as compact UTF-8 JSON: 16 MiB. A result is
#: stored in the job's own file (whose reader refuses files over 64 MiB, payload included)
#: or row, read back whole by every ``get``, ``list`` and ``wait``, and handed to whoever
#: waits for it; large outputs belong in a file or object store the result names.
MAX_RESULT_BYTES = 16 * 1024 * 1024

# A step of the path to a value: (parent step, key or index, the container holding it).
_Step = tuple[Any, Any, Any] | None

_SHOWN_STEPS = 8  # a path longer than this is shown as its first steps and "..."


def _where(root: str, step: _Step, key: Any = None, *, leaf: bool = False) -> str:
    """``payload['a'][0]``: the path from ``root`` through ``step`` (and ``key``)."""
    keys = [key] if leaf else []
    while step is not None:
        step, lazy, container = step
        keys.append(_key(lazy.key, container, lazy.item))
    keys.reverse()
    shown = "".join(f"[{_short(k)}]" for k in keys[:_SHOWN_STEPS])
    return root + shown + ("..." if len(keys) > _SHOWN_STEPS else "")


def _short(key: Any) -> str:
    text = repr(key)  # a lone surrogate is shown escaped (not printable), never raw
    return text if len(text) <= 40 else text[:37] + "..."


def _text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None. Cheap for ASCII text (most of it)."""
    if "\x00" in text:
        return (
            f"holds a NUL character (\\x00 at character {text.index(chr(0))}), which "
            "PostgreSQL cannot store in JSON; remove it, or encode binary data (e.g. base64)"
        )
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"holds a lone surrogate {text[exc.start]!r} at character {exc.start}, "
            "which is not valid Unicode text and cannot be stored as UTF-8; fix the text "
            "where it came from (e.g. decode bytes with errors='replace')"
        )
    return None


def _float_problem(value: float) -> str | None:
    if math.isfinite(value):
        return None
    return f"is {value!r}, which JSON cannot represent; store None or a string instead"


def check_value(value: Any, what: str, root: str) -> None:
    """Raise :class:`InvalidPayload` if ``value`` cannot be stored as JSON by either
    backend: too deep, a string or key that is not storable text, a non-finite float.

    ``what`` starts the message ("the payload of the T job"), ``root`` starts the path to
    the offending part ("payload"). Types JSON has no form for (a set, an object) are left
    to the JSON encoder, which runs after this (safely: the depth is bounded by then).
    """

    def fail(where: str, problem: str) -> InvalidPayload:
        return InvalidPayload(f"{what} is not JSON-serialisable: {where} {problem}")

    kind = type(value)
    if kind is str:
        problem = _text_problem(value)
        if problem:
            raise fail(root, problem)
        return
    if kind is float:
        problem = _float_problem(value)
        if problem:
            raise fail(root, problem)
        return
    if not isinstance(value, (dict, list, tuple)):
        return  # None, int, bool, or a type the encoder will name
    # Iterative on purpose: the values this guards against are the ones that would exhaust
    # recursion. Each entry: (container, its nesting level, the path step to it). The loops
    # only look for a problem, cheaply; naming where it is comes after (see _name_it).
    stack: list[tuple[Any, int, _Step]] = [(value, 1, None)]
    isfinite = math.isfinite
    while stack:
        container, depth, step = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise fail(_where(root, step), _too_deep(container, step))
        if isinstance(container, dict):
            pairs: Any = container.items()
        else:
            pairs = zip(repeat(_UNKNOWN), container)  # an index is found only if needed
        for key, item in pairs:
            if (
                isinstance(key, str)
                and ("\x00" in key or not key.isascii())
                and (problem := _text_problem(key))
            ):
                raise fail(f"the key {_short(key)} of {_where(root, step)}", problem)
            kind = type(item)
            if kind is str:
                if ("\x00" in item or not item.isascii()) and (problem := _text_problem(item)):
                    raise fail(_where(root, step, _key(key, container, item), leaf=True), problem)
            elif kind is int or kind is bool or item is None:
                pass
            elif kind is float:
                if not isfinite(item):
                    problem = _float_problem(item)
                    assert problem is not None
                    raise fail(_where(root, step, _key(key, container, item), leaf=True), problem)
            elif isinstance(item, (dict, list, tuple)):
                stack.append((item, depth + 1, (step, _Lazy(key, item), container)))
            elif isinstance(item, str):
                if problem := _text_problem(item):
                    raise fail(_where(root, step, _key(key, container, item), leaf=True), problem)
            elif isinstance(item, float) and (problem := _float_problem(item)):
                raise fail(_where(root, step, _key(key, container, item), leaf=True), problem)


_UNKNOWN = object()  # the key of an array item: its index, found only to name a problem


class _Lazy:
    """A path step's key; an array index is looked up (by identity) only when shown."""

    __slots__ = ("item", "key")

    def __init__(self, key: Any, item: Any) -> None:
        self.key, self.item = key, item


def _key(key: Any, container: Any, item: Any) -> Any:
    if key is not _UNKNOWN:
        return key
    return next(i for i, x in enumerate(container) if x is item)


def _too_deep(container: Any, step: _Step) -> str:
    while step is not None:
        step, _, parent = step
        if parent is container:
            return "contains itself (a reference cycle); JSON can hold only trees"
    return (
        f"is nested deeper than {MAX_JSON_DEPTH} levels (the most jobledger stores, "
        "jobledger.MAX_JSON_DEPTH); flatten the value, or store it elsewhere and pass a "
        "reference"
    )


def check_result_size(value: Any, encoded: str, what: str, job_id: str | None = None) -> None:
    """Raise :class:`InvalidPayload` if the result ``value`` takes more than
    :data:`MAX_RESULT_BYTES` as compact UTF-8 JSON. ``encoded`` is its text as the JSON
    check wrote it (ASCII, ``", "`` separators), never shorter than the stored form: only a
    text over the limit is encoded again to be measured exactly."""
    if len(encoded) <= MAX_RESULT_BYTES:
        return
    size = len(encode_compact(value).encode("utf-8"))
    if size <= MAX_RESULT_BYTES:
        return
    job = f" (job {job_id})" if job_id is not None else ""
    raise InvalidPayload(
        f"{what}{job} takes {size:,} bytes as JSON, over the {MAX_RESULT_BYTES:,} bytes "
        f"({MAX_RESULT_BYTES >> 20} MiB, jobledger.MAX_RESULT_BYTES) a job's result may "
        "take; nothing was stored. Write large output to a file or an object store and "
        "return a reference to it (a path, a URL)"
    )


def check_name(value: object, what: str) -> str:
    """``value`` if it is a non-empty string of storable text without NUL characters;
    :class:`InvalidNameError` naming ``what`` (e.g. ``"account"``) otherwise."""
    if not isinstance(value, str) or value == "" or "\x00" in value:
        raise InvalidNameError(
            f"{what} must be a non-empty string without NUL characters, got {value!r}"
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidNameError(
                f"{what} {value!r} holds a lone surrogate {value[exc.start]!r} at "
                f"character {exc.start}, which is not valid Unicode text and cannot be "
                "stored as UTF-8; pass a proper string"
            ) from None
    return value


def storable_text(text: str) -> str:
    """``text`` with what no backend can store escaped: a lone surrogate becomes
    ``\\udc80``, a NUL ``\\x00``. For error messages and tracebacks, which are recorded
    whatever they hold (an OSError's file name may carry surrogate-escaped bytes)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def findable(name: str, what: str) -> bool:
    """For a lookup by ``name`` (a job id): :class:`InvalidNameError` for what
    :func:`check_name` refuses, as the folder backend does, except that a name with a NUL
    character is simply found nowhere (False): no name with one was ever stored."""
    if isinstance(name, str) and "\x00" in name:
        return False
    check_name(name, what)
    return True
