"""The one door to storage: ``jobledger.backends.open_job_backend`` and
``open_taskset_backend`` tell a folder from a PostgreSQL URL for every caller;
``JobQueue(backend=...)`` takes a backend as is; worker ids belong to neither backend."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobledger import ConfigError, JobQueue, JobStatus
from jobledger.backends import open_job_backend, open_taskset_backend
from jobledger.backends._identity import HOST, new_worker_id
from jobledger.backends.files import _locks
from jobledger.backends.files.jobs import FilesJobBackend
from jobledger.backends.files.tasksets import FilesTaskSetBackend

URL = "postgresql://someone:s3cret@127.0.0.1:1/nowhere"


def test_a_folder_opens_the_files_backends_at_its_absolute_path(tmp_path, clock, monkeypatch):
    monkeypatch.chdir(tmp_path)
    jobs = open_job_backend("queue", fsync=False, clock=clock)
    tasksets = open_taskset_backend(Path("state"), fsync=True, clock=clock, read_only=True)
    assert isinstance(jobs, FilesJobBackend) and jobs.location == str(tmp_path / "queue")
    assert isinstance(tasksets, FilesTaskSetBackend)
    assert tasksets.location == str(tmp_path / "state")
    assert list(tasksets.keys()) == [] and not (tmp_path / "state").exists()  # read only
    jobs.close()


def test_a_url_opens_the_postgres_backends_without_connecting(clock):
    from jobledger.backends.postgres.jobs import PostgresJobBackend
    from jobledger.backends.postgres.tasksets import PostgresTaskSetBackend

    jobs = open_job_backend(URL, fsync=True, clock=clock, worker_lease=2.5)
    tasksets = open_taskset_backend(URL, fsync=True, clock=clock)
    assert isinstance(jobs, PostgresJobBackend) and jobs.worker_lease == 2.5
    assert isinstance(tasksets, PostgresTaskSetBackend)
    assert "s3cret" not in jobs.location and "s3cret" not in tasksets.location


@pytest.mark.parametrize("opener", [open_job_backend, open_taskset_backend])
def test_a_look_alike_url_is_refused_by_the_door_naming_the_setting(opener, clock, tmp_path):
    with pytest.raises(ConfigError, match=r"^--to: 'mysql://h/db' starts like a URL"):
        opener("mysql://h/db", fsync=True, clock=clock, what="--to")
    with pytest.raises(ConfigError, match="names no database"):
        opener("postgresql://h:5432", fsync=True, clock=clock)
    assert os.listdir(tmp_path) == []


def test_a_worker_lease_for_a_folder_is_refused(tmp_path, clock):
    with pytest.raises(ConfigError, match="worker_lease applies to a PostgreSQL queue only"):
        open_job_backend(tmp_path, fsync=True, clock=clock, worker_lease=5.0)


def test_a_queue_takes_a_backend_as_is_and_reads_through_it(tmp_path, clock):
    backend = FilesJobBackend(str(tmp_path / "q"), fsync=False, clock=clock)
    queue = JobQueue(backend=backend, durability="flush", clock=clock)
    assert queue.backend is backend and queue.reader is backend
    assert queue.dir == backend.location == str(tmp_path / "q")
    queue.enqueue({"type": "T"}, job_id="a")
    assert backend.get("a") is not None and queue.get("a").status is JobStatus.QUEUED
    queue.close()
    assert queue.reader is backend  # still its own reader after closing
    assert [j.job_id for j in queue.list()] == ["a"]
    queue.close()


def test_a_queue_needs_one_place_exactly(tmp_path, clock):
    backend = FilesJobBackend(str(tmp_path / "q"), fsync=False, clock=clock)
    with pytest.raises(ConfigError, match="a backend and also dir"):
        JobQueue(tmp_path / "other", backend=backend)
    with pytest.raises(ConfigError, match="a backend and also worker_lease"):
        JobQueue(backend=backend, worker_lease=3.0)
    with pytest.raises(ConfigError, match="needs its place"):
        JobQueue()
    assert os.listdir(tmp_path) == []


def test_worker_ids_come_from_the_neutral_identity_module(tmp_path, clock):
    assert new_worker_id(123).startswith(f"{HOST}-123-")
    assert new_worker_id(123) != new_worker_id(123)
    assert _locks.HOST is HOST  # lock holders and worker ids name the host alike
    queue = JobQueue(tmp_path, durability="flush", clock=clock)
    assert queue.worker_id.startswith(f"{HOST}-{os.getpid()}-")
    assert queue.backend.live_workers() == [queue.worker_id]
    queue.close()


def test_the_policy_imports_no_backend_of_its_own():
    """The queue's policy reaches storage through the door only: importing it loads
    neither backend (nor the files backend's worker locks)."""
    code = (
        "import sys, jobledger._queue, jobledger._job_state\n"
        "print(sorted(m for m in sys.modules if m.startswith('jobledger.backends')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(ast.literal_eval(out))
    assert "jobledger.backends._identity" in loaded
    backends = {
        "jobledger.backends.files.jobs",
        "jobledger.backends.files.tasksets",
        "jobledger.backends.files._workers",
        "jobledger.backends.postgres",
    }
    assert not loaded & backends
