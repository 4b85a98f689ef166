"""A task set on PostgreSQL, killed exactly at its commit: ``mark_done`` SIGKILLed just
before and just after the COMMIT of its save (``pg.before_commit``, ``pg.after_commit``).

The files backend's points are swept in test_fault_points.py; this is the same check on
the database: the task being saved is recorded in full (after the commit) or not at all
(before it), nothing is recorded twice, the dead run's lease dies with its session, and
the next run resumes and completes the set, each task once.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.backends.postgres._pg import require_psycopg

require_psycopg()

import jobledger  # noqa: E402
from jobledger import _faults  # noqa: E402
from tests._child import Channel, Child  # noqa: E402

ACCOUNT = "user@email.com"
TYPE = "daily-set"
DATE = "2025-01-20"
PLAN = ["daily-check-in", "quiz-1", "poll-1", "quiz-2", "search-desktop"]


def _run(url: str, fault: tuple[str, int] | None):
    def target(chan: Channel) -> None:
        state = jobledger.JobState(url=url, timezone="UTC")
        with state.taskset(ACCOUNT, TYPE, PLAN, date=DATE) as ts:
            for i, task in enumerate(ts.pending()):
                if fault is not None and i == fault[1]:
                    _faults.arm(fault[0], 1)  # the next commit is this mark_done's
                ts.mark_done(task)
                chan.send(f"done {task}")
        chan.send("END")

    return target


def _completed(url: str) -> list[str]:
    state = jobledger.JobState(url=url, timezone="UTC")
    try:
        return list(state.taskset(ACCOUNT, TYPE, date=DATE).completed)
    finally:
        state.backend.close()


@pytest.mark.parametrize("name", ["pg.before_commit", "pg.after_commit"])
@pytest.mark.parametrize("nth", [0, 2])
def test_mark_done_killed_at_its_commit(pg_url, name, nth):
    child = Child(_run(pg_url, (name, nth)))
    said = []
    while (line := child.readline()) is not None:
        said.append(line)
    status = child.wait()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, said
    reported = [line.split(" ", 1)[1] for line in said]
    assert "END" not in said and reported == PLAN[:nth]
    completed = _completed(pg_url)
    if name == "pg.after_commit":
        assert completed == PLAN[: nth + 1], "committed, so recorded in full"
    else:
        assert completed == PLAN[:nth], "not committed, so not recorded at all"
    # The next run takes the dead run's lease at once and finishes, each task once.
    again = Child(_run(pg_url, None))
    rest = []
    while (line := again.readline()) is not None:
        rest.append(line)
    again.check()
    assert rest[-1] == "END"
    assert [line.split(" ", 1)[1] for line in rest[:-1]] == PLAN[len(completed) :]
    assert _completed(pg_url) == PLAN
