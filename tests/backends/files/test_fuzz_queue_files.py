"""Fuzzing the files queue's inputs: random bytes, random JSON values and random mutations
of a valid document written into ``queue.json`` or into one job file of a small queue.

Whatever is written, opening, claiming, counting and closing raise nothing but a
JobLedgerError, never hang, a read changes nothing on disk, and every intact job is served
exactly once."""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobledger import JobLedgerError, JobQueue
from tests.backends.files._snapshot import snapshot

QUEUED = ["j0", "j1", "j2"]
WATCHDOG = 20.0  # seconds an example may take before it counts as a hang

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Raw JSON texts no Python value dumps to: numbers out of range, nesting too deep.
SPECIAL = ["1e400", "-1e400", "1" * 5000, "[" * 100_000 + "]" * 100_000, '"\\ud800"']

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(1 << 70), max_value=1 << 70)
    | st.floats()
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def build(qdir: Path) -> None:
    """A small queue: "done" Completed, "dead" Running under a worker that is gone,
    "victim" and j0..j2 Queued."""
    with JobQueue(qdir, durability="flush") as q:
        q.enqueue({"type": "T"}, job_id="done")
        q.complete(q.claim().job_id, "ok")
        q.enqueue({"type": "T", "n": 1}, job_id="dead")
        assert q.claim().job_id == "dead"
        q.enqueue({"type": "T"}, job_id="victim", priority=-1)
        q.enqueue_many([{"type": "T", "i": i} for i in range(3)], job_ids=QUEUED)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside ``value`` (dict keys and list indexes)."""
    out = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        out.append((*prefix, key))
        if isinstance(child, (dict, list)) and child:
            out.extend(paths(child, (*prefix, key)))
    return out


@st.composite
def damage(draw: st.DrawFn, doc: dict[str, Any]) -> bytes:
    """Bytes to put in place of the file whose valid document is ``doc``."""
    kind = draw(st.sampled_from(["bytes", "json", "mutate", "mutate", "mutate", "delete"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    where = draw(st.sampled_from(paths(doc)))
    holder: Any = doc
    for key in where[:-1]:
        holder = holder[key]
    if kind == "delete":
        del holder[where[-1]]
        return json.dumps(doc).encode()
    special = draw(st.none() | st.sampled_from(SPECIAL))
    holder[where[-1]] = "@@HERE@@" if special else draw(JSON)
    text = json.dumps(doc)
    return (text.replace('"@@HERE@@"', special) if special else text).encode()


def exercise(qdir: Path) -> list[str]:
    """A reader's counts (which must leave the folder as it was), then a writer's open,
    claims until none is due, counts and close; the ids served."""
    before = snapshot(qdir)
    with JobQueue(qdir, durability="flush") as reader:
        check_counts(reader.counts())
    assert snapshot(qdir) == before, "a read changed the folder"
    served: list[str] = []
    q = JobQueue(qdir, durability="flush")
    try:
        check_counts(q.counts())
        while (job := q.claim()) is not None:
            served.append(job.job_id)
            q.complete(job.job_id)
        check_counts(q.counts())
    finally:
        q.close()
    return served


def check_counts(counts: dict[str, int]) -> None:
    assert set(counts) == {"Queued", "Running", "Completed", "Failed", "Cancelled"}
    assert all(type(n) is int and n >= 0 for n in counts.values())


def run_guarded(qdir: Path) -> list[str]:
    """``exercise`` in a thread, failing if it takes longer than the watchdog; only a
    JobLedgerError may come out of it (then nothing was served past it)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["served"] = exercise(qdir)
        except BaseException as exc:  # handed to the test thread below
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(WATCHDOG)
    assert not thread.is_alive(), f"the queue hung for {WATCHDOG} s on this input"
    error = result.get("error")
    if error is not None and not isinstance(error, JobLedgerError):
        raise AssertionError(f"{type(error).__name__} escaped: {error}") from error
    assert error is None, f"a JobLedgerError stopped the queue: {error}"
    served: list[str] = result["served"]
    return served


@SETTINGS
@given(data=st.data())
def test_any_queue_json_serves_every_job_once(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        qdir = Path(tmp) / "q"
        build(qdir)
        index = qdir / "queue.json"
        index.write_bytes(data.draw(damage(json.loads(index.read_text()))))
        served = run_guarded(qdir)
        assert len(served) == len(set(served)), f"a job was served twice: {served}"
        assert sorted(served) == sorted([*QUEUED, "dead", "victim"])


@SETTINGS
@given(data=st.data(), victim=st.sampled_from(["victim", "dead", "done", "j1"]))
def test_any_job_file_leaves_the_other_jobs_served_once(data: st.DataObject, victim: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        qdir = Path(tmp) / "q"
        build(qdir)
        path = qdir / "jobs" / f"{victim}.json"
        path.write_bytes(data.draw(damage(json.loads(path.read_text()))))
        served = run_guarded(qdir)
        assert len(served) == len(set(served)), f"a job was served twice: {served}"
        intact = {*QUEUED, "dead", "victim"} - {victim}
        assert intact <= set(served), f"intact jobs not served: {intact - set(served)}"
        assert set(served) <= intact | {victim}
