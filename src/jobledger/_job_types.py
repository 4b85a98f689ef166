"""Job types: the ``@job_type`` registry, and how a typed job's payload is stored and read.

``@job_type("TextJob")`` goes on a dataclass or a pydantic model. A typed job round-trips
exactly through its file. Nested dataclasses are stored as JSON objects; where a field may
hold one of several dataclasses (a union of variants), the stored object carries an
explicit tag, ``"_variant": "<class name>"`` (variant classes of one union need distinct
class names), and reading picks the class by that tag, never by sniffing which fields are
present. Pydantic models use their own ``model_dump(mode="json")`` / ``model_validate``
(declare a discriminator for unions there).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar, Union

from ._durations import to_timeout
from ._errors import InvalidPayload, JobLedgerError
from ._inputs import MAX_JSON_DEPTH, check_name, check_value
from ._limits import RateLimit, check_rate

__all__ = [
    "VARIANT_KEY",
    "check_json",
    "check_storable",
    "decode_payload",
    "encode_job",
    "job_type",
    "registered_types",
    "type_rate_limit",
    "type_timeout",
]

VARIANT_KEY = "_variant"
T = TypeVar("T")

#: ``json.dumps(value, allow_nan=False)``, made once (a non-default option makes
#: json.dumps build a new encoder per call); thread-safe, its state is per call. Raises
#: TypeError or ValueError for what JSON cannot represent.
check_json = json.JSONEncoder(allow_nan=False).encode

_by_name: dict[str, type[Any]] = {}
_by_class: dict[type[Any], str] = {}
_timeouts: dict[str, float] = {}
_rates: dict[str, RateLimit] = {}


def job_type(
    name: str,
    *,
    timeout: dt.timedelta | float | None = None,
    rate_limit: tuple[int, float] | None = None,
    rate_key: str | None = None,
) -> Callable[[type[T]], type[T]]:
    """Register a dataclass or pydantic model as the job type ``name``.

    ``@jobledger.job_type("TextJob")`` above the class; instances can then be enqueued and
    handlers receive them back as ``job.payload``. ``timeout`` (a timedelta or seconds,
    more than 0) bounds each attempt of a job of this type that gives no timeout of its
    own (``enqueue(..., timeout=)``); it comes before the Worker's ``timeout``. It is
    read when an attempt starts, from this process's registry: a Worker must import the
    module that registers the type.

    ``rate_limit=(n, per_seconds)`` declares the type's rate limit (``rate_key``: the
    payload field that keys it), which a Worker handling the type stores in its queue when
    it starts, as ``JobQueue.set_rate_limit`` would (and only when it differs from the
    stored one).
    """
    if not isinstance(name, str) or not name:
        raise JobLedgerError(f"a job type name must be a non-empty string, got {name!r}")
    seconds = to_timeout(timeout, f"the timeout of job type {name!r}")
    rate = None if rate_limit is None else check_rate(*rate_limit, rate_key)

    def register(cls: type[T]) -> type[T]:
        if not (dataclasses.is_dataclass(cls) or hasattr(cls, "model_validate")):
            raise TypeError(
                f"@job_type({name!r}) needs a dataclass or a pydantic model, got {cls!r}"
            )
        previous = _by_name.get(name)
        if previous is not None and previous.__qualname__ != cls.__qualname__:
            raise JobLedgerError(
                f"job type {name!r} is already registered to {previous.__qualname__}; "
                "pick another name"
            )
        _by_name[name] = cls
        _by_class[cls] = name
        if seconds is None:
            _timeouts.pop(name, None)
        else:
            _timeouts[name] = seconds
        if rate is None:
            _rates.pop(name, None)
        else:
            _rates[name] = rate
        return cls

    return register


def registered_types() -> dict[str, type[Any]]:
    """The registered job types by name."""
    return dict(_by_name)


def type_rate_limit(name: str) -> RateLimit | None:
    """The rate limit that ``@job_type(name, rate_limit=...)`` declared, or None."""
    return _rates.get(name)


def type_timeout(name: str) -> float | None:
    """The timeout (seconds) that ``@job_type(name, timeout=...)`` registered, or None."""
    return _timeouts.get(name)


def check_storable(value: Any, what: str, root: str) -> str | None:
    """Raise :class:`InvalidPayload` (a TypeError), before anything is written, if
    ``value`` cannot be stored as JSON by every backend; the message starts with ``what``
    and names the offending part from ``root`` (see :mod:`jobledger._inputs`). Returns
    the JSON text the check made (ASCII, ``json.dumps``'s default form), or None for a
    plain value (only JSON's own types), which the encoder need not run for."""
    # First: bounds the depth the encoder will recurse into. A plain value cannot be
    # refused by the encoder.
    if check_value(value, what, root):
        return None
    try:
        return str(check_json(value))
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(f"{what} is not JSON-serialisable: {exc}") from exc


def encode_job(job: object) -> tuple[str, dict[str, Any]]:
    """(type name, JSON-ready payload) of a dict job or a registered instance.

    Raises TypeError, before anything is written, for an unregistered object, and
    :class:`InvalidPayload` (a TypeError) for a payload that cannot be stored as JSON;
    :class:`InvalidNameError` for a type name that cannot be stored.
    """
    if type(job) is dict or isinstance(job, Mapping):  # the ABC check alone is slow
        type_name = job.get("type")
        if not isinstance(type_name, str) or not type_name:
            raise TypeError(
                "a dict job needs a non-empty string 'type' key, e.g. {'type': 'TextJob', ...}"
            )
        payload = {k: v for k, v in job.items() if k != "type"}
    elif type(job) in _by_class:
        type_name = _by_class[type(job)]
        try:
            if hasattr(job, "model_dump"):
                payload = job.model_dump(mode="json")
            else:
                payload = _encode_dataclass(job)
        except ValueError as exc:  # pydantic's serialisation errors, its depth limit too
            raise InvalidPayload(
                f"the payload of the {type_name} job is not JSON-serialisable: {exc}"
            ) from exc
        except RecursionError:
            # Turning the instance into a dict recurses through its fields: a value this
            # deep is refused as check_storable would refuse the dict.
            raise InvalidPayload(
                f"the payload of the {type_name} job is not JSON-serialisable: it is nested "
                f"deeper than {MAX_JSON_DEPTH} levels (jobledger.MAX_JSON_DEPTH) or "
                "contains itself; flatten it, or store it elsewhere and pass a reference"
            ) from None
    else:
        raise TypeError(
            f"cannot enqueue {type(job).__name__}: pass a dict with a 'type' key or an "
            "instance of a class registered with @jobledger.job_type(...)"
        )
    check_name(type_name, "job type")
    embedded_id = payload.get("job_id")
    if isinstance(embedded_id, str):  # the job's id, not data: refused as a name
        check_name(embedded_id, "job id")
    check_storable(payload, f"the payload of the {type_name} job", "payload")
    return type_name, payload


def _encode_dataclass(value: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(type(value))
    return {
        f.name: _encode_value(hints.get(f.name, Any), getattr(value, f.name))
        for f in dataclasses.fields(value)
    }


def _is_variant_union(hint: Any) -> bool:
    if typing.get_origin(hint) not in (Union, types.UnionType):
        return False
    return sum(1 for a in typing.get_args(hint) if dataclasses.is_dataclass(a)) > 1


def _encode_value(hint: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = _encode_dataclass(value)
        if _is_variant_union(hint):
            # Tag which variant this is: reading must never guess it from the fields.
            out = {VARIANT_KEY: type(value).__name__, **out}
        return out
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if isinstance(value, (list, tuple)):
        inner = args[0] if origin in (list, tuple) and args else Any
        return [_encode_value(inner, v) for v in value]
    if isinstance(value, dict):
        inner = args[1] if origin is dict and len(args) == 2 else Any
        return {k: _encode_value(inner, v) for k, v in value.items()}
    return value


def decode_payload(
    type_name: str, payload: dict[str, Any], job_id: str | None = None
) -> tuple[Any, bool]:
    """(payload object, whether the type is known). Unknown types give the dict back.

    A class with a ``job_id`` field (the job file format's jobs have one) gets ``job_id`` back:
    enqueueing took it out of the payload to be the file's own ``job_id`` key.
    """
    cls = _by_name.get(type_name)
    if cls is None:
        return payload, False
    if job_id is not None and "job_id" not in payload and "job_id" in _field_names(cls):
        payload = {**payload, "job_id": job_id}
    if hasattr(cls, "model_validate"):
        return cls.model_validate(payload), True
    return _decode_dataclass(cls, payload), True


def _field_names(cls: type[Any]) -> set[str]:
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls)}
    return set(getattr(cls, "model_fields", {}))


def _decode_dataclass(cls: type[Any], data: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _decode_value(hints.get(f.name, Any), data[f.name])
    return cls(**kwargs)


def _decode_value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        classes: list[type[Any]] = [
            a for a in options if isinstance(a, type) and dataclasses.is_dataclass(a)
        ]
        if classes and isinstance(value, dict):
            tag = value.get(VARIANT_KEY)
            for c in classes:
                if c.__name__ == tag:
                    return _decode_dataclass(c, value)
            if len(classes) == 1 and tag is None:
                return _decode_dataclass(classes[0], value)
            raise ValueError(f"stored variant {tag!r} is none of {[c.__name__ for c in classes]}")
        if len(options) == 1:
            return _decode_value(options[0], value)
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return _decode_dataclass(typing.cast(type, hint), value)
    if origin in (list, tuple) and isinstance(value, list):
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        items = [_decode_value(inner, v) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict and isinstance(value, dict):
        args = typing.get_args(hint)
        inner = args[1] if len(args) == 2 else Any
        return {k: _decode_value(inner, v) for k, v in value.items()}
    return value


@contextlib.contextmanager
def isolated_for_tests() -> Iterator[None]:
    """For test suites: the registry as it was on entry is restored on exit, so the types a
    test registers (the registry is process-global) do not outlive it."""
    by_name, by_class, timeouts = dict(_by_name), dict(_by_class), dict(_timeouts)
    rates = dict(_rates)
    try:
        yield
    finally:
        _by_name.clear()
        _by_name.update(by_name)
        _by_class.clear()
        _by_class.update(by_class)
        _timeouts.clear()
        _timeouts.update(timeouts)
        _rates.clear()
        _rates.update(rates)
