"""Former home of the atomic writer, now split by responsibility; re-exports only.

Kept so that branches written against it still import while they are merged; nothing in
``src/`` imports it. The names live in:

- ``_atomic_write``: temp file, write, fsync, rename, folder fsync (``write_atomic``);
- ``_sync_plan``: which fsyncs a save does (``SyncPlan``, ``plan_sync``);
- ``_syncs``: fsyncs of folders, of many files at once, and the deferred ones;
- ``_fs_probe``: what the file system promises about rename order;
- ``_set_aside``: moving a corrupt file aside; ``_reading.read_bytes``: reading one.
"""

from __future__ import annotations

from ._atomic_write import (
    TEMP_MARK,
    Prepared,
    is_temp_name,
    prepare,
    remove,
    sync_prepared,
    write_atomic,
)
from ._fs_probe import ext4_options, mount_of, orders_rename_over
from ._reading import read_bytes
from ._set_aside import set_aside
from ._sync_plan import SyncPlan, plan_sync
from ._syncs import FolderSync, fsync_dir, fsync_each, run_syncs

__all__ = [
    "TEMP_MARK",
    "FolderSync",
    "Prepared",
    "SyncPlan",
    "ext4_options",
    "fsync_dir",
    "fsync_each",
    "is_temp_name",
    "mount_of",
    "orders_rename_over",
    "plan_sync",
    "prepare",
    "read_bytes",
    "remove",
    "run_syncs",
    "set_aside",
    "sync_prepared",
    "write_atomic",
]
