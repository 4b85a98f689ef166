"""Objects inherited through fork() never use or release the parent's locks."""

from __future__ import annotations

import os

import pytest

import jobledger


def _in_child(fn) -> int:
    """Run ``fn`` in a forked child; return its exit status (0 = fn returned True)."""
    pid = os.fork()
    if pid == 0:
        try:
            code = 0 if fn() else 1
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_forked_child_is_a_new_worker(tmp_path):
    queue = jobledger.JobQueue(tmp_path, durability="flush")
    queue.enqueue_many([{"type": "T", "n": i} for i in range(2)])
    parent_job = queue.claim()
    parent_worker = queue.worker_id

    def child() -> bool:
        job = queue.claim()
        # Its own id, a different job, and the parent's Running job was not "recovered"
        # (the parent is alive, and its lock was not mistaken for the child's).
        return (
            job is not None
            and queue.worker_id != parent_worker
            and job.job_id != parent_job.job_id
            and queue.get(parent_job.job_id).status is jobledger.JobStatus.RUNNING
        )

    assert _in_child(child) == 0
    assert queue.worker_id == parent_worker
    assert parent_worker in queue.live_workers()
    queue.complete(parent_job.job_id)


def test_a_forked_child_does_not_release_the_parents_lease(tmp_path):
    state = jobledger.JobState(tmp_path, durability="flush")
    with state.taskset("a", "t", ["x"]) as ts:

        def child() -> bool:
            ts.release()  # the inherited lease: must not unlock or unlink the parent's
            return True

        assert _in_child(child) == 0
        assert state.holder(ts.key) is not None
        with (
            pytest.raises(jobledger.AlreadyRunning),
            jobledger.JobState(tmp_path).taskset("a", "t"),
        ):
            pass


def test_a_forked_child_syncs_a_batch_with_threads_of_its_own(tmp_path):
    # The parent's pool of fsync threads does not exist in the child: a child using the
    # inherited pool would wait forever for its batch's fsyncs.
    from jobledger.backends.files import _syncs

    paths = [tmp_path / f"f{i}" for i in range(3)]
    fds = [os.open(p, os.O_WRONLY | os.O_CREAT, 0o644) for p in paths]
    try:
        assert _syncs.fsync_each(fds) == [None] * 3  # the parent's pool now exists

        def child() -> bool:
            import signal

            signal.alarm(30)  # a hang ends the child (and fails the test), not the suite
            return _syncs.fsync_each(fds) == [None] * 3

        assert _in_child(child) == 0
    finally:
        for fd in fds:
            os.close(fd)
