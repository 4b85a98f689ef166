"""The config's ``{"jobState": {"enabled": true, "dir": ""}}`` block, read strictly."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._clock import resolve_timezone
from ._errors import ConfigError, StorageError
from ._location import classify, is_postgres_url, shown
from ._log import log
from .backends.files._reading import MAX_CONFIG_BYTES, RefusedFile, read_regular

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
    "url": 'a PostgreSQL URL ("postgresql://user@host:5432/dbname") or null for the folder',
}


def read_config(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    warn: Callable[[str], None] | None = None,
) -> JobStateConfig:
    """Read a config file path or an already-parsed mapping.

    The mapping is the application's whole config; only its ``jobState`` block is read
    (missing: every default, and a warning when the config is a file, since a misspelt
    block would otherwise go unnoticed; ``warn`` receives it, by default the ``jobledger``
    logger's ``warning``). Unknown keys in that
    block, wrong types, an unknown time zone, a ``url`` that is not a PostgreSQL URL naming
    a database, and both a ``dir`` and a ``url`` are ConfigErrors that name the key (and
    the file, when read from one).
    """
    where = "the config mapping"
    if isinstance(source, (str, os.PathLike)):
        where = os.fspath(source)
        try:
            # The one safe reader: a FIFO or device is refused without blocking, and the
            # size is capped. A link to a regular file is followed: deployments link
            # config files (a Kubernetes ConfigMap is a link), and it lies in no jobledger
            # folder.
            raw = read_regular(where, MAX_CONFIG_BYTES, "a config file", follow_symlinks=True)
            if raw is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), where)
            data: Any = json.loads(raw.decode("utf-8"))
        except RefusedFile as exc:
            raise ConfigError(
                f"cannot read the config file {where}: it {exc.reason}; "
                "point jobledger at a regular JSON file"
            ) from exc
        except OSError as exc:
            cause = exc.cause if isinstance(exc, StorageError) else exc
            raise ConfigError(
                f"cannot read the config file {where}: {cause.strerror or cause}; "
                "check the path and its permissions"
            ) from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"the config file {where} is not valid JSON: {exc}") from exc
    else:
        data = source
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a JSON object with a 'jobState' key")
    if "jobState" not in data and where != "the config mapping":
        (warn or log.warning)(
            f"the config file {where} has no 'jobState' block: jobledger uses its defaults "
            f'(state in {DEFAULT_DIR}); add {{"jobState": {{...}}}} to configure it'
        )
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
    _check_places(block, where)
    timezone = block.get("timezone")
    try:
        resolve_timezone(timezone)
    except ConfigError as exc:
        raise ConfigError(f"key 'jobState.timezone' in {where}: {exc}") from None
    return JobStateConfig(
        enabled=block.get("enabled", True),
        dir=block.get("dir", ""),
        timezone=timezone,
        durability=durability,
        url=block.get("url"),
    )


def _check_places(block: Mapping[str, Any], where: str) -> None:
    """ConfigError (naming ``where``) unless the block gives at most one of a ``dir`` and
    a ``url``, the ``url`` being a PostgreSQL URL and the ``dir`` not another URL."""
    dir, url = block.get("dir") or None, block.get("url")
    if dir is not None and url is not None:
        raise ConfigError(
            f"keys 'jobState.dir' and 'jobState.url' in {where} are both set: give the "
            'folder or the PostgreSQL URL, not both (set the other to "" or null)'
        )
    if url is not None:
        if not is_postgres_url(url):
            raise ConfigError(
                f"jobState.url must be a postgresql:// URL (postgresql://user@host:5432/dbname) "
                f"or null for the folder, got {shown(url)!r} in {where}"
            )
        classify(url, f"key 'jobState.url' in {where}")
    if dir is not None:
        classify(dir, f"key 'jobState.dir' in {where}")
