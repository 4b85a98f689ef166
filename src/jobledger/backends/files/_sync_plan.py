"""Which fsyncs a save does, and when: chosen once per save, by :func:`plan_sync`.

A save (``_atomic_write.write_atomic``) writes a temp file beside its target and renames it
over the target. Around that rename it may fsync the temp file's data before, the file
after, and the folder last; which of these it does is one :class:`SyncPlan`, so that a
combination no save should make cannot be asked for.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

__all__ = ["SyncPlan", "plan_sync"]


class SyncPlan(enum.Enum):
    """The fsyncs of one save, in the order it does them (see :func:`plan_sync`)."""

    #: Nothing synced: the save survives a process crash (the kernel has the data), not
    #: an OS crash or a power cut.
    NONE = ("none", False, False, False)
    #: The temp file's data synced before the rename, the folder not: the rename may be
    #: lost in a power cut, but never lands before the data it names (no empty file).
    DATA_BEFORE_RENAME = ("data before rename", True, False, False)
    #: Write, fsync the temp file, rename, fsync the folder: durable once done.
    SYNC_BEFORE_RENAME = ("sync before rename", True, False, True)
    #: As :attr:`SYNC_BEFORE_RENAME`, but the folder's fsync is the caller's, who saves
    #: several new files and syncs their folder once (``fsync_dir``): durable after that.
    SYNC_BEFORE_RENAME_CALLER_SYNCS_FOLDER = (
        "sync before rename, folder by caller",
        True,
        False,
        False,
    )
    #: Write, rename, fsync the file, fsync the folder. A power cut still leaves the old or
    #: the new bytes, never a mix or an empty file, where the file system writes a file's
    #: data before a rename over an existing file takes effect (``orders_rename_over``);
    #: durable once the syncs are done. On ext4 with a journal the file's fsync commits the
    #: rename with the data: one journal commit where syncing first takes two.
    SYNC_AFTER_RENAME = ("sync after rename", False, True, True)

    # Plain attributes, not properties: read on every save, however cheap it must be.
    syncs_before_rename: bool
    syncs_after_rename: bool
    syncs_folder: bool

    def __init__(self, label: str, before: bool, after: bool, folder: bool) -> None:
        self.label = label
        self.syncs_before_rename = before  # the temp file's data, before the rename
        self.syncs_after_rename = after  # the file, after the rename (then its folder)
        self.syncs_folder = folder  # the folder, by the save itself or its later syncs

    @property
    def durable(self) -> bool:
        """Whether the save is made to survive a power cut (by itself or its caller): then
        the folders it creates for its file are synced into their parents too."""
        return self.syncs_folder or self is SyncPlan.SYNC_BEFORE_RENAME_CALLER_SYNCS_FOLDER


def plan_sync(
    *,
    fsync: bool,
    replacing: bool,
    rename_ordered: Callable[[], bool],
    durable: bool = True,
    caller_syncs_folder: bool = False,
) -> SyncPlan:
    """The one place a save's fsyncs are chosen.

    ``fsync``: the store's setting (False: nothing is ever synced). ``durable``: this save
    must survive a power cut once done; False for a write that may be lost in one but must
    never leave an empty file (a claim). ``replacing``: the target exists (a transition,
    not a new file). ``rename_ordered``: asked only when the answer matters, whether the
    file system orders a rename over a file after its data (``orders_rename_over``,
    cached by the caller). ``caller_syncs_folder``: the caller syncs the folder once for
    several new files."""
    if not fsync:
        return SyncPlan.NONE
    if not durable:
        # Where the file system does not order the rename after the data by itself, sync
        # the data (not the folder): never an empty file after a power cut.
        return SyncPlan.NONE if rename_ordered() else SyncPlan.DATA_BEFORE_RENAME
    if replacing and rename_ordered():
        # Rename first, sync after: one journal commit instead of two on ext4 with a
        # journal (a new file has no such ordering: it syncs first).
        return SyncPlan.SYNC_AFTER_RENAME
    if caller_syncs_folder:
        return SyncPlan.SYNC_BEFORE_RENAME_CALLER_SYNCS_FOLDER
    return SyncPlan.SYNC_BEFORE_RENAME
