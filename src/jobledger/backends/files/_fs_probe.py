"""What the file system holding a folder promises about rename order (read, never written).

Asked once per store, on its first save that needs to know (:func:`orders_rename_over`),
and fed to ``_sync_plan.plan_sync``.
"""

from __future__ import annotations

import os

__all__ = ["ext4_options", "mount_of", "orders_rename_over"]


def mount_of(path: str) -> tuple[str, str, list[str]]:
    """(mount point, file system type, mount options) of the mount holding ``path``, from
    /proc/mounts; ``("", "", [])`` where that cannot be read (not Linux)."""
    real = os.path.realpath(path)
    best: tuple[str, str, list[str]] = ("", "", [])
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 4:
                    continue
                mount = parts[1]
                holds = real == mount or real.startswith(mount.rstrip("/") + "/")
                if holds and len(mount) > len(best[0]):
                    best = (mount, parts[2], parts[3].split(","))
    except OSError:
        pass
    return best


def orders_rename_over(path: str) -> bool:
    """Whether the file system holding ``path`` writes a file's data before a rename over
    an existing file takes effect, even without fsync (ext4's default ``auto_da_alloc``).
    Where it cannot be told, False: then callers fsync the data to be safe.

    Only ext4 with a journal in its default ``data=ordered`` mode counts: the journal
    commit that carries the rename waits for the data ``auto_da_alloc`` started writing.
    ``data=writeback`` drops that wait, ``data=journal`` has no delayed allocation, and
    ext4 made without a journal (``mkfs.ext4 -O ^has_journal``, as on some virtual
    machines) only starts the write: its rename may reach the disk first, leaving an
    empty file after a power cut. The mount options do not tell the last case apart,
    the kernel's own list of the mount's options (``/proc/fs/ext4/<dev>/options``) does:
    it names ``data=ordered`` only when there is a journal."""
    _, fstype, options = mount_of(path)
    if fstype != "ext4" or "noauto_da_alloc" in options:
        return False
    kernel = ext4_options(path)
    return kernel is not None and "data=ordered" in kernel and "noauto_da_alloc" not in kernel


def ext4_options(path: str) -> list[str] | None:
    """The options ext4 itself reports for the file system holding ``path``, defaults
    included (``/proc/fs/ext4/<device>/options``); None where that cannot be read."""
    try:
        dev = os.stat(path).st_dev
        block = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
        name = os.path.basename(os.path.realpath(block))
        with open(f"/proc/fs/ext4/{name}/options", encoding="utf-8") as fh:
            return fh.read().split()
    except (OSError, ValueError):
        return None
