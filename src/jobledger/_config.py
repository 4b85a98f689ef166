"""The document's ``{"jobState": {"enabled": true, "dir": ""}}`` block, read strictly."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import ConfigError

__all__ = ["DEFAULT_DIR", "DURABILITIES", "JobStateConfig", "read_config"]

#: Where state lives when ``dir`` is empty, relative to the current directory.
DEFAULT_DIR = os.path.join("sessions", "job-state")
DURABILITIES = ("fsync", "flush")


@dataclass(frozen=True)
class JobStateConfig:
    """The validated settings of a JobState."""

    enabled: bool = True
    dir: str = ""
    timezone: str | None = None
    durability: str = "fsync"
    url: str | None = None


_TYPES: dict[str, tuple[type, ...]] = {
    "enabled": (bool,),
    "dir": (str,),
    "timezone": (str, type(None)),
    "durability": (str,),
    "url": (str, type(None)),
}
_EXPECTED = {
    "enabled": "true or false",
    "dir": 'a string (a folder path, or "" for sessions/job-state)',
    "timezone": "an IANA time zone name or null",
    "durability": '"fsync" or "flush"',
    "url": 'a PostgreSQL URL ("postgresql://user@host/db") or null for the folder',
}


def read_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> JobStateConfig:
    """Read a config file path or an already-parsed mapping.

    The mapping is the application's whole config; only its ``jobState`` block is read
    (missing: every default). Unknown keys in that block and wrong types are errors that
    name the key (and the file, when read from one).
    """
    where = "the config mapping"
    if isinstance(source, (str, os.PathLike)):
        where = os.fspath(source)
        try:
            with open(where, encoding="utf-8") as fh:
                data: Any = json.load(fh)
        except OSError as exc:
            raise ConfigError(
                f"cannot read the config file {where}: {exc.strerror or exc}; "
                "check the path and its permissions"
            ) from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"the config file {where} is not valid JSON: {exc}") from exc
    else:
        data = source
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a JSON object with a 'jobState' key")
    block = data.get("jobState", {})
    if not isinstance(block, Mapping):
        raise ConfigError(f"key 'jobState' in {where} must be an object, got {block!r}")
    for key, value in block.items():
        if key not in _TYPES:
            known = ", ".join(sorted(_TYPES))
            raise ConfigError(f"unknown key 'jobState.{key}' in {where}; known keys: {known}")
        if not isinstance(value, _TYPES[key]):
            raise ConfigError(
                f"key 'jobState.{key}' in {where} must be {_EXPECTED[key]}, got {value!r}"
            )
    durability = block.get("durability", "fsync")
    if durability not in DURABILITIES:
        raise ConfigError(
            f"key 'jobState.durability' in {where} must be {_EXPECTED['durability']}, "
            f"got {durability!r}"
        )
    return JobStateConfig(
        enabled=block.get("enabled", True),
        dir=block.get("dir", ""),
        timezone=block.get("timezone"),
        durability=durability,
        url=block.get("url"),
    )
