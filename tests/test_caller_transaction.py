"""``enqueue(..., connection=)`` on a queue that has no transaction to join (a folder):
refused with ConfigError before anything is written, whatever the connection is. The
PostgreSQL side is tested in ``tests/backends/postgres/test_joined.py``."""

from __future__ import annotations

import pytest

from jobledger import ConfigError, JobQueue


def test_a_folder_queue_refuses_connection_and_writes_nothing(tmp_path):
    folder = tmp_path / "queue"
    with JobQueue(folder) as q:
        with pytest.raises(ConfigError, match=r"is not in PostgreSQL: a folder has no trans"):
            q.enqueue({"type": "T"}, connection=object())
        with pytest.raises(ConfigError, match="use a postgresql:// queue"):
            q.enqueue_many([{"type": "T"}], connection=object())
        assert not folder.exists()  # refused before its first use created it
        q.enqueue({"type": "T"}, job_id="plain")  # without connection=: as ever
        assert q.counts()["Queued"] == 1
