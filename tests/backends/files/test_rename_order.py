"""Which file systems let a durable replace rename before it syncs (``orders_rename_over``).

The answer decides whether a claim's unsynced write can be left to the kernel: only where
a rename over a file cannot reach the disk before the new data. Saying yes wrongly risks
an empty job file after a power cut, so every doubt answers no."""

from __future__ import annotations

import os

import pytest

from jobledger.backends.files import _fs_probe
from jobledger.backends.files._fs_probe import ext4_options, orders_rename_over

JOURNALED = ["rw", "delalloc", "auto_da_alloc", "data=ordered", "commit=5"]
# What /proc/fs/ext4/<dev>/options lists for an ext4 made without a journal: no data=.
NO_JOURNAL = ["rw", "discard", "delalloc", "nojournal_checksum", "auto_da_alloc", "commit=5"]


@pytest.mark.parametrize(
    ("fstype", "mount_options", "kernel_options", "expected"),
    [
        ("ext4", ["rw"], JOURNALED, True),
        ("ext4", ["rw"], NO_JOURNAL, False),
        ("ext4", ["rw"], [*JOURNALED[:3], "data=writeback"], False),
        ("ext4", ["rw"], ["rw", "data=journal"], False),
        ("ext4", ["rw", "noauto_da_alloc"], JOURNALED, False),
        ("ext4", ["rw"], [*JOURNALED, "noauto_da_alloc"], False),
        ("ext4", ["rw"], None, False),  # the kernel's list cannot be read
        ("xfs", ["rw"], JOURNALED, False),
        ("", [], None, False),  # not Linux
    ],
)
def test_only_ext4_with_an_ordered_journal_orders_a_rename_after_the_data(
    monkeypatch, fstype, mount_options, kernel_options, expected
):
    monkeypatch.setattr(_fs_probe, "mount_of", lambda path: ("/", fstype, mount_options))
    monkeypatch.setattr(_fs_probe, "ext4_options", lambda path: kernel_options)
    assert orders_rename_over("/anywhere") is expected


def _journal_of(path) -> bool:
    """Whether the block device under ``path`` has a jbd2 journal (each journal the kernel
    runs has a /proc/fs/jbd2/<device>-<n> entry)."""
    if not os.path.isdir("/proc/fs/jbd2"):
        return False  # jbd2 not even loaded
    dev = os.stat(path).st_dev
    name = os.path.basename(os.path.realpath(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"))
    return any(entry.startswith(name + "-") for entry in os.listdir("/proc/fs/jbd2"))


def test_the_answer_for_this_machine_s_own_folder_agrees_with_its_journal(tmp_path):
    # The development machine's ext4 has no journal, and its mount options look like any
    # other ext4's: the check once said yes there.
    if ext4_options(tmp_path) is None:
        assert orders_rename_over(str(tmp_path)) is False
        return
    if not _journal_of(tmp_path):
        assert orders_rename_over(str(tmp_path)) is False
    else:
        assert orders_rename_over(str(tmp_path)) is ("data=ordered" in ext4_options(tmp_path))
