"""Task sets as files: ``<dir>/<account>/<type>-<YYYY-MM-DD>.json``.

Beside each state file, while it exists:

- ``<type>-<date>.json.bak``: the previous good generation (hard link, kept on every save);
- ``.<type>-<date>.lock``: the run lease, an OS lock held by the running process;
- ``<type>-<date>.json.corrupt-<stamp>``: a corrupt file set aside, never deleted by us.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
from collections.abc import Callable, Iterator

from ..._clock import Clock, iso_utc
from ..._errors import AlreadyRunning, LeaseHolder, StorageError
from ..._taskset_record import RunLease, TaskSetKey, TaskSetRecord, for_key
from .._contract import Finding, Lease
from ._atomic_write import is_temp_name, remove, write_atomic
from ._fs_probe import orders_rename_over
from ._locks import ProcessLock, holder_alive, live_holder, pid_alive, read_holder
from ._names import decode, encode, inside
from ._reading import MAX_TASKSET_FILE_BYTES, RefusedFile, read_bytes
from ._set_aside import set_aside
from ._sync_plan import SyncPlan, plan_sync

__all__ = ["FilesTaskSetBackend"]

log = logging.getLogger("jobledger")

_STATE = re.compile(r"^(?P<type>.+)-(?P<date>\d{4}-\d{2}-\d{2})\.json$")
_LOCK = re.compile(r"^\.(?P<type>.+)-(?P<date>\d{4}-\d{2}-\d{2})\.lock$")
_TEMP_PID = re.compile(r"\.tmp-(\d+)-\d+$")


class FilesTaskSetBackend:
    """Task-set records in JSON files under ``root``; see the module docstring."""

    def __init__(self, root: str, *, fsync: bool, clock: Clock, read_only: bool = False) -> None:
        self.root = os.path.abspath(root)
        # Read only: a corrupt file is reported and its last good generation shown, in
        # memory; nothing is moved, restored or written (the read commands' promise).
        self.read_only = read_only
        self.location = self.root
        self._fsync = fsync
        self._clock = clock
        # The last record this process read or wrote per set, with the file's bytes then:
        # the same bytes on disk mean nobody else wrote, so no parse is needed before a
        # save. (Not a stat: inode numbers are recycled at once when generations rotate,
        # sizes repeat and mtimes can be coarse, so another writer's file can look alike.)
        self._cache: dict[TaskSetKey, tuple[bytes, TaskSetRecord]] = {}
        # Encoding and the inside-the-root check (realpath: several lstat calls) once per set.
        self._paths: dict[TaskSetKey, str] = {}
        self._rename_ordered: bool | None = None  # asked on the first save that replaces

    def _replace_ordered(self) -> bool:
        """Whether the file system orders a rename over a file after its data (asked once,
        on the first save whose plan depends on it: see ``plan_sync``)."""
        if self._rename_ordered is None:
            self._rename_ordered = orders_rename_over(self.root)
        return self._rename_ordered

    def _sync_plan(self, replacing: bool) -> SyncPlan:
        """The fsyncs of a save of a state file (durable whenever the store syncs)."""
        return plan_sync(
            fsync=self._fsync, replacing=replacing, rename_ordered=self._replace_ordered
        )

    # -- paths ----------------------------------------------------------------------------

    def path(self, key: TaskSetKey) -> str:
        """The state file of ``key``, checked to lie inside the root."""
        path = self._paths.get(key)
        if path is None:
            account = encode(key.account, "account")
            name = f"{encode(key.type, 'type')}-{key.date}.json"
            path = self._paths[key] = inside(self.root, account, name)
        return path

    def _lock_path(self, key: TaskSetKey) -> str:
        path = self.path(key)
        folder, name = os.path.split(path)
        return os.path.join(folder, "." + name[: -len(".json")] + ".lock")

    # -- load / update --------------------------------------------------------------------

    def load(self, key: TaskSetKey) -> TaskSetRecord | None:
        """The record on disk; a corrupt one is set aside and its last good generation used
        (read only: reported, and its last good generation returned, nothing changed)."""
        path = self.path(key)
        for _ in range(3):  # a concurrent repair may move the file under us; look again
            try:
                os.lstat(path)
            except FileNotFoundError:
                self._cache.pop(key, None)
                return None
            except OSError as exc:
                raise StorageError("read", path, exc) from exc
            try:
                data = _read(path)
                if data is None:
                    continue
                record = self._parse(data, key)
            except (ValueError, RefusedFile) as exc:
                # A link, FIFO, device or oversize file is no state file: a corrupt one
                # (setting aside renames the entry itself, never what a link points to).
                reason = _reason(exc)
                if self.read_only:
                    return self._peek_backup(key, path, reason)
                if self._recover(key, path, reason) is None:
                    return None
                continue  # re-stat the restored file for the cache
            self._cache[key] = (data, record)
            return record
        return None

    def _parse(self, data: bytes, key: TaskSetKey) -> TaskSetRecord:
        return for_key(TaskSetRecord.loads(data), key, "file")

    def _peek_backup(self, key: TaskSetKey, path: str, reason: str) -> TaskSetRecord | None:
        """A corrupt file met by a read: name it, and show its last good generation
        without moving or restoring anything (that is ``doctor``'s, or the next save's)."""
        backup = path + ".bak"
        record = None
        try:
            data = _read(backup)
            if data is not None:
                record = self._parse(data, key)
        except (ValueError, RefusedFile):
            record = None
        if record is not None:
            log.warning(
                "State file %s %s; showing its last good generation %s "
                "(lastUpdate %s). Nothing was changed: run `jobledger doctor` to repair it.",
                path,
                reason,
                backup,
                record.last_update,
            )
        else:
            log.warning(
                "State file %s %s and has no good generation; left out. "
                "Nothing was changed: run `jobledger doctor` to set it aside.",
                path,
                reason,
            )
        return record

    def _recover(self, key: TaskSetKey, path: str, reason: str) -> TaskSetRecord | None:
        try:
            aside = set_aside(path, self._clock.now())
        except StorageError as exc:
            if isinstance(exc.cause, FileNotFoundError):
                return self.load(key)  # another process repaired it first
            raise
        log.warning("State file %s %s; moved it aside to %s", path, reason, aside)
        backup = path + ".bak"
        try:
            data = _read(backup)
            record = self._parse(data, key) if data is not None else None
        except (ValueError, RefusedFile) as exc:
            bad = set_aside(backup, self._clock.now())
            log.warning(
                "Its previous generation %s %s too; moved it aside to %s",
                backup,
                _reason(exc),
                bad,
            )
        else:
            if data is not None and record is not None:
                write_atomic(path, data, self._sync_plan(replacing=False))  # path was set aside
                log.warning(
                    "Restored %s from its last good generation %s (lastUpdate %s)",
                    path,
                    backup,
                    record.last_update,
                )
                return record
        log.warning(
            "No good generation of %s exists; starting it empty. The bad data is kept in %s",
            path,
            aside,
        )
        self._cache.pop(key, None)
        return None

    def update(
        self, key: TaskSetKey, change: Callable[[TaskSetRecord | None], TaskSetRecord]
    ) -> TaskSetRecord:
        """Read-modify-write with an atomic, generation-keeping save."""
        path = self.path(key)
        cached = self._cache.get(key)
        try:
            data = _read(path)
        except RefusedFile:
            data = b""  # not the cached bytes: load() below sets it aside, as a corrupt file
        if data is not None and cached is not None and cached[0] == data:
            current: TaskSetRecord | None = cached[1]
        else:
            current = self.load(key) if data is not None else None
        record = change(current)
        payload = record.dumps()
        write_atomic(
            path,
            payload,
            self._sync_plan(replacing=data is not None),
            backup=path + ".bak" if current is not None else None,
        )
        self._cache[key] = (payload, record)
        return record

    # -- leases ---------------------------------------------------------------------------

    def lease(self, key: TaskSetKey, since: str, wait: bool | float) -> Lease:
        """An OS lock on ``.<type>-<date>.lock`` beside the state file."""
        lock = ProcessLock(self._lock_path(key))
        if not lock.acquire(since, wait):
            raise AlreadyRunning(_describe(key), read_holder(lock.path), lock.path)
        return lock

    def holder(self, key: TaskSetKey) -> LeaseHolder | None:
        """The live holder named in the lock file, if any."""
        return live_holder(self._lock_path(key))

    # -- listing and maintenance ----------------------------------------------------------

    def keys(self, account: str | None = None) -> Iterator[TaskSetKey]:
        """Every state file's key, read from the file names."""
        for folder, names in self._account_listings(account):
            for name in names:
                m = _STATE.match(name)
                if m:
                    yield TaskSetKey(decode(folder), decode(m["type"]), m["date"])

    def _account_listings(self, account: str | None) -> Iterator[tuple[str, list[str]]]:
        """(account folder, its file names) of one account, or of every account."""
        if account is not None:
            folders = [encode(account, "account")]
        else:
            try:
                folders = [e for e in os.listdir(self.root) if not e.startswith(".")]
            except FileNotFoundError:
                return
            for folder in [f for f in folders if os.path.islink(os.path.join(self.root, f))]:
                # Its sets would lie outside the folder, or be listed twice.
                log.warning(
                    "Skipping %s: a symbolic link, not an account folder (jobledger reads "
                    "only what lies inside %s)",
                    os.path.join(self.root, folder),
                    self.root,
                )
                folders.remove(folder)
        for folder in folders:
            try:
                yield folder, os.listdir(os.path.join(self.root, folder))
            except (FileNotFoundError, NotADirectoryError):
                continue

    def load_range(self, first: str, last: str, account: str | None = None) -> list[TaskSetRecord]:
        """The records dated ``first`` to ``last``: the keys from the file names, then
        only those files read (a folder has no cheaper bulk read). A file whose bytes are
        those this object last read or wrote is not parsed again (the cache ``load`` and
        ``update`` keep): a page asked again reads its window of files, and parses only
        what changed. Anything else than a good file is :meth:`load`'s to report."""
        out = []
        for key in self.keys(account):
            if not first <= key.date <= last:
                continue
            try:
                data = _read(self.path(key))
            except StorageError:  # a folder, a link, a FIFO...: load() reports it
                data = b""
            if data is None:
                continue
            cached = self._cache.get(key)
            if cached is not None and cached[0] == data:
                out.append(cached[1])
                continue
            try:
                record = self._parse(data, key)
            except ValueError:
                found = self.load(key)
                if found is not None:
                    out.append(found)
                continue
            self._cache[key] = (data, record)
            out.append(record)
        return out

    def leases(self) -> list[RunLease]:
        """The lock files beside the state files. A holder releasing its lease removes
        its file, so a file whose named process is gone (on this host) was left by a
        holder that died; a holder on another host is taken as alive (its pid cannot be
        asked), as :meth:`holder` takes it."""
        out = []
        for folder, names in self._account_listings(None):
            for name in names:
                m = _LOCK.match(name)
                if m is None:
                    continue
                key = TaskSetKey(decode(folder), decode(m["type"]), m["date"])
                path = os.path.join(self.root, folder, name)
                if not os.path.exists(path):
                    continue  # released since the listing
                holder = read_holder(path)
                out.append(RunLease(key, holder, holder_alive(holder)))
        return out

    def delete(self, key: TaskSetKey) -> None:
        """Remove a set's files, under its lease so that no live run loses its file."""
        path = self.path(key)
        lease = self.lease(key, iso_utc(self._clock.now()), wait=False)
        try:
            remove(path)
            remove(path + ".bak")
            self._cache.pop(key, None)
        finally:
            lease.release()
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))  # only succeeds once the account folder is empty

    def usage(self) -> tuple[int, int]:
        """Bytes and files under the root."""
        total = files = 0
        for folder, _dirs, names in os.walk(self.root):
            for name in names:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    continue
                files += 1
        return total, files

    def check(self, repair: bool) -> list[Finding]:
        """Parse every state file and generation; find temp files and stale leases."""
        findings: list[Finding] = []
        for folder, _dirs, names in os.walk(self.root):
            for name in sorted(names):
                path = os.path.join(folder, name)
                findings.extend(self._check_file(folder, name, path, repair))
        return findings

    def _check_file(self, folder: str, name: str, path: str, repair: bool) -> list[Finding]:
        account = decode(os.path.basename(folder))
        if is_temp_name(name):
            m = _TEMP_PID.search(name)
            if m and pid_alive(int(m[1])):
                return []  # a live writer's save in progress
            if repair:
                remove(path)
            return [Finding("temp", path, "temp file left by an interrupted save", repair)]
        if name.startswith(".") and name.endswith(".lock"):
            lock = ProcessLock(path)
            if lock.acquire(None, wait=False):
                lock.release(unlink=repair)
                return [Finding("stale-lease", path, "lease of a dead process", repair)]
            return []
        if ".corrupt-" in name:
            return [_set_aside_note(path, "earlier")]
        m = _STATE.match(name.removesuffix(".bak"))
        if m is None or folder == self.root:
            return []
        key = TaskSetKey(account, decode(m["type"]), m["date"])
        try:
            self._parse(_read(path) or b"", key)
        except (ValueError, RefusedFile) as exc:
            why = exc.reason if isinstance(exc, RefusedFile) else str(exc)
            if name.endswith(".bak"):
                found = [Finding("corrupt", path, f"corrupt previous generation: {why}", repair)]
                if repair:
                    found.append(_set_aside_note(set_aside(path, self._clock.now())))
                return found
            found = [Finding("corrupt", path, why, repair)]
            if repair:
                before = _names(folder)
                self.load(key)
                new = sorted(n for n in _names(folder) - before if ".corrupt-" in n)
                found += [_set_aside_note(os.path.join(folder, n)) for n in new]
            return found
        return []


def _read(path: str) -> bytes | None:
    """A state file's (or generation's) bytes; None when there is none. A folder raises
    StorageError; a link, FIFO, device or oversize file :class:`RefusedFile`."""
    try:
        return read_bytes(path, MAX_TASKSET_FILE_BYTES, "a task-set file")
    except RefusedFile as exc:
        if exc.errno == errno.EISDIR:
            # A folder in the way is reported as it always was, never set aside.
            folder = IsADirectoryError(exc.errno, "Is a directory")
            raise StorageError("read", path, folder) from exc
        raise


def _reason(exc: ValueError | RefusedFile) -> str:
    """What is wrong with a file, after its path: "is corrupt (...)", "is a symbolic link"."""
    return exc.reason if isinstance(exc, RefusedFile) else f"is corrupt ({exc})"


def _set_aside_note(path: str, when: str = "now") -> Finding:
    """A corrupt file set aside (kept, never deleted by us): a person decides its fate."""
    return Finding(
        "note",
        path,
        f"a corrupt file set aside {when}; inspect it, then delete it, or restore it by hand",
        False,
    )


def _names(folder: str) -> set[str]:
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def _describe(key: TaskSetKey) -> str:
    return f"task set {key.type!r} of account {key.account!r} for {key.date}"
