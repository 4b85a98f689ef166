"""Read commands never write: every reading method and command leaves a damaged folder
byte for byte as it was (names, bytes and mtimes, hidden files included)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobledger import JobQueue, JobState
from jobledger.cli._app import cli

ACCOUNT = "alice@example.com"
DEAD_WORKER = "gone-host-1-deadbeef"


def snapshot(root: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every file (bytes, mtime) and folder under ``root``, hidden ones included."""
    out: dict[str, tuple[bytes, int] | None] = {}
    for folder, dirs, names in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(folder, d), root) + "/"] = None
        for n in names:
            p = os.path.join(folder, n)
            out[os.path.relpath(p, root)] = (Path(p).read_bytes(), os.stat(p).st_mtime_ns)
    return out


def damaged(tmp_path: Path, index: str) -> tuple[Path, Path, Path]:
    """A state folder whose set's file is corrupt (its .bak good), and a queue folder
    with a corrupt job file, a Running job of a dead worker and a missing or stale
    queue.json."""
    state_dir, qdir = tmp_path / "state", tmp_path / "queue"
    state = JobState(state_dir, timezone="UTC")
    ts = state.taskset(ACCOUNT, "daily-set", tasks=[f"t{i}" for i in range(30)])
    for i in range(30):
        ts.mark_done(f"t{i}")
    (path,) = (state_dir / ACCOUNT).glob("daily-set-*.json")
    path.write_bytes(b'{"date": "torn')
    with JobQueue(qdir) as q:
        q.enqueue({"type": "T"}, job_id="a")
        q.enqueue({"type": "T"}, job_id="b")
        q.enqueue({"type": "T"}, job_id="done")
        q.claim()  # a
        q.complete("a")
        q.claim()  # b: made Running under a dead worker below
    doc = json.loads((qdir / "jobs" / "b.json").read_text())
    doc["_jobledger"]["worker"] = DEAD_WORKER
    (qdir / "jobs" / "b.json").write_text(json.dumps(doc))
    (qdir / "jobs" / "bad.json").write_bytes(b"\x00not json")
    if index == "missing":
        (qdir / "queue.json").unlink()
    else:
        (qdir / "queue.json").write_text(json.dumps({"running": [], "queued": ["a"]}))
    return state_dir, qdir, path


@pytest.mark.parametrize("index", ["missing", "stale"])
def test_reading_methods_leave_the_folders_untouched(tmp_path, caplog, index):
    state_dir, qdir, path = damaged(tmp_path, index)
    caplog.set_level(logging.WARNING, logger="jobledger")
    before = snapshot(tmp_path)

    state = JobState(state_dir, timezone="UTC")
    (record,) = state.records()
    assert len(record.completed) == 29  # the last good generation (.bak), shown
    assert str(path) in caplog.text and "corrupt" in caplog.text
    assert len(state.keys()) == 1
    assert state.holder(record.key) is None
    state.usage()
    assert snapshot(tmp_path) == before

    q = JobQueue(qdir)
    assert q.get("bad") is None
    assert q.get("b").status.value == "Running"  # shown as stored, not recovered
    assert [j.job_id for j in q.list()] == ["b", "done", "a"]
    assert [j.job_id for j in q.list("Running")] == ["b"]
    assert q.counts() == {
        "Queued": 1,
        "Running": 1,
        "Completed": 1,
        "Failed": 0,
        "Cancelled": 0,
    }
    q.close()
    assert "bad.json" in caplog.text
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("index", ["missing", "stale"])
def test_read_commands_leave_the_folders_untouched(tmp_path, index):
    state_dir, qdir, _ = damaged(tmp_path, index)
    before = snapshot(tmp_path)
    runner = CliRunner()
    for args in (
        ["status"],
        ["show", ACCOUNT],
        ["show", ACCOUNT, "--json"],
        ["list"],
        ["stats"],
        ["du"],
        ["status", "--watch"],  # not a terminal: one frame
    ):
        result = runner.invoke(cli, ["--dir", str(state_dir), *args])
        assert result.exit_code == 0, (args, result.output)
        assert snapshot(tmp_path) == before, args
    status = runner.invoke(cli, ["--dir", str(state_dir), "status"])
    assert "29/30" in status.stdout
    for args in (
        ["list"],
        ["list", "--json"],
        ["list", "--status", "Running"],
        ["show", "b"],
        ["show", "b", "--json"],
        ["counts"],
        ["counts", "--json"],
        ["top"],  # not a terminal: one frame
    ):
        result = runner.invoke(cli, ["jobs", *args, "--dir", str(qdir)])
        assert result.exit_code == 0, (args, result.output)
        assert snapshot(tmp_path) == before, args
    counts = runner.invoke(cli, ["jobs", "counts", "--json", "--dir", str(qdir)])
    assert json.loads(counts.stdout)["Running"] == 1


def test_doctor_after_a_read_still_finds_and_repairs_the_corrupt_file(tmp_path):
    state_dir, _, path = damaged(tmp_path, "missing")
    runner = CliRunner()
    assert runner.invoke(cli, ["--dir", str(state_dir), "status"]).exit_code == 0
    checked = runner.invoke(cli, ["--dir", str(state_dir), "doctor", "--no-repair"])
    assert checked.exit_code == 1
    assert f"corrupt: {path}" in checked.stdout
    repaired = runner.invoke(cli, ["--dir", str(state_dir), "doctor"])
    assert repaired.exit_code == 1  # the corrupt copy set aside waits for a person
    assert "(repaired)" in repaired.stdout and "inspect each, then delete it" in repaired.stdout
    (aside,) = path.parent.glob("*.corrupt-*")
    assert f"note: {aside}" in repaired.stdout
    assert len(json.loads(path.read_text())["completed"]) == 29
    aside.unlink()
    healthy = runner.invoke(cli, ["--dir", str(state_dir), "doctor"])
    assert healthy.exit_code == 0, healthy.output
    assert "No problems found" in healthy.stdout


def test_a_set_opened_to_work_on_still_repairs(tmp_path):
    state_dir, _, path = damaged(tmp_path, "missing")
    ts = JobState(state_dir, timezone="UTC").taskset(ACCOUNT, "daily-set")
    assert len(ts.completed) == 29
    assert list(path.parent.glob("*.corrupt-*"))  # set aside, as a writer does
    assert len(json.loads(path.read_text())["completed"]) == 29
