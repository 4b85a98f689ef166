"""Which queue writes are fsynced (README: "Which writes are fsynced")."""

from __future__ import annotations

import os

import pytest

from jobledger import JobQueue


@pytest.fixture
def fsyncs(monkeypatch):
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


@pytest.mark.parametrize("ordered", [True, False])
def test_enqueue_and_complete_are_durable_and_a_claim_never_leaves_an_empty_file(
    tmp_path, fsyncs, ordered
):
    q = JobQueue(tmp_path, durability="fsync")
    q.backend._rename_ordered = ordered  # as on ext4 / as on a file system that is not
    q.enqueue({"type": "T"}, job_id="a")
    q.counts()
    fsyncs.clear()
    q.enqueue({"type": "T"}, job_id="b")
    assert len(fsyncs) == 2  # the job file, then its folder
    fsyncs.clear()
    q.claim()
    # Not durable (a lost claim just runs the job again), but where the file system does
    # not order a rename after the data, the data is synced so the file is never empty.
    assert len(fsyncs) == (0 if ordered else 1)
    fsyncs.clear()
    q.complete("a")
    assert len(fsyncs) == 2


def test_flush_durability_never_fsyncs(tmp_path, fsyncs):
    q = JobQueue(tmp_path, durability="flush")
    q.backend._rename_ordered = False
    q.enqueue({"type": "T"}, job_id="a")
    q.claim()
    q.complete("a")
    assert fsyncs == []
